"""How a walkthrough reads: each step (the tutorial's commands beside this lab's, what ran, its real
output, the verdict and why), the steps a smaller lab skips, and a closing line that claims no more
than what ran."""

from __future__ import annotations

from collections.abc import Sequence

from k8slab.render import console
from k8slab.teach.walkthroughs.model import StepResult, Walkthrough
from k8slab.teach.walkthroughs.runner import Skipped


def _ranges(numbers: Sequence[int]) -> str:
    return ", ".join(map(str, numbers))


def format_step(result: StepResult, backend: str, total: int, columns: int = 120) -> list[str]:
    t = result.text
    lines = [f"━━ step {t.number} of {total}: {t.title} ━━", f"what it shows: {t.demonstrates}", "commands:"]
    pairs = [(t.tutorial[i] if i < len(t.tutorial) else "", t.emulated[i] if i < len(t.emulated) else "")
             for i in range(max(len(t.tutorial), len(t.emulated)))]
    # Side by side, each long command wrapped inside its own column at the terminal's width.
    table = console.grid([{"tutorial (VirtualBox lab)": left, "emulated lab": right} for left, right in pairs])
    lines += [f"  {line}" for line in console.render(table, max(columns - 2, 40)).splitlines()]
    lab_kind = "emulated lab" if backend == "netns" else f"{backend} lab"
    lines.append(f"ran on this {lab_kind}:")
    lines += [f"  $ {c}" for c in result.ran]
    lines.append("output:")
    lines += [f"  | {line}" for line in result.output.splitlines()] or ["  | (nothing)"]
    lines.append(f"the tutorial says: {t.expected}")
    lines += [f"  {'✓' if c.ok else '✗'} {c.text}" for c in result.checks]
    if result.explanation:
        lines.append("why:")
        lines += [f"  {line}" for line in result.explanation]
    lines.append(f"{'✓' if result.ok else '✗'} step {t.number}: "
                 f"{'matches the tutorial' if result.ok else 'does NOT match the tutorial'}")
    return lines


def format_skipped(skipped: Sequence[Skipped], total: int) -> list[str]:
    return [f"-- step {s.number} of {total} ({s.title}) is skipped: {s.why}" for s in skipped]


def summary(walk: Walkthrough, results: Sequence[StepResult], skipped: Sequence[Skipped]) -> tuple[bool, str]:
    """(ok, the closing line). 'every step' only when every step of the walkthrough ran and matched."""
    failed = [r.text.number for r in results if not r.ok]
    passed = [r.text.number for r in results if r.ok]
    total = len(walk.steps)
    gaps = f"; skipped: step(s) {_ranges([s.number for s in skipped])} (see above)" if skipped else ""
    if failed:
        return False, (f"step(s) {_ranges(failed)} do not match the tutorial"
                       + (f"; step(s) {_ranges(passed)} do" if passed else "") + gaps)
    if not results:
        return False, f"no step of the {walk.name} walkthrough could run on this lab{gaps}"
    if len(results) == total:
        return True, "every step matches the tutorial"
    return True, (f"step(s) {_ranges(passed)} match the tutorial ({len(results)} of {total} steps ran{gaps}; "
                  "the others were not checked)")
