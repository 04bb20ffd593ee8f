"""What a real Calico cluster decided, read back from it: which IPAM block each node claimed, and what its
BIRD says. On the emulated lab node i has the i-th block (plan_calico.py); calico-node picks a block with a
generator seeded by its hostname (libcalico-go randomBlockGenerator), so on VMs the lab asks the cluster.

Pure parsing here; the SSH labs run the commands (kubectl on the control plane)."""

from __future__ import annotations

import json
from dataclasses import replace
from ipaddress import IPv4Network

from k8slab.spec.model import LabSpec

BLOCK_AFFINITIES = ("get", "blockaffinities.crd.projectcalico.org", "-o", "json")
CALICO_NODE_PODS = ("-n", "calico-system", "get", "pods", "-l", "k8s-app=calico-node", "-o", "json")
BIRD_SOCKET = "/var/run/calico/bird.ctl"  # calico-node's BIRD control socket (a hostPath on the node)


def blocks_from_affinities(kubectl_json: str) -> dict[str, IPv4Network]:
    """node -> the block it holds (confirmed, not deleted; the lowest if it claimed several)."""
    found: dict[str, IPv4Network] = {}
    for item in json.loads(kubectl_json).get("items", []):
        spec = item.get("spec", {})
        if (spec.get("state") != "confirmed" or str(spec.get("deleted", "false")).lower() == "true"
                or ":" in spec.get("cidr", ":")):  # IPv6 blocks are not this lab's
            continue
        cidr = IPv4Network(spec["cidr"])
        if spec["node"] not in found or cidr < found[spec["node"]]:
            found[spec["node"]] = cidr
    return found


def with_cluster_blocks(spec: LabSpec, blocks: dict[str, IPv4Network]) -> LabSpec:
    """The spec with each node's pod subnet the block the cluster gave it (nodes without one keep theirs)."""
    nodes = tuple(replace(n, pod_subnet=blocks.get(n.name, n.pod_subnet)) for n in spec.nodes)
    return replace(spec, nodes=nodes)


def calico_node_pods(kubectl_json: str) -> dict[str, str]:
    """node -> the calico-node pod running there."""
    return {i["spec"]["nodeName"]: i["metadata"]["name"] for i in json.loads(kubectl_json).get("items", [])
            if i.get("spec", {}).get("nodeName")}


def birdcl_args(pod: str, *what: str) -> list[str]:
    """kubectl arguments that ask a calico-node pod's BIRD (`birdcl` ships in the calico/node image)."""
    return ["-n", "calico-system", "exec", pod, "-c", "calico-node", "--", "birdcl", "-s", BIRD_SOCKET, *what]
