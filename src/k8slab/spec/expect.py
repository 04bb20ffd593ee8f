"""What a correct lab must show, computed from the spec alone: interfaces, routes, trace hops.

Nothing here looks at a running lab; `verify`, the acceptance suite, `trace` and the walkthrough
compare what they observe against these. A spec with five nodes or another pod CIDR gets
correct expectations without a line changed. docs/network.md tells why each route and hop is there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from k8slab.spec import calico, expect_calico
from k8slab.spec.facts import (
    BRIDGE_IF,
    FLANNEL_IPIP_IF,
    HOST_ONLY_IF,
    LOOPBACK,
    NAT_ADDRESS,
    NAT_IF,
    NAT_NETWORK,
    POD_IF,
    VXLAN_IF,
)
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
    route: Route  # its proto says who must have made it (Calico: BIRD 12, Felix 80)
    peer: str | None = None  # the node whose pod subnet this is
    pod: str | None = None  # the pod this /32 leads to (Calico)

    def describe(self) -> str:
        r = self.route
        if r.blackhole:
            return f"{self.node} blackholes its block {r.dst} (proto {r.proto})"
        via = f" via {r.via}" if r.via else ""
        made = ", learned by BIRD" if r.proto == calico.PROTO_BIRD else ""
        what = f" (pod {self.pod})" if self.pod else ""
        return f"{self.node} routes {r.dst}{what}{via} on {r.dev}{made}"


@dataclass(frozen=True)
class ExpectedHop:
    address: IPv4Address
    node: str | None      # the node that owns the address (None: a pod answers)
    interface: str        # the interface that address sits on
    why: str              # one sentence a student reads


def flannel_tunnel(spec: LabSpec) -> str | None:
    """flannel's tunnel device for the backend: flannel.1 (vxlan), flannel.ipip (ipip), none for host-gw."""
    return {"vxlan": VXLAN_IF, "ipip": FLANNEL_IPIP_IF}.get(spec.cni_backend)


def node_interfaces(spec: LabSpec, node: Node, has_pods: bool) -> list[InterfaceExpectation]:
    """lo, eth0 (NAT), eth1 (host-only); flannel: cni0 once a pod runs there, flannel.1 / flannel.ipip;
    Calico: tunl0 / vxlan.calico with the block's first address (its pods' veths are checked apart)."""
    found = [
        InterfaceExpectation(node.name, "lo", LOOPBACK),
        InterfaceExpectation(node.name, NAT_IF, IPv4Interface(f"{NAT_ADDRESS}/{NAT_NETWORK.prefixlen}")),
        InterfaceExpectation(node.name, HOST_ONLY_IF, IPv4Interface(f"{node.ip}/{spec.host_only.prefixlen}")),
    ]
    if spec.calico is not None:
        tunnel = expect_calico.tunnel_interface(spec, node)
        return found + ([InterfaceExpectation(node.name, *tunnel)] if tunnel else [])
    if has_pods:
        found.append(InterfaceExpectation(node.name, BRIDGE_IF,
                                          IPv4Interface(f"{node.pod_gateway}/{node.pod_subnet.prefixlen}")))
    tunnel = flannel_tunnel(spec)
    if tunnel:
        found.append(InterfaceExpectation(node.name, tunnel, IPv4Interface(f"{node.pod_subnet.network_address}/32")))
    return found


def node_routes(spec: LabSpec, node: Node, has_pods: bool = True,
                pods: Sequence[tuple[str, IPv4Address]] = ()) -> list[RouteExpectation]:
    """flannel: its own pod subnet on cni0 (once cni0 exists), and every peer's pod subnet the way flannel
    routes it. Calico: the blackhole for its block, every peer's block the way BIRD or Felix routes it, and
    a /32 on the pod's cali veth for each of pods (name, address) running on it."""
    if spec.calico is not None:
        return _calico_routes(spec, node, pods)
    routes = []
    if has_pods:
        routes.append(RouteExpectation(node.name, Route(node.pod_subnet, BRIDGE_IF)))
    for peer in spec.nodes:
        if peer.name == node.name:
            continue
        if spec.cni_backend == "vxlan":
            route = Route(peer.pod_subnet, VXLAN_IF, via=peer.pod_subnet.network_address, onlink=True)
        elif spec.cni_backend == "ipip":
            route = Route(peer.pod_subnet, FLANNEL_IPIP_IF, via=peer.ip, onlink=True)
        else:
            route = Route(peer.pod_subnet, HOST_ONLY_IF, via=peer.ip)
        routes.append(RouteExpectation(node.name, route, peer=peer.name))
    return routes


def _calico_routes(spec: LabSpec, node: Node, pods: Sequence[tuple[str, IPv4Address]]) -> list[RouteExpectation]:
    conf = expect_calico.config(spec)
    maker = calico.PROTO_BIRD if conf.uses_bgp else calico.PROTO_FELIX
    routes = [RouteExpectation(node.name, Route(node.pod_subnet, "", blackhole=True, proto=maker))]
    for peer in spec.nodes:
        if peer.name != node.name:
            routes.append(RouteExpectation(node.name, expect_calico.route_to(spec, node, peer), peer=peer.name))
    for name, address in pods:
        routes.append(RouteExpectation(node.name, Route(IPv4Network(f"{address}/32"), calico.veth_name(name),
                                                        scope="link"), pod=name))
    return routes


