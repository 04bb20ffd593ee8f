"""Expectations and diagnoses for every dataplane beyond flannel host-gw/vxlan, computed from the spec and
judged on hand-made facts: Calico's interfaces, routes (blackhole, BIRD's, Felix's, a /32 per pod) and hops
(the kernel's rule for the answering address), flannel ipip's; each Calico fault named by its rule."""

from __future__ import annotations

from ipaddress import IPv4Interface, IPv4Network

import pytest
import yaml
from test_dataplane_plans import calico_spec, lab_data

from k8slab.labs.base import Pod
from k8slab.spec import calico
from k8slab.spec.expect import hops_from_node, hops_from_pod, interface_of, node_interfaces, node_routes
from k8slab.spec.facts import FLANNEL_IPIP_IF, HOST_ONLY_IF, NAT_ADDRESS, NAT_IF
from k8slab.spec.load import parse_spec
from k8slab.spec.model import LabSpec
from k8slab.verify import checks, diagnose_calico
from k8slab.verify.facts import BgpFacts, LinkFact, NodeFacts


def healthy_facts(spec: LabSpec, pods: list[Pod]) -> dict[str, NodeFacts]:
    """What every node of a healthy Calico lab shows, built from the expectations' own rules."""
    found = {}
    for node in spec.nodes:
        links = [LinkFact(e.name, True, (e.address,) if e.address else ()) for e in node_interfaces(spec, node, True)]
        here = [p for p in pods if p.node == node.name]
        links += [LinkFact(calico.veth_name(p.name), True, (), kind="veth") for p in here]
        routes = [e.route for e in node_routes(spec, node, pods=[(p.name, p.ip) for p in here])]
        sessions = {calico.mesh_name(p.ip): "up Established" for p in spec.nodes if p is not node}
        found[node.name] = NodeFacts(node.name, tuple(links), tuple(routes), 1,
                                     {calico.veth_name(p.name): 1 for p in here}, BgpFacts(True, node.ip, sessions))
    return found


def pods_of(spec: LabSpec) -> list[Pod]:
    first = calico.first_pod_ordinal(spec.calico)
    return [Pod(f"p-{n.name}", n.name, n.pod_subnet.network_address + first) for n in spec.nodes]


@pytest.mark.parametrize("encapsulation", calico.ENCAPSULATIONS)
def test_calico_hops_follow_the_kernels_rule_for_the_answering_address(encapsulation):
    spec = calico_spec(encapsulation)
    conf = spec.calico
    for src in spec.nodes:
        for dst in spec.nodes:
            target = dst.pod_subnet.network_address + calico.first_pod_ordinal(conf) + 1
            hops = hops_from_pod(spec, src, target)
            # the cali veth has no address: the node answers from eth0, its first device with one
            assert (hops[0].address, hops[0].node, hops[0].interface) == (NAT_ADDRESS, src.name, NAT_IF)
            assert hops[-1].address == target and hops[-1].node is None
            if src is dst:
                assert len(hops) == 2  # routed even on one node: no bridge
                continue
            tunnelled = conf.tunnel is not None and not conf.cross_subnet
            entry = dst.pod_subnet.network_address if tunnelled else dst.ip
            assert [h.address for h in hops] == [NAT_ADDRESS, entry, target]
            assert hops[1].interface == (conf.tunnel if tunnelled else HOST_ONLY_IF)


@pytest.mark.parametrize("encapsulation", calico.ENCAPSULATIONS)
def test_calico_interfaces_and_routes_per_mode(encapsulation):
    spec = calico_spec(encapsulation)
    conf = spec.calico
    node = spec.workers[0]
    names = [e.name for e in node_interfaces(spec, node, has_pods=True)]
    assert "cni0" not in names
    assert names[3:] == ([conf.tunnel] if conf.tunnel else [])
    routes = node_routes(spec, node, pods=[("web", node.pod_subnet.network_address + 5)])
    (hole,) = [r.route for r in routes if r.route.blackhole]
    assert hole.dst == node.pod_subnet and hole.proto == (calico.PROTO_BIRD if conf.uses_bgp else calico.PROTO_FELIX)
    (pod,) = [r.route for r in routes if r.pod]
    assert (pod.dst, pod.dev) == (IPv4Network(f"{node.pod_subnet.network_address + 5}/32"), calico.veth_name("web"))
    peers = [r for r in routes if r.peer]
    assert {r.route.dst for r in peers} == {p.pod_subnet for p in spec.nodes if p is not node}
    for e in peers:
        r = e.route
        if encapsulation in ("IPIP", "VXLAN"):
            assert r.dev == conf.tunnel and r.onlink
        else:
            assert (r.dev, r.via, r.proto) == (HOST_ONLY_IF, spec.node(e.peer).ip,
                                               calico.PROTO_BIRD if conf.uses_bgp else calico.PROTO_FELIX)
    if conf.tunnel:
        assert interface_of(spec, node.pod_subnet.network_address) == (node, conf.tunnel)
        assert hops_from_node(spec, spec.control_plane, node.pod_subnet.network_address)[-1].interface == conf.tunnel


