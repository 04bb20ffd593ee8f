"""What verify's own pods changed on a node, and the facts it judges instead (verify/found.py)."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Interface
from pathlib import Path

from factsbuilder import healthy, link_down

from k8slab.spec.facts import BRIDGE_IF
from k8slab.spec.load import load_spec
from k8slab.verify.facts import LinkFact
from k8slab.verify.found import judged, pod_changes

SPEC = load_spec(Path(__file__).resolve().parents[2] / "lab.yaml")


def test_cni0_brought_up_and_forwarding_turned_on_are_changes_with_their_undo():
    now = healthy(SPEC)
    node = SPEC.workers[0]
    found = dict(now)
    found[node.name] = replace(link_down(now[node.name], BRIDGE_IF), ip_forward=0)
    changes = pod_changes(found, now)
    assert [(c.node, c.undo) for c in changes] == [
        (node.name, ("ip", "link", "set", BRIDGE_IF, "down")),
        (node.name, ("sysctl", "-q", "-w", "net.ipv4.ip_forward=0"))]
    assert "cni0 was DOWN" in changes[0].what and "ip_forward was 0" in changes[1].what


def test_an_address_the_pods_gave_cni0_is_a_change_but_a_new_link_is_not():
    now = healthy(SPEC)
    node = SPEC.workers[0]
    bridge = now[node.name].link(BRIDGE_IF)
    without = tuple(replace(lk, addresses=()) if lk.name == BRIDGE_IF else lk for lk in now[node.name].links)
    found = {**now, node.name: replace(now[node.name], links=without)}
    changes = pod_changes(found, now)
    assert [c.undo for c in changes] == [("ip", "addr", "del", str(bridge.addresses[0]), "dev", BRIDGE_IF)]
    veth = LinkFact("veth9", True, (), master=BRIDGE_IF, kind="veth")
    grown = {**now, node.name: replace(now[node.name], links=now[node.name].links + (veth,))}
    assert pod_changes(now, grown) == []


def test_the_checks_judge_links_and_forwarding_as_found_plus_what_the_pods_made():
    now = healthy(SPEC)
    node = SPEC.workers[0]
    found_links = tuple(lk for lk in now[node.name].links if lk.name != BRIDGE_IF and lk.master != BRIDGE_IF)
    found_routes = tuple(r for r in now[node.name].routes if r.dev != BRIDGE_IF)
    found = {**now, node.name: replace(now[node.name], links=found_links, routes=found_routes, ip_forward=0)}
    seen = judged(found, now)[node.name]
    # cni0 did not exist before: the first pod made it, so it and its route count as found.
    assert seen.link(BRIDGE_IF) == now[node.name].link(BRIDGE_IF)
    assert seen.routes_to(node.pod_subnet) == [r for r in now[node.name].routes if r.dst == node.pod_subnet]
    assert [r.dev for r in seen.routes_to(node.pod_subnet)] == [BRIDGE_IF]
    assert seen.ip_forward == 0
    # A link that existed keeps its found state even though the pods changed it.
    down = {**now, node.name: link_down(now[node.name], BRIDGE_IF)}
    assert not judged(down, now)[node.name].link(BRIDGE_IF).up
    assert IPv4Interface(f"{node.pod_gateway}/24") in seen.link(BRIDGE_IF).addresses
