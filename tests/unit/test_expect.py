"""Expectations computed from the spec: the tutorial's facts for its lab, the same shape for any lab."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest
import yaml

from k8slab.spec.expect import hops_from_node, hops_from_pod, node_interfaces, node_routes
from k8slab.spec.facts import BRIDGE_IF, HOST_ONLY_IF, NAT_ADDRESS, NAT_IF, NAT_NETWORK, VXLAN_IF
from k8slab.spec.load import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tutorial():
    return load_spec(ROOT / "lab.yaml")


def five_nodes(backend: str = "host-gw"):
    data = yaml.safe_load((ROOT / "lab.yaml").read_text())
    data["kubernetes"].update(pod_cidr="10.100.0.0/16", service_cidr="10.32.0.0/16")
    data["cni"]["backend"] = backend
    data["nodes"] += [{"name": f"node-{i}", "role": "worker", "ip": f"192.168.56.{10 + i}"} for i in (3, 4)]
    return parse_spec(yaml.safe_dump(data))


def pod_ip(node, n=3):
    return node.pod_subnet.network_address + n


def test_article_cross_node_trace(tutorial):
    # ARTICLE.md example 4, written out once as the tutorial states it.
    node1, node2 = tutorial.node("node-1"), tutorial.node("node-2")
    hops = hops_from_pod(tutorial, node2, IPv4Address("10.244.1.3"))
    assert [str(h.address) for h in hops] == ["10.244.2.1", "192.168.56.11", "10.244.1.3"]
    assert [h.interface for h in hops] == ["cni0", "eth1", "eth0"]
    assert hops[1].node == node1.name


@pytest.mark.parametrize("spec_fn", [lambda: load_spec(ROOT / "lab.yaml"), five_nodes])
def test_every_ordered_pair_is_three_hops_same_node_one(spec_fn):
    spec = spec_fn()
    for src in spec.nodes:
        for dst in spec.nodes:
            hops = hops_from_pod(spec, src, pod_ip(dst))
            if src == dst:
                assert [h.address for h in hops] == [pod_ip(dst)]
            else:
                assert [h.address for h in hops] == [src.pod_gateway, dst.ip, pod_ip(dst)]


def test_vxlan_next_hop_is_the_peers_flannel_address():
    spec = five_nodes("vxlan")
    src, dst = spec.nodes[2], spec.nodes[1]
    assert [h.address for h in hops_from_pod(spec, src, pod_ip(dst))] == [
        src.pod_gateway, dst.pod_subnet.network_address, pod_ip(dst)]


def test_pod_to_node_addresses(tutorial):
    src, other = tutorial.nodes[2], tutorial.nodes[1]
    assert [h.address for h in hops_from_pod(tutorial, src, src.ip)] == [src.ip]
    assert [h.address for h in hops_from_pod(tutorial, src, other.ip)] == [src.pod_gateway, other.ip]
    assert [h.address for h in hops_from_pod(tutorial, src, other.pod_gateway)] == [src.pod_gateway,
                                                                                   other.pod_gateway]


def test_node_to_node_is_one_hop_and_node_to_remote_pod_two(tutorial):
    cp = tutorial.control_plane
    for worker in tutorial.workers:
        assert [h.address for h in hops_from_node(tutorial, cp, worker.ip)] == [worker.ip]
        assert [h.address for h in hops_from_node(tutorial, cp, pod_ip(worker))] == [worker.ip, pod_ip(worker)]


def test_address_outside_the_lab_is_refused(tutorial):
    with pytest.raises(ValueError, match="neither a node address"):
        hops_from_pod(tutorial, tutorial.nodes[0], IPv4Address("8.8.8.8"))


@pytest.mark.parametrize("backend", ["host-gw", "vxlan"])
def test_routes_cover_every_peer_and_never_eth0(backend):
    spec = five_nodes(backend)
    for node in spec.nodes:
        routes = node_routes(spec, node)
        assert {r.route.dst for r in routes} == {n.pod_subnet for n in spec.nodes}
        assert all(r.route.dev != NAT_IF for r in routes), routes
        for r in routes:
            if r.peer is not None:
                peer = spec.node(r.peer)
                assert r.route.via == (peer.ip if backend == "host-gw" else peer.pod_subnet.network_address)
                assert r.route.dst == peer.pod_subnet


def test_interfaces(tutorial):
    node = tutorial.node("node-1")
    names = {i.name: i.address for i in node_interfaces(tutorial, node, has_pods=True)}
    assert set(names) == {"lo", NAT_IF, HOST_ONLY_IF, BRIDGE_IF}
    assert names[NAT_IF] == IPv4Interface(f"{NAT_ADDRESS}/{NAT_NETWORK.prefixlen}")
    assert names[HOST_ONLY_IF].ip == node.ip and names[HOST_ONLY_IF].network == tutorial.host_only
    assert names[BRIDGE_IF] == IPv4Interface(f"{node.pod_gateway}/{node.pod_subnet.prefixlen}")
    assert BRIDGE_IF not in {i.name for i in node_interfaces(tutorial, node, has_pods=False)}
    vxlan = five_nodes("vxlan")
    flannel = {i.name: i.address for i in node_interfaces(vxlan, vxlan.node(node.name), has_pods=False)}
    assert flannel[VXLAN_IF].ip == vxlan.node(node.name).pod_subnet.network_address
