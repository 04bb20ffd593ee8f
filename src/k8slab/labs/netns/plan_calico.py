"""The emulated lab with Calico's dataplane, computed from the spec alone (no root, no kernel, no I/O).

The facts it follows, with their sources, are in k8slab.spec.calico. What differs from flannel:
no bridge — each pod is a veth whose host end (`cali…`) has no address and answers ARP for
169.254.1.1 by proxy; a /32 route per pod; a block per node, blackholed on its owner; routes
between nodes learned over BGP from BIRD (None, IPIP modes) or written by Felix (VXLAN modes).
`kernel.py` builds the links and Felix's routes, `bird.py` starts BIRD with the configs made here.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

from k8slab.labs.netns import names
from k8slab.labs.netns.plan import (
    AddrPlan,
    BirdPlan,
    FdbPlan,
    LabPlan,
    LinkPlan,
    NeighPlan,
    NodePlan,
    RoutePlan,
    VxlanOpts,
    underlay,
)
from k8slab.spec import calico
from k8slab.spec.facts import HOST_ONLY_IF
from k8slab.spec.model import LabSpec, Node
from k8slab.spec.route import RTPROT_BOOT, Route

CNI_VERSION = "0.3.1"


def config_of(spec: LabSpec) -> calico.CalicoConfig:
    assert spec.calico is not None, "a Calico plan for a lab whose CNI is not Calico"
    return spec.calico


def cni_config(spec: LabSpec, node: Node) -> dict[str, Any]:
    """The node's 10-calico.conflist entry as calico-node writes it (type calico, calico-ipam), with the
    node's block and the first ordinal pods get (what Calico's IPAM keeps in its datastore)."""
    conf = config_of(spec)
    return {
        "cniVersion": CNI_VERSION,
        "name": "k8s-pod-network",
        "type": "calico",
        "mtu": conf.pod_mtu,
        "nodename": node.name,
        "ipam": {"type": "calico-ipam", "block": str(node.pod_subnet), "first_ordinal": calico.first_pod_ordinal(conf)},
    }


def nat_outgoing_rules(spec: LabSpec) -> str:
    """Felix's natOutgoing for the pool (cali-nat-outgoing): pods reaching anything outside the pool leave
    with the node's address; pod to pod keeps the pod's (Felix matches ipsets of the pools; here the one
    pool is written as a CIDR)."""
    pool = spec.pod_cidr
    return "\n".join(["*nat", ":cali-nat-outgoing - [0:0]",
                      '-A POSTROUTING -m comment --comment "cali:nat-outgoing" -j cali-nat-outgoing',
                      f"-A cali-nat-outgoing -s {pool} ! -d {pool} -j MASQUERADE --random-fully",
                      "COMMIT", ""])


def build(spec: LabSpec, state: names.StatePaths) -> LabPlan:
    conf = config_of(spec)
    parts = underlay(spec)
    lab = spec.name
    tunnel = conf.tunnel
    for node in spec.nodes:
        ns, nat = names.node_netns(lab, node.name), names.nat_netns(lab, node.name)
        if tunnel is not None:
            address = IPv4Interface(f"{calico.tunnel_address(node.pod_subnet)}/32")
            if tunnel == calico.VXLAN_IF:
                parts.links.append(LinkPlan(ns, tunnel, "vxlan", mtu=conf.pod_mtu, mac=calico.vtep_mac(node.ip),
                                            vxlan=VxlanOpts(calico.VXLAN_VNI, calico.VXLAN_PORT, node.ip,
                                                            HOST_ONLY_IF)))
            else:
                parts.links.append(LinkPlan(ns, tunnel, "tunl0", mtu=conf.pod_mtu))
            parts.addrs.append(AddrPlan(ns, tunnel, address))
        if conf.uses_bgp:
            parts.bird.append(bird_plan(spec, node, state))
        else:
            parts.routes += felix_routes(spec, node, ns)
            if tunnel == calico.VXLAN_IF:
                for peer in spec.nodes:
                    if peer is not node:
                        vtep = calico.tunnel_address(peer.pod_subnet)
                        parts.neighs.append(NeighPlan(ns, tunnel, vtep, calico.vtep_mac(peer.ip)))
                        parts.fdbs.append(FdbPlan(ns, tunnel, calico.vtep_mac(peer.ip), peer.ip))
        parts.nodes.append(NodePlan(node, ns, nat, conf.pod_mtu,
                                    cni_config(spec, node),
                                    nat_outgoing_rules(spec)))
    return parts.plan(spec, state)


def remote_route(spec: LabSpec, node: Node, peer: Node) -> tuple[str, IPv4Address, bool]:
    """(device, next hop, onlink) for node's route to peer's block, by the pool's encapsulation."""
    conf = config_of(spec)
    if not conf.encapsulates(node.ip, peer.ip, spec.host_only):
        return HOST_ONLY_IF, peer.ip, False
    if conf.tunnel == calico.VXLAN_IF:
        return calico.VXLAN_IF, calico.tunnel_address(peer.pod_subnet), True
    return calico.IPIP_IF, peer.ip, True


