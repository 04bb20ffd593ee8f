"""The pods walkthrough on the emulated lab: every step matches in one run (its pods moving between nodes as
the steps need), the captures it offers are pcap files, and nothing of it is left afterwards (its pods and
its service). tests/netns/test_walkthrough_captures.py reads those captures and tables in detail."""

from __future__ import annotations

from k8slab.labs.capture import is_pcap
from k8slab.labs.netns import dns
from k8slab.teach.walkthroughs import walkthrough
from k8slab.teach.walkthroughs.runner import run_walkthrough

from .labtools import default_spec, unique_name


def test_the_pods_walkthrough_runs_and_cleans_up(labs, tmp_path):
    lab = labs(default_spec(unique_name("wp")))
    lab.up()
    walk = walkthrough("pods")
    shown = []
    results, kept = run_walkthrough(lab, walk, list(walk.numbers), show=shown.append, capture_dir=tmp_path)
    assert [r.text.number for r in results] == [1, 2, 3, 4, 5] and kept == []
    for result in results:
        assert result.ok, [c.text for c in result.checks if not c.ok]
    assert "Welcome to nginx!" in results[0].output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pods-step3.pcap", "pods-step5.pcap"]
    assert all(is_pcap(p) for p in tmp_path.iterdir())
    assert lab.pods() == [] and [s.name for s in lab.services()] == [dns.SERVICE]
