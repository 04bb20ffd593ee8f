"""Ctrl-C, SIGTERM or SIGHUP while verify or the walkthrough removes its pods: the removal finishes, no pod
is left half made (its record without its veth, which then fails the next verify), and the signal is then
delivered, not swallowed. Real lab, real CNI.

The interrupt is sent by the test itself at the moment the first pod is being removed, so it lands
in the cleanup every time rather than by luck of timing."""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import Iterator

import pytest

from k8slab.labs.netns import NetnsLab, dns
from k8slab.teach.walkthroughs.runner import run_walkthrough
from k8slab.teach.walkthroughs.tutorial import TUTORIAL
from k8slab.verify.run import run_checks

from .labtools import default_spec, leftovers


@pytest.fixture
def lab() -> Iterator[NetnsLab]:
    lab = NetnsLab(default_spec(f"r2-int{secrets.token_hex(3)}"))
    lab.up()
    try:
        yield lab
    finally:
        lab.destroy()
        assert leftovers(lab.spec.name) == []


SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


def interrupt_at_first_removal(seen: list[str], signum: int):
    """A Progress that sends signum to this process when the first pod removal starts."""
    def progress(line: str) -> None:
        seen.append(line)
        if line.startswith("removing pod") and sum(s.startswith("removing pod") for s in seen) == 1:
            os.kill(os.getpid(), signum)

    return progress


def interrupted_after_cleanup(call, signum: int) -> None:
    """call() must end by the signal (never swallowed), but only once its cleanup is over."""
    with pytest.raises(KeyboardInterrupt) as caught:
        call()
    assert getattr(caught.value, "signum", signal.SIGINT) == signum


def pod_namespaces(lab: NetnsLab) -> list[str]:
    """The pods' namespaces, the lab's own kube-dns pod aside."""
    return [n for n in leftovers(lab.spec.name) if "_pod-" in n and not n.endswith(dns.POD)]


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_a_signal_while_verify_removes_its_pods_leaves_none(lab, interrupt_handlers, signum):
    seen: list[str] = []
    interrupted_after_cleanup(lambda: run_checks(lab, progress=interrupt_at_first_removal(seen, signum)), signum)
    removals = [s for s in seen if s.startswith("removing pod")]
    assert len(removals) == 2 * len(lab.spec.nodes), seen  # every pod's removal ran, not just the first
    assert lab.pods() == []
    assert pod_namespaces(lab) == []


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_a_signal_while_the_walkthrough_removes_its_pods_leaves_none(lab, interrupt_handlers, signum):
    seen: list[str] = []
    interrupted_after_cleanup(lambda: run_walkthrough(lab, TUTORIAL, [1], show=lambda result: None, capture=False,
                                                      progress=interrupt_at_first_removal(seen, signum)), signum)
    started = [s for s in seen if s.startswith("starting pod")]
    removals = [s for s in seen if s.startswith("removing pod")]
    assert started and len(removals) == len(started), seen
    assert lab.pods() == []
    assert pod_namespaces(lab) == []
