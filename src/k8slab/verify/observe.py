"""Reading the lab (side effects): every node's links, routes and forwarding, the pods' addresses, the
traces between them and, on a lab with a Kubernetes API, what it says. Nothing here changes the lab."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

from k8slab.labs.base import Lab, Pod, Progress, quiet
from k8slab.spec.expect import POD_IF, hops_from_node, hops_from_pod
from k8slab.spec.model import Node
from k8slab.verify.concurrency import concurrently
from k8slab.verify.facts import (
    FactsError,
    KubeFacts,
    NodeFacts,
    gather_node,
    parse_bgp,
    parse_inet,
    read_forwarding,
)
from k8slab.verify.names import node_pairs
from k8slab.verify.pods import SuitePods
from k8slab.verify.tracing import TraceRun, trace_path

FLANNEL_CONFIGMAP = "kube-flannel-cfg"
FLANNEL_NAMESPACES = ("kube-flannel", "kube-system")  # current manifest, older ones


def forwarding_now(lab: Lab) -> dict[str, int | None]:
    return concurrently({n.name: (lambda n=n: read_forwarding(lab.testinfra_host(n.name))) for n in lab.spec.nodes})


def observe_nodes(lab: Lab) -> dict[str, NodeFacts]:
    """Every node's links, routes and forwarding; on a Calico lab in a BGP mode, what its BIRD says too
    (labs that can ask BIRD have bgp_status(node) -> (`show status`, `show protocols`), None where it is silent)."""
    def look(node: Node) -> NodeFacts:
        facts = gather_node(lab.testinfra_host(node.name), node.name)
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


def trace_node(lab: Lab, src: Node, dst: Node) -> TraceRun:
    wanted = [h.address for h in hops_from_node(lab.spec, src, dst.ip)]
    return trace_path(lambda argv: lab.node_run(src.name, argv, timeout=30), dst.ip, wanted)


def trace_pod(lab: Lab, src: Pod, dst: Pod) -> TraceRun:
    wanted = [h.address for h in hops_from_pod(lab.spec, lab.spec.node(src.node), dst.ip)]
    return trace_path(lambda argv: lab.pod_run(src.name, argv, timeout=30), dst.ip, wanted)


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


def observe(lab: Lab, suite: SuitePods, progress: Progress = quiet, kubernetes: bool | None = None) -> Observation:
    """Look at every node, pod and path at once: traces and SSH round trips dominate the wall time."""
    spec = lab.spec
    cp = spec.control_plane
    progress("reading every node's interfaces, routes and forwarding; the pods' addresses; tracing node->node and "
             "pod->pod")
    jobs: dict[tuple[str, ...], Callable[[], Any]] = {
        ("facts",): lambda: observe_nodes(lab), ("pods",): lab.pods,
        ("addr",): lambda: pod_addresses(lab, suite.all())}
    for n in spec.nodes:
        if n.name != cp.name:
            jobs[("node", n.name)] = lambda n=n: trace_node(lab, cp, n)
    for a, b in node_pairs(spec):
        pair = suite.pair(a.name, b.name)
        if pair:
            jobs[("pod", a.name, b.name)] = lambda p=pair: trace_pod(lab, *p)
    if lab.has_kubernetes if kubernetes is None else kubernetes:
        jobs[("kube",)] = lambda: observe_kubernetes(lab, suite.first)
    seen = concurrently(jobs)
    return Observation(seen[("facts",)], seen[("pods",)], seen[("addr",)],
                       {k[1]: v for k, v in seen.items() if k[0] == "node"},
                       {(k[1], k[2]): v for k, v in seen.items() if k[0] == "pod"}, seen.get(("kube",)))
