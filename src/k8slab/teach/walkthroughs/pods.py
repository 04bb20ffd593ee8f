"""Pods that behave like pods, as walkthrough steps: 1 two containers of one pod talk over localhost,
2 a ClusterIP service spreads 20 requests over its three pods, with the chains kube-proxy wrote,
3 curl between two pods of one node and 5 across nodes, each captured to a pcap that shows the pods'
addresses unchanged, 4 the same-node path at layer 2: ARP tables and the bridge's forwarding database
(and, on flannel vxlan, what flanneld wrote for flannel.1).

Every step runs on either lab: the pods' containers through Lab.pod_start, the service through the lab's
service_expose (kubectl expose and the real kube-proxy on the VirtualBox lab), captures through the lab's
node_stream_argv (over SSH there)."""

from __future__ import annotations

import collections
import re
from collections.abc import Mapping

from k8slab.errors import CommandFailedError
from k8slab.labs.base import Container, Pod
from k8slab.labs.kube_proxy import check as check_chains
from k8slab.labs.kube_proxy import svc_chain
from k8slab.spec.facts import POD_IF
from k8slab.spec.model import LabSpec
from k8slab.teach.walkthroughs.curl_capture import curl_step
from k8slab.teach.walkthroughs.layer2 import layer2_step
from k8slab.teach.walkthroughs.model import (
    Check,
    PodPart,
    Roles,
    Step,
    StepContext,
    StepResult,
    StepText,
    Walkthrough,
    needs_workers,
)

WEB, SIDECAR = "web", "sidecar"
SERVICE, BACKENDS, CLIENT = "hello", ("hello-1", "hello-2", "hello-3"), "client"
REQUESTS = 20
PORT = 80


# The tutorial's pod names for the curl and layer-2 steps: httpd serves, busybox fetches (it has wget).
HTTPD, BUSYBOX = "httpd", "busybox"
SERVER = PodPart(HTTPD, "dst_worker", "httpd")
NEAR_CLIENT = PodPart(BUSYBOX, "dst_worker", "busybox", "sleep 3600")
FAR_CLIENT = PodPart(BUSYBOX, "src_worker", "busybox", "sleep 3600")


def _start(ctx: StepContext, name: str, node: str, containers: tuple[Container, ...]) -> Pod:
    """A pod of several containers, owned (and removed afterwards) by the runner."""
    ctx.adopt(name)
    ctx.progress(f"starting pod {name} on {node}: containers {', '.join(f'{c.name} ({c.image})' for c in containers)}")
    return ctx.lab.pod_start(name, node, containers)


# ---------------------------------------------------------------- step 1: localhost between containers

def _text1(spec: LabSpec, r: Roles, pods: Mapping[str, Pod]) -> StepText:
    w1 = r.node("dst_worker").name
    return StepText(
        1, "two containers, one localhost", "the containers of a pod share its network namespace (the pause "
        "container's): the sidecar reaches nginx on localhost and sees the same eth0, but not nginx's processes",
        (f"kubectl run {WEB} --image=nginx --overrides='<{WEB} and {SIDECAR}=busybox on {w1}>'",
         f"kubectl exec {WEB} -c {SIDECAR} -- wget -qO- localhost"),
        (f"k8slab pod run {WEB} --image nginx --container {SIDECAR}=busybox --node {w1}",
         f"k8slab pod exec {WEB} -c {SIDECAR} -- wget -qO- localhost"),
        "nginx's page through localhost from the sidecar, the same address on both containers' eth0")


def _run1(ctx: StepContext, text: StepText) -> StepResult:
    node = ctx.roles.node("dst_worker").name
    pod = _start(ctx, WEB, node, (Container(WEB, "nginx"), Container(SIDECAR, "busybox")))
    page = ctx.lab.pod_run(WEB, ["wget", "-qO-", "-T", "10", "http://localhost/"], container=SIDECAR)
    # busybox has `ip`; the nginx image does not, and the pod's address is nginx's by definition
    addr = ctx.lab.pod_run(WEB, ["ip", "-4", "-o", "addr", "show", POD_IF], container=SIDECAR).stdout
    procs = ctx.lab.pod_run(WEB, ["ps", "-o", "pid,comm"], container=SIDECAR).stdout
    checks = [Check(page.ok and "nginx" in page.stdout.lower(), "the sidecar got nginx's page from localhost"),
              Check(f" {pod.ip}/" in addr, f"the sidecar's {POD_IF} carries the pod's address {pod.ip}, nginx's too"),
              Check("nginx" not in procs and "httpd" not in procs,
                    "the sidecar's process list has no nginx: each container has its own PID namespace")]
    output = "\n".join([f"$ wget -qO- localhost   # in {SIDECAR}", page.stdout.strip() or page.stderr.strip(),
                        f"$ ps -o pid,comm   # in {SIDECAR}", procs.strip()])
    return StepResult(text, list(text.emulated), output, checks,
                      [(f"localhost is the pod's loopback: one network namespace for both containers, {pod.ip} on "
                       f"its {POD_IF}. Processes and files are each container's own.")])


# ---------------------------------------------------------------- step 2: a ClusterIP service

