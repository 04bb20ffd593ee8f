"""What a correct Calico lab must show, computed from the spec alone (facts and sources: spec/calico.py).

expect.py hands Calico labs here; the shapes (InterfaceExpectation, RouteExpectation, ExpectedHop)
are the same, so verify, trace and the diagram judge every dataplane with one set of checks.

Which address answers a traceroute hop is the kernel's choice, by one rule: an ICMP error leaves from
the address the route back to the sender prefers. Back to a pod that route is `<pod>/32 dev cali…
scope link`, and a cali veth has no address, so the kernel takes the first global address in the
node's device list: eth0's (10.0.2.15, eth0 being made first on a VirtualBox VM and in the emulated
lab). Back to a pod on another node the route leaves through eth1 (no encapsulation: eth1's address
answers) or through the tunnel device (its /32, the first address of the node's block, answers).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface

from k8slab.spec import calico
from k8slab.spec.facts import HOST_ONLY_IF, NAT_ADDRESS, NAT_IF
from k8slab.spec.model import LabSpec, Node
from k8slab.spec.route import Route

FIRST_ADDRESS_IF = NAT_IF  # the first device with a global address, on a VirtualBox VM and here


def config(spec: LabSpec) -> calico.CalicoConfig:
    assert spec.calico is not None
    return spec.calico


def tunnel_interface(spec: LabSpec, node: Node) -> tuple[str, IPv4Interface] | None:
    """tunl0 or vxlan.calico with the block's first address as a /32, or None (encapsulation None)."""
    dev = config(spec).tunnel
    if dev is None:
        return None
    return dev, IPv4Interface(f"{calico.tunnel_address(node.pod_subnet)}/32")


def route_to(spec: LabSpec, node: Node, peer: Node) -> Route:
    """node's route to peer's block, by the pool's encapsulation, with who programs it as its proto: BIRD in
    BGP modes (IPIP too, through krt_tunnel), Felix in VXLAN modes (its tunnel routes without a protocol)."""
    conf = config(spec)
    maker = calico.PROTO_BIRD if conf.uses_bgp else calico.PROTO_FELIX
    if not conf.encapsulates(node.ip, peer.ip, spec.host_only):
        return Route(peer.pod_subnet, HOST_ONLY_IF, peer.ip, proto=maker)
    if conf.tunnel == calico.VXLAN_IF:
        return Route(peer.pod_subnet, calico.VXLAN_IF, calico.tunnel_address(peer.pod_subnet), onlink=True)
    return Route(peer.pod_subnet, calico.IPIP_IF, peer.ip, onlink=True, proto=calico.PROTO_BIRD)


def first_hop(node: Node) -> tuple[IPv4Address, str, str]:
    """The address node answers from towards its own pods (the rule in this module's docstring)."""
    return (NAT_ADDRESS, FIRST_ADDRESS_IF,
            (f"{node.name} routes the pod's packets (default via {calico.POD_GATEWAY}, proxy ARP on its cali veth); "
            f"the cali veth has no address, so {node.name} answers from the first of its devices that has one, "
            f"{FIRST_ADDRESS_IF} ({NAT_ADDRESS})"))


def entry(spec: LabSpec, src: Node, dst: Node) -> tuple[IPv4Address, str, str]:
    """The address dst answers from when a packet from a pod on src reaches it on its way to dst's pods."""
    dev = route_to(spec, dst, src).dev
    if dev == HOST_ONLY_IF:
        return (dst.ip, HOST_ONLY_IF,
                (f"{dst.name} receives the packet unencapsulated on {HOST_ONLY_IF} ({src.name} routed {dst.pod_subnet} "
                f"via {dst.ip}) and answers from {HOST_ONLY_IF}, its route back to {src.name}'s block"))
    address = calico.tunnel_address(dst.pod_subnet)
    return (address, dev,
            (f"{dst.name} unwraps the packet on {dev} and answers from {address}, {dev}'s address "
            f"(its route back to {src.name}'s block leaves through {dev})"))


def encapsulation_text(spec: LabSpec, src: Node, dst: Node) -> str:
    """What a capture on eth1 shows between the two nodes."""
    conf = config(spec)
    if not conf.encapsulates(src.ip, dst.ip, spec.host_only):
        return "pod addresses unchanged, no outer header (nodes in one subnet route pod traffic directly)"
    if conf.tunnel == calico.VXLAN_IF:
        return (f"node addresses outside, UDP port {calico.VXLAN_PORT} (VNI {calico.VXLAN_VNI}), pod addresses "
                f"inside: {calico.VXLAN_OVERHEAD} bytes more per packet")
    return f"node addresses outside, IP protocol 4, pod addresses inside: {calico.IPIP_OVERHEAD} bytes more per packet"
