"""Prove the harness fails a broken lab, with the right diagnosis.

On an emulated lab of its own (the spec renamed "faults-<random>", never the session's lab), each
classic fault of the catalogue (src/k8slab/verify/faults.py, which `k8slab exercise` draws from too)
is made for real in the kernel through the Lab interface (ip route, sysctl, ip link, ip addr inside
the nodes' and a pod's namespaces); run_checks — the code `k8slab verify` and the
suite use — must fail exactly the checks that fault breaks, each with the fault table's cause;
then the lab is repaired and must pass everything again. A harness that passes a broken lab is
the worst bug this project can have.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import pytest

from k8slab.labs.base import Lab
from k8slab.labs.registry import lab_class
from k8slab.spec.model import LabSpec
from k8slab.verify import checks, diagnose
from k8slab.verify.concurrency import concurrently
from k8slab.verify.faults import FAULTS, Fault, Pair, lab_dataplane, on_dataplane, run_commands
from k8slab.verify.names import forwarding_name
from k8slab.verify.pods import SuitePods, start_pods
from k8slab.verify.run import run_checks


def run(lab: Lab, node: str, *argv: str) -> None:
    res = lab.node_run(node, list(argv))
    assert res.ok, f"breaking/repairing {node} failed: {' '.join(argv)}: {res.stderr.strip()}"


def in_pod(lab: Lab, pod: str, *argv: str) -> str:
    res = lab.pod_run(pod, list(argv))
    assert res.ok, f"breaking/repairing pod {pod} failed: {' '.join(argv)}: {res.stderr.strip()}"
    return res.stdout


@dataclass(frozen=True)
class Case:
    """The pair of nodes a fault involves (with the pod a pod fault is made on), and the suite's pods."""
    pair: Pair
    pods: SuitePods


@dataclass
class Outcome:
    case: Case
    broken: dict[str, checks.CheckResult]    # failures with the fault in place
    repaired: dict[str, checks.CheckResult]  # failures after the repair (must be none)


def failures(lab: Lab, case: Case) -> dict[str, checks.CheckResult]:
    results = run_checks(lab, case.pods.first, peers=case.pods.second)
    return {r.name: r for r in results if not r.ok}


def unlimit_icmp(lab: Lab, pods: SuitePods) -> None:
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
    if not on_dataplane(fault, spec):  # a fault of another dataplane: the same lab with that dataplane
        spec = spec.with_dataplane(lab_dataplane(fault))
    lab = lab_class("netns")(spec.renamed(name))
    try:
        lab.up()
        pods = start_pods(lab)
        unlimit_icmp(lab, pods)
        nodes = lab.spec.nodes
        # The tutorial's pair: the cross-node trace goes from the second worker's pod to the first's.
        src, dst = (nodes[2], nodes[1]) if len(nodes) > 2 else (nodes[0], nodes[1])
        case = Case(Pair(lab.spec, src, dst, pods.first[dst.name]), pods)
        run_commands(lab, fault.breaks(case.pair))
        try:
            broken = failures(lab, case)
        finally:
            run_commands(lab, fault.repairs(case.pair))
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
    return concurrently({f.id: (lambda f=f, i=i: exercise(spec, f, f"faults-{token}-{i}"))
                                for i, f in enumerate(FAULTS)}, workers=6)


@pytest.mark.parametrize("fault", FAULTS, ids=[f.title for f in FAULTS])
def test_fault_is_reported_with_its_cause_then_repaired(outcomes, fault: Fault):
    outcome = outcomes[fault.id]
    if isinstance(outcome, BaseException):
        raise outcome
    failed, expected = outcome.broken, fault.expect(outcome.case.pair)
    assert set(failed) == set(expected), (
        f"{fault.title}: wrong checks failed.\n  missing: {sorted(set(expected) - set(failed))}\n"
        f"  unexpected: {[failed[n].message for n in sorted(set(failed) - set(expected))]}")
    for name, cause in expected.items():
        assert failed[name].cause and cause in failed[name].cause, (
            f"{fault.title}: {name!r} has the wrong diagnosis:\n  want: ...{cause}...\n  got:  {failed[name].cause}")
    assert outcome.repaired == {}, (
        f"{fault.title}: the repair did not restore the lab: {[r.message for r in outcome.repaired.values()]}")


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
        failed = {r.name: r for r in run_checks(lab) if not r.ok}
        assert forwarding_name(node) in failed, f"verify passed a node with forwarding off: {list(failed)}"
        assert failed[forwarding_name(node)].observed == "0"
        assert diagnose.forwarding_off(node.name) in (failed[forwarding_name(node)].cause or "")
    finally:
        lab.destroy()