def next_hop_into(spec: LabSpec, node: Node, src: Node | None = None) -> ExpectedHop:
    """The address that answers when a packet enters node from a peer (src) on its way to node's pods."""
    if spec.calico is not None:
        assert src is not None, "Calico's answer depends on the route back to the sender's node"
        address, dev, why = expect_calico.entry(spec, src, node)
        return ExpectedHop(address, node.name, dev, why)
    if spec.cni_backend == "ipip":
        return ExpectedHop(node.pod_subnet.network_address, node.name, FLANNEL_IPIP_IF,
                           f"{node.name} unwraps the IP-in-IP packet on {FLANNEL_IPIP_IF} and answers from "
                           f"{node.pod_subnet.network_address}, its {FLANNEL_IPIP_IF} address")
    if spec.cni_backend == "vxlan":
        return ExpectedHop(node.pod_subnet.network_address, node.name, VXLAN_IF,
                           f"{node.name} decapsulates the VXLAN packet on {VXLAN_IF} and answers from "
                           f"{node.pod_subnet.network_address}, its {VXLAN_IF} address")
    return ExpectedHop(node.ip, node.name, HOST_ONLY_IF,
                       f"{node.name} receives the packet on {HOST_ONLY_IF} (host-gw: the peer routed "
                       f"{node.pod_subnet} via {node.ip}) and answers from that address")


def hops_from_pod(spec: LabSpec, src_node: Node, dst: IPv4Address) -> list[ExpectedHop]:
    """The hops `traceroute -n dst` must show from a pod on src_node."""
    dst_node = _node_holding(spec, dst)
    target = _target(dst_node, dst, spec)
    if spec.calico is not None:
        return _calico_hops_from_pod(spec, src_node, dst_node, dst, target)
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


def _calico_hops_from_pod(spec: LabSpec, src: Node, dst_node: Node, dst: IPv4Address,
                          target: ExpectedHop) -> list[ExpectedHop]:
    """Calico routes even between pods of one node (no bridge): the node is always the first hop."""
    address, dev, why = expect_calico.first_hop(src)
    first = ExpectedHop(address, src.name, dev, why)
    if dst_node.name == src.name:
        if dst in src.pod_subnet and dst != calico_tunnel_address(spec, src):
            return [first, ExpectedHop(dst, None, POD_IF, f"the target pod on {src.name}: {src.name} routed the "
                                       f"packet to it through its /32 route on the pod's cali veth")]
        return [target]
    if _owned_by_node(dst_node, dst, spec):
        return [first, target]
    return [first, next_hop_into(spec, dst_node, src), target]


def calico_tunnel_address(spec: LabSpec, node: Node) -> IPv4Address | None:
    tunnel = expect_calico.tunnel_interface(spec, node) if spec.calico is not None else None
    return tunnel[1].ip if tunnel else None


def hops_from_node(spec: LabSpec, src_node: Node, dst: IPv4Address) -> list[ExpectedHop]:
    """The hops `traceroute -n dst` must show from src_node itself (e.g. the control plane)."""
    dst_node = _node_holding(spec, dst)
    target = _target(dst_node, dst, spec)
    if dst_node.name == src_node.name or _owned_by_node(dst_node, dst, spec):
        return [ExpectedHop(dst, target.node, target.interface,
                            f"{dst} is on a network {src_node.name} is attached to: one hop, the target")]
    return [next_hop_into(spec, dst_node, src_node), target]


def interface_of(spec: LabSpec, addr: IPv4Address) -> tuple[Node, str] | None:
    """The node and interface an address of the lab sits on; None for a pod's address or one outside the lab."""
    node = spec.node_by_ip(addr)
    if node is None:
        return None
    if addr == node.ip:
        return node, HOST_ONLY_IF
    if addr == node.pod_gateway:
        return node, BRIDGE_IF
    if spec.calico is not None:
        tunnel = expect_calico.tunnel_interface(spec, node)
        return (node, tunnel[0]) if tunnel and addr == tunnel[1].ip else None
    tunnel_dev = flannel_tunnel(spec)
    if tunnel_dev and addr == node.pod_subnet.network_address:
        return node, tunnel_dev
    return None


def _owned_by_node(node: Node, ip: IPv4Address, spec: LabSpec | None = None) -> bool:
    if spec is not None and spec.calico is not None:
        return ip == node.ip or ip == calico_tunnel_address(spec, node)
    return ip in (node.ip, node.pod_gateway)


def _target(node: Node, ip: IPv4Address, spec: LabSpec | None = None) -> ExpectedHop:
    if ip == node.ip:
        return ExpectedHop(ip, node.name, HOST_ONLY_IF, f"the target, {node.name}'s {HOST_ONLY_IF}")
    if spec is not None and spec.calico is not None:
        tunnel = expect_calico.tunnel_interface(spec, node)
        if tunnel and ip == tunnel[1].ip:
            return ExpectedHop(ip, node.name, tunnel[0], f"the target, {node.name}'s {tunnel[0]}")
        return ExpectedHop(ip, None, POD_IF, f"the target pod on {node.name} answers from its {POD_IF}")
    if ip == node.pod_gateway:
        return ExpectedHop(ip, node.name, BRIDGE_IF, f"the target, {node.name}'s {BRIDGE_IF}")
    return ExpectedHop(ip, None, POD_IF, f"the target pod on {node.name} answers from its {POD_IF}")


def _node_holding(spec: LabSpec, dst: IPv4Address) -> Node:
    node = spec.node_by_ip(dst)
    if node is None:
        raise ValueError(f"{dst} is neither a node address nor in a node's pod subnet of lab {spec.name!r}")
    return node
