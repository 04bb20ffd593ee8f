"""Every check the acceptance suite and `k8slab verify` make, as data: CheckResults.

Three layers, kept apart:
- names: what each check is called, computable from the spec alone, so pytest ids read like the checks;
- check functions: pure, (spec, expectation, observed facts) -> CheckResult, with the likely cause;
- observe/run_checks: the side effects (start pods, run commands on nodes and in pods, concurrently).
The acceptance tests call the same check functions, so verify, the suite and the fault-injection
tests prove one implementation.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Interface
from typing import Any, TypeVar

from k8slab.interrupts import no_interrupts
from k8slab.labs.base import Lab, Pod, Progress, Result, quiet
from k8slab.spec.expect import (
    POD_IF,
    InterfaceExpectation,
    RouteExpectation,
    hops_from_node,
    hops_from_pod,
    node_interfaces,
    node_routes,
)
from k8slab.spec.model import BRIDGE_IF, NAT_IF, LabSpec, Node
from k8slab.verify import diagnose
from k8slab.verify.facts import FactsError, NodeFacts, gather_node, parse_inet, read_forwarding
from k8slab.verify.traceroute import TracerouteParseError, parse_traceroute

GROUPS = ("interfaces", "routes", "sysctl", "pods", "node traces", "pod traces", "kubernetes")
POD_PREFIX = "t-"
FLANNEL_PUBLIC_IP = "flannel.alpha.coreos.com/public-ip"
FLANNEL_CONFIGMAP = "kube-flannel-cfg"
FLANNEL_NAMESPACES = ("kube-flannel", "kube-system")  # current manifest, older ones
# One probe per TTL is enough on a lab this small; a trace that misses is retried with one more. Few probes
# matter: each host answers one address with at most a burst of 6 ICMP errors, then 1 per second.
TRACE_WAIT_S = 1
TRACE_PROBES = 1
TRACE_PROBES_RETRY = 2


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


# ---- names: from the spec alone -------------------------------------------------------------
def interface_name(exp: InterfaceExpectation) -> str:
    return exp.describe()


def veth_name(node: Node) -> str:
    return f"{node.name} has a host-side veth on {BRIDGE_IF} for each of its pods"


def route_name(exp: RouteExpectation) -> str:
    return exp.describe()


def eth0_routes_name(node: Node) -> str:
    return f"{node.name} has no pod-network route on {NAT_IF}"


def forwarding_name(node: Node) -> str:
    return f"{node.name} forwards IPv4 (net.ipv4.ip_forward = 1)"


def node_trace_name(spec: LabSpec, src: Node, dst: Node) -> str:
    hops = hops_from_node(spec, src, dst.ip)
    return f"{src.name} -> {dst.name} ({dst.ip}): {_count(len(hops))}"


def pod_address_name(node: Node, second: bool = False) -> str:
    return f"{'another ' if second else ''}pod on {node.name} gets an address in {node.pod_subnet}"


def pod_trace_name(spec: LabSpec, src: Node, dst: Node) -> str:
    # The hops depend only on which node the target is on; any pod address there names them.
    hops = hops_from_pod(spec, src, dst.pod_subnet.network_address + 2)
    shown = ", ".join("the pod" if h.node is None else str(h.address) for h in hops)
    target = f"another pod on {dst.name}" if src.name == dst.name else f"pod on {dst.name}"
    return f"pod on {src.name} -> {target}: {_count(len(hops))}, {shown}"


def _count(n: int) -> str:
    return "one hop" if n == 1 else f"{n} hops"


def node_pairs(spec: LabSpec) -> list[tuple[Node, Node]]:
    """Every ordered pair of nodes, same-node pairs included: what the pod traces cover."""
    return [(a, b) for a in spec.nodes for b in spec.nodes]


# ---- node checks (pure) ---------------------------------------------------------------------
def check_interface(exp: InterfaceExpectation, facts: NodeFacts) -> CheckResult:
    link = facts.link(exp.name)
    expected = f"up, {exp.address}" if exp.address else "up"
    if link is None:
        observed, ok = "missing", False
    else:
        observed = link.describe()
        ok = link.up and (exp.address is None or exp.address in link.addresses)
    return _result("interfaces", interface_name(exp), expected, observed, ok,
                   lambda: diagnose.interface(exp, facts), exp.node)


def check_veths(node: Node, facts: NodeFacts, pods_here: Sequence[str]) -> CheckResult:
    ports = facts.bridge_ports(BRIDGE_IF)
    expected = f"at least {len(pods_here)} veth(s) on {BRIDGE_IF} (pods: {', '.join(pods_here) or 'none'})"
    observed = f"{len(ports)}: {', '.join(p.name for p in ports)}" if ports else f"none on {BRIDGE_IF}"
    return _result("interfaces", veth_name(node), expected, observed, len(ports) >= len(pods_here),
                   lambda: diagnose.veths(node.name, facts), node.name)


def check_route(spec: LabSpec, exp: RouteExpectation, facts: NodeFacts) -> CheckResult:
    wanted = _route_text(exp)
    found = facts.routes_to(exp.dest)
    ok = any(r.dev == exp.dev and r.via == exp.via for r in found)
    if found:
        observed = "; ".join(r.describe() for r in found)
    else:
        used = facts.route_for(exp.dest.network_address)
        observed = f"no route to {exp.dest}" + (f" (packets would follow {used.describe()})" if used else "")
    return _result("routes", route_name(exp), wanted, observed, ok, lambda: diagnose.route(spec, exp, facts), exp.node)


def _route_text(exp: RouteExpectation) -> str:
    via = f" via {exp.via}" if exp.via else ""
    return f"{exp.dest}{via} dev {exp.dev}{' onlink' if exp.onlink else ''}"


def check_eth0_routes(spec: LabSpec, node: Node, facts: NodeFacts) -> CheckResult:
    bad = [r for r in facts.routes if r.dev == NAT_IF and r.dest.prefixlen > 0 and r.dest.overlaps(spec.pod_cidr)]
    observed = "; ".join(r.describe() for r in bad) or "none"
    return _result("routes", eth0_routes_name(node), "none", observed, not bad,
                   lambda: diagnose.eth0_pod_routes(node.name), node.name)


def check_forwarding(node: Node, facts: NodeFacts) -> CheckResult:
    observed = "unreadable" if facts.ip_forward is None else str(facts.ip_forward)
    return _result("sysctl", forwarding_name(node), "1", observed, facts.ip_forward == 1,
                   lambda: diagnose.forwarding_off(node.name), node.name)


def node_checks(spec: LabSpec, facts: Mapping[str, NodeFacts], pods: Sequence[Pod]) -> list[CheckResult]:
    """Interfaces, routes and forwarding of every node. cni0 is expected where a pod runs."""
    results = []
    for node in spec.nodes:
        nf = facts[node.name]
        here = [p.name for p in pods if p.node == node.name]
        results += [check_interface(e, nf) for e in node_interfaces(spec, node, has_pods=bool(here))]
        if here:
            results.append(check_veths(node, nf, here))
        results += [check_route(spec, e, nf) for e in node_routes(spec, node, has_pods=bool(here))]
        results.append(check_eth0_routes(spec, node, nf))
        results.append(check_forwarding(node, nf))
    return results


# ---- traces and pods (pure) -----------------------------------------------------------------
@dataclass(frozen=True)
class TraceRun:
    """What one traceroute printed, parsed; error says why there is no path (tool missing, junk)."""
    command: str
    path: tuple[IPv4Address | None, ...]
    output: str
    error: str | None = None

    @staticmethod
    def from_result(res: Result, argv: Sequence[str]) -> TraceRun:
        command = " ".join(argv)  # as asked: res.argv may be the backend's wrapping (nsenter, kubectl exec)
        try:
            trace = parse_traceroute(res.stdout)
        except TracerouteParseError as exc:
            why = res.stderr.strip() or str(exc)
            return TraceRun(command, (), res.stdout, f"traceroute failed (rc {res.rc}): {why[:300]}")
        return TraceRun(command, tuple(trace.path), res.stdout)

    def describe(self) -> str:
        if self.error:
            return self.error
        return ", ".join("*" if h is None else str(h) for h in self.path) or "no hops"


def _path_text(addresses: Iterable[IPv4Address]) -> str:
    return ", ".join(str(a) for a in addresses)


def check_node_trace(spec: LabSpec, src: Node, dst: Node, run: TraceRun,
                     facts: Mapping[str, NodeFacts]) -> CheckResult:
    wanted = [h.address for h in hops_from_node(spec, src, dst.ip)]
    ok = run.error is None and list(run.path) == wanted
    return _result("node traces", node_trace_name(spec, src, dst), _path_text(wanted), run.describe(), ok,
                   lambda: diagnose.node_trace(spec, src, dst, run.path, facts), src.name)


def check_pod_address(spec: LabSpec, pod: Pod, observed: Sequence[IPv4Interface], second: bool = False) -> CheckResult:
    node = spec.node(pod.node)
    ok = bool(observed) and all(a.ip in node.pod_subnet and a.ip != node.pod_gateway for a in observed)
    shown = ", ".join(str(a) for a in observed) or "no IPv4 address"
    return _result("pods", pod_address_name(node, second), f"an address in {node.pod_subnet} (not {node.pod_gateway})",
                   f"{pod.name}: {shown}", ok, lambda: diagnose.pod_address(node, observed), node.name)


def check_pod_trace(spec: LabSpec, src: Pod, dst: Pod, run: TraceRun, facts: Mapping[str, NodeFacts],
                    pod_addresses: Mapping[IPv4Address, Sequence[IPv4Interface]] | None = None) -> CheckResult:
    src_node, dst_node = spec.node(src.node), spec.node(dst.node)
    hops = hops_from_pod(spec, src_node, dst.ip)
    wanted = [h.address for h in hops]
    ok = run.error is None and list(run.path) == wanted
    expected = ", ".join(f"{h.address}" + (f" ({dst.name})" if h.node is None else "") for h in hops)
    return _result("pod traces", pod_trace_name(spec, src_node, dst_node), expected,
                   f"{src.name} -> {dst.ip}: {run.describe()}", ok,
                   lambda: diagnose.pod_trace(spec, src_node, dst_node, dst.ip, run.path, facts, pod_addresses,
                                              source=src.ip),
                   src_node.name)


# ---- Kubernetes facts (pure) ----------------------------------------------------------------
@dataclass(frozen=True)
class KubeFacts:
    nodes_json: str             # `kubectl get nodes -o json`
    flannel_netconf: str | None  # net-conf.json of kube-flannel-cfg, None if not found
    logs: Mapping[str, Result]  # node -> `kubectl logs <a pod on it>`


def kubernetes_names(spec: LabSpec) -> list[str]:
    names = []
    for n in spec.nodes:
        names += [f"{n.name} is Ready", f"{n.name}'s podCIDR is {n.pod_subnet}", f"{n.name}'s InternalIP is {n.ip}",
                  f"{n.name}'s flannel public-ip is {n.ip}", f"kubectl logs works for a pod on {n.name}"]
    return names + [f"flannel's net-conf says {spec.cni_backend} on {spec.pod_cidr}"]


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
    return results


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


# ---- observing a lab (side effects) -----------------------------------------------------------
T = TypeVar("T")
K = TypeVar("K")


def concurrently(jobs: Mapping[K, Callable[[], T]], workers: int = 16) -> dict[K, T]:
    """Run independent observations at once: traces and SSH round trips dominate the wall time."""
    if not jobs:
        return {}
    with ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        futures = {key: pool.submit(job) for key, job in jobs.items()}
        return {key: f.result() for key, f in futures.items()}


def trace_argv(target: IPv4Address, max_hops: int, probes: int = TRACE_PROBES) -> list[str]:
    # Options busybox's traceroute and Debian's share; -m also bounds a broken path to a few seconds.
    return ["traceroute", "-n", "-q", str(probes), "-w", str(TRACE_WAIT_S), "-m", str(max_hops), str(target)]


def trace_path(run: Callable[[list[str]], Result], target: IPv4Address, wanted: Sequence[IPv4Address]) -> TraceRun:
    """Trace with one probe per hop and no TTL beyond the expected path; retry once on a mismatch.

    Every host limits the ICMP errors it sends to one address (a burst of 6, then 1 per second), and
    each probe past the target costs one of the target's; a few traces in a row would otherwise go
    silent. A single lost probe or answer (seen under load: a trace silent after its first hop, whole
    again a moment later) must not fail a healthy lab, so a path that differs from the expected one
    is traced once more with more probes; a lab that is really broken fails both times."""
    max_hops = len(wanted)
    argv = trace_argv(target, max_hops)
    first = TraceRun.from_result(run(argv), argv)
    if first.error is None and list(first.path) != list(wanted):
        argv = trace_argv(target, max_hops, TRACE_PROBES_RETRY)
        return TraceRun.from_result(run(argv), argv)
    return first


def forwarding_now(lab: Lab) -> dict[str, int | None]:
    return concurrently({n.name: (lambda n=n: read_forwarding(lab.testinfra_host(n.name))) for n in lab.spec.nodes})


def observe_nodes(lab: Lab) -> dict[str, NodeFacts]:
    return concurrently({n.name: (lambda n=n: gather_node(lab.testinfra_host(n.name), n.name))
                         for n in lab.spec.nodes})


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


def has_kubernetes(lab: Lab) -> bool:
    return callable(getattr(lab, "kubectl", None))


@dataclass
class SuitePods:
    """The pods the checks trace between: one per node, and a second per node for same-node traces."""
    first: dict[str, Pod] = field(default_factory=dict)
    second: dict[str, Pod] = field(default_factory=dict)

    def all(self) -> list[Pod]:
        return list(self.first.values()) + list(self.second.values())

    def pair(self, src: str, dst: str) -> tuple[Pod, Pod] | None:
        """The pods a trace from node src to node dst runs between: cross-node between the nodes'
        first pods, same-node from the first pod to the second."""
        if src not in self.first:
            return None
        target = self.second.get(src) if src == dst else self.first.get(dst)
        return (self.first[src], target) if target is not None else None


def start_pods(lab: Lab, progress: Progress = quiet, prefix: str = POD_PREFIX) -> SuitePods:
    """Start two pods on every node (names: prefix, a random token, the node); all or nothing."""
    token = secrets.token_hex(2)
    wanted = [(f"{prefix}{token}-{node.name}"[:61] + f"-{suffix}", node.name)
              for node in lab.spec.nodes for suffix in ("a", "b")]
    progress(f"starting {len(wanted)} pods: {', '.join(name for name, _ in wanted)}")
    batch = getattr(lab, "pods_start", None)
    if callable(batch):  # the emulated lab wires several pods at once, all or nothing
        started = batch(wanted)
    else:
        outcome = concurrently({name: (lambda a=(name, node): _try_start(lab, *a)) for name, node in wanted})
        started = [p for p in outcome.values() if isinstance(p, Pod)]
        errors = [e for e in outcome.values() if not isinstance(e, Pod)]
        if errors:
            with no_interrupts():
                delete_pods(lab, started, progress)
            raise errors[0]
    pods = SuitePods()
    for pod, (name, _) in zip(started, wanted):
        (pods.first if name.endswith("-a") else pods.second)[pod.node] = pod
    return pods


def _try_start(lab: Lab, name: str, node: str) -> Pod | BaseException:
    try:
        return lab.pod_start(name, node)
    except Exception as exc:  # noqa: BLE001 - collected, the others' pods are removed, then raised
        return exc


def delete_pods(lab: Lab, pods: Iterable[Pod], progress: Progress = quiet) -> None:
    errors = []
    for pod in pods:
        progress(f"removing pod {pod.name}")
        try:
            lab.pod_delete(pod.name)
        except Exception as exc:  # noqa: BLE001 - keep removing the others; report them together
            errors.append(f"{pod.name}: {exc}")
    if errors:
        raise RuntimeError("could not remove every pod the checks made: " + "; ".join(errors))


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
    if has_kubernetes(lab) if kubernetes is None else kubernetes:
        jobs[("kube",)] = lambda: observe_kubernetes(lab, suite.first)
    seen = concurrently(jobs)
    return Observation(seen[("facts",)], seen[("pods",)], seen[("addr",)],
                       {k[1]: v for k, v in seen.items() if k[0] == "node"},
                       {(k[1], k[2]): v for k, v in seen.items() if k[0] == "pod"}, seen.get(("kube",)))


def evaluate(spec: LabSpec, suite: SuitePods, seen: Observation) -> list[CheckResult]:
    """Every check from one observation (pure): what `verify` prints and the fault tests assert."""
    results = node_checks(spec, seen.facts, seen.pods)
    for second, group in ((False, suite.first), (True, suite.second)):
        results += [check_pod_address(spec, p, seen.addresses.get(p.ip, ()), second) for p in group.values()]
    cp = spec.control_plane
    results += [check_node_trace(spec, cp, spec.node(name), run, seen.facts) for name, run in seen.node_traces.items()]
    for (a, b), run in seen.pod_traces.items():
        src, dst = suite.pair(a, b)
        results.append(check_pod_trace(spec, src, dst, run, seen.facts, seen.addresses))
    if seen.kube is not None:
        results += check_kubernetes(spec, seen.kube)
    return results


def run_checks(lab: Lab, pods: dict[str, Pod] | None = None, progress: Progress = quiet,
               peers: dict[str, Pod] | None = None) -> list[CheckResult]:
    """Everything the acceptance suite asserts, on the lab that is up.

    Starts its own pods (two per node) unless given some (pods: one per node; peers: a second one
    per node for the same-node traces), and removes the ones it started, also on failure."""
    # Adding a pod makes the CNI bridge plugin (isGateway) switch forwarding back on, so a node with
    # forwarding off would look healthy by the time it is read: read it before any pod starts.
    forwarding = forwarding_now(lab) if pods is None else {}
    started = start_pods(lab, progress) if pods is None else None
    suite = started or SuitePods(dict(pods or {}), dict(peers or {}))
    try:
        seen = observe(lab, suite, progress)
        facts = {node: replace(f, ip_forward=forwarding[node]) if forwarding.get(node, 1) != 1 else f
                 for node, f in seen.facts.items()}
        return evaluate(lab.spec, suite, replace(seen, facts=facts))
    finally:
        if started is not None:
            with no_interrupts():
                delete_pods(lab, started.all(), progress)
