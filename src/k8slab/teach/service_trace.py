"""`k8slab trace SRC svc/NAME`: where a connection to a ClusterIP is rewritten, then the path it takes.

A traceroute to a ClusterIP reaches no pod (its UDP probes match no kube-proxy rule), so the rewrite is
observed with one real connection instead: `iptables-save -c -t nat` on every node, the connection from SRC
(wget in a pod, curl on a node), the counters again; the DNAT rule that counted it names the endpoint and the
node (teach/dnat.py judges it against kube-proxy's rules). Then the endpoint is traced with the ordinary
engine (teach/trace.py), the DNAT being step 0 of that path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from k8slab.labs.base import Lab, Pod, Progress, Result, quiet
from k8slab.teach.dnat import DnatExplanation, ServiceTarget, counter_rises, expect_dnat, explain_dnat
from k8slab.teach.explain import Endpoint
from k8slab.teach.trace import ExplainedTrace, _run_at, _show, _where, observe_trace
from k8slab.verify.concurrency import concurrently

CONNECT_SECONDS = 5
SAVE_COUNTERS = ("iptables-save", "-c", "-t", "nat")


@dataclass
class ServiceTrace:
    dnat: DnatExplanation
    path: ExplainedTrace | None   # the trace to the endpoint chosen (None: nothing rewritten, or the source itself)
    endpoint: Endpoint | None

    @property
    def ok(self) -> bool:
        """The DNAT was where the rules put it and the endpoint's path is the expected one."""
        path_ok = self.path is None or (self.path.explanation.ok and self.path.explanation.encapsulation_ok
                                        is not False)
        return self.dnat.ok and self.dnat.rewritten and path_ok

    @property
    def summary(self) -> str:
        if self.path is None:
            return self.dnat.summary
        return f"{self.dnat.summary}; then {self.path.explanation.summary}"


def connect_argv(src: Endpoint, target: ServiceTarget) -> list[str]:
    """One connection to CLUSTERIP:PORT as a student would make it: wget in a pod (busybox has it), curl on a
    node; UDP gets one datagram from nc. Bounded: busybox wget's -T does not cover the connect."""
    host, port = str(target.address), target.dport or 80
    if target.protocol == "udp":
        return ["sh", "-c", f"echo k8slab | timeout {CONNECT_SECONDS} nc -u -w 1 {host} {port}"]
    url = f"http://{host}:{port}/"
    if src.pod:
        return ["timeout", str(CONNECT_SECONDS), "wget", "-qO-", "-T", str(CONNECT_SECONDS), url]
    return ["curl", "-sS", "-m", str(CONNECT_SECONDS), url]


def reply_text(reply: Result) -> str:
    """What the connection printed: the page, else its error, else why there is none."""
    if reply.ok:
        return reply.stdout
    if reply.stderr.strip():
        return reply.stderr
    if reply.rc in (124, 137, 143):  # timeout(1)'s own status, or killed by it
        return f"no answer: gave up after {CONNECT_SECONDS} s"
    return f"no answer (exit status {reply.rc})"


def snapshot(lab: Lab) -> dict[str, str]:
    """Every node's nat table with its packet counters (node name -> `iptables-save -c -t nat`)."""
    found = concurrently({n.name: (lambda n=n: lab.node_run(n.name, list(SAVE_COUNTERS), timeout=30))
                          for n in lab.spec.nodes})
    return {node: r.stdout if r.ok else "" for node, r in found.items()}


def endpoint_of(lab: Lab, pods: Sequence[Pod], ip) -> Endpoint:
    pod = next((p for p in pods if p.ip == ip), None)
    if pod is not None:
        return Endpoint(pod.ip, pod.node, pod=pod.name)
    owner = lab.spec.node_by_ip(ip)
    return Endpoint(ip, owner.name if owner else None)


def observe_service_trace(lab: Lab, src: Endpoint, target: ServiceTarget, *, capture: bool = True,
                          pods: Sequence[Pod] = (), progress: Progress = quiet) -> ServiceTrace:
    spec = lab.spec
    expected = expect_dnat(spec, lab.services() or [], target, src)
    argv = connect_argv(src, target)
    progress(f"iptables-save -c -t nat on every node, {_show(argv)} {_where(src)}, and the counters again")
    before = snapshot(lab)
    reply: Result = _run_at(lab, src, argv, timeout=CONNECT_SECONDS + 10)
    after = snapshot(lab)
    route = lab.node_run(src.node or "", ["ip", "route", "get", str(target.address)], timeout=15)
    dnat = explain_dnat(spec, src, target, expected, counter_rises(before, after),
                        probe=f"{_show(argv)}   # {_where(src)}", reply=reply_text(reply), reply_ok=reply.ok,
                        route_on_node=route.stdout + route.stderr, pods=pods)
    if dnat.chosen is None:
        return ServiceTrace(dnat, None, None)
    dst = endpoint_of(lab, pods, dnat.chosen.endpoint)
    if dst.address == src.address:
        dnat.lines.append(f"the endpoint chosen is {src.short} itself (hairpin): the packet went out to {src.node} "
                          "and back through the same veth; there is no path between two places to trace")
        return ServiceTrace(dnat, None, dst)
    progress(f"the connection reached {dst.short}: tracing the path to it")
    path = observe_trace(lab, src, dst, capture=capture, pods=pods, progress=progress)
    if not dst.pod and target.service is not None:
        # an endpoint no listed pod has is a pod all the same (kube-dns's: the cluster's own, not in `pod list`);
        # the plain trace's note that nothing there can answer does not hold for it
        lines = path.explanation.lines
        lines[:] = [line if not line.startswith(f"note: {dst.address} is in ") else
                    f"note: {dst.address} is an endpoint of service {target.service.name}: a pod `pod list` does "
                    "not show (the cluster's own), which answers like any other" for line in lines]
    dnat.lines.append(f"then the path to the endpoint, {dst.label}, as the rewritten packet takes it:")
    return ServiceTrace(dnat, path, dst)
