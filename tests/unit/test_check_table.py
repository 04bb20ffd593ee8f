"""verify's terminal output: failures first, --failed, cells wrapped in their column at the terminal's
width, the likely cause of each failure, and the one-line summary."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from k8slab.render import check_table, console
from k8slab.spec.load import load_spec
from k8slab.verify.checks import CheckResult

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def results():
    spec = load_spec(ROOT / "lab.yaml")
    n1, n2 = spec.workers[0], spec.workers[1]
    long_observed = " ".join(f"{n.pod_subnet} via {n.ip} dev eth1" for n in spec.nodes) * 3
    return [
        CheckResult("interfaces", f"{n1.name} has eth1 with {n1.ip}", str(n1.ip), str(n1.ip), True, None, n1.name),
        CheckResult("routes", f"{n2.name} routes {n1.pod_subnet} via {n1.ip} on eth1",
                    f"{n1.pod_subnet} via {n1.ip} dev eth1", long_observed, False, "flannel did not run [check it]",
                    n2.name),
        CheckResult("traces", f"pod on {n2.name} -> pod on {n1.name}: 3 hops", "3 hops", "2 hops", False, None),
        CheckResult("traces", f"pod on {n1.name} -> pod on {n2.name}: 3 hops", "3 hops", "3 hops", True, None),
    ]


def test_failures_come_first_in_their_own_order(results):
    assert [r.name for r in check_table.ordered(results)] == [results[i].name for i in (1, 2, 0, 3)]
    assert check_table.ordered(results, failed_only=True) == [results[1], results[2]]


@pytest.mark.parametrize("columns", [60, 100, 160])
def test_every_line_fits_the_terminal_and_long_cells_wrap_in_their_column(results, columns):
    text = check_table.results_text(results, columns=columns)
    table = text.split("\n\n")[0].splitlines()
    assert max(len(line) for line in table) <= columns
    # the long observed value wraps onto continuation lines whose first columns stay empty
    assert len(table) > len(results) + 2
    # nothing is cut: every word of the long observed value is in the table, as often as in the value
    words = Counter(" ".join(table).split())
    assert all(words[w] >= n for w, n in Counter(results[1].observed.split()).items())


def test_failed_only_lists_failures_and_their_causes_literally(results):
    text = check_table.results_text(results, failed_only=True, columns=200)
    assert results[0].name not in text and results[3].name not in text
    assert results[1].name in text and results[2].name in text
    assert "likely cause: flannel did not run [check it]" in text  # brackets are text, not rich markup
    assert check_table.results_text([r for r in results if r.ok], failed_only=True) == "no check failed"


def test_summary_is_one_line(results):
    assert check_table.summary(results, 3.25) == "4 checks in 3.2s: 2 passed, 2 failed"
    ok = [r for r in results if r.ok]
    assert check_table.summary(ok, 1) == "2 checks in 1.0s: 2 passed, 0 failed — the lab behaves as the tutorial says"


def test_plain_table_fits_narrow_terminals():
    rows = [{"node": "node-1", "addresses": " ".join(f"10.244.{i}.0/24" for i in range(20))}]
    text = console.table(rows, columns=50)
    assert max(map(len, text.splitlines())) <= 50 and text.count("10.244.") == 20


def test_progress_of_piped_work_is_printed_line_by_line(capsys):
    with console.activity("verifying") as progress:
        progress("starting 6 pods [t-1]")
        progress("tracing")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == ["starting 6 pods [t-1]", "tracing"]