def felix_routes(spec: LabSpec, node: Node, ns: str) -> list[RoutePlan]:
    """What Felix programs in VXLAN modes: the blackhole for the node's block and a route per peer block."""
    routes = [RoutePlan(ns, Route(node.pod_subnet, "", blackhole=True, proto=calico.PROTO_FELIX),
                        why="Felix: this node's block; its pods have /32 routes, the rest goes nowhere")]
    for peer in spec.nodes:
        if peer is node:
            continue
        dev, via, onlink = remote_route(spec, node, peer)
        tunnelled = dev != HOST_ONLY_IF
        route = Route(peer.pod_subnet, dev, via, onlink=onlink, proto=RTPROT_BOOT if tunnelled else calico.PROTO_FELIX)
        routes.append(RoutePlan(ns, route,
                                why=f"Felix: {peer.name}'s block" + (" over VXLAN" if tunnelled else " (same subnet)")))
    return routes


def bgp_routes(spec: LabSpec, node: Node) -> list[tuple[IPv4Network, str, IPv4Address | None, bool]]:
    """The kernel routes BIRD programs on node once every session is up: (block, dev, via, onlink);
    dev "" is the blackhole for its own block."""
    found: list[tuple[IPv4Network, str, IPv4Address | None, bool]] = [(node.pod_subnet, "", None, False)]
    for peer in spec.nodes:
        if peer is not node:
            dev, via, onlink = remote_route(spec, node, peer)
            found.append((peer.pod_subnet, dev, via, onlink))
    return found


def bird_plan(spec: LabSpec, node: Node, state: names.StatePaths) -> BirdPlan:
    base = state.bird_dir
    peers = tuple(p.ip for p in spec.nodes if p is not node)
    return BirdPlan(node.name, names.node_netns(spec.name, node.name),
                    bird_config(spec, node, str(base / f"{node.name}.log")),
                    str(base / f"{node.name}.conf"), str(base / f"{node.name}.ctl"), str(base / f"{node.name}.pid"),
                    str(base / f"{node.name}.log"), peers)


