"""The emulated lab's files under /run/k8slab/<lab>/: a lock, lab.json, one JSON record per pod."""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from k8slab.errors import LabStateError


@contextmanager
def locked(path: Path, what: str, timeout: float = 120) -> Iterator[None]:
    """Hold the lab's lock. destroy deletes the lock file while holding it, so a waiter re-checks
    that the file it locked is still the one at path, and starts again if not."""
    deadline = time.monotonic() + timeout
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise LabStateError(f"another k8slab command is still changing {what} "
                                        f"(lock {path} held for over {timeout:.0f} s)") from None
                time.sleep(0.05)
        held = os.fstat(fd)
        try:
            now = os.stat(path)
            if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield
    finally:
        os.close(fd)


def write_json(path: Path, data: Any) -> None:
    """Atomic: a reader sees the old file or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


@dataclass(frozen=True)
class PodRecord:
    name: str
    node: str
    ip: str
    netns: str
    uts: str
    container_id: str
    cni_config: dict[str, Any]
    # [{name, image, command}] as asked for; a record of an older k8slab has none (a pod without processes)
    containers: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PodRecord:
        return cls(**data)
