"""What a walkthrough is, as data: steps, each with the tutorial's commands and this lab's equivalent, the
pods it needs, what it needs of the lab (a smaller lab skips a step and says why), and how it runs.

A step's `run` gets a StepContext (the lab, the pods started for it, progress) and returns a StepResult;
the runner (runner.py) owns the pods and the order, render/walkthrough_text.py the way a step reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from k8slab.spec.model import LabSpec, Node

if TYPE_CHECKING:
    from k8slab.labs.base import Lab, Pod, Progress

# Where a walkthrough saves the captures it offers (`--capture-dir`): beside the student, in one folder of
# its own, so a run leaves its pcaps together and never scatters them through the current directory.
DEFAULT_CAPTURE_DIR = Path("k8slab-captures")


@dataclass(frozen=True)
class Roles:
    """Which nodes play the tutorial's parts in this lab (node-1 and node-2 in the tutorial's); a lab with
    fewer workers leaves a part empty and the steps that need it are skipped."""

    control_plane: Node
    dst_worker: Node | None      # node-1: runs httpd
    src_worker: Node | None      # node-2: runs the busybox that traces across nodes

    @staticmethod
    def of(spec: LabSpec) -> Roles:
        workers = list(spec.workers)
        return Roles(spec.control_plane, workers[0] if workers else None, workers[1] if len(workers) > 1 else None)

    def node(self, part: str) -> Node:
        node = getattr(self, part)
        if node is None:
            raise ValueError(f"this lab has no node for the part {part!r}")
        return node


def needs_workers(n: int, two: str = "two workers (a pod on each)"):
    """A step's `needs` for n workers (1 or 2): None where the lab has them, else why not and how to get them."""
    def need(spec: LabSpec, roles: Roles) -> str | None:
        have = len(spec.workers)
        if have >= n:
            return None
        return (f"it needs {two if n == 2 else 'a worker'} and lab {spec.name!r} has {have}; add a worker to "
                f"{spec.source} and recreate the lab to run it")
    return need


@dataclass(frozen=True)
class PodPart:
    """A pod a step needs: its name (the tutorial's), the part of the node it runs on, its image."""

    name: str
    on: str               # a Roles field: "dst_worker" or "src_worker"
    image: str
    command: str = ""     # what the tutorial runs in it (busybox: sleep 3600)


@dataclass(frozen=True)
class StepText:
    number: int
    title: str
    demonstrates: str
    tutorial: tuple[str, ...]     # as the tutorial writes it, with this lab's names and addresses
    emulated: tuple[str, ...]     # the emulated lab's equivalent
    expected: str                 # what the tutorial says must be seen


@dataclass(frozen=True)
class Check:
    ok: bool
    text: str


@dataclass
class StepResult:
    text: StepText
    ran: list[str]                      # the commands actually run, as shown
    output: str                         # their real output
    checks: list[Check]
    explanation: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)


@dataclass
class StepContext:
    """What a step's run gets from the runner: the lab, the pods started for it, and a way to start (or
    adopt, when kubectl started it) one more pod that the runner then owns and removes."""

    lab: Lab
    roles: Roles
    pods: Mapping[str, Pod]
    progress: Progress
    capture: bool
    start: Callable[[str, str], Pod]      # (pod, node) -> the running pod
    adopt: Callable[[str], None]          # a pod started another way (kubectl run) that the runner removes
    capture_dir: Path = DEFAULT_CAPTURE_DIR   # where a step saves the pcap it offers

    @property
    def spec(self) -> LabSpec:
        return self.lab.spec


@dataclass(frozen=True)
class Step:
    title: str
    text: Callable[[LabSpec, Roles, Mapping[str, Pod]], StepText]   # pods: their addresses once they run
    run: Callable[[StepContext, StepText], StepResult]
    pods: tuple[PodPart, ...] = ()         # started by the runner before the step runs
    starts: tuple[str, ...] = ()           # pods the step starts itself (kubectl run nginx)
    needs: Callable[[LabSpec, Roles], str | None] = lambda spec, roles: None   # why this lab cannot run it


@dataclass(frozen=True)
class Walkthrough:
    name: str
    about: str
    steps: tuple[Step, ...]
    plugins: tuple[str, ...] = ()   # the CNI plugins whose labs it follows (its texts say cni0, or cali…); () any

    def fits(self, spec: LabSpec) -> bool:
        return not self.plugins or spec.cni_plugin in self.plugins

    @property
    def numbers(self) -> tuple[int, ...]:
        return tuple(range(1, len(self.steps) + 1))

    def step(self, number: int) -> Step:
        return self.steps[number - 1]


def pods_of(walk: Walkthrough, numbers: Sequence[int]) -> set[str]:
    """Every pod name the steps use: the runner refuses to start if someone else's pod has one of them."""
    steps = [walk.step(n) for n in numbers]
    return {p.name for s in steps for p in s.pods} | {name for s in steps for name in s.starts}