def bird_config(spec: LabSpec, node: Node, log: str, router_id: IPv4Address | None = None) -> str:
    """BIRD 2 configuration with the meaning of the bird.cfg calico-node's confd writes for a full mesh
    (confd/etc/calico/confd/templates/bird.cfg.template, bird_aggr.cfg.template, bird_ipam.cfg.template),
    in BIRD 2 syntax. Calico's BIRD 1 fork sets krt_tunnel for IPIP; BIRD 2 says the same with
    onlink/ifname/gw. Its kernel protocol does not export device routes; BIRD 2 needs a filter for that.
    router_id: the address calico-node detected (its node address); the spec's eth1 address unless a
    fault says otherwise."""
    conf = config_of(spec)
    me = router_id or node.ip
    pool = spec.pod_cidr
    block = node.pod_subnet
    if conf.tunnel == calico.IPIP_IF:
        encap = f'onlink = true; ifname = "{calico.IPIP_IF}"; gw = bgp_next_hop;'
        if conf.cross_subnet:
            kernel_pool = (f"if defined(bgp_next_hop) && ( bgp_next_hop ~ {spec.host_only} ) then accept;\n"
                           f"    {encap} accept;")
        else:
            kernel_pool = f"{encap} accept;"
    else:
        kernel_pool = "accept;"
    lines = [
        "# Generated by k8slab from lab.yaml: calico-node's full-mesh bird.cfg, in BIRD 2 syntax",
        f'log "{log}" all;',
        f"router id {me};",
        "",
        "# bird_aggr.cfg: this node's block, blackholed here, exported whole",
        f"protocol static {{ ipv4; route {block} blackhole; }}",
        "function calico_aggr() {",
        f"  if ( net = {block} ) then accept;",
        f"  if ( net ~ {block} ) then reject;",
        "}",
        "",
        "# bird_ipam.cfg: export only the pool's routes to peers; program what peers send into the kernel",
        "function calico_export_to_bgp_peers() {",
        "  calico_aggr();",
        f"  if ( net ~ {pool} ) then accept;",
        "  reject;",
        "}",
        "filter calico_kernel_programming {",
        "  if ( source = RTS_DEVICE ) then reject;",
        f"  if ( net ~ {pool} ) then {{",
        f"    {kernel_pool}",
        "  }",
        "  accept;",
        "}",
        "",
        "protocol kernel {",
        "  learn;             # learn alien routes (the pods' /32s) from the kernel",
        "  persist;           # keep routes in the kernel when BIRD stops",
        "  scan time 2;",
        "  metric 0;",
        "  graceful restart;",
        "  merge paths on;",
        "  ipv4 { import all; export filter calico_kernel_programming; };",
        "}",
        "protocol device { scan time 2; }",
        'protocol direct { ipv4; interface -"cali*", -"kube-ipvs*", "*"; }',
        "",
        "template bgp bgp_template {",
        '  description "Connection to BGP peer";',
        f"  local as {calico.BGP_AS};",
        "  multihop;",
        "  ipv4 { gateway recursive; import all; export where calico_export_to_bgp_peers(); add paths on; };",
        "  graceful restart;",
        "  connect delay time 1;",
        "  connect retry time 3;",
        "  error wait time 5,60;",
        "}",
        "",
        "# ------------- Node-to-node mesh -------------",
    ]
    for peer in spec.nodes:
        if peer is node:
            continue
        lines += [f"protocol bgp {calico.mesh_name(peer.ip)} from bgp_template {{",
                  f"  neighbor {peer.ip} as {calico.BGP_AS};",
                  f"  source address {me};"]
        if int(peer.ip) > int(me):
            lines.append("  passive on; # Mesh is unidirectional, peer will connect to us.")
        lines += ["  graceful restart time 120;", "}"]
    return "\n".join(lines) + "\n"



def describe_node(spec: LabSpec, node: Node) -> list[str]:
    """The lines `up --dry-run` prints about how a node's pods are wired and its routes learned."""
    conf = config_of(spec)
    first = node.pod_subnet.network_address + calico.first_pod_ordinal(conf)
    how = (f"BIRD (full-mesh iBGP on eth1, AS {calico.BGP_AS}) learns the peers' blocks" if conf.uses_bgp
           else "Felix programs the peers' blocks (no BGP in VXLAN mode)")
    pods = (f"  pods (k8slab pod run NAME --node {node.name}): veth cali<sha1> (no address, proxy ARP, "
            f"{calico.HOST_VETH_MAC}) <-> eth0 /32, default via {calico.POD_GATEWAY}, mtu {conf.pod_mtu}; "
            f"pods get {first}, {first + 1}, ...")
    return [f"  calico {conf.encapsulation}: block {node.pod_subnet}; {how}", pods]
