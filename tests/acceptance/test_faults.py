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
from pathlib import Path

import pytest
import yaml

from k8slab.labs.base import Lab
from k8slab.labs.registry import lab_class
from k8slab.spec.load import parse_spec
from k8slab.spec.model import LabSpec
from k8slab.teach.explain import Endpoint, Explanation
from k8slab.teach.trace import observe_trace
from k8slab.verify import checks
from k8slab.verify.advice import Advice
from k8slab.verify.concurrency import concurrently
from k8slab.verify.faults import BY_ID, FAULTS, Fault, Pair, lab_dataplane, needs_ipip, on_dataplane, run_commands
from k8slab.verify.pods import SuitePods, start_pods
from k8slab.verify.run import run_checks, verify_lab
from k8slab.verify.schedule import Limits


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
    trace: Explanation | None = None         # `k8slab trace` from src's pod to dst's, with the fault in place


def failures(lab: Lab, case: Case) -> dict[str, checks.CheckResult]:
    results = run_checks(lab, case.pods.first, peers=case.pods.second)
    return {r.name: r for r in results if not r.ok}


def settled(lab: Lab, case: Case, tries: int = 3) -> dict[str, checks.CheckResult]:
    """Failures once the repaired lab has settled: a link set up again drops packets until the kernel
    activates it, and neighbours that failed while it was down answer again only after a while. The
    nodes keep the kernel's ICMP rate limits and the same pods traced a moment ago: on a 3-node lab two
    checks in a row cost each source 4 of its gateway's 6 tokens, so the first try is at once; a later one
    waits until every answering bucket is full again, so a retry is not a burst."""
    refill = Limits().burst * Limits().planned_interval
    for attempt in range(tries):
        if attempt:
            time.sleep(refill)
        failed = failures(lab, case)
        if not failed:
            break
    return failed


def exercise(spec: LabSpec, fault: Fault, name: str) -> Outcome | BaseException:
    """Build a lab of its own, break it, check it, repair it, check it again, destroy it. (A fresh lab
    passing every check is what the rest of the suite proves; here the repaired lab passing proves it.)"""
    if not on_dataplane(fault, spec):  # a fault of another dataplane: the same lab with that dataplane
        spec = spec.with_dataplane(lab_dataplane(fault))
    lab = lab_class("netns")(spec.renamed(name))
    try:
        lab.up()
        pods = start_pods(lab)
        nodes = lab.spec.nodes
        # The tutorial's pair: the cross-node trace goes from the second worker's pod to the first's.
        src, dst = (nodes[2], nodes[1]) if len(nodes) > 2 else (nodes[0], nodes[1])
        case = Case(Pair(lab.spec, src, dst, pods.first[dst.name], Advice.for_lab(lab.backend, lab.spec)), pods)
        run_commands(lab, fault.breaks(case.pair))
        try:
            broken = failures(lab, case)
            src_pod, dst_pod = case.pods.first[case.pair.src.name], case.pods.first[case.pair.dst.name]
            traced = observe_trace(lab, Endpoint(src_pod.ip, src_pod.node, pod=src_pod.name),
                                   Endpoint(dst_pod.ip, dst_pod.node, pod=dst_pod.name), capture=False,
                                   pods=case.pods.all()).explanation
        finally:
            run_commands(lab, fault.repairs(case.pair))
        return Outcome(case, broken, settled(lab, case), traced)
    except Exception as exc:  # noqa: BLE001 - handed to this fault's own test, which re-raises it
        return exc
    finally:
        lab.destroy()


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, spec: LabSpec) -> dict[str, Outcome | BaseException]:
    """Every selected fault at once, each on its own emulated lab (spec renamed "faults-<random>-<n>"): a broken
    trace waits out its timeout, so in a row they would cost seconds each. Every lab keeps the kernel's
    default ICMP rate limits: verify's pacing (verify/schedule.py) is part of what is tested."""
    problem = lab_class("netns").unavailable_reason()
    if problem:
        pytest.skip(f"fault injection needs the emulated lab: {problem}")
    token = secrets.token_hex(3)
    # only the faults whose tests run (IP-in-IP ones are deselected where the kernel has no ipip; `-k`)
    wanted = {item.callspec.params["fault"].id for item in request.session.items
              if getattr(item, "callspec", None) is not None and isinstance(item.callspec.params.get("fault"), Fault)}
    return concurrently({f.id: (lambda f=f, i=i: exercise(spec, f, f"faults-{token}-{i}"))
                         for i, f in enumerate(FAULTS) if f.id in wanted}, workers=6)


# An IP-in-IP fault builds an IP-in-IP lab: k8slab's pytest plugin deselects it, saying why, where the kernel
# has no ipip module (the emulated lab refuses IPIP at `up` there); tests/unit/test_ipip_faults.py proves it.
CASES = [pytest.param(f, marks=pytest.mark.needs_ipip) if needs_ipip(f) else f for f in FAULTS]


