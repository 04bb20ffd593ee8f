"""What each check is called, computable from the spec alone: the same string is the pytest id, the
verify row and the JUnit testcase, so a failing test reads like the check it makes."""

from __future__ import annotations

from k8slab.spec.expect import InterfaceExpectation, RouteExpectation, hops_from_node, hops_from_pod
from k8slab.spec.facts import BRIDGE_IF, NAT_IF
from k8slab.spec.model import LabSpec, Node

GROUPS = ("interfaces", "routes", "sysctl", "pods", "node traces", "pod traces", "kubernetes")


def interface_name(exp: InterfaceExpectation) -> str:
    return exp.describe()


def veth_name(node: Node) -> str:
    return f"{node.name} has a host-side veth on {BRIDGE_IF} for each of its pods"


def calico_veth_name(node: Node) -> str:
    return f"{node.name} has a cali veth per pod: no address, proxy ARP on"


def bgp_name(node: Node) -> str:
    return f"{node.name}'s BIRD has an Established BGP session with every other node"


def route_name(exp: RouteExpectation) -> str:
    return exp.describe()


def eth0_routes_name(node: Node) -> str:
    return f"{node.name} has no pod-network route on {NAT_IF}"


def forwarding_name(node: Node) -> str:
    return f"{node.name} forwards IPv4 (net.ipv4.ip_forward = 1)"


def node_trace_name(spec: LabSpec, src: Node, dst: Node) -> str:
    hops = hops_from_node(spec, src, dst.ip)
    return f"{src.name} -> {dst.name} ({dst.ip}): {_count(len(hops))}"


def pod_address_name(node: Node, second: bool = False) -> str:
    return f"{'another ' if second else ''}pod on {node.name} gets an address in {node.pod_subnet}"


def pod_trace_name(spec: LabSpec, src: Node, dst: Node) -> str:
    # The hops depend only on which node the target is on; any pod address there names them.
    hops = hops_from_pod(spec, src, dst.pod_subnet.network_address + 2)
    shown = ", ".join("the pod" if h.node is None else str(h.address) for h in hops)
    target = f"another pod on {dst.name}" if src.name == dst.name else f"pod on {dst.name}"
    return f"pod on {src.name} -> {target}: {_count(len(hops))}, {shown}"


def _count(n: int) -> str:
    return "one hop" if n == 1 else f"{n} hops"


def node_pairs(spec: LabSpec) -> list[tuple[Node, Node]]:
    """Every ordered pair of nodes, same-node pairs included: what the pod traces cover."""
    return [(a, b) for a in spec.nodes for b in spec.nodes]


def kubernetes_names(spec: LabSpec) -> list[str]:
    """The Kubernetes checks; on a Calico lab without flannel's (its annotation and net-conf) and without the
    podCIDR one: calico-ipam hands out its own blocks, whatever /24 the controller gave the node."""
    names = []
    calico = spec.calico is not None
    for n in spec.nodes:
        names += [f"{n.name} is Ready", *([] if calico else [f"{n.name}'s podCIDR is {n.pod_subnet}"]),
                  f"{n.name}'s InternalIP is {n.ip}", *([] if calico else [f"{n.name}'s flannel public-ip is {n.ip}"]),
                  f"kubectl logs works for a pod on {n.name}"]
    return names + ([] if calico else [f"flannel's net-conf says {spec.cni_backend} on {spec.pod_cidr}"])
