"""What the emulated lab is made of, computed from the spec alone: no root, no kernel, no I/O.

Like mininet's topology, this is data: namespaces, links, addresses, routes, the CNI config each
node hands to the bridge plugin, and the masquerade rules flannel installs. `kernel.py` turns it
into the real thing; `k8slab up --backend netns --dry-run` prints it; the unit tests check it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

from k8slab.labs.netns import names
from k8slab.spec.facts import (
    BRIDGE_IF,
    DEFAULT_ROUTE,
    ETH_MTU,
    FLANNEL_IPIP_IF,
    HOST_ONLY_IF,
    IPIP_OVERHEAD,
    NAT_ADDRESS,
    NAT_DNS,
    NAT_GATEWAY,
    NAT_IF,
    NAT_NETWORK,
    VXLAN_IF,
    VXLAN_OVERHEAD,
    VXLAN_PORT,
    VXLAN_VNI,
)
from k8slab.spec.model import LabSpec, Node
from k8slab.spec.route import Route

# kube-flannel.yml names its CNI network cbr0 and delegates to the bridge plugin with these.
CNI_NETWORK = "cbr0"
CNI_VERSION = "0.3.1"
MULTICAST = IPv4Network("224.0.0.0/4")


@dataclass(frozen=True)
class NetnsPlan:
    name: str
    role: str  # "hostonly", "node" or "nat"
    node: str | None = None
    hostname: str | None = None  # given to tools run there through a UTS namespace
    sysctls: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        what = {"hostonly": "the VirtualBox host's side of the host-only network",
                "node": f"node {self.node}",
                "nat": f"VirtualBox NAT of {self.node}: its gateway and DNS, nothing beyond"}[self.role]
        return f"{self.name}  ({what})"


@dataclass(frozen=True)
class VxlanOpts:
    vni: int
    port: int
    local: IPv4Address
    dev: str


@dataclass(frozen=True)
class LinkPlan:
    netns: str
    ifname: str
    kind: str  # "veth", "bridge", "vxlan", or "tunl0" (the ipip module's own device in every namespace)
    peer_netns: str | None = None
    peer_ifname: str | None = None
    mtu: int | None = None
    mac: str | None = None
    vxlan: VxlanOpts | None = None
    local: IPv4Address | None = None  # an ipip device's local (outer source) address

    def describe(self) -> str:
        text = f"{self.ifname}  {self.kind}"
        if self.kind == "veth":
            text += f", other end {self.peer_ifname} in {self.peer_netns}"
        if self.kind == "ipip":
            text += f" mode ipip local {self.local} remote any"
        if self.vxlan:
            v = self.vxlan
            text += f" id {v.vni} dstport {v.port} local {v.local} dev {v.dev} nolearning"
        if self.mac:
            text += f" address {self.mac}"
        if self.mtu:
            text += f" mtu {self.mtu}"
        return text


@dataclass(frozen=True)
class PortPlan:
    """A veth end enslaved to a bridge (the host-only switch's ports)."""

    netns: str
    ifname: str
    bridge: str


@dataclass(frozen=True)
class AddrPlan:
    netns: str
    ifname: str
    address: IPv4Interface


@dataclass(frozen=True)
class RoutePlan:
    netns: str
    route: Route
    why: str = ""


@dataclass(frozen=True)
class NeighPlan:
    netns: str
    dev: str
    dst: IPv4Address
    lladdr: str


@dataclass(frozen=True)
class FdbPlan:
    netns: str
    dev: str
    lladdr: str
    dst: IPv4Address


@dataclass(frozen=True)
class BirdPlan:
    """One node's BIRD: its config file's text, where its control socket and pid file go."""

    node: str
    netns: str
    config: str
    config_path: str
    socket: str
    pidfile: str
    log: str
    peers: tuple[IPv4Address, ...]


@dataclass(frozen=True)
class NodePlan:
    node: Node
    netns: str
    nat_netns: str
    pod_mtu: int
    cni_config: dict[str, Any]
    masquerade: str  # iptables-restore input, flannel's FLANNEL-POSTRTG chain


@dataclass(frozen=True)
class LabPlan:
    spec: LabSpec
    prefix: str
    state_dir: str
    namespaces: tuple[NetnsPlan, ...]
    links: tuple[LinkPlan, ...]
    ports: tuple[PortPlan, ...]
    addrs: tuple[AddrPlan, ...]
    routes: tuple[RoutePlan, ...]
    neighs: tuple[NeighPlan, ...] = ()
    fdbs: tuple[FdbPlan, ...] = ()
    nodes: tuple[NodePlan, ...] = field(default=())
    bird: tuple[BirdPlan, ...] = ()  # Calico's BGP daemons, one per node (BGP modes only)

    def node_plan(self, node: str) -> NodePlan:
        for n in self.nodes:
            if n.node.name == node:
                return n
        self.spec.node(node)  # raises LabStateError naming the known nodes
        raise AssertionError("unreachable")

    def in_netns(self, netns: str) -> dict[str, list]:
        return {
            "links": [x for x in self.links if x.netns == netns],
            "ports": [x for x in self.ports if x.netns == netns],
            "addrs": [x for x in self.addrs if x.netns == netns],
            "routes": [x for x in self.routes if x.netns == netns],
            "neighs": [x for x in self.neighs if x.netns == netns],
            "fdbs": [x for x in self.fdbs if x.netns == netns],
        }

    def render(self) -> str:
        return render(self)


# Every network namespace on one host shares the kernel's one ARP table, whose dynamic entries are capped
# host-wide (net.ipv4.neigh.default.gc_thresh3, 1024 by default, settable only in the host's own namespace).
# A real cluster's nodes each have their own table; an emulated full mesh of n nodes learns n*(n-1) eth1
# neighbours in the shared one (2450 at 50 nodes), and past the cap the kernel refuses new ones ("No buffer
# space available"): traces and BGP sessions fail on a healthy lab. Permanent entries do not count towards the
# cap (neighbour.c: exempt_from_gc), so a lab whose mesh would take more than this share of the table gets its
# eth1 neighbours pinned; a tutorial-sized lab keeps learning them by ARP, as real nodes do.
ETH1_NEIGH_BUDGET = 256


def pins_eth1_neighbours(spec: LabSpec) -> bool:
    n = len(spec.nodes)
    return n * (n - 1) > ETH1_NEIGH_BUDGET


def eth1_mac(node: Node) -> str:
    """eth1's MAC where the lab pins its neighbours: locally administered, derived from its eth1 address."""
    return "0e:e1:" + ":".join(f"{b:02x}" for b in node.ip.packed)


def vxlan_mac(node: Node) -> str:
    """flannel.1's MAC for a node: locally administered, derived from its eth1 address (flannel picks
    one at random and publishes it; deriving it keeps the plan a pure function of the spec)."""
    return "0e:f1:" + ":".join(f"{b:02x}" for b in node.ip.packed)


def pod_mtu(spec: LabSpec) -> int:
    """flannel's subnet.env MTU: the NIC's less the backend's outer headers (vxlan.go, ipip.go)."""
    return ETH_MTU - {"vxlan": VXLAN_OVERHEAD, "ipip": IPIP_OVERHEAD}.get(spec.cni_backend, 0)


def cni_config(spec: LabSpec, node: Node, ipam_dir: str) -> dict[str, Any]:
    """The bridge plugin's config as flannel's CNI plugin builds it from kube-flannel.yml's delegate
    (hairpinMode, isDefaultGateway) and subnet.env (the node's subnet, the pod CIDR, the MTU, ipMasq
    off because flanneld itself masquerades)."""
    return {
        "cniVersion": CNI_VERSION,
        "name": CNI_NETWORK,
        "type": "bridge",
        "bridge": BRIDGE_IF,
        "mtu": pod_mtu(spec),
        "hairpinMode": True,
        "isGateway": True,
        "isDefaultGateway": True,
        "ipMasq": False,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": str(node.pod_subnet)}]],
            "routes": [{"dst": str(spec.pod_cidr)}],
            "dataDir": ipam_dir,
        },
    }


