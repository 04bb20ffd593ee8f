"""Reading a real Calico cluster's choices back: block affinities (which block each node claimed) and the
calico-node pod per node, from kubectl-shaped JSON (the shape of the BlockAffinity resource:
docs.tigera.io reference/resources/blockaffinity: spec.node, spec.cidr, spec.state, spec.deleted)."""

from __future__ import annotations

import json
from ipaddress import IPv4Network
from pathlib import Path

import yaml

from k8slab.labs.calico_cluster import blocks_from_affinities, calico_node_pods, with_cluster_blocks
from k8slab.spec.load import parse_spec

ROOT = Path(__file__).resolve().parents[2]


def affinity(node: str, cidr: str, state: str = "confirmed", deleted: str = "false") -> dict:
    name = f"{node}-{cidr.replace('.', '-').replace('/', '-')}"
    return {"apiVersion": "crd.projectcalico.org/v1", "kind": "BlockAffinity", "metadata": {"name": name},
            "spec": {"node": node, "cidr": cidr, "state": state, "deleted": deleted}}


def test_the_cluster_chosen_blocks_replace_the_emulated_order():
    data = yaml.safe_load((ROOT / "lab.yaml").read_text())
    data["cni"] = {"plugin": "calico", "encapsulation": "VXLANCrossSubnet"}
    spec = parse_spec(yaml.safe_dump(data))
    # calico-node picks blocks with a hostname-seeded generator: nothing like node order
    chosen = {"controlplane": "10.244.120.64/26", "node-1": "10.244.84.128/26", "node-2": "10.244.247.0/26"}
    items = [affinity(n, c) for n, c in chosen.items()]
    items += [affinity("node-1", "10.244.1.0/26", state="pending"), affinity("node-2", "10.244.0.0/26", deleted="true"),
              affinity("node-1", "fd00::/122")]
    blocks = blocks_from_affinities(json.dumps({"items": items}))
    assert blocks == {n: IPv4Network(c) for n, c in chosen.items()}
    adopted = with_cluster_blocks(spec, blocks)
    assert {n.name: str(n.pod_subnet) for n in adopted.nodes} == chosen
    assert adopted.node_by_ip(IPv4Network(chosen["node-2"]).network_address + 5).name == "node-2"


def test_calico_node_pod_per_node():
    pods = {"items": [{"metadata": {"name": "calico-node-abcde"}, "spec": {"nodeName": "node-1"}},
                      {"metadata": {"name": "calico-node-pending"}, "spec": {}}]}
    assert calico_node_pods(json.dumps(pods)) == {"node-1": "calico-node-abcde"}
