"""IP-in-IP's classic faults (tunnel device down, protocol 4 dropped) for flannel's ipip backend and Calico's
IPIP pool, proven without an ipip kernel: the catalogue's commands for a 3-node spec, and verify's checks on
facts edited the way the kernel shows each fault fail exactly the checks the catalogue says, each with the
cause; the fault suite and `k8slab exercise` never pick them on a lab whose kernel lacks ipip."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from factsbuilder import ACCEPT_ALL, from_expectations
from test_dataplane_plans import calico_spec, lab_data

from k8slab.labs.base import Pod
from k8slab.pytest_plugin import ipip_unavailable_reason
from k8slab.spec import calico
from k8slab.spec.expect import hops_from_pod, node_routes
from k8slab.spec.facts import FLANNEL_IPIP_IF, HOST_ONLY_IF
from k8slab.spec.load import parse_spec
from k8slab.spec.model import LabSpec
from k8slab.teach.exercise import candidates
from k8slab.verify import checks, diagnose, diagnose_ipip
from k8slab.verify.faults import BY_ID, FAULTS, LEVELS, Command, Pair, applies, lab_dataplane, needs_ipip
from k8slab.verify.tracing import TraceRun

ROOT = Path(__file__).resolve().parents[2]
DATAPLANES = {"flannel ipip": FLANNEL_IPIP_IF, "calico IPIP": calico.IPIP_IF}
IDS = {"flannel ipip": ("flannel-ipip-down", "flannel-ipip-protocol-4-dropped"),
       "calico IPIP": ("calico-ipip-down", "calico-ipip-protocol-4-dropped")}


def spec_for(dataplane: str) -> LabSpec:
    if dataplane == "flannel ipip":
        return parse_spec(yaml.safe_dump(lab_data(backend="ipip")))
    return calico_spec("IPIP")


def pods_of(spec: LabSpec) -> list[Pod]:
    """Two pods per node at the addresses the node's CNI hands out first."""
    first = calico.first_pod_ordinal(spec.calico) if spec.calico else 2
    return [Pod(f"p-{n.name}-{k}", n.name, n.pod_subnet.network_address + first + k)
            for n in spec.nodes for k in (0, 1)]


def pair_of(spec: LabSpec) -> Pair:
    """The fault suite's pair: source on the second worker, the fault made on the first."""
    return Pair(spec, spec.nodes[2], spec.nodes[1])


def judged(spec: LabSpec, facts, pods: list[Pod], cut: set[str]) -> dict[str, checks.CheckResult]:
    """Every node check, and a pod trace between every two pods of different nodes and of one node; a trace with
    an end on a node in cut stops after its first hop, as the kernel shows a lost tunnel. -> failures."""
    results = checks.node_checks(spec, facts, pods)
    for a in pods:
        for b in pods:
            if a is b or (a.node == b.node and not a.name.endswith("-0")):
                continue
            hops = [h.address for h in hops_from_pod(spec, spec.node(a.node), b.ip)]
            broken = a.node != b.node and {a.node, b.node} & cut
            path = (hops[0], None, None) if broken else tuple(hops)
            results.append(checks.check_pod_trace(spec, a, b, TraceRun("traceroute -n", path, ""), facts))
    return {r.name: r for r in results if not r.ok}


def assert_named(failed: dict[str, checks.CheckResult], expected: dict[str, str]) -> None:
    assert set(failed) == set(expected), (sorted(set(failed) - set(expected)), sorted(set(expected) - set(failed)))
    for name, cause in expected.items():
        assert cause in (failed[name].cause or ""), (name, failed[name].cause)


@pytest.mark.parametrize("dataplane", DATAPLANES)
def test_a_healthy_ipip_lab_passes_every_check(dataplane):
    spec = spec_for(dataplane)
    pods = pods_of(spec)
    assert judged(spec, from_expectations(spec, pods), pods, set()) == {}