def loopback_config() -> dict[str, Any]:
    return {"cniVersion": CNI_VERSION, "name": "lo", "type": "loopback"}


def masquerade_rules(spec: LabSpec, node: Node) -> str:
    """flanneld --ip-masq's nat rules (its MasqRules), as iptables-restore input: pods keep their
    address towards other pods, and are masqueraded towards everything else (eth0's NAT)."""
    cidr, own = spec.pod_cidr, node.pod_subnet
    tag = '-m comment --comment "flanneld masq"'
    rules = [
        f"-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 {tag} -j RETURN",
        f"-A FLANNEL-POSTRTG -s {own} -d {cidr} {tag} -j RETURN",
        f"-A FLANNEL-POSTRTG -s {cidr} -d {own} {tag} -j RETURN",
        f"-A FLANNEL-POSTRTG ! -s {cidr} -d {own} {tag} -j RETURN",
        f"-A FLANNEL-POSTRTG -s {cidr} ! -d {MULTICAST} {tag} -j MASQUERADE --random-fully",
        f"-A FLANNEL-POSTRTG ! -s {cidr} -d {cidr} {tag} -j MASQUERADE --random-fully",
    ]
    return "\n".join(["*nat", ":FLANNEL-POSTRTG - [0:0]", f"-A POSTROUTING {tag} -j FLANNEL-POSTRTG",
                      *rules, "COMMIT", ""])


