"""Every check the acceptance suite and `k8slab verify` make, as pure judgements: (spec, expectation,
observed facts) -> CheckResult, with the likely cause from verify/diagnose.py.

The checks' names are in verify/names.py, reading the lab in verify/observe.py, the suite's pods in
verify/pods.py, the whole run in verify/run.py. The acceptance tests call these same functions, so
verify, the suite and the fault-injection tests prove one implementation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from typing import TYPE_CHECKING

from k8slab.labs.base import Pod
from k8slab.spec import calico
from k8slab.spec.expect import (
    InterfaceExpectation,
    RouteExpectation,
    hops_from_node,
    hops_from_pod,
    node_interfaces,
    node_routes,
)
from k8slab.spec.facts import BRIDGE_IF, NAT_IF
from k8slab.spec.model import LabSpec, Node
from k8slab.verify import diagnose, diagnose_calico
from k8slab.verify.advice import VIRTUALBOX, Advice
from k8slab.verify.facts import KubeFacts, NodeFacts
from k8slab.verify.names import (
    bgp_name,
    calico_veth_name,
    eth0_routes_name,
    forwarding_name,
    interface_name,
    kubernetes_names,
    node_trace_name,
    pod_address_name,
    pod_trace_name,
    route_name,
    veth_name,
)
from k8slab.verify.tracing import TraceRun

if TYPE_CHECKING:
    from k8slab.verify.observe import Observation
    from k8slab.verify.pods import SuitePods

FLANNEL_PUBLIC_IP = "flannel.alpha.coreos.com/public-ip"


@dataclass(frozen=True)
class CheckResult:
    group: str
    name: str
    expected: str
    observed: str
    ok: bool
    cause: str | None  # the likely cause from the fault table when not ok, else None
    node: str | None = None

    @property
    def message(self) -> str:
        """One line a student acts on: the check, expected vs observed, and the likely cause."""
        text = f"{self.name}: expected {self.expected}, observed {self.observed}"
        return f"{text} — {self.cause}" if self.cause else text


def _result(group: str, name: str, expected: str, observed: str, ok: bool, cause: Callable[[], str],
            node: str | None = None) -> CheckResult:
    return CheckResult(group, name, expected, observed, ok, None if ok else cause(), node)


# ---- node checks ---------------------------------------------------------------------
def check_interface(exp: InterfaceExpectation, facts: NodeFacts, advice: Advice = VIRTUALBOX) -> CheckResult:
    link = facts.link(exp.name)
    expected = f"up, {exp.address}" if exp.address else "up"
    if link is None:
        observed, ok = "missing", False
    else:
        observed = link.describe()
        ok = link.up and (exp.address is None or exp.address in link.addresses)
    return _result("interfaces", interface_name(exp), expected, observed, ok,
                   lambda: diagnose.interface(exp, facts, advice), exp.node)


def check_veths(node: Node, facts: NodeFacts, pods_here: Sequence[str], advice: Advice = VIRTUALBOX) -> CheckResult:
    ports = facts.bridge_ports(BRIDGE_IF)
    expected = f"at least {len(pods_here)} veth(s) on {BRIDGE_IF} (pods: {', '.join(pods_here) or 'none'})"
    observed = f"{len(ports)}: {', '.join(p.name for p in ports)}" if ports else f"none on {BRIDGE_IF}"
    return _result("interfaces", veth_name(node), expected, observed, len(ports) >= len(pods_here),
                   lambda: diagnose.veths(node.name, facts, advice), node.name)


def check_calico_veths(node: Node, facts: NodeFacts, pods_here: Sequence[str]) -> CheckResult:
    """Calico wires each pod with a veth named after it, without an address, answering ARP by proxy."""
    problems = [p for pod in pods_here if (p := diagnose_calico.veth(node.name, pod, facts))]
    shown = ", ".join(f"{calico.veth_name(p)} ({p})" for p in pods_here)
    bad = [pod for pod in pods_here if diagnose_calico.veth(node.name, pod, facts)]
    observed = f"{len(pods_here) - len(bad)} of {len(pods_here)} as Calico makes them" + (
        f"; not: {', '.join(bad)}" if bad else "")
    return _result("interfaces", calico_veth_name(node), f"up, no address, proxy_arp 1: {shown}", observed,
                   not problems, lambda: "; ".join(problems), node.name)


def check_bgp(spec: LabSpec, node: Node, facts: Mapping[str, NodeFacts]) -> CheckResult:
    own = facts[node.name].bgp
    peers = [p for p in spec.nodes if p.name != node.name]
    if own is None or not own.running:
        observed = "BIRD does not answer"
        ok = False
    else:
        states = {p.name: own.sessions.get(calico.mesh_name(p.ip), "missing") for p in peers}
        observed = ", ".join(f"{name} {state}" for name, state in states.items())
        ok = all("Established" in state for state in states.values())
    return _result("routes", bgp_name(node), f"{len(peers)} sessions Established (full mesh, AS {calico.BGP_AS})",
                   observed, ok, lambda: diagnose_calico.bgp(spec, node, facts) or "the mesh is incomplete", node.name)


def check_route(spec: LabSpec, exp: RouteExpectation, facts: NodeFacts,
                all_facts: Mapping[str, NodeFacts] | None = None, advice: Advice = VIRTUALBOX) -> CheckResult:
    wanted = str(exp.route)
    found = facts.routes_to(exp.route.dst)
    # Who made a route is part of Calico's lesson (BIRD learned it, Felix wrote it); flannel's are all boot.
    ok = any(r.dev == exp.route.dev and r.via == exp.route.via and r.blackhole == exp.route.blackhole
             and (spec.calico is None or r.proto == exp.route.proto) for r in found)
    if found:
        observed = "; ".join(str(r) for r in found)
    else:
        used = facts.route_for(exp.route.dst.network_address)
        observed = f"no route to {exp.route.dst}" + (f" (packets would follow {used})" if used else "")
    return _result("routes", route_name(exp), wanted, observed, ok,
                   lambda: diagnose.route(spec, exp, facts, all_facts, advice), exp.node)


def check_eth0_routes(spec: LabSpec, node: Node, facts: NodeFacts, advice: Advice = VIRTUALBOX) -> CheckResult:
    bad = [r for r in facts.routes if r.dev == NAT_IF and r.dst.prefixlen > 0 and r.dst.overlaps(spec.pod_cidr)]
    observed = "; ".join(str(r) for r in bad) or "none"
    return _result("routes", eth0_routes_name(node), "none", observed, not bad,
                   lambda: diagnose.eth0_pod_routes(node.name, advice), node.name)


def check_forwarding(node: Node, facts: NodeFacts, advice: Advice = VIRTUALBOX) -> CheckResult:
    observed = "unreadable" if facts.ip_forward is None else str(facts.ip_forward)
    return _result("sysctl", forwarding_name(node), "1", observed, facts.ip_forward == 1,
                   lambda: diagnose.forwarding_off(node.name, advice), node.name)


def node_checks(spec: LabSpec, facts: Mapping[str, NodeFacts], pods: Sequence[Pod],
                advice: Advice = VIRTUALBOX) -> list[CheckResult]:
    """Interfaces, routes and forwarding of every node. cni0 is expected where a pod runs."""
    results = []
    for node in spec.nodes:
        nf = facts[node.name]
        here = [p.name for p in pods if p.node == node.name]
        results += [check_interface(e, nf, advice) for e in node_interfaces(spec, node, has_pods=bool(here))]
        if here:
            results.append(check_calico_veths(node, nf, here) if spec.calico else check_veths(node, nf, here, advice))
        local = [(p.name, p.ip) for p in pods if p.node == node.name]
        results += [check_route(spec, e, nf, facts, advice)
                    for e in node_routes(spec, node, has_pods=bool(here), pods=local)]
        if spec.calico is not None and spec.calico.uses_bgp and nf.bgp is not None:
            results.append(check_bgp(spec, node, facts))
        results.append(check_eth0_routes(spec, node, nf, advice))
        results.append(check_forwarding(node, nf, advice))
    return results


# ---- traces and pods -----------------------------------------------------------------
def _path_text(addresses: Iterable[IPv4Address]) -> str:
    return ", ".join(str(a) for a in addresses)


def check_node_trace(spec: LabSpec, src: Node, dst: Node, run: TraceRun,
                     facts: Mapping[str, NodeFacts], advice: Advice = VIRTUALBOX) -> CheckResult:
    wanted = [h.address for h in hops_from_node(spec, src, dst.ip)]
    ok = run.error is None and list(run.path) == wanted
    return _result("node traces", node_trace_name(spec, src, dst), _path_text(wanted), run.describe(), ok,
                   lambda: diagnose.node_trace(spec, src, dst, run.path, facts, advice), src.name)


def check_pod_address(spec: LabSpec, pod: Pod, observed: Sequence[IPv4Interface], second: bool = False,
                      advice: Advice = VIRTUALBOX) -> CheckResult:
    node = spec.node(pod.node)
    ok = bool(observed) and all(a.ip in node.pod_subnet and a.ip != node.pod_gateway for a in observed)
    if spec.calico is not None:  # Calico: a /32 from the node's block (its first address may be the tunnel's)
        ok = ok and all(a.network.prefixlen == 32 for a in observed)
    shown = ", ".join(str(a) for a in observed) or "no IPv4 address"
    return _result("pods", pod_address_name(node, second), f"an address in {node.pod_subnet} (not {node.pod_gateway})",
                   f"{pod.name}: {shown}", ok, lambda: diagnose.pod_address(node, observed, advice), node.name)


def check_pod_trace(spec: LabSpec, src: Pod, dst: Pod, run: TraceRun, facts: Mapping[str, NodeFacts],
                    pod_addresses: Mapping[IPv4Address, Sequence[IPv4Interface]] | None = None,
                    advice: Advice = VIRTUALBOX) -> CheckResult:
    src_node, dst_node = spec.node(src.node), spec.node(dst.node)
    hops = hops_from_pod(spec, src_node, dst.ip)
    wanted = [h.address for h in hops]
    ok = run.error is None and list(run.path) == wanted
    expected = ", ".join(f"{h.address}" + (f" ({dst.name})" if h.node is None else "") for h in hops)
    return _result("pod traces", pod_trace_name(spec, src_node, dst_node), expected,
                   f"{src.name} -> {dst.ip}: {run.describe()}", ok,
                   lambda: diagnose.pod_trace(spec, src_node, dst_node, dst.ip, run.path, facts, pod_addresses,
                                              source=src.ip, pods=(src.name, dst.name), advice=advice),
                   src_node.name)


# ---- Kubernetes facts ----------------------------------------------------------------
def check_kubernetes(spec: LabSpec, kube: KubeFacts) -> list[CheckResult]:
    items = {i["metadata"]["name"]: i for i in json.loads(kube.nodes_json).get("items", [])}
    results = []
    for n in spec.nodes:
        item = items.get(n.name)
        ready = _condition(item, "Ready")
        results.append(_result("kubernetes", f"{n.name} is Ready", "Ready=True",
                               f"Ready={ready[0]}" if item else "node not registered", ready[0] == "True",
                               lambda n=n, r=ready: diagnose.not_ready(n.name, r[1]), n.name))
        cidr = (item or {}).get("spec", {}).get("podCIDR")
        results.append(_result("kubernetes", f"{n.name}'s podCIDR is {n.pod_subnet}", str(n.pod_subnet),
                               cidr or "none", cidr == str(n.pod_subnet),
                               lambda n=n, c=cidr: diagnose.pod_cidr(n, c), n.name))
        internal = next((a["address"] for a in (item or {}).get("status", {}).get("addresses", [])
                         if a.get("type") == "InternalIP"), None)
        results.append(_result("kubernetes", f"{n.name}'s InternalIP is {n.ip}", str(n.ip), internal or "none",
                               internal == str(n.ip), lambda n=n, i=internal: diagnose.internal_ip(n, i), n.name))
        public = (item or {}).get("metadata", {}).get("annotations", {}).get(FLANNEL_PUBLIC_IP)
        results.append(_result("kubernetes", f"{n.name}'s flannel public-ip is {n.ip}", str(n.ip), public or "none",
                               public == str(n.ip), lambda n=n, p=public: diagnose.public_ip(n, p), n.name))
        log = kube.logs.get(n.name)
        observed = "no pod to ask" if log is None else ("ok" if log.ok else log.stderr.strip()[:200] or f"rc {log.rc}")
        results.append(_result("kubernetes", f"kubectl logs works for a pod on {n.name}", "ok", observed,
                               log is not None and log.ok,
                               lambda n=n, lg=log: diagnose.logs_fail(n, lg.stderr if lg else ""), n.name))
    conf = _netconf(kube.flannel_netconf)
    observed = f"{conf[1]} on {conf[0]}" if conf else "kube-flannel-cfg not found"
    results.append(_result("kubernetes", f"flannel's net-conf says {spec.cni_backend} on {spec.pod_cidr}",
                           f"{spec.cni_backend} on {spec.pod_cidr}", observed,
                           conf == (str(spec.pod_cidr), spec.cni_backend),
                           lambda: diagnose.flannel_backend(spec, observed)))
    wanted = set(kubernetes_names(spec))
    return [r for r in results if r.name in wanted]


def _condition(item: dict | None, kind: str) -> tuple[str, str | None]:
    for c in (item or {}).get("status", {}).get("conditions", []):
        if c.get("type") == kind:
            return c.get("status", "Unknown"), c.get("reason")
    return "Unknown", None


def _netconf(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    try:
        data = json.loads(text)
        return str(data.get("Network")), str(data.get("Backend", {}).get("Type"))
    except (json.JSONDecodeError, AttributeError):
        return None


# ---- all of them
def evaluate(spec: LabSpec, suite: SuitePods, seen: Observation, advice: Advice = VIRTUALBOX) -> list[CheckResult]:
    """Every check from one observation (pure): what `verify` prints and the fault tests assert."""
    results = node_checks(spec, seen.facts, seen.pods, advice)
    for second, group in ((False, suite.first), (True, suite.second)):
        results += [check_pod_address(spec, p, seen.addresses.get(p.ip, ()), second, advice) for p in group.values()]
    cp = spec.control_plane
    results += [check_node_trace(spec, cp, spec.node(name), run, seen.facts, advice)
                for name, run in seen.node_traces.items()]
    for (a, b), run in seen.pod_traces.items():
        src, dst = suite.pair(a, b)
        results.append(check_pod_trace(spec, src, dst, run, seen.facts, seen.addresses, advice))
    if seen.kube is not None:
        results += check_kubernetes(spec, seen.kube)
    return results
