"""Prove the harness fails a broken lab, with the right diagnosis.

On an emulated lab of its own (the spec renamed "faults-<random>", never the session's lab), each
classic fault is made for real in the kernel through the Lab interface (ip route, sysctl, ip link,
ip addr inside the nodes' and a pod's namespaces); run_checks — the code `k8slab verify` and the
suite use — must fail exactly the checks that fault breaks, each with the fault table's cause;
then the lab is repaired and must pass everything again. A harness that passes a broken lab is
the worst bug this project can have.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Interface

import pytest

from k8slab.labs.base import Lab
from k8slab.labs.registry import lab_class
from k8slab.spec.expect import RouteExpectation
from k8slab.spec.model import BRIDGE_IF, HOST_ONLY_IF, NAT_GATEWAY, NAT_IF, LabSpec, Node
from k8slab.verify import checks, diagnose

Repair = Callable[[], None]


def run(lab: Lab, node: str, *argv: str) -> None:
    res = lab.node_run(node, list(argv))
    assert res.ok, f"breaking/repairing {node} failed: {' '.join(argv)}: {res.stderr.strip()}"


def in_pod(lab: Lab, pod: str, *argv: str) -> str:
    res = lab.pod_run(pod, list(argv))
    assert res.ok, f"breaking/repairing pod {pod} failed: {' '.join(argv)}: {res.stderr.strip()}"
    return res.stdout


@dataclass(frozen=True)
class Case:
    """The two nodes a fault involves: the tutorial's pair (source of the cross-node trace, target)."""
    spec: LabSpec
    src: Node
    dst: Node
    pods: checks.SuitePods

    def trace(self, a: Node, b: Node) -> str:
        return checks.pod_trace_name(self.spec, a, b)

    def cross_traces(self, node: Node) -> list[str]:
        """Every cross-node trace with one end on node."""
        others = [n for n in self.spec.nodes if n.name != node.name]
        return [self.trace(node, o) for o in others] + [self.trace(o, node) for o in others]


@dataclass(frozen=True)
class Fault:
    name: str
    make: Callable[[Lab, Case], Repair]                # break the lab, return how to repair it
    expect: Callable[[Case], dict[str, str]]           # failing check name -> text its cause must contain


def _peer_route(case: Case) -> RouteExpectation:
    return RouteExpectation(case.src.name, case.dst.pod_subnet, HOST_ONLY_IF, via=case.dst.ip, peer=case.dst.name)


def _restore_route(lab: Lab, case: Case) -> Repair:
    return lambda: run(lab, case.src.name, "ip", "route", "replace", str(case.dst.pod_subnet), "via", str(case.dst.ip),
                       "dev", HOST_ONLY_IF)


def delete_peer_route(lab: Lab, case: Case) -> Repair:
    run(lab, case.src.name, "ip", "route", "del", str(case.dst.pod_subnet))
    return _restore_route(lab, case)


def peer_route_on_eth0(lab: Lab, case: Case) -> Repair:
    run(lab, case.src.name, "ip", "route", "replace", str(case.dst.pod_subnet), "via", str(NAT_GATEWAY), "dev", NAT_IF)
    return _restore_route(lab, case)


def _bystander(case: Case) -> Node:
    """A node that is neither end of the tutorial's pair: a wrong next hop that still forwards."""
    return next(n for n in case.spec.nodes if n.name not in (case.src.name, case.dst.name))


def peer_route_via_another_node(lab: Lab, case: Case) -> Repair:
    run(lab, case.src.name, "ip", "route", "replace", str(case.dst.pod_subnet), "via", str(_bystander(case).ip),
        "dev", HOST_ONLY_IF)
    return _restore_route(lab, case)


