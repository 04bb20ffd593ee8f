"""`k8slab walkthrough` end to end on the lab under test: the tutorial's four examples pass with the
tutorial's pod names and its `traceroute -n` output, the walkthrough owns its pods (removed after a run,
a closed pipe or a crash; kept with --keep; a student's pod of the same name is never touched), a
partial run claims no more than it ran, and a broken lab makes a step fail with a non-zero exit."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from ipaddress import IPv4Address

import pytest

from k8slab.cli import main
from k8slab.labs import notes
from k8slab.labs.registry import BACKENDS
from k8slab.spec.expect import hops_from_pod, node_routes
from k8slab.spec.facts import BRIDGE_IF
from k8slab.teach.walkthroughs.model import Roles
from k8slab.teach.walkthroughs.runner import NOTE
from k8slab.teach.walkthroughs.tutorial import BUSYBOX, HTTPD, NGINX

pytestmark = pytest.mark.usefixtures("flannel_tutorial")

TUTORIAL_PODS = (NGINX, HTTPD, BUSYBOX)


def backend_args(lab) -> list[str]:
    return ["--backend", lab.backend] if lab.backend in BACKENDS else []


def walkthrough(spec, lab, capsys, *args: str) -> tuple[int, str]:
    rc = main(["--spec", spec.source, "walkthrough", "--no-pause", *backend_args(lab), *args])
    return rc, capsys.readouterr().out


def leftover_pods(lab) -> list[str]:
    return [p.name for p in lab.pods() if p.name in TUTORIAL_PODS]


def test_walkthrough_matches_the_tutorial(spec, lab, capsys):
    rc, out = walkthrough(spec, lab, capsys)
    assert rc == 0, out
    assert f"runs {spec.dataplane}: the tutorial walkthrough follows it" in out  # no NAME: flannel's is the tutorial
    for step in (1, 2, 3, 4):
        assert f"✓ step {step}: matches the tutorial" in out
    assert "✗" not in out and "every step matches the tutorial" in out
    r = Roles.of(spec)
    for node in spec.nodes:
        if node != r.control_plane:
            assert f"traceroute -n {node.ip}   # on {r.control_plane.name}" in out  # as the tutorial writes it
    # Step 4's three hops, in order, as expect computes them for the pod the walkthrough traced to.
    httpd_ip = re.findall(rf"\$ traceroute -n (\S+)   # in pod {BUSYBOX}", out)[-1]
    hops = hops_from_pod(spec, r.src_worker, IPv4Address(httpd_ip))
    said = re.search(r"3 hops in this order: (\S+) \(([^)]*)\), (\S+) \([^)]*\), (\S+) \(the pod\)", out)
    assert said, out
    assert [IPv4Address(a) for a in said.group(1, 3, 4)] == [h.address for h in hops], said[0]
    assert said[2] == f"{r.src_worker.name}'s {BRIDGE_IF}", said[0]
    # The tutorial's traceroute output: 30 hops max, and three probes (three times) on every hop line.
    shown = out[out.index("━━ step 4 of 4"):]
    assert f"traceroute to {httpd_ip} ({httpd_ip}), 30 hops max" in shown
    hop_lines = re.findall(r"^  \|\s+(\d+)  (\S+)((?:  [\d.]+ ms){3})$", shown, re.MULTILINE)
    assert [IPv4Address(h[1]) for h in hop_lines] == [h.address for h in hops], shown
    # The capture is explained with the probes really sent: the ping it watched is among the commands shown.
    assert re.search(rf"\$ ping -c \d+ -W 1 {re.escape(httpd_ip)}   # in pod {BUSYBOX}", shown)
    assert "of the ping shown above" in shown
    assert leftover_pods(lab) == []


def test_one_step_runs_alone_and_claims_only_itself(spec, lab, capsys):
    rc, out = walkthrough(spec, lab, capsys, "--step", "3")
    assert rc == 0, out
    assert "step 3 of 4" in out and "step 4 of 4" not in out and "step 1 of 4" not in out
    assert "every step" not in out and "step(s) 3 match the tutorial (1 of 4 steps ran" in out
    assert leftover_pods(lab) == []


def test_a_closed_pipe_leaves_no_pod_and_the_next_run_works(spec, lab, capsys):
    cmd = [sys.executable, "-m", "k8slab", "--spec", spec.source, "walkthrough", "--no-pause", *backend_args(lab)]
    script = f'{shlex.join(cmd)} | head -3; echo "walkthrough exit ${{PIPESTATUS[0]}}" >&2'
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert len(proc.stdout.splitlines()) == 3
    assert "walkthrough exit 141" in proc.stderr, proc.stderr  # it wrote on after head left: the pipe closed mid-run
    assert "Broken pipe" not in proc.stderr and "could not remove" not in proc.stderr, proc.stderr
    assert leftover_pods(lab) == []
    rc, out = walkthrough(spec, lab, capsys, "--step", "1")
    assert rc == 0, out


def test_keep_leaves_the_pods_and_the_next_run_takes_them_back(spec, lab, capsys):
    rc, out = walkthrough(spec, lab, capsys, "--step", "4", "--keep", "--no-capture")
    assert rc == 0, out
    r = Roles.of(spec)
    kept = {p.name: p.node for p in lab.pods() if p.name in TUTORIAL_PODS}
    assert kept == {HTTPD: r.dst_worker.name, BUSYBOX: r.src_worker.name}
    assert f"left pod(s) {HTTPD}, {BUSYBOX} running" in out
    rc, out = walkthrough(spec, lab, capsys, "--step", "3", "--no-capture")
    assert rc == 0, out
    assert f"removing pod {BUSYBOX}, left by an earlier walkthrough" in out
    assert leftover_pods(lab) == []


def test_pods_of_a_crashed_run_are_removed_but_a_students_pod_is_refused(spec, lab, capsys):
    r = Roles.of(spec)
    notes.write(lab, NOTE, [HTTPD])  # what a run killed right after starting httpd leaves behind
    lab.pod_start(HTTPD, r.dst_worker.name)
    rc, out = walkthrough(spec, lab, capsys, "--step", "3", "--no-capture")
    assert rc == 0 and f"removing pod {HTTPD}, left by an earlier walkthrough" in out, out
    assert leftover_pods(lab) == []
    lab.pod_start(BUSYBOX, r.src_worker.name)  # the student's own busybox
    try:
        rc = main(["--spec", spec.source, "walkthrough", "--no-pause", "--step", "3", *backend_args(lab)])
        err = capsys.readouterr().err
        assert rc == 2 and f"pod(s) {BUSYBOX} already exist" in err and "did not start them" in err
        assert [p.node for p in lab.pods() if p.name == BUSYBOX] == [r.src_worker.name]
    finally:
        lab.pod_delete(BUSYBOX)


def test_a_missing_route_fails_step_4_and_the_exit_status(spec, lab, capsys):
    """Remove the source worker's route to the destination worker's pod subnet, then put it back."""
    r = Roles.of(spec)
    route = next(x for x in node_routes(spec, r.src_worker) if x.peer == r.dst_worker.name)
    restore = ["ip", "route", "replace", *str(route.route).split()]
    assert lab.node_run(r.src_worker.name, ["ip", "route", "del", str(route.route.dst)]).ok
    try:
        rc, out = walkthrough(spec, lab, capsys, "--step", "4", "--no-capture")
    finally:
        assert lab.node_run(r.src_worker.name, restore).ok
    assert rc == 1
    assert "✗ step 4: does NOT match the tutorial" in out and "step(s) 4 do not match the tutorial" in out
    # The explanation names the gap: the real `ip route get` on that node no longer leads to the peer.
    assert f"route to {r.dst_worker.name}'s pod subnet {r.dst_worker.pod_subnet} is missing" in out, out
    assert leftover_pods(lab) == []


def test_unknown_step_is_refused_before_anything_starts(spec, lab, capsys):
    before = leftover_pods(lab)
    rc = main(["--spec", spec.source, "walkthrough", "--step", "9", "--no-pause"])
    assert rc == 2 and "no step 9" in capsys.readouterr().err
    assert leftover_pods(lab) == before


def test_a_walkthrough_for_another_cni_plugin_is_refused_before_any_pod_starts(spec, lab, capsys):
    before = sorted(p.name for p in lab.pods())
    rc = main(["--spec", spec.source, "walkthrough", "calico", "--no-pause", *backend_args(lab)])
    err = capsys.readouterr().err
    assert rc == 2 and f"the calico walkthrough follows calico labs and lab {spec.name!r} runs {spec.dataplane}" in err
    assert f"{lab.command('walkthrough tutorial')}` follows this lab" in err, err
    assert sorted(p.name for p in lab.pods()) == before


def test_list_names_the_walkthroughs_and_their_steps(capsys):
    assert main(["walkthrough", "--list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tutorial: ") and "  step 4: pod to pod across nodes: three hops" in out
    # each names the labs it follows: the tutorial flannel's, the Calico article Calico's, the pods any lab
    follows = dict(re.findall(r"^(\w+): .*\n  follows: (.*)$", out, re.MULTILINE))
    assert follows == {"tutorial": "flannel labs", "calico": "calico labs", "pods": "any lab"}


@pytest.fixture(autouse=True)
def _no_walkthrough_pods_before(lab):
    assert leftover_pods(lab) == [], "a walkthrough pod was left from an earlier run"
