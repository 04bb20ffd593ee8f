"""Small JSON records about one lab, kept where the lab says (Lab.notes_dir): which pods a walkthrough
started, which exercise a class is solving. A record is data only: read back through a validator that
rebuilds the value it stands for, so a record edited by hand is refused, never trusted."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from k8slab.errors import LabStateError
from k8slab.labs.netns import state as private_files
from k8slab.spec.facts import DNS_LABEL

if TYPE_CHECKING:
    from pathlib import Path

    from k8slab.labs.base import Lab

T = TypeVar("T")
_NAME = re.compile(r"[a-z][a-z0-9-]{0,39}")


def _path(lab: Lab, name: str) -> Path:
    if not _NAME.fullmatch(name):
        raise ValueError(f"bad note name {name!r}")
    return lab.notes_dir() / f"{name}.json"


def read(lab: Lab, name: str, validate: Callable[[Any], T]) -> T | None:
    """The record `name` as validate rebuilds it, None if there is none; LabStateError if it is not one of ours."""
    path = _path(lab, name)
    try:
        text = private_files.read_bytes(path.parent, path)  # ours, 0600, no symlink: else refused, never read
    except FileNotFoundError:
        return None
    try:
        return validate(json.loads(text))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise LabStateError(f"{path} is not a record k8slab wrote ({exc}); remove it and run the command again") \
            from None


def write(lab: Lab, name: str, data: Any) -> None:
    """Atomic: a reader (or a crash) sees the old record or the new one, never half of it."""
    path = _path(lab, name)
    path.parent.parent.mkdir(parents=True, exist_ok=True)
    # the notes directory 0700, the file 0600 through a fresh O_EXCL|O_NOFOLLOW temp file and rename
    private_files.write_bytes(path.parent, path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def remove(lab: Lab, name: str) -> None:
    _path(lab, name).unlink(missing_ok=True)


def pod_names(data: Any) -> list[str]:
    """A validator for a list of pod names (DNS labels, as Kubernetes requires)."""
    if not isinstance(data, list) or not all(isinstance(n, str) and DNS_LABEL.fullmatch(n) for n in data):
        raise ValueError("expected a list of pod names")
    return list(data)