def forwarding_off(lab: Lab, case: Case) -> Repair:
    run(lab, case.dst.name, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
    return lambda: run(lab, case.dst.name, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")


def pod_outside_subnet(lab: Lab, case: Case) -> Repair:
    pod = case.pods.first[case.dst.name]
    routes = json.loads(in_pod(lab, pod.name, "ip", "-j", "-4", "route", "show"))
    original = IPv4Interface(f"{pod.ip}/{case.dst.pod_subnet.prefixlen}")
    # A /24 of the pod CIDR that no node owns: what a stale IPAM range would hand out.
    stray = list(case.spec.pod_cidr.subnets(new_prefix=case.dst.pod_subnet.prefixlen))[len(case.spec.nodes)]
    in_pod(lab, pod.name, "ip", "addr", "flush", "dev", "eth0")
    in_pod(lab, pod.name, "ip", "addr", "add", f"{stray.network_address + 7}/{stray.prefixlen}", "dev", "eth0")

    def repair() -> None:
        in_pod(lab, pod.name, "ip", "addr", "flush", "dev", "eth0")
        in_pod(lab, pod.name, "ip", "addr", "add", str(original), "dev", "eth0")
        for r in routes:
            if "gateway" in r:
                in_pod(lab, pod.name, "ip", "route", "replace", r["dst"], "via", r["gateway"], "dev", r["dev"])
    return repair


def cni0_down(lab: Lab, case: Case) -> Repair:
    run(lab, case.dst.name, "ip", "link", "set", BRIDGE_IF, "down")
    return lambda: run(lab, case.dst.name, "ip", "link", "set", BRIDGE_IF, "up")


FAULTS = [
    Fault("a peer route deleted", delete_peer_route, lambda c: {
        checks.route_name(_peer_route(c)): f"the route to {c.dst.name}'s pod subnet is missing on {c.src.name}",
        c.trace(c.src, c.dst): f"{c.src.name} has no route to {c.dst.name}'s pod subnet {c.dst.pod_subnet}",
        c.trace(c.dst, c.src): f"{c.src.name} has no route to {c.dst.name}'s pod subnet",
    }),
    Fault("a peer route pointed at eth0", peer_route_on_eth0, lambda c: {
        checks.route_name(_peer_route(c)): diagnose.FLANNEL_ON_NAT,
        checks.eth0_routes_name(c.src): diagnose.FLANNEL_ON_NAT,
        c.trace(c.src, c.dst): diagnose.FLANNEL_ON_NAT,
        c.trace(c.dst, c.src): diagnose.FLANNEL_ON_NAT,
    }),
    Fault("a peer route via another node's eth1", peer_route_via_another_node, lambda c: {
        checks.route_name(_peer_route(c)): f"wrong next hop {_bystander(c).ip} ({_bystander(c).name}'s",
        c.trace(c.src, c.dst): f"wrong next hop {_bystander(c).ip} ({_bystander(c).name}'s",
    }),
    Fault("ip_forward=0 on one node", forwarding_off, lambda c: {
        checks.forwarding_name(c.dst): diagnose.forwarding_off(c.dst.name),
        **{name: diagnose.forwarding_off(c.dst.name) for name in c.cross_traces(c.dst)},
    }),
    Fault("a pod given an address outside its node's subnet", pod_outside_subnet, lambda c: {
        checks.pod_address_name(c.dst): f"outside {c.dst.name}'s pod subnet {c.dst.pod_subnet}",
        **{name: f"no longer has {c.pods.first[c.dst.name].ip}"
           for name in [*c.cross_traces(c.dst), c.trace(c.dst, c.dst)]},
    }),
    Fault("cni0 down on one node", cni0_down, lambda c: {
        f"{c.dst.name} has {BRIDGE_IF} with {c.dst.pod_gateway}/{c.dst.pod_subnet.prefixlen}": diagnose.cni0_down(
            c.dst.name),
        f"{c.dst.name} routes {c.dst.pod_subnet} on {BRIDGE_IF}": diagnose.cni0_down(c.dst.name),
        **{name: diagnose.cni0_down(c.dst.name) for name in [*c.cross_traces(c.dst), c.trace(c.dst, c.dst)]},
    }),
]


@dataclass
class Outcome:
    case: Case
    broken: dict[str, checks.CheckResult]    # failures with the fault in place
    repaired: dict[str, checks.CheckResult]  # failures after the repair (must be none)


def failures(lab: Lab, case: Case) -> dict[str, checks.CheckResult]:
    results = checks.run_checks(lab, case.pods.first, peers=case.pods.second)
    return {r.name: r for r in results if not r.ok}


def unlimit_icmp(lab: Lab, pods: checks.SuitePods) -> None:
    """Let this lab's nodes and pods answer every probe. The kernel sends one address a burst of 6 ICMP
    errors, then 1 per second, and all addresses together 50, then 1000 per second; a student tracing by
    hand never meets that, but checking five labs at once, each twice in a few seconds from the same
    pods, would, and the silence would be the rate limit's, not the fault's. Only this test's labs change."""
    unlimited = ("sysctl", "-q", "-w", "net.ipv4.icmp_ratelimit=0", "net.ipv4.icmp_msgs_per_sec=100000",
                 "net.ipv4.icmp_msgs_burst=10000")
    for node in lab.spec.nodes:
        run(lab, node.name, *unlimited)
    for pod in pods.all():
        in_pod(lab, pod.name, *unlimited)


def settled(lab: Lab, case: Case, within_s: float = 3.0) -> dict[str, checks.CheckResult]:
    """Failures once the repaired lab has settled: a link set up again drops packets until the kernel
    activates it, and neighbours that failed while it was down answer again only after a while."""
    deadline = time.monotonic() + within_s
    while True:
        failed = failures(lab, case)
        if not failed or time.monotonic() > deadline:
            return failed
        time.sleep(0.2)


def exercise(spec: LabSpec, fault: Fault, name: str) -> Outcome | BaseException:
    """Build a lab of its own, break it, check it, repair it, check it again, destroy it. (A fresh lab
    passing every check is what the rest of the suite proves; here the repaired lab passing proves it.)"""
    lab = lab_class("netns")(spec.renamed(name))
    try:
        lab.up()
        pods = checks.start_pods(lab)
        unlimit_icmp(lab, pods)
        nodes = lab.spec.nodes
        # The tutorial's pair: the cross-node trace goes from the second worker's pod to the first's.
        src, dst = (nodes[2], nodes[1]) if len(nodes) > 2 else (nodes[0], nodes[1])
        case = Case(lab.spec, src, dst, pods)
        repair = fault.make(lab, case)
        try:
            broken = failures(lab, case)
        finally:
            repair()
        return Outcome(case, broken, settled(lab, case))
    except Exception as exc:  # noqa: BLE001 - handed to this fault's own test, which re-raises it
        return exc
    finally:
        lab.destroy()


@pytest.fixture(scope="module")
def outcomes(spec: LabSpec) -> dict[str, Outcome | BaseException]:
    """Every fault at once, each on its own emulated lab (spec renamed "faults-<random>-<n>"): a broken
    trace waits out its timeout, so in a row they would cost seconds each."""
    problem = lab_class("netns").unavailable_reason()
    if problem:
        pytest.skip(f"fault injection needs the emulated lab: {problem}")
    token = secrets.token_hex(3)
    return checks.concurrently({f.name: (lambda f=f, i=i: exercise(spec, f, f"faults-{token}-{i}"))
                                for i, f in enumerate(FAULTS)})


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_is_reported_with_its_cause_then_repaired(outcomes, fault: Fault):
    outcome = outcomes[fault.name]
    if isinstance(outcome, BaseException):
        raise outcome
    failed, expected = outcome.broken, fault.expect(outcome.case)
    assert set(failed) == set(expected), (
        f"{fault.name}: wrong checks failed.\n  missing: {sorted(set(expected) - set(failed))}\n"
        f"  unexpected: {[failed[n].message for n in sorted(set(failed) - set(expected))]}")
    for name, cause in expected.items():
        assert failed[name].cause and cause in failed[name].cause, (
            f"{fault.name}: {name!r} has the wrong diagnosis:\n  want: ...{cause}...\n  got:  {failed[name].cause}")
    assert outcome.repaired == {}, (
        f"{fault.name}: the repair did not restore the lab: {[r.message for r in outcome.repaired.values()]}")


def test_forwarding_off_before_verify_starts_its_pods_is_still_reported(spec: LabSpec):
    """`k8slab verify` starts pods of its own, and adding a pod makes the CNI bridge plugin turn
    forwarding back on: the reading from before must be the one judged, or verify would pass this lab."""
    problem = lab_class("netns").unavailable_reason()
    if problem:
        pytest.skip(f"fault injection needs the emulated lab: {problem}")
    lab = lab_class("netns")(spec.renamed(f"faults-{secrets.token_hex(3)}-fw"))
    try:
        lab.up()
        node = lab.spec.workers[0]
        run(lab, node.name, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
        failed = {r.name: r for r in checks.run_checks(lab) if not r.ok}
        assert checks.forwarding_name(node) in failed, f"verify passed a node with forwarding off: {list(failed)}"
        assert failed[checks.forwarding_name(node)].observed == "0"
        assert diagnose.forwarding_off(node.name) in (failed[checks.forwarding_name(node)].cause or "")
    finally:
        lab.destroy()