def _text2(spec: LabSpec, r: Roles, pods: Mapping[str, Pod]) -> StepText:
    pods_arg = ",".join(BACKENDS)
    return StepText(
        2, "a ClusterIP service balances", f"one address for three pods: kube-proxy's nat chains in every node "
        f"DNAT the service's address to one of the pods, each with odds 1/3 (statistic --probability 1/3, then "
        f"1/2, then the last), so {REQUESTS} requests reach all three",
        (*(f"kubectl run {b} --image=httpd" for b in BACKENDS), f"kubectl run {CLIENT} --image=busybox -- sleep 3600",
         (f"kubectl label pods {' '.join(BACKENDS)} app={SERVICE} && kubectl expose pod {BACKENDS[0]} --name {SERVICE} "
         f"--port {PORT} --selector app={SERVICE}"),
         f"for i in $(seq {REQUESTS}); do kubectl exec {CLIENT} -- wget -qO- {SERVICE}; done",
         "iptables -t nat -S KUBE-SERVICES   # on any node"),
        (*(f"k8slab pod run {b} --image httpd" for b in BACKENDS), f"k8slab pod run {CLIENT}",
         f"k8slab service expose {SERVICE} --port {PORT} --pods {pods_arg}",
         f"k8slab pod exec {CLIENT} -- wget -qO- {SERVICE}   # {REQUESTS} times",
         "k8slab node exec NODE -- iptables -t nat -S KUBE-SERVICES"),
        f"all three pods answer among {REQUESTS} requests to the service's name; the chains match kube-proxy's")


def _run2(ctx: StepContext, text: StepText) -> StepResult:
    lab, spec = ctx.lab, ctx.spec
    workers = [w.name for w in spec.workers]
    for i, name in enumerate(BACKENDS):
        _start(ctx, name, workers[i % len(workers)], (Container(name, "httpd"),))
    client_node = workers[-1]
    _start(ctx, CLIENT, client_node, (Container(CLIENT, "busybox"),))
    ctx.progress(f"service {SERVICE} over {', '.join(BACKENDS)}")
    lab.service_expose(SERVICE, PORT, PORT, list(BACKENDS))
    try:
        svc = next((s for s in lab.services() or () if s.name == SERVICE), None)
        if svc is None:
            raise CommandFailedError(f"service {SERVICE} was exposed but lab {spec.name!r} does not list it: "
                                     f"`{lab.command('service list')}` says what it has")
        seen: collections.Counter[str] = collections.Counter()
        for i in range(REQUESTS):
            ctx.progress(f"request {i + 1}/{REQUESTS} to {SERVICE} ({svc.cluster_ip})")
            page = lab.pod_run(CLIENT, ["wget", "-qO-", "-T", "10", f"http://{SERVICE}/"], timeout=30)
            seen.update(re.findall(r"pod (hello-\d)", page.stdout) or ["(no answer)"])
        chain = svc_chain(svc, svc.ports[0])
        saved = lab.node_run(client_node, ["iptables-save", "-t", "nat"]).stdout
        shown = [line for line in saved.splitlines() if SERVICE in line and line.startswith("-A KUBE-S")]
    finally:
        lab.service_delete(SERVICE)
    problems = check_chains(saved, [svc])
    checks = [Check(set(BACKENDS) <= set(seen), "all three pods answered: " +
                    ", ".join(f"{name} {count}" for name, count in sorted(seen.items()))),
              Check(not problems, f"{client_node}'s {chain} sends {svc.cluster_ip}:{PORT} to the three pods with "
                                  f"odds 1/3, 1/2, 1" + (f" ({'; '.join(problems)})" if problems else ""))]
    output = "\n".join([f"{REQUESTS} requests to {SERVICE} ({svc.cluster_ip}) from {CLIENT} on {client_node}:",
                        *(f"  {name}: {count}" for name, count in sorted(seen.items())),
                        f"$ iptables-save -t nat | grep {SERVICE}   # on {client_node}", *shown])
    return StepResult(text, list(text.emulated), output, checks,
                      [(f"the client resolved {SERVICE} through the cluster DNS to {svc.cluster_ip}; its node's "
                       f"KUBE-SERVICES chain jumped to {chain}, which picked a KUBE-SEP chain at random, whose DNAT "
                       "rewrote the destination to that pod's address before routing.")])


PODS = Walkthrough(
    "pods", "pods that behave like pods: two containers on localhost, a ClusterIP service over three pods, curl "
    "between pods on one node and across nodes with captures, the bridge at layer 2",
    (Step("two containers, one localhost", _text1, _run1, needs=needs_workers(1), starts=(WEB,)),
     Step("a ClusterIP service balances", _text2, _run2, needs=needs_workers(1), starts=(*BACKENDS, CLIENT)),
     curl_step("pods", 3, "curl between pods on one node", NEAR_CLIENT, SERVER, needs=needs_workers(1)),
     layer2_step(4, "one node at layer 2: ARP and the bridge", NEAR_CLIENT, SERVER, needs=needs_workers(1)),
     curl_step("pods", 5, "curl between pods across nodes", FAR_CLIENT, SERVER, needs=needs_workers(2))))
