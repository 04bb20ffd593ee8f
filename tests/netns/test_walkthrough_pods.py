"""The pods walkthrough on the emulated lab: both steps match, and nothing of it is left afterwards
(its pods and its service)."""

from __future__ import annotations

from k8slab.labs.netns import dns
from k8slab.teach.walkthroughs import walkthrough
from k8slab.teach.walkthroughs.runner import run_walkthrough

from .labtools import default_spec, unique_name


def test_the_pods_walkthrough_runs_and_cleans_up(labs):
    lab = labs(default_spec(unique_name("wp")))
    lab.up()
    walk = walkthrough("pods")
    shown = []
    results, kept = run_walkthrough(lab, walk, list(walk.numbers), show=shown.append, capture=False)
    assert [r.text.number for r in results] == [1, 2] and kept == []
    for result in results:
        assert result.ok, [c.text for c in result.checks if not c.ok]
    assert "Welcome to nginx!" in results[0].output
    assert lab.pods() == [] and [s.name for s in lab.services()] == [dns.SERVICE]
