"""Reading a real Calico cluster's choices back: block affinities (which block each node claimed), the
calico-node pod per node, and what its BIRD says, from output shaped exactly as upstream produces it.

BlockAffinity: projectcalico/calico api/pkg/apis/projectcalico/v3/blockaffinity.go (spec.state
confirmed | pending | pendingDeletion, spec.node, spec.type host | virtual, spec.cidr, spec.deleted a bool) and
libcalico-go/config/crd/crd.projectcalico.org_blockaffinities.yaml (the v1 CRD: the same fields, deleted a
string "for compatibility with older releases"); checked at commit 87c15906f20c.
`birdcl show protocols`: BIRD's client prints a reply line without its 4-digit code (client/client.c
server_got_reply: a "1002-" row as x+5, a " " continuation as x+1, code 0000 not at all). Calico's BIRD 1.x
rows are calicoctl's recorded socket output (calicoctl/calicoctl/commands/node/status_test.go) put through that
rule; BIRD 2's were recorded from Debian's bird2 2.0.12 (the emulated lab's) with two unestablished peers."""

from __future__ import annotations

import json
from ipaddress import IPv4Network
from pathlib import Path

import pytest
import yaml

from k8slab.labs.calico_cluster import blocks_from_affinities, calico_node_pods, node_blocks, with_cluster_blocks
from k8slab.spec.calico import parse_bird_protocols
from k8slab.spec.load import parse_spec
from k8slab.verify.facts import parse_bgp

ROOT = Path(__file__).resolve().parents[2]


def affinity(node: str, cidr: str, state: str = "confirmed", deleted: str | bool = "false",
             created: str = "2026-11-23T08:00:00Z", api: str = "crd.projectcalico.org/v1") -> dict:
    """One item of `kubectl get blockaffinities... -o json`, named as libcalico-go names it (<node>-<cidr, '-'>)."""
    name = f"{node}-{cidr.replace('.', '-').replace('/', '-')}"
    return {"apiVersion": api, "kind": "BlockAffinity",
            "metadata": {"name": name, "creationTimestamp": created, "resourceVersion": "1234",
                         "uid": "5c1e3a52-0000-4000-8000-000000000000"},
            "spec": {"node": node, "cidr": cidr, "state": state, "deleted": deleted, "type": "host"}}


def affinity_list(items: list[dict]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}})


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


def test_v3_affinities_pending_and_deleted_ones_and_virtual_ones_are_not_adopted():
    v3 = "projectcalico.org/v3"
    items = [affinity("node-1", "10.244.84.128/26", deleted=False, api=v3),
             affinity("node-2", "10.244.247.0/26", state="pending", deleted=False, api=v3),
             affinity("node-2", "10.244.1.0/26", state="pendingDeletion", deleted=False, api=v3),
             affinity("controlplane", "10.244.120.64/26", deleted=True, api=v3),
             {**affinity("node-2", "10.244.9.0/26", api=v3), "spec": {
                 **affinity("node-2", "10.244.9.0/26")["spec"], "type": "virtual", "deleted": False}}]
    assert blocks_from_affinities(affinity_list(items)) == {"node-1": IPv4Network("10.244.84.128/26")}


def test_a_node_with_two_blocks_is_judged_by_the_first_it_claimed():
    """Its first block is full, so it claimed a second: the first holds the tunnel address and the first pods."""
    items = [affinity("node-1", "10.244.3.0/26", created="2026-11-23T09:30:00Z"),  # claimed later, lower address
             affinity("node-1", "10.244.84.128/26", created="2026-11-23T08:00:00Z")]
    assert node_blocks(affinity_list(items)) == {"node-1": [IPv4Network("10.244.84.128/26"),
                                                            IPv4Network("10.244.3.0/26")]}
    assert blocks_from_affinities(affinity_list(items)) == {"node-1": IPv4Network("10.244.84.128/26")}