def test_flannel_ipip_expectations():
    spec = parse_spec(yaml.safe_dump(lab_data(backend="ipip")))
    a, b = spec.workers
    assert (FLANNEL_IPIP_IF, IPv4Interface(f"{a.pod_subnet.network_address}/32")) in [
        (e.name, e.address) for e in node_interfaces(spec, a, has_pods=True)]
    assert {(r.route.dst, r.route.via, r.route.dev, r.route.onlink) for r in node_routes(spec, a) if r.peer} == {
        (p.pod_subnet, p.ip, FLANNEL_IPIP_IF, True) for p in spec.nodes if p is not a}
    hops = hops_from_pod(spec, a, b.pod_gateway + 1)
    assert [h.address for h in hops] == [a.pod_gateway, b.pod_subnet.network_address, b.pod_gateway + 1]
    assert hops[1].interface == FLANNEL_IPIP_IF


# ---- the checks and the faults ------------------------------------------------------------------
def node_checks_failing(spec, facts, pods):
    return [r for r in checks.node_checks(spec, facts, pods) if not r.ok]


@pytest.mark.parametrize("encapsulation", calico.ENCAPSULATIONS)
def test_a_healthy_calico_lab_passes_every_node_check(encapsulation):
    spec = calico_spec(encapsulation)
    pods = pods_of(spec)
    results = checks.node_checks(spec, healthy_facts(spec, pods), pods)
    assert [r.message for r in results if not r.ok] == []
    assert any(r.name.endswith("with every other node") for r in results) == spec.calico.uses_bgp


def replace_node(facts, name, **changes):
    from dataclasses import replace

    return {**facts, name: replace(facts[name], **changes)}


def test_bird_down_is_named_on_the_node_and_on_its_peers():
    spec = calico_spec("None")
    pods = pods_of(spec)
    down = spec.workers[0]
    facts = healthy_facts(spec, pods)
    facts = replace_node(facts, down.name, bgp=BgpFacts(False))
    for peer in spec.nodes:
        if peer is not down:
            sessions = dict(facts[peer.name].bgp.sessions)
            sessions[calico.mesh_name(down.ip)] = "start Active Socket: Connection refused"
            facts = replace_node(facts, peer.name, bgp=BgpFacts(True, peer.ip, sessions))
    failed = node_checks_failing(spec, facts, pods)
    assert {r.node for r in failed} == {n.name for n in spec.nodes}
    assert all(diagnose_calico.bird_down(down.name) in r.cause for r in failed)


def test_calico_node_address_autodetected_on_eth0():
    spec = calico_spec("None")
    pods = pods_of(spec)
    wrong = spec.workers[1]
    facts = replace_node(healthy_facts(spec, pods), wrong.name,
                         bgp=BgpFacts(True, NAT_ADDRESS, {calico.mesh_name(p.ip): "start Connect" for p in spec.nodes
                                                          if p is not wrong}))
    (bgp,) = [r for r in node_checks_failing(spec, facts, pods) if r.node == wrong.name]
    assert "IP_AUTODETECTION_METHOD=interface=eth1" in bgp.cause and str(NAT_ADDRESS) in bgp.cause


def test_missing_proxy_arp_and_missing_pod_route_are_named():
    spec = calico_spec("VXLAN")
    pods = pods_of(spec)
    node = spec.workers[0]
    pod = next(p for p in pods if p.node == node.name)
    veth = calico.veth_name(pod.name)
    facts = healthy_facts(spec, pods)
    no_arp = replace_node(facts, node.name, proxy_arp={veth: 0})
    (failed,) = node_checks_failing(spec, no_arp, pods)
    assert f"net.ipv4.conf.{veth}.proxy_arp=1" in failed.cause and str(calico.POD_GATEWAY) in failed.cause
    routes = tuple(r for r in facts[node.name].routes if r.dst != IPv4Network(f"{pod.ip}/32"))
    (failed,) = node_checks_failing(spec, replace_node(facts, node.name, routes=routes), pods)
    assert f"ip route add {pod.ip}/32 dev {veth} scope link" in failed.cause and "blackhole" in failed.cause


@pytest.mark.parametrize("encapsulation", ["VXLAN", "IPIP"])
def test_tunnel_device_down_is_named(encapsulation):
    spec = calico_spec(encapsulation)
    pods = pods_of(spec)
    node = spec.workers[0]
    facts = healthy_facts(spec, pods)
    links = tuple(LinkFact(lk.name, lk.name != spec.calico.tunnel, lk.addresses, lk.master, lk.kind)
                  for lk in facts[node.name].links)
    routes = tuple(r for r in facts[node.name].routes if r.dev != spec.calico.tunnel)
    failed = node_checks_failing(spec, replace_node(facts, node.name, links=links, routes=routes), pods)
    assert failed and all(diagnose_calico.tunnel_down(node.name, spec.calico.tunnel) in r.cause for r in failed)


def test_pod_trace_failing_from_a_pod_without_proxy_arp_names_it():
    spec = calico_spec("None")
    pods = pods_of(spec)
    src, dst = pods[1], pods[2]
    facts = replace_node(healthy_facts(spec, pods), src.node, proxy_arp={calico.veth_name(src.name): 0})
    from k8slab.verify.tracing import TraceRun

    run = TraceRun("traceroute", (None, None, None), "")
    result = checks.check_pod_trace(spec, src, dst, run, facts)
    assert not result.ok
    assert diagnose_calico.proxy_arp_off(src.node, calico.veth_name(src.name), src.name) in result.cause