@pytest.mark.parametrize("dataplane", DATAPLANES)
def test_tunnel_down_commands_and_diagnosis(dataplane):
    spec, dev = spec_for(dataplane), DATAPLANES[dataplane]
    fault = BY_ID[IDS[dataplane][0]]
    p = pair_of(spec)
    assert applies(fault, spec) and lab_dataplane(fault) == dataplane and needs_ipip(fault)
    assert fault.breaks(p) == (Command(p.dst.name, ("ip", "link", "set", dev, "down")),)
    # The repair: the device up, then every route through it, as flannel or BIRD wrote it (the kernel dropped them).
    through = [r.route for r in node_routes(spec, p.dst) if r.route.dev == dev]
    assert len(through) == len(spec.nodes) - 1 and all(r.onlink and r.via in {n.ip for n in spec.nodes}
                                                      for r in through)
    assert fault.repairs(p) == (Command(p.dst.name, ("ip", "link", "set", dev, "up")),
                                *(Command(p.dst.name, ("ip", "route", "replace", *str(r).split())) for r in through))
    # The kernel's view: the device without its UP flag, and no route through it left.
    pods = pods_of(spec)
    facts = from_expectations(spec, pods)
    nf = facts[p.dst.name]
    facts[p.dst.name] = replace(nf, links=tuple(replace(lk, up=lk.name != dev) for lk in nf.links),
                                routes=tuple(r for r in nf.routes if r.dev != dev))
    expected = fault.expect(p)
    assert len([n for n in expected if " routes " in n]) == len(spec.nodes) - 1
    assert_named(judged(spec, facts, pods, {p.dst.name}), expected)
    assert f"{dev} is down on {p.dst.name}" in expected[next(iter(expected))]


@pytest.mark.parametrize("dataplane", DATAPLANES)
def test_protocol_4_dropped_commands_and_diagnosis_name_the_rule(dataplane):
    spec = spec_for(dataplane)
    fault = BY_ID[IDS[dataplane][1]]
    p = pair_of(spec)
    # -p 4: `-p ipip` would be protocol 94 (/etc/protocols), and leave IP-in-IP untouched
    rule = ("INPUT", "-i", HOST_ONLY_IF, "-p", "4", "-j", "DROP")
    assert fault.breaks(p) == (Command(p.dst.name, ("iptables", "-I", *rule)),)
    assert fault.repairs(p) == (Command(p.dst.name, ("iptables", "-D", *rule)),)
    pods = pods_of(spec)
    facts = from_expectations(spec, pods)
    # what `iptables -S` printed after `iptables -I INPUT -i eth1 -p 4 -j DROP` (iptables 1.8.9, Debian netbase)
    shown = "-A INPUT -i eth1 -p ipencap -j DROP"
    facts[p.dst.name] = replace(facts[p.dst.name], firewall=(*ACCEPT_ALL, shown))
    expected = fault.expect(p)
    assert set(expected) == set(p.cross_traces(p.dst))  # links, routes, BGP, node traces: all fine
    failed = judged(spec, facts, pods, {p.dst.name})
    assert_named(failed, expected)
    for result in failed.values():
        assert f"`{shown}`" in result.cause and f"`iptables -D INPUT -i eth1 -p ipencap -j DROP` on {p.dst.name}" \
            in result.cause and "-p ipip" in result.cause


@pytest.mark.parametrize("dataplane", DATAPLANES)
def test_a_default_deny_firewall_allowing_tcp_and_udp_is_named_and_an_unread_one_suspected(dataplane):
    """The real-world case: INPUT policy DROP with TCP, UDP and ICMP accepted (BGP and traceroute pass)."""
    spec = spec_for(dataplane)
    p = pair_of(spec)
    pods = pods_of(spec)
    facts = from_expectations(spec, pods)
    firewall = ("-P INPUT DROP", "-P FORWARD ACCEPT", "-P OUTPUT ACCEPT", "-A INPUT -i lo -j ACCEPT",
                "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                "-A INPUT -p tcp -m tcp --dport 179 -j ACCEPT", "-A INPUT -p udp -j ACCEPT",
                "-A INPUT -p icmp -j ACCEPT")
    facts[p.dst.name] = replace(facts[p.dst.name], firewall=firewall)
    failed = judged(spec, facts, pods, {p.dst.name})
    assert_named(failed, BY_ID[IDS[dataplane][1]].expect(p))
    assert all("INPUT's policy DROP" in r.cause for r in failed.values())
    # A firewall that accepts protocol 4 before the policy is not blamed.
    accepted = (*firewall[:4], "-A INPUT -s 192.168.56.0/24 -p ipencap -j ACCEPT", *firewall[4:])
    assert diagnose_ipip.verdict(accepted, "INPUT", p.src.ip, p.dst.ip, HOST_ONLY_IF) is None
    assert diagnose_ipip.verdict(("-A INPUT -p ipip -j DROP",), "INPUT", p.src.ip, p.dst.ip, HOST_ONLY_IF) is None
    # A rule whose address is not one (the node's output is data) is passed over, not a traceback.
    garbled = ("-A INPUT -s not-an-address -p 4 -j ACCEPT", "-A INPUT -d 300.1.1.1/8 -p 4 -j ACCEPT",
               "-A INPUT -p 4 -j DROP")
    assert diagnose_ipip.verdict(garbled, "INPUT", p.src.ip, p.dst.ip, HOST_ONLY_IF) == f"`{garbled[2]}`"
    # -i with iptables' '+' wildcard: `eth+` is eth1 too, `eth0` and `enp+` are not
    wild = ("-A INPUT -i eth0 -p 4 -j DROP", "-A INPUT -i enp+ -p 4 -j DROP", "-A INPUT -i eth+ -p 4 -j DROP")
    assert diagnose_ipip.verdict(wild, "INPUT", p.src.ip, p.dst.ip, HOST_ONLY_IF) == f"`{wild[2]}`"
    # A firewall between the nodes (a security group) shows on no node: suspected, with how to confirm it.
    facts = from_expectations(spec, pods)
    facts = {n: replace(f, firewall=None) for n, f in facts.items()}
    failed = judged(spec, facts, pods, {p.dst.name})
    assert set(failed) == set(p.cross_traces(p.dst))
    assert all("IP protocol 4 is probably dropped" in r.cause and "tcpdump -ni eth1 ip proto 4" in r.cause
               for r in failed.values())


