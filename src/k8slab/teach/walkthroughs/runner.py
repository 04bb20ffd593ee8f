"""Runs a walkthrough's steps on a lab and owns the pods it starts.

Ownership is written down before a pod starts (a note in the lab's state, Lab.notes_dir), so pods left
by a run that crashed, was killed or whose output pipe closed are recognised and removed by the next
run, while a pod of the same name that a student started is never touched (the run refuses instead).
Cleanup survives a closed pipe (its progress lines may have nowhere to go) and Ctrl-C.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from k8slab.errors import CommandFailedError, LabStateError
from k8slab.interrupts import no_interrupts
from k8slab.labs import notes
from k8slab.labs.base import Lab, Pod, Progress, quiet
from k8slab.teach.walkthroughs.model import (
    DEFAULT_CAPTURE_DIR,
    Roles,
    StepContext,
    StepResult,
    StepText,
    Walkthrough,
    pods_of,
)

NOTE = "walkthrough-pods"


@dataclass(frozen=True)
class Skipped:
    number: int
    title: str
    why: str


def plan(lab_spec, walk: Walkthrough, numbers: Sequence[int]) -> tuple[list[int], list[Skipped]]:
    """Which of the asked steps this lab can run, and why it cannot run the others (pure: from the spec)."""
    roles = Roles.of(lab_spec)
    run, skipped = [], []
    for n in numbers:
        step = walk.step(n)
        why = step.needs(lab_spec, roles)
        if why:
            skipped.append(Skipped(n, step.title, why))
        else:
            run.append(n)
    return run, skipped


def _quietly(progress: Progress) -> Progress:
    """progress that never raises: cleanup must go on when stdout is a closed pipe (`| head`)."""
    def show(line: str) -> None:
        try:
            progress(line)
        except (OSError, ValueError):
            pass
    return show


class Runner:
    def __init__(self, lab: Lab, walk: Walkthrough, progress: Progress = quiet, capture: bool = True,
                 capture_dir: Path = DEFAULT_CAPTURE_DIR):
        self.lab = lab
        self.capture_dir = capture_dir
        self.walk = walk
        self.roles = Roles.of(lab.spec)
        self.progress = progress
        self.capture = capture
        self.pods: dict[str, Pod] = {}
        self.owned: list[str] = []   # every pod this run is answerable for, in the order started

    # ---- ownership
    def _record(self) -> None:
        if self.owned:
            notes.write(self.lab, NOTE, self.owned)
        else:
            notes.remove(self.lab, NOTE)

    def _own(self, name: str) -> None:
        if name not in self.owned:
            self.owned.append(name)
            self._record()  # before the pod exists: a crash right after leaves a note for the next run

    def clear_leftovers(self) -> list[str]:
        """Remove pods an earlier walkthrough started and did not remove (crash, kill, --keep)."""
        left = notes.read(self.lab, NOTE, notes.pod_names) or []
        present = {p.name for p in self.lab.pods()}
        removed = []
        for name in left:
            if name in present:
                self.progress(f"removing pod {name}, left by an earlier walkthrough")
                self._delete(name)
                removed.append(name)
        notes.remove(self.lab, NOTE)
        return removed

    def check_free(self, numbers: Sequence[int]) -> None:
        """Refuse before starting anything if a pod name the steps need belongs to someone else."""
        wanted = pods_of(self.walk, numbers)
        taken = sorted(wanted & {p.name for p in self.lab.pods()})
        if taken:
            raise LabStateError(f"pod(s) {', '.join(taken)} already exist in lab {self.lab.spec.name!r} and the "
                                f"walkthrough did not start them; it uses these names as the tutorial does. Remove "
                                f"them with `{self.lab.command('pod delete NAME')}` and run again")

    # ---- pods
    def start(self, name: str, node: str) -> Pod:
        pod = self.pods.get(name)
        if pod is not None and pod.node == node:
            return pod
        if pod is not None:  # the tutorial's busybox moves from node-1 (step 3) to node-2 (step 4)
            self.progress(f"removing pod {name} from {pod.node}: the next step runs it on {node}")
            self._delete(name)
            del self.pods[name]
        self.progress(f"starting pod {name} on {node}")
        self._own(name)
        self.pods[name] = self.lab.pod_start(name, node)
        return self.pods[name]

    def _delete(self, name: str) -> None:
        if self.lab.has_kubernetes:
            self.lab.kubectl("delete", "pod", name, "--now", "--ignore-not-found", timeout=120)
        else:
            self.lab.pod_delete(name)

    def cleanup(self) -> None:
        say = _quietly(self.progress)
        errors = []
        for name in reversed(list(self.owned)):
            try:
                say(f"removing pod {name}")
                if name in {p.name for p in self.lab.pods()}:
                    self._delete(name)
                self.owned.remove(name)
                self._record()
            except Exception as exc:  # noqa: BLE001 - keep removing the others, report at the end
                errors.append(f"{name}: {exc}")
        self.pods.clear()
        if errors:
            raise CommandFailedError("could not remove every walkthrough pod: " + "; ".join(errors) +
                                     f"; the next walkthrough removes them, or `{self.lab.command('pod delete NAME')}`")

    def kept(self) -> list[str]:
        """--keep: the pods stay for exploring; the note stays too, so the next walkthrough removes them."""
        names = list(self.owned)
        self.pods.clear()
        return names

    # ---- steps
    def text(self, number: int) -> StepText:
        return self.walk.step(number).text(self.lab.spec, self.roles, self.pods)

    def run(self, number: int) -> StepResult:
        step = self.walk.step(number)
        for part in step.pods:
            self.start(part.name, self.roles.node(part.on).name)
        ctx = StepContext(self.lab, self.roles, dict(self.pods), self.progress, self.capture, self.start, self._own,
                          self.capture_dir)
        return step.run(ctx, self.text(number))


def run_walkthrough(lab: Lab, walk: Walkthrough, numbers: Sequence[int], show: Callable[[StepResult], None],
                    pause: Callable[[int], None] | None = None, progress: Progress = quiet, capture: bool = True,
                    keep: bool = False, capture_dir: Path = DEFAULT_CAPTURE_DIR,
                    ) -> tuple[list[StepResult], list[str]]:
    """Run the steps in order, show each, pause between them. The pods are removed whatever happens
    (a closed pipe, Ctrl-C, a failure), unless keep: then they stay and their names are returned."""
    runner = Runner(lab, walk, progress, capture, capture_dir)
    runner.clear_leftovers()
    runner.check_free(numbers)
    results: list[StepResult] = []
    kept: list[str] = []
    try:
        for i, n in enumerate(numbers):
            results.append(runner.run(n))
            show(results[-1])
            if pause and i + 1 < len(numbers):
                pause(numbers[i + 1])
    finally:
        if keep:
            kept = runner.kept()
        else:
            with no_interrupts():
                runner.cleanup()
    return results, kept