def test_an_affinity_that_is_not_a_node_and_an_ipv4_block_is_passed_over_not_a_traceback():
    """The cluster's answer is data: a missing node, an IPv6 or malformed block, a number for a cidr."""
    good = affinity("node-1", "10.244.84.128/26")
    bad = [{**good, "spec": {k: v for k, v in good["spec"].items() if k != "node"}},
           {**good, "spec": {**good["spec"], "node": ["node-2"]}},
           affinity("node-2", "fd00:10:244::/122"), affinity("node-2", "10.244.9.1/26"),
           affinity("node-2", "not-a-block"), {**good, "spec": {**good["spec"], "node": "node-2", "cidr": 42}}]
    assert blocks_from_affinities(affinity_list([*bad, good])) == {"node-1": IPv4Network("10.244.84.128/26")}


@pytest.mark.parametrize("printed", ["", "Error from server (ServiceUnavailable)", "[1, 2]", '{"items": 7}',
                                     '{"items": ["x", null]}', '{"items": [{"spec": "x", "metadata": 1}]}'])
def test_kubectl_output_that_is_no_list_reads_as_no_blocks_and_no_pods(printed):
    """kubectl exiting 0 with something that is not a list of objects: nothing is adopted, nothing crashes."""
    assert blocks_from_affinities(printed) == {}
    assert calico_node_pods(printed) == {}


def birdcl_prints(socket_lines: str) -> str:
    """What birdcl prints for these control-socket lines (client/client.c server_got_reply, not verbose)."""
    out = []
    for x in socket_lines.splitlines():
        if x.startswith(" "):
            out.append(x[1:])
        elif len(x) > 4 and x[:4].isdigit() and x[4] in " -" and int(x[:4]):
            out.append(x[5:])
    return "\n".join(out) + "\n"


# calicoctl's recorded BIRD 1.5 socket output (status_test.go), one peer per state it shows
BIRD1_SOCKET = """0001 BIRD 1.5.0 ready.
2002-name     proto    table    state  since       info
1002-kernel1  Kernel   master   up     2016-11-21
 device1  Device   master   up     2016-11-21
 direct1  Direct   master   up     2016-11-21
 Mesh_172_17_8_102 BGP      master   up     2016-11-21  Established
 Global_172_17_8_103 BGP      master   up     2016-11-21  Established
 Node_172_17_8_104 BGP      master   down     2016-11-21  Failed  Socket: error
0000
"""

# `birdcl -s CTL show protocols` of Debian's bird2 2.0.12, recorded (two mesh peers not reachable yet)
BIRD2_PRINTED = """BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     12:25:18.724  
kernel1    Kernel     master4    up     12:25:18.724  
static1    Static     master4    up     12:25:18.724  
Mesh_192_168_56_10 BGP        ---        start  12:25:18.724  Active        
Mesh_192_168_56_12 BGP        ---        start  12:25:18.724  Active        
"""


def test_birdcl_show_protocols_of_calicos_bird_1_and_of_bird_2():
    printed = birdcl_prints(BIRD1_SOCKET)
    assert printed.splitlines()[0] == "BIRD 1.5.0 ready." and "0000" not in printed
    assert parse_bird_protocols(printed) == {"Mesh_172_17_8_102": "up Established",
                                             "Global_172_17_8_103": "up Established",
                                             "Node_172_17_8_104": "down Failed Socket: error"}
    sessions = parse_bird_protocols(BIRD2_PRINTED)
    assert sessions == {"Mesh_192_168_56_10": "start Active", "Mesh_192_168_56_12": "start Active"}
    facts = parse_bgp("BIRD 2.0.12 ready.\nBIRD 2.0.12\nRouter ID is 192.168.56.11\nDaemon is up and running\n",
                      BIRD2_PRINTED)
    assert facts.running and str(facts.router_id) == "192.168.56.11"
    assert not any("Established" in state for state in facts.sessions.values())