def test_ipip_faults_are_in_the_catalogue_for_both_dataplanes_with_hints_and_answers():
    for dataplane, ids in IDS.items():
        spec = spec_for(dataplane)
        p = pair_of(spec)
        for fault_id in ids:
            f = BY_ID[fault_id]
            assert f.dataplane == dataplane and applies(f, spec) and f.answer(p) and len(f.hints(p)) == 3
            assert not applies(f, spec_for(next(d for d in DATAPLANES if d != dataplane)))
    assert diagnose.flannel_tunnel_down("n", FLANNEL_IPIP_IF).startswith(f"{FLANNEL_IPIP_IF} is down on n")


KERNEL_DATAPLANES = ("flannel host-gw", "flannel vxlan", "calico None", "calico VXLAN", "calico VXLANCrossSubnet")


@pytest.mark.parametrize("dataplane", KERNEL_DATAPLANES)
def test_exercise_never_offers_an_ipip_fault_on_a_lab_without_ipip(dataplane):
    """Every dataplane this kernel can build: no IPIP fault among an exercise's candidates (an IPIP lab, the only
    one that offers them, is refused at `up` where the kernel has no ipip)."""
    spec = parse_spec(yaml.safe_dump(lab_data())).with_dataplane(dataplane)
    offered = {f.id for level in LEVELS for f, _, _ in candidates(spec, level)}
    assert not any(needs_ipip(BY_ID[i]) for i in offered)
    assert not any(needs_ipip(f) for f in FAULTS if applies(f, spec))


def test_a_flannel_ipip_lab_offers_its_ipip_exercises():
    spec = spec_for("flannel ipip")
    offered = {f.id for level in LEVELS for f, _, _ in candidates(spec, level)}
    assert set(IDS["flannel ipip"]) <= offered and not offered & set(IDS["calico IPIP"])


def test_needs_ipip_is_exactly_the_ipip_dataplanes():
    assert {f.id for f in FAULTS if needs_ipip(f)} == {i for ids in IDS.values() for i in ids}


@pytest.mark.skipif(os.geteuid() != 0, reason="probing the kernel for ipip needs a network namespace (root)")
def test_the_fault_suite_deselects_ipip_faults_with_the_kernels_reason_where_it_has_no_ipip():
    """Deselected, not skipped (a skip fails CI's emulated suite), and only where the probe `up` uses says so."""
    missing = ipip_unavailable_reason()
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
                          "tests/acceptance/test_faults.py"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=False, env={k: v for k, v in os.environ.items() if k != "CI"})
    assert run.returncode == 0, run.stdout + run.stderr
    ipip = [f for f in FAULTS if needs_ipip(f)]
    collected = [f for f in FAULTS if f"[{f.title}]" in run.stdout]
    if missing:
        assert collected == [f for f in FAULTS if not needs_ipip(f)]
        assert f"{len(ipip)} deselected" in run.stdout and "skipped" not in run.stdout
        assert f"k8slab: IP-in-IP tests deselected: {missing}" in run.stdout
    else:
        assert collected == list(FAULTS)
