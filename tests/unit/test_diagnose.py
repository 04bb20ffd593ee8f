"""Likely causes from observed facts: each classic fault of the lab (ARTICLE.md's table) is named
by what the nodes show, not only by the symptom. Addresses come from the spec."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from factsbuilder import healthy, link_down, pod_ip, with_route, without_route

from k8slab.spec.expect import RouteExpectation
from k8slab.spec.facts import BRIDGE_IF, HOST_ONLY_IF, NAT_ADDRESS, NAT_GATEWAY, NAT_IF
from k8slab.spec.load import load_spec
from k8slab.spec.route import Route
from k8slab.verify import diagnose

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def spec():
    return load_spec(ROOT / "lab.yaml")


@pytest.fixture
def pair(spec):
    """The tutorial's cross-node example: source on the third node, target pod on the second."""
    return spec.nodes[2], spec.nodes[1]


def test_fault_table_texts_name_the_fix():
    assert diagnose.FLANNEL_ON_NAT.startswith(f"flannel is probably bound to {NAT_IF}; set --iface={HOST_ONLY_IF}")
    assert "enp0s3/enp0s8" in diagnose.BOX_NIC_NAMES
    assert "net.ipv4.ip_forward=1" in diagnose.forwarding_off("x")
    assert "--node-ip=1.2.3.4" in diagnose.kubelet_on_nat("x", IPv4Address("1.2.3.4"))


def test_route_to_a_wrong_peer_address_blames_flannels_public_ip(spec, pair):
    src, dst = pair
    facts = with_route(healthy(spec)[src.name], Route(dst.pod_subnet, HOST_ONLY_IF, spec.host_ip))
    exp = RouteExpectation(src.name, Route(dst.pod_subnet, HOST_ONLY_IF, dst.ip), peer=dst.name)
    assert "wrong next hop" in diagnose.route(spec, exp, facts)
    assert "public-ip" in diagnose.route(spec, exp, facts)


def test_own_subnet_route_without_cni0_says_no_pod_yet(spec):
    node = spec.nodes[1]
    nf = healthy(spec)[node.name]
    nf = without_route(replace(nf, links=tuple(lk for lk in nf.links if lk.name != BRIDGE_IF)), node.pod_subnet)
    exp = RouteExpectation(node.name, Route(node.pod_subnet, BRIDGE_IF))
    assert "first pod" in diagnose.route(spec, exp, nf)


@pytest.mark.parametrize("broken_on", ["source", "target"])
def test_cross_node_trace_blames_the_node_whose_route_is_missing(spec, pair, broken_on):
    src, dst = pair
    facts = healthy(spec)
    here, there = (src, dst) if broken_on == "source" else (dst, src)
    facts[here.name] = without_route(facts[here.name], there.pod_subnet)
    cause = diagnose.pod_trace(spec, src, dst, pod_ip(dst), [src.pod_gateway, None, None], facts)
    assert f"{here.name} has no route to {there.name}'s pod subnet {there.pod_subnet}" in cause
    assert f"default via {NAT_GATEWAY} dev {NAT_IF}" in cause
    assert cause.startswith("on the replies' way back, ") == (broken_on == "target")


def test_cross_node_trace_via_eth0_blames_flannel(spec, pair):
    src, dst = pair
    facts = healthy(spec)
    facts[src.name] = with_route(facts[src.name], Route(dst.pod_subnet, NAT_IF, NAT_GATEWAY))
    cause = diagnose.pod_trace(spec, src, dst, pod_ip(dst), [src.pod_gateway, NAT_GATEWAY, None], facts)
    assert diagnose.FLANNEL_ON_NAT in cause and f"{src.name} routes {dst.pod_subnet} out of {NAT_IF}" in cause


def test_trace_with_cni0_down_on_the_target_node(spec, pair):
    src, dst = pair
    facts = healthy(spec)
    facts[dst.name] = link_down(facts[dst.name], BRIDGE_IF)
    cause = diagnose.pod_trace(spec, src, dst, pod_ip(dst), [src.pod_gateway, dst.ip, None], facts)
    assert cause == diagnose.cni0_down(dst.name)


def test_same_node_trace_ignores_forwarding(spec):
    node = spec.nodes[1]
    facts = healthy(spec)
    facts[node.name] = replace(facts[node.name], ip_forward=0)
    cause = diagnose.pod_trace(spec, node, node, pod_ip(node, 3), [None], facts)
    assert diagnose.forwarding_off(node.name) not in cause and "nothing answered" in cause


def test_shape_only_causes_when_nodes_look_fine(spec, pair):
    src, dst = pair
    facts = healthy(spec)
    stops = diagnose.pod_trace(spec, src, dst, pod_ip(dst), [src.pod_gateway, None, None], facts)
    assert "stops after the first hop" in stops
    nat = diagnose.pod_trace(spec, src, dst, pod_ip(dst), [src.pod_gateway, NAT_GATEWAY, None], facts)
    assert diagnose.FLANNEL_ON_NAT in nat
    silent = diagnose.pod_trace(spec, src, dst, pod_ip(dst), [None, None], facts)
    assert "nothing answered" in silent and str(src.pod_gateway) in silent


def test_kubernetes_causes(spec):
    node = spec.nodes[1]
    assert diagnose.internal_ip(node, str(NAT_ADDRESS)) == diagnose.kubelet_on_nat(node.name, node.ip)
    assert f"--node-ip={node.ip}" in diagnose.internal_ip(node, None)
    assert diagnose.public_ip(node, str(NAT_ADDRESS)) == diagnose.FLANNEL_ON_NAT
    assert "not running there" in diagnose.public_ip(node, None)
    assert diagnose.logs_fail(node, f"dial tcp {NAT_ADDRESS}:10250: i/o timeout") == diagnose.kubelet_on_nat(
        node.name, node.ip)
    assert "order" in diagnose.pod_cidr(node, str(spec.nodes[2].pod_subnet))


def test_a_calico_trace_with_no_fault_in_sight_does_not_blame_eth0():
    """On Calico, hop 1 is 10.0.2.15 by rule (the cali veth has no address): a trace that stops after it is
    a silent next node, not flannel bound to the NAT NIC."""
    from test_dataplane_plans import calico_spec

    spec = calico_spec("None")
    src, dst = spec.nodes[2], spec.nodes[1]
    facts = healthy(spec)
    stops = diagnose.pod_trace(spec, src, dst, pod_ip(dst), [NAT_ADDRESS, None, None], facts)
    assert diagnose.FLANNEL_ON_NAT not in stops and "NAT" not in stops
    assert f"the trace stops after {src.name}" in stops and str(dst.pod_subnet) in stops
    silent = diagnose.pod_trace(spec, src, dst, pod_ip(dst), [None, None, None], facts)
    assert "its ARP for 169.254.1.1 unanswered" in silent  # proxy ARP on the cali veth, not a cni0 gateway
