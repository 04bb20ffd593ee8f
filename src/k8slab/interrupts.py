"""Ctrl-C, SIGTERM and SIGHUP (a closed terminal) all end a command the same way: as KeyboardInterrupt, so
every `except`/`finally` that undoes half-made work runs for each of them; and cleanup that must run to its
end defers them (no_interrupts) instead of swallowing them."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_received: list[int] = []  # every interrupting signal this process got, in order (the CLI's exit status reads it)
_pending: list[int] = []   # those that arrived inside no_interrupts, delivered again when it ends
_depth = 0


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Ctrl-C would raise KeyboardInterrupt (a subclass: the same cleanup runs)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise(signum: int, _frame: object) -> None:
    _received.append(signum)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Interrupted(signum)


def _defer(signum: int, _frame: object) -> None:
    _received.append(signum)
    _pending.append(signum)


def install() -> None:
    """Make SIGTERM and SIGHUP raise like SIGINT (the CLI calls this first thing). Main thread only."""
    _received.clear()
    _pending.clear()
    for s in SIGNALS:
        signal.signal(s, _raise)


@contextmanager
def handled() -> Iterator[None]:
    """install() for the block, then the handlers that were there before (the CLI's main and tests use it).
    Only the main thread can set handlers; elsewhere the block just runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in SIGNALS}
    install()
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def received() -> int | None:
    """The first interrupting signal this process got, or None."""
    return _received[0] if _received else None


def exit_status(signum: int) -> int:
    """What a shell reports for a command ended by signum: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP."""
    return 128 + signum


@contextmanager
def no_interrupts() -> Iterator[None]:
    """Run the block to its end (removing pods or namespaces half way would leave them behind): SIGINT,
    SIGTERM and SIGHUP that arrive meanwhile are held and delivered again once the block is over, so they
    are never swallowed. Programs the block starts should run in a session of their own (start_new_session)
    so a Ctrl-C on the terminal does not reach them either. Only the main thread receives signals;
    elsewhere the block just runs."""
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, _defer) for s in SIGNALS} if _depth == 0 else {}
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            for s, handler in old.items():
                signal.signal(s, handler)
            if _pending:
                signum = _pending[0]
                _pending.clear()
                _received.remove(signum)  # counted again when delivered
                signal.raise_signal(signum)  # to whatever handler was there before: raise, die, or ignore
