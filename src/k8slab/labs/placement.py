"""Where a pod goes when no node is named, and which pod names are refused: pure functions of the spec
and the pods that run, the same on both labs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from k8slab.labs.base import Pod
from k8slab.spec.model import LabSpec


@dataclass(frozen=True)
class Placement:
    node: str
    why: str


def schedulable(spec: LabSpec) -> list[str]:
    """kubeadm taints the control plane NoSchedule, so pods go to the workers (to it only if there are none)."""
    return [n.name for n in (spec.workers or spec.nodes)]


def place(spec: LabSpec, pods: Sequence[Pod]) -> Placement:
    """The schedulable node with the fewest pods, the first in the spec's order on a tie: how the default
    scheduler's spreading (NodeResourcesBalancedAllocation, PodTopologySpread) places identical pods."""
    candidates = schedulable(spec)
    count = {name: sum(p.node == name for p in pods) for name in candidates}
    node = min(candidates, key=lambda name: (count[name], candidates.index(name)))
    others = ", ".join(f"{name} {count[name]}" for name in candidates if name != node)
    tainted = "" if not spec.workers else f"; {spec.control_plane.name} is tainted NoSchedule"
    return Placement(node, f"the schedulable node with the fewest pods ({node} {count[node]}"
                           f"{', ' + others if others else ''}{tainted})")


def node_name_clash(spec: LabSpec, pod: str) -> str | None:
    """A pod named like a node makes `trace POD NODE` ambiguous, so it is refused."""
    if pod in {n.name for n in spec.nodes}:
        return (f"pod name {pod!r} is a node's name; `k8slab trace {pod} ...` could not tell them apart. "
                "Pick another name")
    return None
