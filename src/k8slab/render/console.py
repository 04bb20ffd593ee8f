"""How the CLI talks to a person: progress, headings, success and failure marks, tables that fit the
terminal. Tables and the live progress line come from rich, so long cells wrap inside their column
at whatever width the terminal has, and piped output stays plain text."""

from __future__ import annotations

import io
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from k8slab.labs.base import Progress


def _color() -> bool:
    return sys.stdout.isatty()


def mark(ok: bool) -> str:
    if not _color():
        return "✓" if ok else "✗"
    return "\033[32m✓\033[0m" if ok else "\033[31m✗\033[0m"


def styled_mark(ok: bool) -> Text:
    """mark() for a rich table cell (rich adds the color where the output is a terminal)."""
    return Text("✓", style="green") if ok else Text("✗", style="red")


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


# Piped output is not wrapped (one row per line, for grep), unless COLUMNS says how wide.
UNWRAPPED = 10_000


def width() -> int:
    """The terminal's width, COLUMNS when set, or no limit when stdout is not a terminal."""
    return shutil.get_terminal_size((UNWRAPPED, 24)).columns


def progress_printer() -> Progress:
    """A Progress that prints each step with the seconds since the command started."""
    start = time.monotonic()

    def show(line: str) -> None:
        print(f"  [{time.monotonic() - start:6.1f}s] {line}", flush=True)

    return show


@contextmanager
def activity(title: str) -> Iterator[Progress]:
    """Progress of long work. On a terminal: one live line (spinner, what runs now, elapsed time) that
    disappears when the work ends; piped: the steps as timestamped lines, so a log shows them too."""
    if not sys.stdout.isatty():
        yield progress_printer()
        return
    con = Console(highlight=False)
    with con.status(title) as status:
        start = time.monotonic()

        def show(line: str) -> None:
            status.update(Text.assemble(f"{title}: {line} ", (f"({time.monotonic() - start:.0f}s)", "dim")))

        yield show


def render(renderable: object, columns: int | None = None) -> str:
    """What rich prints for renderable, as text of the given width (colors only on a terminal)."""
    out = io.StringIO()
    tty = _color() and columns is None
    Console(file=out, width=columns or width(), force_terminal=tty, color_system="standard" if tty else None,
            highlight=False, emoji=False).print(renderable)
    return "\n".join(line.rstrip() for line in out.getvalue().rstrip("\n").splitlines())


def grid(rows: Sequence[dict[str, str | Text]], no_wrap: Sequence[str] = (), rule: bool = False) -> Table:
    """A table of rows (columns in the order of the first row's keys) whose long cells wrap in their column;
    without `rule`, a header line and rows only, as kubectl prints them."""
    tbl = Table(box=box.SIMPLE_HEAD if rule else None, show_edge=False, pad_edge=False, header_style="bold",
                expand=False)
    for col in rows[0]:
        tbl.add_column(col.upper(), overflow="fold", no_wrap=col in no_wrap)
    for r in rows:  # Text, not markup: an observed "[...]" is printed as it is
        tbl.add_row(*(cell if isinstance(cell := r.get(c, ""), Text) else Text(str(cell)) for c in rows[0]))
    return tbl


def table(rows: Sequence[dict[str, str | Text]], columns: int | None = None) -> str:
    """rows as an aligned text table that fits the terminal (or `columns`)."""
    if not rows:
        return "(nothing)"
    return render(grid(rows), columns)
