"""How the CLI talks to a person: progress lines, headings, success and failure marks."""

from __future__ import annotations

import sys
import time

from k8slab.labs.base import Progress


def _color() -> bool:
    return sys.stdout.isatty()


def mark(ok: bool) -> str:
    if not _color():
        return "✓" if ok else "✗"
    return "\033[32m✓\033[0m" if ok else "\033[31m✗\033[0m"


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def progress_printer() -> Progress:
    """A Progress that prints each step with the seconds since the command started."""
    start = time.monotonic()

    def show(line: str) -> None:
        print(f"  [{time.monotonic() - start:6.1f}s] {line}", flush=True)

    return show


def table(rows: list[dict[str, str]]) -> str:
    """A plain aligned text table; columns in the order of the first row's keys."""
    if not rows:
        return "(nothing)"
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in cols)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(line.rstrip() for line in lines)
