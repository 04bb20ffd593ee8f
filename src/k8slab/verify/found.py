"""The lab as verify found it, and what verify's own pods changed (pure).

Starting a pod runs the CNI bridge plugin, which brings cni0 up, gives it the node's gateway address and, with
isGateway, turns net.ipv4.ip_forward on: a node broken that way before verify would be repaired by verify
itself. So the nodes are read before any pod starts; whatever the pods changed on links that were already
there is set back as found (a student's "break it, then find it" exercise stays broken) and said; the checks
judge the found state, plus what the pods added (their veths, a cni0 made by a node's first pod).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from k8slab.verify.facts import NodeFacts


@dataclass(frozen=True)
class Change:
    """One thing verify's pods changed on a node, and the command that sets it back."""
    node: str
    what: str
    undo: tuple[str, ...]


def pod_changes(found: Mapping[str, NodeFacts], now: Mapping[str, NodeFacts]) -> list[Change]:
    """What differs between the found nodes and the nodes once verify's pods run, on what existed before:
    a link's state or addresses, forwarding. New links (the pods' veths, a first cni0) are not changes."""
    changes = []
    for node, before in found.items():
        after = now.get(node)
        if after is None:
            continue
        for link in before.links:
            later = after.link(link.name)
            if later is None:
                continue
            for addr in later.addresses:
                if addr not in link.addresses:
                    changes.append(Change(node, f"{link.name} had no {addr}; verify's pods added it",
                                          ("ip", "addr", "del", str(addr), "dev", link.name)))
            if link.up != later.up:
                state = "up" if link.up else "down"
                changes.append(Change(node, f"{link.name} was {state.upper() if not link.up else state}; "
                                            f"verify's pods set it {'up' if later.up else 'down'}",
                                      ("ip", "link", "set", link.name, state)))
        if before.ip_forward is not None and after.ip_forward != before.ip_forward:
            changes.append(Change(node, f"net.ipv4.ip_forward was {before.ip_forward}; verify's pods set it to "
                                        f"{after.ip_forward}",
                                  ("sysctl", "-q", "-w", f"net.ipv4.ip_forward={before.ip_forward}")))
    return changes


def judged(found: Mapping[str, NodeFacts], now: Mapping[str, NodeFacts]) -> dict[str, NodeFacts]:
    """The facts the checks judge: each link, route and sysctl as found, plus what the pods brought that did
    not exist before (new links, and the routes on them)."""
    out = {}
    for node, after in now.items():
        before = found.get(node)
        if before is None:
            out[node] = after
            continue
        old = {lk.name for lk in before.links}
        new_links = tuple(lk for lk in after.links if lk.name not in old)
        new_names = {lk.name for lk in new_links}
        out[node] = replace(before, links=before.links + new_links,
                            routes=before.routes + tuple(r for r in after.routes if r.dev in new_names))
    return out
