"""The pods the checks trace between: two per node (more on a big lab, so no source pod meets the kernel's
ICMP rate limit: verify/schedule.py), started all or nothing and removed again."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from k8slab.labs.base import Lab, Pod, Progress, quiet
from k8slab.verify.schedule import spread

POD_PREFIX = "t-"


SUFFIXES = "abcdefgh"


@dataclass
class SuitePods:
    """The pods the checks trace between: one per node (every cross-node trace's target), a second per node
    for same-node traces, and on a big lab more per node so a node's traces come from several sources."""
    first: dict[str, Pod] = field(default_factory=dict)
    second: dict[str, Pod] = field(default_factory=dict)
    extra: dict[str, tuple[Pod, ...]] = field(default_factory=dict)
    order: tuple[str, ...] = ()   # the nodes in lab order, for spreading traces (default: first's order)
    per_node: int = 1             # source pods per node for cross-node traces

    def all(self) -> list[Pod]:
        return (list(self.first.values()) + list(self.second.values())
                + [p for pods in self.extra.values() for p in pods])

    def sources(self, node: str) -> list[Pod]:
        pods = [self.first.get(node), self.second.get(node), *self.extra.get(node, ())]
        return [p for p in pods if p is not None][:max(1, self.per_node)]

    def pair(self, src: str, dst: str) -> tuple[Pod, Pod] | None:
        """The pods a trace from node src to node dst runs between: same-node from the first pod to the
        second; cross-node to dst's first pod, from the one of src's source pods the spread deals it to."""
        if src not in self.first:
            return None
        if src == dst:
            target = self.second.get(src)
            return (self.first[src], target) if target is not None else None
        if dst not in self.first:
            return None
        sources = self.sources(src)
        order = list(self.order or self.first)
        index = spread(order, src, len(sources)).get(dst, 0) if src in order and dst in order else 0
        return sources[index], self.first[dst]


def start_pods(lab: Lab, progress: Progress = quiet, prefix: str = POD_PREFIX, per_node: int = 1) -> SuitePods:
    """Start two pods on every node, more if per_node sources are wanted (names: prefix, a random token, the
    node, a letter); all or nothing."""
    token = secrets.token_hex(2)
    suffixes = SUFFIXES[:max(2, min(per_node, len(SUFFIXES)))]
    wanted = [(f"{prefix}{token}-{node.name}"[:61] + f"-{suffix}", node.name)
              for node in lab.spec.nodes for suffix in suffixes]
    progress(f"starting {len(wanted)} pods: {', '.join(name for name, _ in wanted)}")
    started = lab.pods_start(wanted)  # all or nothing
    # Every pod started is a source: the second one per node is there anyway (the same-node traces' target),
    # and a node's traces spread over two sources wait half as long for its gateway's tokens.
    pods = SuitePods(order=tuple(n.name for n in lab.spec.nodes), per_node=len(suffixes))
    for pod, (name, _) in zip(started, wanted):
        if name.endswith("-a"):
            pods.first[pod.node] = pod
        elif name.endswith("-b"):
            pods.second[pod.node] = pod
        else:
            pods.extra[pod.node] = (*pods.extra.get(pod.node, ()), pod)
    return pods


def delete_pods(lab: Lab, pods: Iterable[Pod], progress: Progress = quiet) -> None:
    """Remove the pods, all at once where the lab can (Lab.pods_delete); every one is tried."""
    names = [pod.name for pod in pods]
    for name in names:
        progress(f"removing pod {name}")
    try:
        lab.pods_delete(names)
    except Exception as exc:  # said as the checks' own cleanup failing
        raise RuntimeError(f"could not remove every pod the checks made: {exc}") from exc
