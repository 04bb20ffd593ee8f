"""Files a command writes at the end of its work (JUnit XML, HTML report, diagram): their paths are
checked before the work starts, so a typo costs no lab run, and a write that still fails is an error
the user can act on, not a traceback."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

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


@contextmanager
def output_file(path: str | Path, what: str) -> Iterator[BinaryIO]:
    """A file to write what ends up at path. It is a fresh temp file in path's directory (O_EXCL|O_NOFOLLOW,
    a random name), renamed onto path once the block ends well and removed if not: a symlink planted at path
    (or at a guessable temp name) is replaced, never followed, and no reader sees half a file."""
    path = check_output(path, what)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _refused(path, what, exc) from None
    try:
        with os.fdopen(fd, "w+b") as f:  # readable too, so a caller can check what it wrote before it counts
            yield f
        os.chmod(tmp, 0o666 & ~_umask())  # what a plain open() would have given; mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException as exc:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _refused(path, what, exc) from None
        raise


def write_output(path: str | Path, data: str | bytes, what: str) -> Path:
    """Write data to path (making missing parent directories) through output_file; OutputPathError if the
    system refuses."""
    with output_file(path, what) as f:
        f.write(data.encode() if isinstance(data, str) else data)
    return Path(path)


def _refused(path: Path, what: str, exc: OSError) -> OutputPathError:
    return OutputPathError(f"cannot write the {what} to {str(path)!r}: {exc.strerror or exc}; pick another path")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
