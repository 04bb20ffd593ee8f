"""What a real Calico cluster decided, read back from it: which IPAM block each node claimed, and what its
BIRD says. On the emulated lab node i has the i-th block (plan_calico.py); calico-node picks a block with a
generator seeded by its hostname (libcalico-go randomBlockGenerator), so on VMs the lab asks the cluster.

Pure parsing here; the SSH labs run the commands (kubectl on the control plane)."""

from __future__ import annotations

import json
from dataclasses import replace
from ipaddress import IPv4Network

from k8slab.spec.model import LabSpec

# The resource kubectl is asked for: the crd.projectcalico.org/v1 CRD every Calico install has had (spec.deleted a
# string), then projectcalico.org/v3 (native v3 CRDs or Calico's API server; spec.deleted a boolean). Both shapes:
# api/pkg/apis/projectcalico/v3/blockaffinity.go and libcalico-go/config/crd/crd.projectcalico.org_blockaffinities.yaml
# in projectcalico/calico.
BLOCK_AFFINITY_RESOURCES = ("blockaffinities.crd.projectcalico.org", "blockaffinities.projectcalico.org")
BLOCK_AFFINITIES = ("get", BLOCK_AFFINITY_RESOURCES[0], "-o", "json")
CALICO_NODE_PODS = ("-n", "calico-system", "get", "pods", "-l", "k8s-app=calico-node", "-o", "json")
BIRD_SOCKET = "/var/run/calico/bird.ctl"  # calico-node's BIRD control socket (a hostPath on the node)


def node_blocks(kubectl_json: str) -> dict[str, list[IPv4Network]]:
    """node -> the IPv4 blocks affine to it, the first it claimed first (metadata.creationTimestamp, then address).

    Only an affinity a node holds counts: spec.state "confirmed" (not "pending", claimed but not yet written to the
    block; not "pendingDeletion", being released) and spec.deleted not true (the string "true" in v1, the boolean
    in v3: "clients should treat this block as if it does not exist"); spec.type "virtual" is no node's."""
    found: dict[str, list[tuple[str, IPv4Network]]] = {}
    for item in _items(kubectl_json):
        spec = _obj(item, "spec")
        if (spec.get("state") != "confirmed" or str(spec.get("deleted", "false")).lower() == "true"
                or spec.get("type", "host") != "host"):
            continue
        cidr = _ipv4_block(spec.get("cidr"))  # IPv6 is not this lab's
        if cidr is None or not isinstance(spec.get("node"), str):  # the cluster's answer is data: no traceback
            continue
        created = str(_obj(item, "metadata").get("creationTimestamp") or "")  # RFC 3339 UTC: sorts as text
        found.setdefault(spec["node"], []).append((created, cidr))
    return {node: [cidr for _, cidr in sorted(blocks)] for node, blocks in found.items()}


def _items(kubectl_json: str) -> list[dict]:
    """The objects of a `kubectl get -o json` list; none where the output is not one (a proxy's error page, a
    truncated answer): what the cluster prints is data, never a traceback."""
    try:
        data = json.loads(kubectl_json)
    except ValueError:
        return []
    items = data.get("items") if isinstance(data, dict) else None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _obj(item: dict, key: str) -> dict:
    value = item.get(key)
    return value if isinstance(value, dict) else {}


def _ipv4_block(cidr: object) -> IPv4Network | None:
    try:
        return IPv4Network(cidr) if isinstance(cidr, str) else None
    except ValueError:
        return None


def blocks_from_affinities(kubectl_json: str) -> dict[str, IPv4Network]:
    """node -> the block the lab judges it by: the first it claimed.

    A node claims a second block only when its first is full. The first holds what the checks look for: the tunnel
    address (ordinal 0, which calico-node takes at start, before any pod) and the first pods. So that block is the
    node's pod subnet; a later one is not guessed at (the lab expects one block per node, as the emulated lab
    builds it): its pods are reported outside the node's subnet rather than judged against a made-up layout."""
    return {node: blocks[0] for node, blocks in node_blocks(kubectl_json).items()}


def with_cluster_blocks(spec: LabSpec, blocks: dict[str, IPv4Network]) -> LabSpec:
    """The spec with each node's pod subnet the block the cluster gave it (nodes without one keep theirs)."""
    nodes = tuple(replace(n, pod_subnet=blocks.get(n.name, n.pod_subnet)) for n in spec.nodes)
    return replace(spec, nodes=nodes)


def calico_node_pods(kubectl_json: str) -> dict[str, str]:
    """node -> the calico-node pod running there."""
    pods = {}
    for i in _items(kubectl_json):
        node, name = _obj(i, "spec").get("nodeName"), _obj(i, "metadata").get("name")
        if isinstance(node, str) and isinstance(name, str):
            pods[node] = name
    return pods


def birdcl_args(pod: str, *what: str) -> list[str]:
    """kubectl arguments that ask a calico-node pod's BIRD (`birdcl` ships in the calico/node image)."""
    return ["-n", "calico-system", "exec", pod, "-c", "calico-node", "--", "birdcl", "-s", BIRD_SOCKET, *what]
