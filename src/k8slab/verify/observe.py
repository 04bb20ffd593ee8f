"""Reading the lab (side effects): every node's links, routes and forwarding, the pods' addresses, the
traces between them and, on a lab with a Kubernetes API, what it says. Nothing here changes the lab."""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

from k8slab.labs.base import Lab, Pod, Progress, quiet
from k8slab.spec.expect import POD_IF, hops_from_node, hops_from_pod
from k8slab.spec.model import Node
from k8slab.verify import diagnose_ipip
from k8slab.verify.concurrency import concurrently
from k8slab.verify.facts import FactsError, KubeFacts, NodeFacts, gather_node, parse_bgp, parse_inet
from k8slab.verify.pods import SuitePods
from k8slab.verify.schedule import Limits, distance, wave_order
from k8slab.verify.tracing import Runner, TraceJob, TraceRun, trace_sources

FLANNEL_CONFIGMAP = "kube-flannel-cfg"
FLANNEL_NAMESPACES = ("kube-flannel", "kube-system")  # current manifest, older ones


def observe_nodes(lab: Lab) -> dict[str, NodeFacts]:
    """Every node's links, routes and sysctls (read-only commands through the Lab's node_run); on a Calico lab
    in a BGP mode, what its BIRD says too (labs that can ask BIRD have bgp_status(node) -> (`show status`,
    `show protocols`), None where it is silent); on an IP-in-IP lab, its firewall (`iptables -S`, read-only:
    what drops protocol 4, verify/diagnose_ipip.py)."""
    def look(node: Node) -> NodeFacts:
        facts = gather_node(lambda argv: lab.node_run(node.name, argv, timeout=30), node.name)
        if diagnose_ipip.tunnel(lab.spec) is not None:
            res = lab.node_run(node.name, list(diagnose_ipip.FIREWALL_ARGV), timeout=30)
            facts = replace(facts, firewall=tuple(res.stdout.splitlines()) if res.ok else None)
        if lab.spec.calico is not None and lab.spec.calico.uses_bgp:
            said = lab.bgp_status(node.name)
            if said is not None:
                facts = replace(facts, bgp=parse_bgp(*said))
        return facts
    return concurrently({n.name: (lambda n=n: look(n)) for n in lab.spec.nodes})


def pod_addresses(lab: Lab, pods: Iterable[Pod]) -> dict[IPv4Address, tuple[IPv4Interface, ...]]:
    """What each pod's eth0 really carries, keyed by the address the lab says it has."""
    def look(pod: Pod) -> tuple[IPv4Interface, ...]:
        res = lab.pod_run(pod.name, ["ip", "-4", "addr", "show", "dev", POD_IF], timeout=15)
        return parse_inet(res.stdout) if res.ok else ()
    return concurrently({p.ip: (lambda p=p: look(p)) for p in pods})


def observe_kubernetes(lab: Lab, pods: Mapping[str, Pod]) -> KubeFacts:
    kubectl = lab.kubectl
    nodes = kubectl("get", "nodes", "-o", "json")
    if not nodes.ok:
        raise FactsError(f"`kubectl get nodes` failed: {nodes.stderr.strip()}")
    netconf = None
    for ns in FLANNEL_NAMESPACES:
        res = kubectl("-n", ns, "get", "configmap", FLANNEL_CONFIGMAP, "-o", "json")
        if res.ok:
            netconf = json.loads(res.stdout).get("data", {}).get("net-conf.json")
            break
    logs = concurrently({node: (lambda p=pod: kubectl("logs", p.name)) for node, pod in pods.items()})
    return KubeFacts(nodes.stdout, netconf, logs)


@dataclass(frozen=True)
class Observation:
    """One look at the whole lab; every check is a pure function of it."""
    facts: Mapping[str, NodeFacts]                       # node -> what it shows (through testinfra)
    pods: Sequence[Pod]                                  # every pod the lab lists
    addresses: Mapping[IPv4Address, Sequence[IPv4Interface]]  # pod address -> what its eth0 carries
    node_traces: Mapping[str, TraceRun]                  # node -> trace to it from the control plane
    pod_traces: Mapping[tuple[str, str], TraceRun]       # (src node, dst node) -> trace between their pods
    kube: KubeFacts | None = None


def trace_jobs(lab: Lab, suite: SuitePods) -> tuple[dict[Hashable, Runner], dict[Hashable, list[TraceJob]]]:
    """Who traces what: the control plane to every other node, and for each ordered pair of nodes the source
    pod SuitePods.pair deals it to; each source's traces in wave order (verify/schedule.py)."""
    spec = lab.spec
    cp = spec.control_plane
    order = [n.name for n in spec.nodes]
    runners: dict[Hashable, Runner] = {("node", cp.name): lambda argv, t: lab.node_run(cp.name, argv, timeout=t)}
    jobs: dict[Hashable, list[TraceJob]] = {("node", cp.name): [
        TraceJob(("node", name), spec.node(name).ip,
                 tuple(h.address for h in hops_from_node(spec, cp, spec.node(name).ip)), cp.ip,
                 frozenset((cp.name, name)), distance(order, cp.name, name))
        for name in wave_order(order, cp.name)]}
    for a in spec.nodes:
        for b in [a.name, *wave_order(order, a.name)]:
            pair = suite.pair(a.name, b)
            if pair is None:
                continue
            src, dst = pair
            key = ("pod", src.name)
            runners.setdefault(key, lambda argv, t, name=src.name: lab.pod_run(name, argv, timeout=t))
            wanted = tuple(h.address for h in hops_from_pod(spec, a, dst.ip))
            jobs.setdefault(key, []).append(TraceJob(("pod", a.name, b), dst.ip, wanted, src.ip,
                                                     None if b == a.name else frozenset((a.name, b)),
                                                     distance(order, a.name, b)))
    return runners, jobs


def ratelimits(facts: Mapping[str, NodeFacts]) -> Limits:
    return Limits.from_ratelimits([f.icmp_ratelimit_ms for f in facts.values()])


def observe(lab: Lab, suite: SuitePods, progress: Progress = quiet, kubernetes: bool | None = None) -> Observation:
    """Read every node, then every pod's address and every path at once (traces paced by the nodes'
    net.ipv4.icmp_ratelimit, which the node facts carry)."""
    progress("reading every node's interfaces, routes and sysctls")
    facts = observe_nodes(lab)
    limits = ratelimits(facts)
    runners, jobs = trace_jobs(lab, suite)
    progress(f"tracing node->node and pod->pod ({sum(len(j) for j in jobs.values())} traces from {len(jobs)} "
             f"sources, paced for the kernel's ICMP rate limit of one answer per {limits.interval_s:g} s after a "
             f"burst of {limits.burst}); reading the pods' addresses")
    work: dict[str, Callable[[], Any]] = {
        "traces": lambda: trace_sources(runners, jobs, limits, lab.learns_node_neighbours), "pods": lab.pods,
        "addr": lambda: pod_addresses(lab, suite.all())}
    if lab.has_kubernetes if kubernetes is None else kubernetes:
        work["kube"] = lambda: observe_kubernetes(lab, suite.first)
    seen = concurrently(work)
    traces = seen["traces"]
    return Observation(facts, seen["pods"], seen["addr"],
                       {k[1]: v for k, v in traces.items() if k[0] == "node"},
                       {(k[1], k[2]): v for k, v in traces.items() if k[0] == "pod"}, seen.get("kube"))
