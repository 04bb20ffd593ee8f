"""The walkthrough runner's ownership of its pods, on a lab that only keeps a list of pods (no root):
removed after a run and after a closed pipe, kept with keep, taken back by the next run, a student's pod
of the same name refused and never touched, busybox moved from node-1 to node-2 between steps 3 and 4."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from k8slab.errors import LabStateError
from k8slab.labs import notes
from k8slab.labs.base import Lab, Pod, Result
from k8slab.spec.load import load_spec
from k8slab.teach.walkthroughs.model import Check, Step, StepResult, Walkthrough
from k8slab.teach.walkthroughs.runner import NOTE, run_walkthrough
from k8slab.teach.walkthroughs.tutorial import BUSYBOX, HTTPD, TUTORIAL

ROOT = Path(__file__).resolve().parents[2]


class PodListLab(Lab):
    """Pods as a list; every step's own commands are replaced below, so nothing else is ever run."""

    backend = "netns"

    def __init__(self, spec, notes_dir: Path):
        super().__init__(spec)
        self._pods: dict[str, Pod] = {}
        self._notes = notes_dir
        self.deleted: list[str] = []

    @classmethod
    def unavailable_reason(cls):
        return None

    def notes_dir(self) -> Path:
        return self._notes

    def is_up(self):
        return True

    def up(self, progress=None):
        raise AssertionError("not used")

    def destroy(self, progress=None):
        raise AssertionError("not used")

    def plan(self):
        return ""

    def node_run(self, node: str, argv: Sequence[str], timeout: float = 30) -> Result:
        raise AssertionError("not used")

    def testinfra_host(self, node: str):
        raise AssertionError("not used")

    def pod_start(self, name: str, node: str, containers=()) -> Pod:
        if name in self._pods:
            raise LabStateError(f"pod {name} exists")
        n = self.spec.node(node)
        self._pods[name] = Pod(name, node, n.pod_subnet.network_address + 2 + len(self._pods))
        return self._pods[name]

    def pod_delete(self, name: str) -> None:
        del self._pods[name]
        self.deleted.append(name)

    def pods(self) -> list[Pod]:
        return list(self._pods.values())

    def pod_run(self, name, argv, timeout=30, container=None) -> Result:
        raise AssertionError("not used")


def stepped(walk: Walkthrough) -> Walkthrough:
    """The tutorial's steps and pods, each step's run replaced by one that records where its pods are."""
    def run(ctx, text):
        return StepResult(text, [], " ".join(f"{n}@{p.node}" for n, p in sorted(ctx.pods.items())),
                          [Check(True, "ran")])
    return Walkthrough(walk.name, walk.about, tuple(Step(s.title, s.text, run, s.pods, s.starts, s.needs)
                                                    for s in walk.steps))


@pytest.fixture
def lab(tmp_path):
    return PodListLab(load_spec(ROOT / "lab.yaml"), tmp_path / "notes")


WALK = stepped(TUTORIAL)


def test_pods_are_removed_after_the_run_and_busybox_moves_between_steps(lab):
    results, kept = run_walkthrough(lab, WALK, [3, 4], show=lambda r: None)
    n1, n2 = lab.spec.workers[0].name, lab.spec.workers[1].name
    assert [r.output for r in results] == [f"{BUSYBOX}@{n1} {HTTPD}@{n1}", f"{BUSYBOX}@{n2} {HTTPD}@{n1}"]
    assert kept == [] and lab.pods() == [] and notes.read(lab, NOTE, notes.pod_names) is None


def test_a_closed_pipe_still_removes_every_pod(lab):
    def show(result):
        raise BrokenPipeError(32, "Broken pipe")

    def progress(line):
        if line.startswith("removing"):
            raise BrokenPipeError(32, "Broken pipe")  # the cleanup's own lines have nowhere to go either

    with pytest.raises(BrokenPipeError):
        run_walkthrough(lab, WALK, [4], show=show, progress=progress)
    assert lab.pods() == [] and sorted(lab.deleted) == [BUSYBOX, HTTPD]
    assert notes.read(lab, NOTE, notes.pod_names) is None


def test_keep_leaves_the_pods_and_the_next_run_takes_them_back(lab):
    _, kept = run_walkthrough(lab, WALK, [4], show=lambda r: None, keep=True)
    assert kept == [HTTPD, BUSYBOX] and {p.name for p in lab.pods()} == {HTTPD, BUSYBOX}
    assert notes.read(lab, NOTE, notes.pod_names) == [HTTPD, BUSYBOX]
    lines: list[str] = []
    run_walkthrough(lab, WALK, [3], show=lambda r: None, progress=lines.append)
    assert f"removing pod {BUSYBOX}, left by an earlier walkthrough" in lines
    assert lab.pods() == []


def test_a_students_pod_of_the_same_name_is_refused_and_kept(lab):
    student = lab.pod_start(HTTPD, lab.spec.workers[1].name)
    with pytest.raises(LabStateError, match=f"pod\\(s\\) {HTTPD} already exist .* did not start them"):
        run_walkthrough(lab, WALK, [3], show=lambda r: None)
    assert lab.pods() == [student] and lab.deleted == []


def test_a_hand_edited_note_is_refused(lab):
    notes.write(lab, NOTE, [HTTPD])
    (lab.notes_dir() / f"{NOTE}.json").write_text('["../../etc/passwd"]')
    with pytest.raises(LabStateError, match="is not a record k8slab wrote"):
        run_walkthrough(lab, WALK, [3], show=lambda r: None)
