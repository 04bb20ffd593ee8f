"""The pods the checks trace between: two per node, started all or nothing and removed again."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from k8slab.labs.base import Lab, Pod, Progress, quiet

POD_PREFIX = "t-"


@dataclass
class SuitePods:
    """The pods the checks trace between: one per node, and a second per node for same-node traces."""
    first: dict[str, Pod] = field(default_factory=dict)
    second: dict[str, Pod] = field(default_factory=dict)

    def all(self) -> list[Pod]:
        return list(self.first.values()) + list(self.second.values())

    def pair(self, src: str, dst: str) -> tuple[Pod, Pod] | None:
        """The pods a trace from node src to node dst runs between: cross-node between the nodes'
        first pods, same-node from the first pod to the second."""
        if src not in self.first:
            return None
        target = self.second.get(src) if src == dst else self.first.get(dst)
        return (self.first[src], target) if target is not None else None


def start_pods(lab: Lab, progress: Progress = quiet, prefix: str = POD_PREFIX) -> SuitePods:
    """Start two pods on every node (names: prefix, a random token, the node); all or nothing."""
    token = secrets.token_hex(2)
    wanted = [(f"{prefix}{token}-{node.name}"[:61] + f"-{suffix}", node.name)
              for node in lab.spec.nodes for suffix in ("a", "b")]
    progress(f"starting {len(wanted)} pods: {', '.join(name for name, _ in wanted)}")
    started = lab.pods_start(wanted)  # all or nothing
    pods = SuitePods()
    for pod, (name, _) in zip(started, wanted):
        (pods.first if name.endswith("-a") else pods.second)[pod.node] = pod
    return pods


def delete_pods(lab: Lab, pods: Iterable[Pod], progress: Progress = quiet) -> None:
    errors = []
    for pod in pods:
        progress(f"removing pod {pod.name}")
        try:
            lab.pod_delete(pod.name)
        except Exception as exc:  # noqa: BLE001 - keep removing the others; report them together
            errors.append(f"{pod.name}: {exc}")
    if errors:
        raise RuntimeError("could not remove every pod the checks made: " + "; ".join(errors))
