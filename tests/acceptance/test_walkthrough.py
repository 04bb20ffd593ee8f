"""`k8slab walkthrough` end to end on the lab under test: the tutorial's four examples pass, the
pods it made are gone after, and a broken lab makes a step fail with a non-zero exit."""

from __future__ import annotations

import re
from ipaddress import IPv4Address

import pytest

from k8slab.cli import main
from k8slab.labs.registry import BACKENDS
from k8slab.spec.expect import hops_from_pod, node_routes
from k8slab.spec.model import BRIDGE_IF
from k8slab.teach.walkthrough import BUSYBOX, BUSYBOX_2, HTTPD, NGINX, roles


def walkthrough(spec, lab, capsys, *args: str) -> tuple[int, str]:
    backend = ["--backend", lab.backend] if lab.backend in BACKENDS else []
    rc = main(["--spec", spec.source, "walkthrough", "--no-pause", *backend, *args])
    return rc, capsys.readouterr().out


def leftover_pods(lab) -> list[str]:
    return [p.name for p in lab.pods() if p.name in (NGINX, HTTPD, BUSYBOX, BUSYBOX_2)]


def test_walkthrough_matches_the_tutorial(spec, lab, capsys):
    rc, out = walkthrough(spec, lab, capsys)
    assert rc == 0, out
    for step in (1, 2, 3, 4):
        assert f"✓ step {step}: matches the tutorial" in out
    assert "✗" not in out
    r = roles(spec)
    for node in spec.nodes:
        if node != r.control_plane:
            assert f"traceroute -n {node.ip}   # on {r.control_plane.name}" in out  # as the tutorial writes it
    # Step 4's three hops, in order, as expect computes them for the pod the walkthrough traced to.
    httpd_ip = re.search(rf"traceroute -n .* (\S+)   # in pod {BUSYBOX_2}", out)[1]
    hops = hops_from_pod(spec, r.src_worker, IPv4Address(httpd_ip))
    said = re.search(r"3 hops in this order: (\S+) \(([^)]*)\), (\S+) \([^)]*\), (\S+) \(the pod\)", out)
    assert said, out
    assert [IPv4Address(a) for a in said.group(1, 3, 4)] == [h.address for h in hops], said[0]
    assert said[2] == f"{r.src_worker.name}'s {BRIDGE_IF}", said[0]
    assert leftover_pods(lab) == []


def test_one_step_runs_alone(spec, lab, capsys):
    rc, out = walkthrough(spec, lab, capsys, "--step", "3")
    assert rc == 0, out
    assert "step 3 of 4" in out and "step 4 of 4" not in out and "step 1 of 4" not in out
    assert leftover_pods(lab) == []


def test_a_missing_route_fails_step_4_and_the_exit_status(spec, lab, capsys):
    """Remove the source worker's route to the destination worker's pod subnet, then put it back."""
    r = roles(spec)
    route = next(x for x in node_routes(spec, r.src_worker) if x.peer == r.dst_worker.name)
    restore = ["ip", "route", "replace", str(route.dest), "via", str(route.via), "dev", route.dev]
    if route.onlink:
        restore.append("onlink")
    assert lab.node_run(r.src_worker.name, ["ip", "route", "del", str(route.dest)]).ok
    try:
        rc, out = walkthrough(spec, lab, capsys, "--step", "4", "--no-capture")
    finally:
        assert lab.node_run(r.src_worker.name, restore).ok
    assert rc == 1
    assert "✗ step 4: does NOT match the tutorial" in out
    # The explanation names the gap: the real `ip route get` on that node no longer leads to the peer.
    assert f"route to {r.dst_worker.name}'s pod subnet {r.dst_worker.pod_subnet} is missing" in out, out
    assert leftover_pods(lab) == []


def test_unknown_step_is_refused_before_anything_starts(spec, lab, capsys):
    before = leftover_pods(lab)
    rc = main(["--spec", spec.source, "walkthrough", "--step", "9", "--no-pause"])
    assert rc == 2 and "no step 9" in capsys.readouterr().err
    assert leftover_pods(lab) == before


@pytest.fixture(autouse=True)
def _no_walkthrough_pods_before(lab):
    assert leftover_pods(lab) == [], "a walkthrough pod was left from an earlier run"
