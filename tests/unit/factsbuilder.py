"""Observed facts of a healthy lab, built from a spec, for the pure check and diagnosis tests.

Faults are made by editing these facts the way the kernel would show the fault."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from k8slab.spec.facts import BRIDGE_IF, HOST_ONLY_IF, NAT_ADDRESS, NAT_GATEWAY, NAT_IF, NAT_NETWORK
from k8slab.spec.model import LabSpec, Node
from k8slab.spec.route import Route
from k8slab.verify.facts import LinkFact, NodeFacts


def healthy_node(spec: LabSpec, node: Node, pods: int = 2) -> NodeFacts:
    links = [
        LinkFact("lo", True, (IPv4Interface("127.0.0.1/8"),)),
        LinkFact(NAT_IF, True, (IPv4Interface(f"{NAT_ADDRESS}/{NAT_NETWORK.prefixlen}"),), kind="veth"),
        LinkFact(HOST_ONLY_IF, True, (IPv4Interface(f"{node.ip}/{spec.host_only.prefixlen}"),), kind="veth"),
        LinkFact(BRIDGE_IF, True, (IPv4Interface(f"{node.pod_gateway}/{node.pod_subnet.prefixlen}"),), kind="bridge"),
    ]
    links += [LinkFact(f"veth{i:04x}", True, (), master=BRIDGE_IF, kind="veth") for i in range(pods)]
    routes = [
        Route(IPv4Network("0.0.0.0/0"), NAT_IF, NAT_GATEWAY),
        Route(NAT_NETWORK, NAT_IF),
        Route(spec.host_only, HOST_ONLY_IF),
        Route(node.pod_subnet, BRIDGE_IF),
    ]
    routes += [Route(p.pod_subnet, HOST_ONLY_IF, p.ip) for p in spec.nodes if p.name != node.name]
    return NodeFacts(node.name, tuple(links), tuple(routes), 1)


def healthy(spec: LabSpec) -> dict[str, NodeFacts]:
    return {n.name: healthy_node(spec, n) for n in spec.nodes}


def without_route(facts: NodeFacts, dest: IPv4Network) -> NodeFacts:
    return replace(facts, routes=tuple(r for r in facts.routes if r.dst != dest))


def with_route(facts: NodeFacts, route: Route) -> NodeFacts:
    return replace(without_route(facts, route.dst), routes=(*without_route(facts, route.dst).routes, route))


def link_down(facts: NodeFacts, name: str) -> NodeFacts:
    """As `ip link set NAME down` leaves it: the flag gone, the connected route flushed."""
    link = facts.link(name)
    assert link is not None
    links = tuple(replace(lk, up=False) if lk.name == name else lk for lk in facts.links)
    routes = tuple(r for r in facts.routes if not (r.dev == name and r.via is None))
    return replace(facts, links=links, routes=routes)


def pod_ip(node: Node, n: int = 2) -> IPv4Address:
    return node.pod_subnet.network_address + n


ACCEPT_ALL = ("-P INPUT ACCEPT", "-P FORWARD ACCEPT", "-P OUTPUT ACCEPT")  # `iptables -S` of an open node


def from_expectations(spec: LabSpec, pods: list) -> dict[str, NodeFacts]:
    """What every node of a healthy lab of any dataplane shows, built from the expectations' own rules (the
    interfaces and routes spec/expect.py computes, eth0's and eth1's connected routes, the default via NAT;
    Calico: a cali veth per pod with proxy ARP, BIRD's sessions all Established); firewall open."""
    from k8slab.spec import calico
    from k8slab.spec.expect import node_interfaces, node_routes
    from k8slab.verify.facts import BgpFacts

    found = {}
    for node in spec.nodes:
        here = [p for p in pods if p.node == node.name]
        links = [LinkFact(e.name, True, (e.address,) if e.address else (),
                          kind="bridge" if e.name == BRIDGE_IF else None)
                 for e in node_interfaces(spec, node, bool(here))]
        if spec.calico is not None:
            links += [LinkFact(calico.veth_name(p.name), True, (), kind="veth") for p in here]
        else:
            links += [LinkFact(f"veth{i:04x}", True, (), master=BRIDGE_IF, kind="veth") for i in range(len(here))]
        routes = [Route(IPv4Network("0.0.0.0/0"), NAT_IF, NAT_GATEWAY), Route(NAT_NETWORK, NAT_IF),
                  Route(spec.host_only, HOST_ONLY_IF)]
        routes += [e.route for e in node_routes(spec, node, bool(here), pods=[(p.name, p.ip) for p in here])]
        bgp = None
        if spec.calico is not None and spec.calico.uses_bgp:
            sessions = {calico.mesh_name(p.ip): "up Established" for p in spec.nodes if p is not node}
            bgp = BgpFacts(True, node.ip, sessions)
        found[node.name] = NodeFacts(node.name, tuple(links), tuple(routes), 1,
                                     {calico.veth_name(p.name): 1 for p in here} if spec.calico else {}, bgp,
                                     firewall=ACCEPT_ALL)
    return found
