"""Files a command writes at the end of its work (JUnit XML, HTML report, diagram): their paths are
checked before the work starts, so a typo costs no lab run, and a write that still fails is an error
the user can act on, not a traceback."""

from __future__ import annotations

import os
from pathlib import Path

from k8slab.errors import OutputPathError


def path_problem(path: Path) -> str | None:
    """Why path cannot be written, or None. Missing parent directories are fine: they are made on write."""
    if path.is_dir():
        return "it is a directory"
    ancestor = path.parent
    while not ancestor.exists():
        if ancestor == ancestor.parent:
            break
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is not a directory"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{ancestor} is not writable"
    if path.exists() and not os.access(path, os.W_OK):
        return "the file exists and is not writable"
    return None


def check_output(path: str | Path, what: str) -> Path:
    """The path, or OutputPathError naming what was to be written there and how to fix it."""
    path = Path(path)
    problem = path_problem(path)
    if problem:
        raise OutputPathError(f"cannot write the {what} to {str(path)!r}: {problem}; pick another path")
    return path


def write_output(path: str | Path, data: str | bytes, what: str) -> Path:
    """Write data to path (making missing parent directories); OutputPathError if the system refuses."""
    path = check_output(path, what)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
    except OSError as exc:
        raise OutputPathError(f"cannot write the {what} to {str(path)!r}: {exc.strerror or exc}; "
                              "pick another path") from None
    return path
