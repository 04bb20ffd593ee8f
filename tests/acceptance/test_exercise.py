"""`k8slab exercise` on the lab under test: start breaks it with a fault from the catalogue, check says
not yet, a repair through `k8slab node exec` solves it; give-up shows the answer and repairs. The lab is
repaired whatever happens, so the rest of the suite sees it whole."""

from __future__ import annotations

import pytest

from k8slab.cli import main
from k8slab.labs import notes
from k8slab.labs.registry import BACKENDS
from k8slab.teach.exercise import NOTE, choose
from k8slab.verify.faults import EASY, HARD, run_commands
from k8slab.verify.run import run_checks

pytestmark = pytest.mark.usefixtures("flannel_tutorial")


def k8slab(spec, lab, capsys, *args: str) -> tuple[int, str, str]:
    backend = ["--backend", lab.backend] if lab.backend in BACKENDS else []
    rc = main(["--spec", spec.source, "exercise", *args, *backend])
    out = capsys.readouterr()
    return rc, out.out, out.err


def seed_for(spec, fault_id: str) -> int:
    """The first seed whose easy exercise on this lab is fault_id (computed, so a change of catalogue or RNG
    cannot silently make both runs test the same fault)."""
    return next(s for s in range(1000) if choose(spec, s, EASY).fault.id == fault_id)


@pytest.fixture
def repaired(spec, lab):
    """Whatever a test leaves, every exercise the tests may start is undone and the lab's note removed."""
    yield
    seeds = {11, 12, seed_for(spec, "peer-route-deleted"), seed_for(spec, "forwarding-off")}
    for level in (EASY, HARD):
        for seed in seeds:
            ex = choose(spec, seed, level)
            run_commands(lab, ex.fault.repairs(ex.pair))
    notes.remove(lab, NOTE)


# forwarding-off: verify's own pods make the CNI plugin turn forwarding back on; the check must still see it
@pytest.mark.parametrize("fault_id", ["peer-route-deleted", "forwarding-off"])
def test_start_check_repair_by_node_exec_then_solved(spec, lab, capsys, repaired, fault_id):
    seed = seed_for(spec, fault_id)
    rc, out, err = k8slab(spec, lab, capsys, "start", "--seed", str(seed))
    assert rc == 0, err
    ex = choose(spec, seed, EASY)
    assert "one thing in the pod network is now broken" in out
    assert ex.fault.title not in out and ex.pair.dst.pod_subnet.compressed not in out  # without saying which

    rc, out, _ = k8slab(spec, lab, capsys, "check")
    assert rc == 1 and "not yet:" in out and "hint" not in out
    rc, out, _ = k8slab(spec, lab, capsys, "check", "--hint")
    assert rc == 1 and f"hint 1 of {len(ex.hints)}: {ex.hints[0]}" in out and "hint 2" not in out
    rc, out, _ = k8slab(spec, lab, capsys, "check", "--hint")
    assert f"hint 2 of {len(ex.hints)}: {ex.hints[1]}" in out

    rc, out, err = k8slab(spec, lab, capsys, "start", "--seed", str(seed + 1))
    assert rc == 2 and "already running" in err

    # The student repairs it the way the catalogue says, through the CLI's node exec.
    for command in ex.fault.repairs(ex.pair):
        assert main(["--spec", spec.source, "node", "exec", command.where, "--", *command.argv]) == 0
    rc, out, _ = k8slab(spec, lab, capsys, "check")
    assert rc == 0 and "solved" in out and ex.answer() in out
    assert notes.read(lab, NOTE, dict) is None


def test_give_up_shows_the_answer_and_repairs(spec, lab, capsys, repaired):
    rc, _, err = k8slab(spec, lab, capsys, "start", "--seed", "12", "--level", "hard")
    assert rc == 0, err
    ex = choose(spec, 12, HARD)
    assert not all(r.ok for r in run_checks(lab))
    rc, out, _ = k8slab(spec, lab, capsys, "give-up")
    assert rc == 0, out
    assert ex.answer() in out and all(c.text(lab) in out for c in ex.fault.repairs(ex.pair))
    assert all(r.ok for r in run_checks(lab))
    rc, _, err = k8slab(spec, lab, capsys, "check")
    assert rc == 2 and "no exercise is running" in err


def test_a_record_edited_by_hand_is_refused_not_acted_on(spec, lab, capsys, repaired):
    notes.write(lab, NOTE, {"fault": "peer-route-deleted", "src": "../../etc", "dst": "x", "seed": 1,
                            "level": "easy", "hints_shown": 0})
    rc, _, err = k8slab(spec, lab, capsys, "give-up")
    assert rc == 2 and "is not a record k8slab wrote" in err and "remove it" in err
    assert all(r.ok for r in run_checks(lab))
