"""verify's results for a terminal: failures first (or only them), one row per check whose long cells
wrap in their column, the likely cause of each failure, and a one-line summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from k8slab.render import console

if TYPE_CHECKING:
    from k8slab.verify.checks import CheckResult


def ordered(results: Sequence[CheckResult], failed_only: bool = False) -> list[CheckResult]:
    """Failures first, each part in verify's own order (node by node); only the failures if asked."""
    failed = [r for r in results if not r.ok]
    return failed if failed_only else failed + [r for r in results if r.ok]


def summary(results: Sequence[CheckResult], elapsed: float) -> str:
    failed = sum(not r.ok for r in results)
    line = f"{len(results)} checks in {elapsed:.1f}s: {len(results) - failed} passed, {failed} failed"
    return line + (" — the lab behaves as the tutorial says" if not failed and results else "")


def rows(results: Sequence[CheckResult]) -> list[dict]:
    return [{"": console.styled_mark(r.ok), "check": r.name, "expected": r.expected, "observed": r.observed}
            for r in results]


def results_text(results: Sequence[CheckResult], failed_only: bool = False, columns: int | None = None) -> str:
    """The table, then each failure's likely cause; `failed_only` with nothing failed says so."""
    shown = ordered(results, failed_only)
    if not shown:
        return "no check failed" if results else "no checks were run"
    tbl = console.grid(rows(shown), no_wrap=("",), rule=True)
    text = console.render(tbl, columns)
    causes = [f"{console.mark(False)} {r.name}\n    likely cause: {r.cause}" for r in shown if not r.ok and r.cause]
    return text + ("\n\n" + "\n".join(causes) if causes else "")
