"""One verify run (side effects at the edges): start the suite's pods, observe, judge, remove the pods."""

from __future__ import annotations

from dataclasses import replace

from k8slab.interrupts import no_interrupts
from k8slab.labs.base import Lab, Pod, Progress, quiet
from k8slab.verify.checks import CheckResult, evaluate
from k8slab.verify.observe import forwarding_now, observe
from k8slab.verify.pods import SuitePods, delete_pods, start_pods
from k8slab.verify.services import service_checks


def run_checks(lab: Lab, pods: dict[str, Pod] | None = None, progress: Progress = quiet,
               peers: dict[str, Pod] | None = None) -> list[CheckResult]:
    """Everything the acceptance suite asserts, on the lab that is up.

    Starts its own pods (two per node) unless given some (pods: one per node; peers: a second one
    per node for the same-node traces), and removes the ones it started, also on failure."""
    # Adding a pod makes the CNI bridge plugin (isGateway) switch forwarding back on, so a node with
    # forwarding off would look healthy by the time it is read: read it before any pod starts.
    lab.adopt_cluster_blocks()  # a real Calico cluster chose its nodes' blocks: judge against those
    forwarding = forwarding_now(lab) if pods is None else {}
    started = start_pods(lab, progress) if pods is None else None
    suite = started or SuitePods(dict(pods or {}), dict(peers or {}))
    try:
        seen = observe(lab, suite, progress)
        facts = {node: replace(f, ip_forward=forwarding[node]) if forwarding.get(node, 1) != 1 else f
                 for node, f in seen.facts.items()}
        return evaluate(lab.spec, suite, replace(seen, facts=facts)) + service_checks(lab)
    finally:
        if started is not None:
            with no_interrupts():
                delete_pods(lab, started.all(), progress)
