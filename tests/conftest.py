"""Rules for the whole suite. In CI (CI=true) a skipped test is a failure: CI must prove
everything it can, and a skip there means something it relies on went missing."""

from __future__ import annotations

import os

import pytest

# Options of the acceptance suite (--lab-backend, --lab-inventory, --spec) must be known before pytest
# parses the command line, which tests/acceptance/conftest.py is too late for under `pytest tests/`.
pytest_plugins = ["acceptance.lab_selection"]

_skipped: list[str] = []


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if in_ci() and _skipped and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if in_ci() and _skipped:
        terminalreporter.write_line(f"CI=true: {len(_skipped)} skipped test(s) count as failures here:", red=True)
        for nodeid in _skipped:
            terminalreporter.write_line(f"  {nodeid}", red=True)
