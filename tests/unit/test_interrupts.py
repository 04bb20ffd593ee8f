"""Ctrl-C, SIGTERM and SIGHUP end a command as KeyboardInterrupt (the same cleanup runs), cleanup blocks defer
them without swallowing them, the CLI exits 128+signal without a traceback, and a closed pipe is quiet."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from k8slab import cli, interrupts
from k8slab.interrupts import no_interrupts

ROOT = Path(__file__).resolve().parents[2]
SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


@pytest.mark.parametrize("signum", SIGNALS)
def test_each_signal_raises_like_ctrl_c(interrupt_handlers, signum):
    with pytest.raises(KeyboardInterrupt) as caught:
        os.kill(os.getpid(), signum)
        for _ in range(1000):  # the handler runs at the next bytecode boundary
            pass
    assert getattr(caught.value, "signum", signal.SIGINT) == signum
    assert interrupts.received() == signum


@pytest.mark.parametrize("signum", SIGNALS)
def test_cleanup_runs_to_its_end_then_the_signal_is_delivered(interrupt_handlers, signum):
    done = []
    with pytest.raises(KeyboardInterrupt), no_interrupts():
        os.kill(os.getpid(), signum)
        with no_interrupts():  # nested blocks deliver once, at the outermost end
            done.append("inner")
        done.append("outer")
    assert done == ["inner", "outer"]
    assert interrupts.received() == signum


def test_without_the_cli_s_handlers_ctrl_c_in_cleanup_is_deferred_not_swallowed():
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    done = []
    with pytest.raises(KeyboardInterrupt), no_interrupts():
        os.kill(os.getpid(), signal.SIGINT)
        done.append("finished")
    assert done == ["finished"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _command_that(monkeypatch, body):
    monkeypatch.setattr(cli, "_run", lambda argv: body())


@pytest.mark.parametrize("signum, rc", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_the_cli_exits_128_plus_the_signal(monkeypatch, capsys, signum, rc):
    def body():
        os.kill(os.getpid(), signum)
        for _ in range(1000):
            pass
        return 0
    _command_that(monkeypatch, body)
    assert cli.main([]) == rc
    assert "Traceback" not in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is not interrupts._raise  # the handlers are put back


def test_an_interrupt_swallowed_below_is_still_not_a_success(monkeypatch):
    def body():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
        except KeyboardInterrupt:
            pass  # as a library's `except BaseException: return` might
        return 0
    _command_that(monkeypatch, body)
    assert cli.main([]) == 130


def test_an_interrupt_a_library_turned_into_another_error_is_no_traceback(monkeypatch, capsys):
    def body():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):
                pass
        except KeyboardInterrupt:
            raise RuntimeError("Event loop stopped before Future completed.") from None
        return 0
    _command_that(monkeypatch, body)
    assert cli.main([]) == 143
    assert "terminated" in capsys.readouterr().err


def test_an_error_without_a_signal_still_shows_its_traceback(monkeypatch):
    _command_that(monkeypatch, lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        cli.main([])


def test_a_closed_pipe_is_a_quiet_exit():
    """`k8slab spec | head -1`: the reader has gone away (here before the first write, so it is certain)."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([sys.executable, "-m", "k8slab", "--spec", str(ROOT / "lab.yaml"), "spec"],
                              check=False, stdout=write, stderr=subprocess.PIPE, cwd=ROOT, timeout=60)
    finally:
        os.close(write)
    assert proc.returncode == 141, proc.stderr
    assert proc.stderr == b""