@dataclass
class Parts:
    """A plan being put together: the underlay first, then a dataplane's own pieces."""

    namespaces: list[NetnsPlan] = field(default_factory=list)
    links: list[LinkPlan] = field(default_factory=list)
    ports: list[PortPlan] = field(default_factory=list)
    addrs: list[AddrPlan] = field(default_factory=list)
    routes: list[RoutePlan] = field(default_factory=list)
    neighs: list[NeighPlan] = field(default_factory=list)
    fdbs: list[FdbPlan] = field(default_factory=list)
    nodes: list[NodePlan] = field(default_factory=list)
    bird: list[BirdPlan] = field(default_factory=list)

    def plan(self, spec: LabSpec, state: names.StatePaths) -> LabPlan:
        return LabPlan(spec, names.prefix(spec.name), str(state.dir), tuple(self.namespaces), tuple(self.links),
                       tuple(self.ports), tuple(self.addrs), tuple(self.routes), tuple(self.neighs),
                       tuple(self.fdbs), tuple(self.nodes), tuple(self.bird))


def underlay(spec: LabSpec) -> Parts:
    """What every dataplane stands on: the host-only switch, each node's eth0 (NAT) and eth1, the default route."""
    lab = spec.name
    hostonly = names.hostonly_netns(lab)
    parts = Parts(namespaces=[NetnsPlan(hostonly, "hostonly")],
                  links=[LinkPlan(hostonly, names.HOSTONLY_BRIDGE, "bridge")],
                  addrs=[AddrPlan(hostonly, names.HOSTONLY_BRIDGE,
                                  IPv4Interface(f"{spec.host_ip}/{spec.host_only.prefixlen}"))])
    pinned = pins_eth1_neighbours(spec)
    for node in spec.nodes:
        ns, nat = names.node_netns(lab, node.name), names.nat_netns(lab, node.name)
        parts.namespaces.append(NetnsPlan(ns, "node", node.name, hostname=node.name,
                                          sysctls=(("net.ipv4.ip_forward", "1"),)))
        parts.namespaces.append(NetnsPlan(nat, "nat", node.name))
        port = names.hostonly_port(node)
        # eth0 first, as on a VirtualBox VM: the kernel's device order decides which address a device
        # without one (Calico's cali veths) answers from.
        parts.links.append(LinkPlan(ns, NAT_IF, "veth", nat, names.NAT_PEER_IF))
        parts.links.append(LinkPlan(ns, HOST_ONLY_IF, "veth", hostonly, port, mac=eth1_mac(node) if pinned else None))
        if pinned:
            parts.neighs.extend(NeighPlan(ns, HOST_ONLY_IF, peer.ip, eth1_mac(peer))
                                for peer in spec.nodes if peer is not node)
        parts.ports.append(PortPlan(hostonly, port, names.HOSTONLY_BRIDGE))
        parts.addrs.append(AddrPlan(ns, NAT_IF, IPv4Interface(f"{NAT_ADDRESS}/{NAT_NETWORK.prefixlen}")))
        parts.addrs.append(AddrPlan(ns, HOST_ONLY_IF, IPv4Interface(f"{node.ip}/{spec.host_only.prefixlen}")))
        for nat_ip in (NAT_GATEWAY, NAT_DNS):
            parts.addrs.append(AddrPlan(nat, names.NAT_PEER_IF, IPv4Interface(f"{nat_ip}/{NAT_NETWORK.prefixlen}")))
        parts.routes.append(RoutePlan(ns, Route(DEFAULT_ROUTE, NAT_IF, NAT_GATEWAY), why="VirtualBox NAT"))
    return parts


