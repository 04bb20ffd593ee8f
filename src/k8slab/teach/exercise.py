"""A class exercise: the lab broken with one fault from the catalogue (verify/faults.py), chosen by a
seed so a class gets reproducible and different exercises; graded hints; the answer on giving up.

The exercise lives in the lab's notes as data (fault id, the two nodes, seed, level, hints shown),
rebuilt and validated on read: a record naming an unknown fault, a node the lab does not have or a
level that does not exist is refused, never acted on. What to repair is recomputed from it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from k8slab.spec.model import LabSpec
from k8slab.verify.faults import BY_ID, FAULTS, LEVELS, Fault, Pair, applies

NOTE = "exercise"


@dataclass(frozen=True)
class Exercise:
    fault: Fault
    pair: Pair
    seed: int
    level: str
    hints_shown: int = 0

    def record(self) -> dict[str, Any]:
        return {"fault": self.fault.id, "src": self.pair.src.name, "dst": self.pair.dst.name, "seed": self.seed,
                "level": self.level, "hints_shown": self.hints_shown}

    @property
    def hints(self) -> tuple[str, ...]:
        return self.fault.hints(self.pair)

    def answer(self) -> str:
        return self.fault.answer(self.pair)


def candidates(spec: LabSpec, level: str) -> list[tuple[Fault, str, str]]:
    """Every exercise a level offers on this lab: a fault that an exercise check cannot undo, on an
    ordered pair of nodes (a fault that needs a third node only where there is one)."""
    faults = [f for f in FAULTS if f.exercise and f.level == level and applies(f, spec)]
    return [(f, a.name, b.name) for f in faults for a in spec.nodes for b in spec.nodes if a.name != b.name]


def choose(spec: LabSpec, seed: int, level: str) -> Exercise:
    """The exercise for seed: the same on every run, and spread over the faults and pairs of nodes."""
    options = candidates(spec, level)
    if not options:
        raise ValueError(f"level {level!r} has no exercise for a {spec.dataplane} lab of {len(spec.nodes)} nodes")
    fault, src, dst = random.Random(f"k8slab-exercise:{level}:{seed}").choice(options)
    return Exercise(fault, Pair(spec, spec.node(src), spec.node(dst)), seed, level)


def from_record(spec: LabSpec):
    """A validator for notes.read: the record back as an Exercise of this lab, or ValueError."""
    def build(data: Any) -> Exercise:
        if not isinstance(data, dict) or set(data) != {"fault", "src", "dst", "seed", "level", "hints_shown"}:
            raise ValueError("not an exercise record")
        fault = BY_ID.get(data["fault"]) if isinstance(data["fault"], str) else None
        if fault is None or not fault.exercise:
            raise ValueError(f"unknown exercise fault {data['fault']!r}")
        names = {n.name for n in spec.nodes}
        if data["src"] not in names or data["dst"] not in names or data["src"] == data["dst"]:
            raise ValueError(f"nodes {data['src']!r}, {data['dst']!r} are not two nodes of lab {spec.name!r}")
        if data["level"] not in LEVELS or data["level"] != fault.level:
            raise ValueError(f"level {data['level']!r} does not fit fault {fault.id!r}")
        for key in ("seed", "hints_shown"):
            if not isinstance(data[key], int) or isinstance(data[key], bool) or data[key] < 0:
                raise ValueError(f"{key} must be a whole number")
        pair = Pair(spec, spec.node(data["src"]), spec.node(data["dst"]))
        return Exercise(fault, pair, data["seed"], data["level"], min(data["hints_shown"], len(fault.hints(pair))))
    return build
