"""Rules for the whole suite. In CI (CI=true) a skipped test is a failure: CI must prove
everything it can, and a skip there means something it relies on went missing."""

from __future__ import annotations

import os

import pytest

# The lab's options and fixtures (--spec, --lab-backend, lab, spec...) come from k8slab's pytest plugin,
# which the installed package registers (pyproject.toml, pytest11); naming it here keeps the suite working
# with PYTEST_DISABLE_PLUGIN_AUTOLOAD, and under the entry point's own name it is registered once.
pytest_plugins = ["k8slab.pytest_plugin"]

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


@pytest.fixture
def interrupt_handlers():
    """The CLI's signal handlers for the test: SIGTERM and SIGHUP raise like Ctrl-C (without them SIGTERM would
    end pytest itself); the handlers before are put back after."""
    from k8slab import interrupts

    with interrupts.handled():
        yield