@pytest.mark.parametrize("fault", CASES, ids=[f.title for f in FAULTS])
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
    # `k8slab trace` names the cause verify names for the same path (one engine: verify/diagnose.py).
    trace_check = outcome.case.pair.trace(outcome.case.pair.src, outcome.case.pair.dst)
    if trace_check in expected:
        ex = outcome.trace
        assert ex is not None and not ex.ok and "why " not in "\n".join(ex.lines), ex and ex.lines
        assert ex.cause and expected[trace_check] in ex.cause, (
            f"{fault.title}: trace names another cause than verify:\n  want: ...{expected[trace_check]}...\n"
            f"  got:  {ex.cause}")
        assert "NOT as the tutorial says" in ex.summary
    assert outcome.repaired == {}, (
        f"{fault.title}: the repair did not restore the lab: {[r.message for r in outcome.repaired.values()]}")


# Faults made BEFORE verify starts its pods, which would repair them (the CNI bridge plugin brings cni0 up and
# turns forwarding on): verify must judge the lab as found, name the fault, and leave it as found.
BEFORE_PODS = [(fault_id, where) for fault_id in ("cni0-down", "forwarding-off")
               for where in ("worker", "control plane")]


def found_then_verified(spec: LabSpec, fault: Fault, where: str, name: str) -> tuple | BaseException:
    lab = lab_class("netns")(spec.renamed(name))
    try:
        lab.up()
        nodes = lab.spec.nodes
        node = nodes[1] if where == "worker" else lab.spec.control_plane
        other = next(n for n in nodes if n.name != node.name)
        pair = Pair(lab.spec, other, node, None, Advice.for_lab(lab.backend, lab.spec))
        # A student's pod made cni0 on the node before it was broken; it stays through verify.
        lab.pod_start(f"student-{secrets.token_hex(2)}", node.name)
        run_commands(lab, fault.breaks(pair))
        verification = verify_lab(lab)
        after = {"cni0": lab.node_run(node.name, ["ip", "-j", "link", "show", "cni0"]).stdout,
                 "forward": lab.node_run(node.name, ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip(),
                 "pods": [p.name for p in lab.pods()]}
        return pair, verification, after
    except Exception as exc:  # noqa: BLE001 - handed to the case's own test, which re-raises it
        return exc
    finally:
        lab.destroy()


@pytest.fixture(scope="module")
def found_outcomes(spec: LabSpec) -> dict:
    problem = lab_class("netns").unavailable_reason()
    if problem:
        pytest.skip(f"fault injection needs the emulated lab: {problem}")
    token = secrets.token_hex(3)
    return concurrently({case: (lambda c=case, i=i: found_then_verified(spec, BY_ID[c[0]], c[1], f"fb-{token}-{i}"))
                         for i, case in enumerate(BEFORE_PODS)})


@pytest.mark.parametrize("case", BEFORE_PODS, ids=[f"{f} on the {w}" for f, w in BEFORE_PODS])
def test_fault_made_before_verify_is_reported_and_left_as_found(found_outcomes, case):
    outcome = found_outcomes[case]
    if isinstance(outcome, BaseException):
        raise outcome
    pair, verification, after = outcome
    fault = BY_ID[case[0]]
    failed = {r.name: r for r in verification.results if not r.ok}
    expected = fault.expect(pair)
    assert set(failed) == set(expected), (
        f"missing: {sorted(set(expected) - set(failed))}\n"
        f"  unexpected: {[failed[n].message for n in sorted(set(failed) - set(expected))]}")
    for name, cause in expected.items():
        assert cause in (failed[name].cause or ""), f"{name}: want ...{cause}..., got {failed[name].cause}"
    # What verify's pods changed is said, and set back: the student's broken lab stays broken.
    node = pair.dst.name
    if fault.id == "cni0-down":
        assert '"UP"' not in after["cni0"].split('"flags"')[1].split("]")[0], f"cni0 is up after verify: {after}"
        assert any(n.startswith(f"{node}: cni0 was DOWN") and "set back" in n for n in verification.notes)
    else:
        assert after["forward"] == "0", f"forwarding is {after['forward']} after verify"
        assert any(n.startswith(f"{node}: net.ipv4.ip_forward was 0") and "set back" in n for n in verification.notes)
    assert [p for p in after["pods"] if not p.startswith("student-")] == [], f"verify left pods: {after['pods']}"


def test_a_healthy_12_node_lab_verifies_clean(spec: LabSpec):
    """Twelve nodes with the kernel's default ICMP limits: 11 peers per source pod is past the burst of 6,
    which once failed verify for silence from the sources' own gateways (issue 13)."""
    problem = lab_class("netns").unavailable_reason()
    if problem:
        pytest.skip(f"the emulated lab is not available: {problem}")
    data = yaml.safe_load(Path(spec.source).read_text())
    cp = spec.control_plane
    data["name"] = f"v12-{secrets.token_hex(3)}"
    data["nodes"] = [{"name": cp.name, "role": "control-plane", "ip": str(cp.ip), "cpus": 2, "memory": 2048}] + [
        {"name": f"node-{i}", "role": "worker", "ip": str(cp.ip + i)} for i in range(1, 12)]
    lab = lab_class("netns")(parse_spec(yaml.safe_dump(data), source="<twelve nodes>"))
    try:
        lab.up()
        verification = verify_lab(lab)
    finally:
        lab.destroy()
    failed = [r.message for r in verification.results if not r.ok]
    assert len(verification.results) > 12 * 12 and failed == [], failed[:5]
    assert verification.notes == []
