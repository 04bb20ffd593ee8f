"""Cleanup that must run to its end even when Ctrl-C is pressed during it."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def no_interrupts() -> Iterator[None]:
    """Ignore SIGINT for the block: removing pods or namespaces half way would leave them behind.
    Ignored rather than deferred, so the programs the block starts (CNI plugins, nsenter) inherit it
    and a Ctrl-C on the terminal, which reaches them too, does not kill them either. Only the main
    thread can change signal handling; elsewhere the block just runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
