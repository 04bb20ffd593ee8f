"""What a correct lab must show, computed from the spec alone: interfaces, routes, trace hops.

Nothing here looks at a running lab; `verify`, the acceptance suite, `trace` and the walkthrough
compare what they observe against these. A spec with five nodes or another pod CIDR gets
correct expectations without a line changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface

from k8slab.spec.facts import BRIDGE_IF, HOST_ONLY_IF, LOOPBACK, NAT_ADDRESS, NAT_IF, NAT_NETWORK, POD_IF, VXLAN_IF
from k8slab.spec.model import LabSpec, Node
from k8slab.spec.route import Route


@dataclass(frozen=True)
class InterfaceExpectation:
    node: str
    name: str
    address: IPv4Interface | None  # None: the interface must exist, its address is not ours to say

    def describe(self) -> str:
        where = f" with {self.address}" if self.address else ""
        return f"{self.node} has {self.name}{where}"


@dataclass(frozen=True)
class RouteExpectation:
    node: str
    route: Route
    peer: str | None = None  # the node whose pod subnet this is

    def describe(self) -> str:
        via = f" via {self.route.via}" if self.route.via else ""
        return f"{self.node} routes {self.route.dst}{via} on {self.route.dev}"


@dataclass(frozen=True)
class ExpectedHop:
    address: IPv4Address
    node: str | None      # the node that owns the address (None: a pod answers)
    interface: str        # the interface that address sits on
    why: str              # one sentence a student reads


def node_interfaces(spec: LabSpec, node: Node, has_pods: bool) -> list[InterfaceExpectation]:
    """lo, eth0 (NAT), eth1 (host-only), cni0 once a pod runs there, flannel.1 with vxlan."""
    found = [
        InterfaceExpectation(node.name, "lo", LOOPBACK),
        InterfaceExpectation(node.name, NAT_IF, IPv4Interface(f"{NAT_ADDRESS}/{NAT_NETWORK.prefixlen}")),
        InterfaceExpectation(node.name, HOST_ONLY_IF, IPv4Interface(f"{node.ip}/{spec.host_only.prefixlen}")),
    ]
    if has_pods:
        found.append(InterfaceExpectation(node.name, BRIDGE_IF,
                                          IPv4Interface(f"{node.pod_gateway}/{node.pod_subnet.prefixlen}")))
    if spec.cni_backend == "vxlan":
        found.append(InterfaceExpectation(node.name, VXLAN_IF, IPv4Interface(f"{node.pod_subnet.network_address}/32")))
    return found


def node_routes(spec: LabSpec, node: Node, has_pods: bool = True) -> list[RouteExpectation]:
    """Its own pod subnet on cni0 (once cni0 exists), and every peer's pod subnet the way flannel routes it."""
    routes = []
    if has_pods:
        routes.append(RouteExpectation(node.name, Route(node.pod_subnet, BRIDGE_IF)))
    for peer in spec.nodes:
        if peer.name == node.name:
            continue
        if spec.cni_backend == "vxlan":
            route = Route(peer.pod_subnet, VXLAN_IF, via=peer.pod_subnet.network_address, onlink=True)
            routes.append(RouteExpectation(node.name, route, peer=peer.name))
        else:
            routes.append(RouteExpectation(node.name, Route(peer.pod_subnet, HOST_ONLY_IF, via=peer.ip), peer=peer.name))
    return routes


def next_hop_into(spec: LabSpec, node: Node) -> ExpectedHop:
    """The address that answers when a packet enters node from a peer on its way to node's pods."""
    if spec.cni_backend == "vxlan":
        return ExpectedHop(node.pod_subnet.network_address, node.name, VXLAN_IF,
                           f"{node.name} decapsulates the VXLAN packet on {VXLAN_IF} and answers from "
                           f"{node.pod_subnet.network_address}, its {VXLAN_IF} address")
    return ExpectedHop(node.ip, node.name, HOST_ONLY_IF,
                       f"{node.name} receives the packet on {HOST_ONLY_IF} (host-gw: the peer routed "
                       f"{node.pod_subnet} via {node.ip}) and answers from that address")


def hops_from_pod(spec: LabSpec, src_node: Node, dst: IPv4Address) -> list[ExpectedHop]:
    """The hops `traceroute -n dst` must show from a pod on src_node."""
    dst_node = spec.node_by_ip(dst)
    if dst_node is None:
        raise ValueError(f"{dst} is neither a node address nor in a node's pod subnet of lab {spec.name!r}")
    target = _target(dst_node, dst)
    if dst_node.name == src_node.name and dst in src_node.pod_subnet:
        return [ExpectedHop(dst, target.node, target.interface,
                            f"same node: {BRIDGE_IF} on {src_node.name} bridges the packet straight to the "
                            "target's veth; no router is crossed, so the target is the only hop")]
    gateway = ExpectedHop(src_node.pod_gateway, src_node.name, BRIDGE_IF,
                          f"the pod's default route is {src_node.name}'s {BRIDGE_IF} ({src_node.pod_gateway}); "
                          f"{src_node.name} is the first router")
    if dst_node.name == src_node.name:
        # One of the pod's own node's addresses: the first router reached is the destination.
        return [target]
    if _owned_by_node(dst_node, dst):
        return [gateway, target]
    return [gateway, next_hop_into(spec, dst_node), target]


def hops_from_node(spec: LabSpec, src_node: Node, dst: IPv4Address) -> list[ExpectedHop]:
    """The hops `traceroute -n dst` must show from src_node itself (e.g. the control plane)."""
    dst_node = spec.node_by_ip(dst)
    if dst_node is None:
        raise ValueError(f"{dst} is neither a node address nor in a node's pod subnet of lab {spec.name!r}")
    target = _target(dst_node, dst)
    if dst_node.name == src_node.name or _owned_by_node(dst_node, dst):
        return [ExpectedHop(dst, target.node, target.interface,
                            f"{dst} is on a network {src_node.name} is attached to: one hop, the target")]
    return [next_hop_into(spec, dst_node), target]


def interface_of(spec: LabSpec, addr: IPv4Address) -> tuple[Node, str] | None:
    """The node and interface an address of the lab sits on; None for a pod's address or one outside the lab."""
    node = spec.node_by_ip(addr)
    if node is None:
        return None
    if addr == node.ip:
        return node, HOST_ONLY_IF
    if addr == node.pod_gateway:
        return node, BRIDGE_IF
    if spec.cni_backend == "vxlan" and addr == node.pod_subnet.network_address:
        return node, VXLAN_IF
    return None


def _owned_by_node(node: Node, ip: IPv4Address) -> bool:
    return ip in (node.ip, node.pod_gateway)


def _target(node: Node, ip: IPv4Address) -> ExpectedHop:
    if ip == node.ip:
        return ExpectedHop(ip, node.name, HOST_ONLY_IF, f"the target, {node.name}'s {HOST_ONLY_IF}")
    if ip == node.pod_gateway:
        return ExpectedHop(ip, node.name, BRIDGE_IF, f"the target, {node.name}'s {BRIDGE_IF}")
    return ExpectedHop(ip, None, POD_IF, f"the target pod on {node.name} answers from its {POD_IF}")
