"""One verify run (side effects at the edges): read the nodes as found, start the suite's pods, set back
what they changed (verify/found.py), trace and read, judge the found state, remove the pods."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from k8slab.interrupts import no_interrupts
from k8slab.labs.base import Lab, Pod, Progress, quiet
from k8slab.verify.advice import Advice
from k8slab.verify.checks import CheckResult, evaluate
from k8slab.verify.found import Change, judged, pod_changes
from k8slab.verify.observe import observe, observe_nodes, ratelimits
from k8slab.verify.pods import SuitePods, delete_pods, start_pods
from k8slab.verify.schedule import sources_needed
from k8slab.verify.services import service_checks


@dataclass
class Verification:
    results: list[CheckResult]
    notes: list[str] = field(default_factory=list)  # what verify's pods changed, and whether it was set back


def verify_lab(lab: Lab, pods: dict[str, Pod] | None = None, progress: Progress = quiet,
               peers: dict[str, Pod] | None = None) -> Verification:
    """Everything the acceptance suite asserts, on the lab that is up, judged as verify found it.

    Starts its own pods (two per node, more on a big lab) unless given some (pods: one per node; peers: a
    second one per node for the same-node traces), and removes the ones it started, also on failure."""
    lab.adopt_cluster_blocks()  # a real Calico cluster chose its nodes' blocks: judge against those
    progress("reading every node as found, before any pod of verify's starts")
    found = observe_nodes(lab)
    per_node = sources_needed(len(lab.spec.nodes) - 1, ratelimits(found))
    started = start_pods(lab, progress, per_node=per_node) if pods is None else None
    suite = started or SuitePods(dict(pods or {}), dict(peers or {}), order=tuple(n.name for n in lab.spec.nodes))
    notes: list[str] = []
    try:
        if started is not None:
            notes = _set_back(lab, pod_changes(found, observe_nodes(lab)), progress)
        seen = observe(lab, suite, progress)
        results = evaluate(lab.spec, suite, replace(seen, facts=judged(found, seen.facts)),
                           Advice.for_lab(lab.backend, lab.spec)) + service_checks(lab)
        return Verification(results, notes)
    finally:
        if started is not None:
            with no_interrupts():
                delete_pods(lab, started.all(), progress)


def _set_back(lab: Lab, changes: list[Change], progress: Progress) -> list[str]:
    notes = []
    for c in changes:
        res = lab.node_run(c.node, list(c.undo), timeout=15)
        how = (f"set back (`{' '.join(c.undo)}`)" if res.ok
               else f"could NOT set it back: `{' '.join(c.undo)}` failed: {(res.stderr or res.stdout).strip()[:200]}")
        notes.append(f"{c.node}: {c.what}; verify {how}, so the lab stays as found")
        progress(notes[-1])
    return notes


def run_checks(lab: Lab, pods: dict[str, Pod] | None = None, progress: Progress = quiet,
               peers: dict[str, Pod] | None = None) -> list[CheckResult]:
    return verify_lab(lab, pods, progress, peers).results
