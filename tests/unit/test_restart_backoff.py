"""The emulated lab's container restarts as pure rules: the kubelet's back-off curve (in Python and in the sh its
containers' PID 1 runs, which must agree), the restart policy, and the status files and lab.json figures read
back as data, each field checked."""

from __future__ import annotations

import subprocess

import pytest

from k8slab.errors import LabStateError
from k8slab.labs.base import Container
from k8slab.labs.netns import pods, supervise
from k8slab.labs.values import restart_policy

KUBELET_DOC_CURVE_S = [10, 20, 40, 80, 160, 300, 300]  # kubernetes.io Pod Lifecycle: 10 s doubling, 5 min cap


def curve(backoff: supervise.Backoff, restarts: int, ran_s: int = 1) -> list[int]:
    delays, delay = [], 0
    for _ in range(restarts):
        delay = supervise.next_delay(delay, ran_s, backoff)
        delays.append(delay)
    return delays


def test_the_default_is_the_kubelets_documented_curve():
    assert [d / 1000 for d in curve(supervise.KUBELET, len(KUBELET_DOC_CURVE_S))] == KUBELET_DOC_CURVE_S


def test_ten_minutes_of_running_start_the_curve_over():
    b = supervise.KUBELET
    assert supervise.next_delay(b.max_ms, 10 * 60, b) == b.initial_ms
    assert supervise.next_delay(b.max_ms, 10 * 60 - 1, b) == b.max_ms
    assert supervise.next_delay(40_000, 599, b) == 80_000


def shell_next_delay(previous_ms: int, ran_s: int, backoff: supervise.Backoff) -> int:
    """supervise.RULE run by sh, with the environment a container's PID 1 gets."""
    script = supervise.RULE + f'delay={previous_ms} ran={ran_s}; next_delay; echo "$delay"'
    out = subprocess.run(["sh", "-c", script], env=backoff.env(), capture_output=True, text=True, check=True)
    return int(out.stdout)


@pytest.mark.parametrize("backoff", [supervise.KUBELET, supervise.Backoff(300, 1000, 5000)])
def test_the_shell_rule_is_the_python_rule(backoff):
    cases = [(0, 0), (0, 10_000), (backoff.initial_ms, 1), (backoff.max_ms // 2 + 1, 1), (backoff.max_ms, 1),
             (backoff.max_ms, backoff.reset_ms // 1000), (backoff.initial_ms * 4, backoff.reset_ms // 1000 - 1)]
    for previous, ran in cases:
        assert shell_next_delay(previous, ran, backoff) == supervise.next_delay(previous, ran, backoff), (previous, ran)


def test_restart_policy_follows_the_containers_commands():
    assert restart_policy((Container("web", "httpd"), Container("sidecar", "busybox"))) == supervise.ALWAYS
    assert restart_policy((Container("job", "busybox", ("true",)),)) == supervise.NEVER
    assert restart_policy((Container("web", "httpd"), Container("probe", "busybox", ("sleep", "9")))) == "Never"


GOOD = {"state": "waiting", "restarts": 2, "last_exit": 137, "backoff_ms": 40_000}


def test_a_status_file_reads_back_field_by_field():
    assert supervise.status_from(GOOD) == supervise.Status("waiting", 2, 137, 40_000)
    assert supervise.status_from({**GOOD, "state": "running", "last_exit": None}).last_exit is None


@pytest.mark.parametrize("bad", [
    [], "running", {**GOOD, "extra": 1}, {k: v for k, v in GOOD.items() if k != "restarts"},
    {**GOOD, "state": "rm -rf /"}, {**GOOD, "restarts": -1}, {**GOOD, "restarts": True}, {**GOOD, "restarts": 1.5},
    {**GOOD, "last_exit": 256}, {**GOOD, "last_exit": "137"}, {**GOOD, "backoff_ms": 10**12},
    {**GOOD, "backoff_ms": None},
])
def test_a_status_file_that_k8slab_did_not_write_is_refused(bad):
    with pytest.raises(LabStateError, match="not one k8slab writes.*k8slab destroy"):
        supervise.status_from(bad)


def test_lab_json_back_off_is_checked_and_defaults_to_the_kubelets():
    assert supervise.backoff_from_lab({"name": "old-lab"}) == supervise.KUBELET  # made before restarts existed
    made = supervise.Backoff(250, 2000, 60_000)
    assert supervise.backoff_from_lab({"restart_backoff": made.to_json()}) == made
    for bad in ({"initial_ms": 0, "max_ms": 1, "reset_ms": 1000}, {"initial_ms": 5, "max_ms": 1, "reset_ms": 1000},
                {"initial_ms": True, "max_ms": 10, "reset_ms": 1000}, {"initial_ms": "1; reboot", "max_ms": 1,
                                                                      "reset_ms": 1000},
                {"initial_ms": 1, "max_ms": 10}, [1, 2, 3]):
        with pytest.raises(LabStateError, match="restart_backoff"):
            supervise.backoff_from_lab({"restart_backoff": bad})


def test_states_read_like_kubectl():
    waiting = supervise.Status("waiting", 1, 137, 20_000)
    assert pods.status_word(waiting, pid=42) == "CrashLoopBackOff"
    assert pods.status_word(supervise.Status("running", 1, 137, 10_000), pid=42) == "Running"
    assert pods.status_word(waiting, pid=None) == "Error"  # its PID 1, the supervisor, was killed
    assert pods.status_word(supervise.Status("exited", 0, 0, 0), pid=None) == "Completed"
    assert pods.status_word(supervise.Status("exited", 0, 3, 0), pid=None) == "Error"
    assert pods.status_word(None, pid=None) == "Unknown"
    note = pods.last_state("web", waiting, pid=42)
    assert "exit 137 (killed by SIGKILL)" in note and "restart 2 after a back-off of 20 s" in note
    assert "supervisor" in pods.last_state("web", waiting, pid=None)
