"""verify's run_checks and the trace engine on FakeLab (tests/unit/fakelab.py), replaying the default 3-node
host-gw lab as tests/unit/record_fakelab.py recorded it: fast, and without root. Expected names and hops come
from the spec (verify/names.py, spec/expect.py), never from the recording."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from unittest import mock

import pytest
from fakelab import DATA, TOKEN, FakeLab, load_recording
from spec_files import ROOT

from k8slab.spec.expect import hops_from_node, hops_from_pod, node_interfaces, node_routes
from k8slab.spec.facts import BRIDGE_IF
from k8slab.spec.load import load_spec
from k8slab.teach.explain import Endpoint
from k8slab.teach.trace import observe_trace
from k8slab.teach.walkthroughs.runner import run_walkthrough
from k8slab.teach.walkthroughs.tutorial import TUTORIAL
from k8slab.verify import diagnose, names
from k8slab.verify.advice import Advice
from k8slab.verify.run import run_checks
from k8slab.verify.schedule import wave_order

RECORDING = DATA / "fakelab-host-gw.json"
SYSCTL = ("sysctl", "-n", "net.ipv4.ip_forward", "net.ipv4.icmp_ratelimit")


@pytest.fixture
def spec():
    return load_spec(ROOT / "lab.yaml")


def fake(spec, path: Path = RECORDING, edit=None) -> FakeLab:
    runs, pods, held = load_recording(path)
    if edit:
        edit(runs)
    return FakeLab(spec, runs, pods, held)


def checks(lab: FakeLab):
    with mock.patch("k8slab.verify.pods.secrets.token_hex", return_value=TOKEN):  # the recording's pod names
        return run_checks(lab)


def expected_names(spec) -> list[str]:
    """Every check verify makes on a netns lab without services: computed from the spec alone."""
    out: list[str] = []
    for node in spec.nodes:  # every node runs two of verify's pods
        out += [names.interface_name(e) for e in node_interfaces(spec, node, has_pods=True)]
        out.append(names.veth_name(node))
        out += [names.route_name(e) for e in node_routes(spec, node, has_pods=True)]
        out += [names.eth0_routes_name(node), names.forwarding_name(node),
                names.pod_address_name(node), names.pod_address_name(node, second=True)]
    cp = spec.control_plane
    out += [names.node_trace_name(spec, cp, spec.node(n)) for n in wave_order([n.name for n in spec.nodes], cp.name)]
    return out + [names.pod_trace_name(spec, a, b) for a, b in names.node_pairs(spec)]


def test_run_checks_on_the_recording_passes_every_check_the_spec_names(spec):
    results = checks(fake(spec))
    assert [r.name for r in results if not r.ok] == []
    assert sorted(r.name for r in results) == sorted(expected_names(spec))


def test_the_nodes_are_read_before_any_pod_starts_and_the_pods_are_removed(spec):
    lab = fake(spec)
    checks(lab)
    kinds = [c.kind for c in lab.calls]
    first_start = kinds.index("pod_start")
    before = lab.calls[:first_start]
    assert {c.where for c in before} == {n.name for n in spec.nodes}  # every node read as found ...
    assert all(c.kind == "node_run" and c.argv[0] in ("ip", "sysctl") for c in before)  # ... read-only
    assert {c.argv for c in before if c.argv[0] == "sysctl"} == {SYSCTL}
    started = {c.where for c in lab.calls if c.kind == "pod_start"}
    assert started == {c.where for c in lab.calls if c.kind == "pod_delete"}
    assert len(started) == 2 * len(spec.nodes)
    assert lab.pods() == load_recording(RECORDING)[1]  # only the recording's own pods are left


def _set(where: str, argv: tuple[str, ...], change):
    def edit(runs):
        old = runs[(where, argv)]
        runs[(where, argv)] = dataclasses.replace(old, stdout=change(old.stdout))
    return edit


def test_ip_forward_off_on_one_node_fails_its_check_with_diagnoses_cause(spec):
    node = spec.workers[0].name
    results = checks(fake(spec, edit=_set(node, SYSCTL, lambda out: "0\n" + out.split("\n", 1)[1])))
    failed = [r for r in results if not r.ok]
    assert [r.name for r in failed] == [names.forwarding_name(spec.node(node))]
    assert failed[0].cause == diagnose.forwarding_off(node, Advice.for_lab("netns", spec))


def test_cni0_down_on_one_node_names_cni0_down(spec):
    node = spec.workers[1].name
    argv = ("ip", "-j", "-d", "addr", "show")

    def down(out: str) -> str:
        links = json.loads(out)
        for link in links:
            if link["ifname"] == BRIDGE_IF:
                link["flags"] = [f for f in link["flags"] if f not in ("UP", "LOWER_UP")]
                link["operstate"] = "DOWN"
        return json.dumps(links)
    results = checks(fake(spec, edit=_set(node, argv, down)))
    failed = [r for r in results if not r.ok]
    # Only its interface check: the recorded traces crossed before the edit, so they still pass.
    assert [(r.group, r.node) for r in failed] == [("interfaces", node)]
    assert BRIDGE_IF in failed[0].name
    assert failed[0].cause == diagnose.cni0_down(node, Advice.for_lab("netns", spec))


def test_the_trace_engine_gives_the_hops_the_spec_expects(spec):
    lab = fake(spec)
    src, dst = sorted(lab.pods(), key=lambda p: spec.nodes.index(spec.node(p.node)))
    assert (src.node, dst.node) == (spec.workers[0].name, spec.workers[1].name)
    traced = observe_trace(lab, Endpoint(src.ip, src.node, src.name), Endpoint(dst.ip, dst.node, dst.name),
                           capture=False, pods=lab.pods())
    wanted = [h.address for h in hops_from_pod(spec, spec.node(src.node), dst.ip)]
    assert traced.explanation.ok
    assert [h.observed for h in traced.explanation.hops] == wanted
    assert all(h.ok for h in traced.explanation.hops)


def test_a_command_missing_from_the_recording_is_named(spec):
    lab = fake(spec)
    with pytest.raises(AssertionError, match="'ip link' on controlplane"):
        lab.node_run(spec.control_plane.name, ["ip", "link"])


def test_the_walkthroughs_node_to_node_step_runs_on_the_fake_lab(spec, tmp_path):
    runs, pods, held = load_recording(RECORDING)
    lab = FakeLab(spec, runs, pods, held, notes=tmp_path)
    results, kept = run_walkthrough(lab, TUTORIAL, [2], show=lambda r: None)
    cp = spec.control_plane
    others = [n for n in spec.nodes if n != cp]
    assert kept == [] and [r.ok for r in results] == [True]
    assert all(c.ok for c in results[0].checks) and len(results[0].checks) >= len(others)
    for node in others:  # the tutorial's own command to every other node, answered in the hops the spec says
        assert any(f"traceroute -n {node.ip}" in line for line in results[0].ran)
        hops = [str(h.address) for h in hops_from_node(spec, cp, node.ip)]
        assert all(a in results[0].output for a in hops)
    assert not [c for c in lab.calls if c.kind == "pod_start"]  # a node-to-node step starts no pod


def test_a_recording_that_lacks_a_read_stops_run_checks_naming_the_command(spec):
    node = spec.workers[0].name

    def drop(runs):
        del runs[(node, SYSCTL)]
    with pytest.raises(AssertionError, match=f"{' '.join(SYSCTL)}' on {node}"):
        checks(fake(spec, edit=drop))
