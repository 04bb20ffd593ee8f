"""A Lab for unit tests that replays recorded node and pod command output (tests/unit/data/fakelab-*.json,
written by tests/unit/record_fakelab.py on a real emulated lab), so observe, run_checks and the trace engine
run in milliseconds without root. Pods live in memory and get their node's pod-subnet addresses in order,
as host-local hands them out; a command the recording lacks fails the test naming it."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from k8slab.labs.base import Container, Lab, Pod, Progress, Result, quiet
from k8slab.spec.model import LabSpec

DATA = Path(__file__).resolve().parent / "data"
TOKEN = "f0f0"  # the pods' per-run token (verify/pods.py) while recording and replaying, so names match


def where_pod(name: str) -> str:
    return f"pod:{name}"


@dataclass(frozen=True)
class Call:
    kind: str             # "node_run", "pod_run", "pod_start", "pod_delete"
    where: str            # a node name, or pod:NAME
    argv: tuple[str, ...] = ()


Recording = dict[tuple[str, tuple[str, ...]], Result]


def load_recording(path: Path) -> tuple[Recording, list[Pod], list[IPv4Address]]:
    """(where, argv) -> Result, the pods the lab listed before the run, and every pod address already held
    then (the lab's own pods too, such as the cluster DNS one it does not list)."""
    data = json.loads(path.read_text())
    runs = {(r["where"], tuple(r["argv"])): Result(tuple(r["argv"]), r["rc"], r["stdout"], r["stderr"])
            for r in data["runs"]}
    return (runs, [Pod(p["name"], p["node"], IPv4Address(p["ip"])) for p in data["pods"]],
            [IPv4Address(a) for a in data["held"]])


def dump_recording(path: Path, runs: Mapping[tuple[str, tuple[str, ...]], Result], pods: Sequence[Pod],
                   held: Sequence[IPv4Address]) -> None:
    rows = [{"where": w, "argv": list(a), "rc": r.rc, "stdout": r.stdout, "stderr": r.stderr}
            for (w, a), r in sorted(runs.items())]
    path.write_text(json.dumps({"pods": [{"name": p.name, "node": p.node, "ip": str(p.ip)} for p in pods],
                                "held": sorted(str(a) for a in held), "runs": rows}, indent=1) + "\n")


class FakeLab(Lab):
    backend = "netns"  # replays an emulated lab: its advice and hints are that backend's
    learns_node_neighbours = True  # a tutorial-sized one, whose nodes learn each other by ARP: paced as recorded

    def __init__(self, spec: LabSpec, runs: Recording, pods: Sequence[Pod] = (), held: Sequence[IPv4Address] = (),
                 notes: Path | None = None):
        super().__init__(spec)
        self._notes = notes  # where the walkthrough keeps its note (a test's tmp_path), never the user's own
        self.held = {*held, *(p.ip for p in pods)}
        self.runs = dict(runs)
        self._pods: dict[str, Pod] = {p.name: p for p in pods}
        self.calls: list[Call] = []
        self._lock = threading.Lock()  # observe and the traces call from several threads

    @classmethod
    def replaying(cls, spec: LabSpec, path: Path, notes: Path | None = None) -> FakeLab:
        return cls(spec, *load_recording(path), notes=notes)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None

    def is_up(self) -> bool:
        return True

    def up(self, progress: Progress = quiet) -> None:
        raise AssertionError("a FakeLab replays a lab that is up; it builds nothing")

    def destroy(self, progress: Progress = quiet) -> None:
        raise AssertionError("a FakeLab replays a lab that is up; it removes nothing")

    def plan(self) -> str:
        return "a recording, replayed"

    def testinfra_host(self, node: str):
        raise AssertionError("a FakeLab has no testinfra host; observe through node_run")

    def notes_dir(self) -> Path:
        if self._notes is None:
            raise AssertionError("give the FakeLab a notes directory (tmp_path) for a run that keeps notes")
        return self._notes

    def _replay(self, kind: str, where: str, argv: Sequence[str]) -> Result:
        key = (where, tuple(argv))
        with self._lock:
            self.calls.append(Call(kind, where, key[1]))
        if key not in self.runs:
            raise AssertionError(f"the recording has no output for {' '.join(argv)!r} on {where}")
        return self.runs[key]

    def node_run(self, node: str, argv: Sequence[str], timeout: float = 30) -> Result:
        self.spec.node(node)
        return self._replay("node_run", node, argv)

    def pod_run(self, name: str, argv: Sequence[str], timeout: float = 30, container: str | None = None) -> Result:
        if name not in self._pods:
            raise AssertionError(f"pod_run in pod {name!r}, which is not running")
        return self._replay("pod_run", where_pod(name), argv)

    def pod_start(self, name: str, node: str, containers: Sequence[Container] = ()) -> Pod:
        with self._lock:
            if name in self._pods:
                raise AssertionError(f"pod {name!r} started twice")
            taken = self.held | {p.ip for p in self._pods.values()}
            subnet = self.spec.node(node).pod_subnet
            gateway = subnet.network_address + 1  # host-local: .1 is the bridge's, the rest in order
            ip = next(a for a in subnet.hosts() if a != gateway and a not in taken)
            pod = self._pods[name] = Pod(name, node, ip)
            self.calls.append(Call("pod_start", where_pod(name)))
        return pod

    def pod_delete(self, name: str) -> None:
        with self._lock:
            self._pods.pop(name)
            self.calls.append(Call("pod_delete", where_pod(name)))

    def pods(self) -> list[Pod]:
        with self._lock:
            return list(self._pods.values())