def build_plan(spec: LabSpec, state: names.StatePaths | None = None) -> LabPlan:
    state = state or names.StatePaths(spec.name)
    if spec.cni_plugin == "calico":
        from k8slab.labs.netns import plan_calico

        return plan_calico.build(spec, state)
    parts = underlay(spec)
    lab = spec.name
    vxlan = spec.cni_backend == "vxlan"
    ipip = spec.cni_backend == "ipip"
    for node in spec.nodes:
        ns, nat = names.node_netns(lab, node.name), names.nat_netns(lab, node.name)
        if vxlan:
            parts.links.append(LinkPlan(ns, VXLAN_IF, "vxlan", mtu=pod_mtu(spec), mac=vxlan_mac(node),
                                        vxlan=VxlanOpts(VXLAN_VNI, VXLAN_PORT, node.ip, HOST_ONLY_IF)))
            parts.addrs.append(AddrPlan(ns, VXLAN_IF, IPv4Interface(f"{node.pod_subnet.network_address}/32")))
        if ipip:
            parts.links.append(LinkPlan(ns, FLANNEL_IPIP_IF, "ipip", mtu=pod_mtu(spec), local=node.ip))
            parts.addrs.append(AddrPlan(ns, FLANNEL_IPIP_IF, IPv4Interface(f"{node.pod_subnet.network_address}/32")))
        for peer in spec.nodes:
            if peer is node:
                continue
            if vxlan:
                vtep = peer.pod_subnet.network_address
                parts.routes.append(RoutePlan(ns, Route(peer.pod_subnet, VXLAN_IF, vtep, onlink=True),
                                              why=f"flannel vxlan: {peer.name}'s pods"))
                parts.neighs.append(NeighPlan(ns, VXLAN_IF, vtep, vxlan_mac(peer)))
                parts.fdbs.append(FdbPlan(ns, VXLAN_IF, vxlan_mac(peer), peer.ip))
            elif ipip:
                parts.routes.append(RoutePlan(ns, Route(peer.pod_subnet, FLANNEL_IPIP_IF, peer.ip, onlink=True),
                                              why=f"flannel ipip: {peer.name}'s pods, in IP-in-IP to its eth1"))
            else:
                parts.routes.append(RoutePlan(ns, Route(peer.pod_subnet, HOST_ONLY_IF, peer.ip),
                                              why=f"flannel host-gw: {peer.name}'s pods"))
        parts.nodes.append(NodePlan(node, ns, nat, pod_mtu(spec),
                                    cni_config(spec, node, str(state.ipam_dir(node.name))),
                                    masquerade_rules(spec, node)))
    return parts.plan(spec, state)


def render(plan: LabPlan) -> str:
    spec = plan.spec
    out = [(f"Emulated lab {spec.name!r} from {spec.source}: {len(spec.nodes)} nodes, {spec.dataplane}, "
           f"pod CIDR {spec.pod_cidr}"),
           f"Built only inside network namespaces named {plan.prefix}*; the default namespace is not touched.",
           f"State (pods, IPAM, lock): {plan.state_dir}/", ""]
    by_node = {n.netns: n for n in plan.nodes}
    birds = {b.netns: b for b in plan.bird}
    for ns in plan.namespaces:
        out.append(f"namespace {ns.describe()}")
        if ns.hostname:
            out.append(f"  hostname {ns.hostname} (UTS namespace)")
        parts = plan.in_netns(ns.name)
        out.append("  link lo up")
        ports = {p.ifname: p.bridge for p in plan.ports if p.netns == ns.name}
        for link in parts["links"]:
            out.append(f"  link {link.describe()}")
        for peer in (x for x in plan.links if x.peer_netns == ns.name):
            master = f", port of {ports[peer.peer_ifname]}" if peer.peer_ifname in ports else ""
            out.append(f"  link {peer.peer_ifname}  veth, other end {peer.ifname} in {peer.netns}{master}")
        for a in parts["addrs"]:
            out.append(f"  address {a.address} dev {a.ifname}")
        for r in parts["routes"]:
            out.append(f"  route {r.route}" + (f"    # {r.why}" if r.why else ""))
        for n in parts["neighs"]:
            out.append(f"  neigh {n.dst} lladdr {n.lladdr} dev {n.dev} nud permanent")
        for f in parts["fdbs"]:
            out.append(f"  fdb {f.lladdr} dst {f.dst} dev {f.dev} self permanent")
        for key, value in ns.sysctls:
            out.append(f"  sysctl {key} = {value}")
        node_plan = by_node.get(ns.name)
        if node_plan and node_plan.cni_config["type"] == "calico":
            from k8slab.labs.netns import plan_calico

            out += plan_calico.describe_node(spec, node_plan.node)
            out.append(f"  masquerade: iptables nat chain cali-nat-outgoing (natOutgoing): pods of {spec.pod_cidr} "
                       "leaving the pool get eth0's address")
            if ns.name in birds:
                b = birds[ns.name]
                out.append(f"  bird -c {b.config_path} -s {b.socket}: peers {', '.join(map(str, b.peers))}")
        elif node_plan:
            node = node_plan.node
            ipam = node_plan.cni_config["ipam"]
            out.append(f"  masquerade: iptables nat chain FLANNEL-POSTRTG (flanneld --ip-masq): pods of "
                       f"{spec.pod_cidr} leaving the pod network get eth0's address")
            out.append(f"  pods (k8slab pod run NAME --node {node.name}): CNI loopback, then bridge {BRIDGE_IF} "
                       f"{node.pod_gateway}/{node.pod_subnet.prefixlen} (isGateway, hairpinMode, ipMasq off, "
                       f"mtu {node_plan.pod_mtu}) with host-local IPAM")
            out.append(f"        subnet {node.pod_subnet}, route to {spec.pod_cidr}, dataDir {ipam['dataDir']}; "
                       f"pods get {node.pod_gateway + 1}, {node.pod_gateway + 2}, ...")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
