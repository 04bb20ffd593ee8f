"""Ctrl-C while verify or the walkthrough removes its pods: the removal finishes, no pod is left
half made (its record without its veth, which then fails the next verify). Real lab, real CNI.

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


def interrupt_at_first_removal(seen: list[str]):
    """A Progress that presses Ctrl-C (SIGINT to this process) when the first pod removal starts."""
    def progress(line: str) -> None:
        seen.append(line)
        if line.startswith("removing pod") and sum(s.startswith("removing pod") for s in seen) == 1:
            os.kill(os.getpid(), signal.SIGINT)

    return progress


def uninterrupted(call):
    """call(); a KeyboardInterrupt out of it means the cleanup was cut short (pytest would stop the run)."""
    try:
        return call()
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C cut the pods' removal short", pytrace=False)


def pod_namespaces(lab: NetnsLab) -> list[str]:
    """The pods' namespaces, the lab's own kube-dns pod aside."""
    return [n for n in leftovers(lab.spec.name) if "_pod-" in n and not n.endswith(dns.POD)]


def test_ctrl_c_while_verify_removes_its_pods_leaves_none(lab):
    seen: list[str] = []
    uninterrupted(lambda: run_checks(lab, progress=interrupt_at_first_removal(seen)))
    removals = [s for s in seen if s.startswith("removing pod")]
    assert len(removals) == 2 * len(lab.spec.nodes), seen  # every pod's removal ran, not just the first
    assert lab.pods() == []
    assert pod_namespaces(lab) == []


def test_ctrl_c_while_the_walkthrough_removes_its_pods_leaves_none(lab):
    seen: list[str] = []
    results, kept = uninterrupted(lambda: run_walkthrough(lab, TUTORIAL, [1], show=lambda result: None,
                                                          capture=False, progress=interrupt_at_first_removal(seen)))
    assert kept == []
    assert [r.text.number for r in results] == [1]
    started = [s for s in seen if s.startswith("starting pod")]
    removals = [s for s in seen if s.startswith("removing pod")]
    assert started and len(removals) == len(started), seen
    assert lab.pods() == []
    assert pod_namespaces(lab) == []
