"""Calico's classic faults, each a small rule from what the nodes show to the cause and its fix.

The facts behind each rule are in spec/calico.py (with their sources). A rule returns None when its
fault is not what the facts show, so diagnose.py asks them in turn and falls back to its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv4Address, IPv4Network

from k8slab.spec import calico
from k8slab.spec.expect import RouteExpectation
from k8slab.spec.facts import HOST_ONLY_IF, NAT_ADDRESS, NAT_NETWORK
from k8slab.spec.model import LabSpec, Node
from k8slab.spec.route import Route
from k8slab.verify.facts import BgpFacts, NodeFacts

AUTODETECT_FIX = ("calico-node autodetects its address with first-found, which takes eth0's VirtualBox NAT "
                  f"address {NAT_ADDRESS} (the same on every node); pin it with "
                  "IP_AUTODETECTION_METHOD=interface=eth1 on the calico-node DaemonSet")


def bird_down(node: str) -> str:
    return (f"BIRD is not running on {node} (no answer on its control socket): calico-node's BGP daemon is down, "
            f"so {node} announces its block to no one and learns no peer's; the routes it had stay in the kernel "
            "(BIRD's `persist`) but its peers drop theirs to it. Restart calico-node on the node (emulated lab: "
            "`k8slab recreate`)")


def proxy_arp_off(node: str, veth: str, pod: str | None = None) -> str:
    whose = f"pod {pod}'s veth " if pod else ""
    return (f"proxy ARP is off on {whose}{veth} on {node} (net.ipv4.conf.{veth}.proxy_arp=0): the pod asks who has "
            f"{calico.POD_GATEWAY}, its default gateway, and nobody answers, so it cannot send anything off its link. "
            f"Calico's CNI plugin sets it to 1: `sysctl -w net.ipv4.conf.{veth}.proxy_arp=1` on {node}")


def tunnel_down(node: str, dev: str) -> str:
    what = "VXLAN" if dev == calico.VXLAN_IF else "IP-in-IP"
    return (f"{dev} is down on {node}: the kernel dropped every route through it, so {node} cannot wrap pod "
            f"traffic in {what} to its peers (nor unwrap theirs). Felix keeps it up: `ip link set {dev} up`")


def bgp(spec: LabSpec, node: Node, facts: Mapping[str, NodeFacts]) -> str | None:
    """Why node's mesh sessions are not all Established, or None if they are."""
    own = facts[node.name].bgp
    if own is None:
        return None
    if not own.running:
        return bird_down(node.name)
    if own.router_id is not None and own.router_id in NAT_NETWORK:
        return f"BIRD on {node.name} peers as {own.router_id}: {AUTODETECT_FIX}"
    reasons = []
    for peer in spec.nodes:
        if peer.name == node.name:
            continue
        theirs = facts.get(peer.name)
        peer_bgp: BgpFacts | None = theirs.bgp if theirs else None
        state = own.sessions.get(calico.mesh_name(peer.ip), "missing")
        if "Established" in state:
            continue
        if peer_bgp is not None and not peer_bgp.running:
            reasons.append(f"the session to {peer.name} is {state}: {bird_down(peer.name)}")
        elif peer_bgp is not None and peer_bgp.router_id is not None and peer_bgp.router_id in NAT_NETWORK:
            reasons.append(f"the session to {peer.name} is {state}: {peer.name}'s BIRD peers as "
                           f"{peer_bgp.router_id}, not {peer.ip}: {AUTODETECT_FIX}")
        else:
            reasons.append(f"the session to {peer.name} ({peer.ip}) is {state}: is TCP port 179 reachable on "
                           f"{HOST_ONLY_IF} between them?")
    return "; ".join(reasons) or None



def veth(node: str, pod: str, facts: NodeFacts) -> str | None:
    """What is wrong with pod's cali veth on node, or None."""
    name = calico.veth_name(pod)
    link = facts.link(name)
    if link is None:
        return (f"pod {pod} has no {name} on {node}: Calico's CNI ADD failed half way or the veth was deleted; "
                "delete and recreate the pod")
    if not link.up:
        return f"{name} (pod {pod}'s veth) is down on {node}; `ip link set {name} up`"
    if link.addresses:
        return (f"{name} on {node} carries {', '.join(map(str, link.addresses))}: Calico's host-side veths have no "
                "address (proxy ARP answers for 169.254.1.1); remove it")
    if facts.proxy_arp.get(name, 1) != 1:
        return proxy_arp_off(node, name, pod)
    return None


def route(spec: LabSpec, exp: RouteExpectation, facts: NodeFacts, all_facts: Mapping[str, NodeFacts] | None) -> str:
    node = exp.node
    r = exp.route
    found = facts.routes_to(r.dst)
    conf = spec.calico
    assert conf is not None
    if exp.pod is not None:
        dev = calico.veth_name(exp.pod)
        return (f"the /32 route to pod {exp.pod} ({r.dst.network_address}) on {dev} is missing on {node}: its "
                f"packets fall into the block's blackhole. Calico's CNI plugin (and Felix) write it: "
                f"`ip route add {Route(r.dst, dev, scope='link')}` on {node}")
    if r.blackhole:
        maker = "BIRD's static protocol" if conf.uses_bgp else "Felix"
        return (f"{node} has no blackhole for its block {r.dst}: {maker} writes it; without it, packets to unused "
                "addresses of the block follow the default route out of eth0")
    if r.dev in (calico.VXLAN_IF, calico.IPIP_IF):
        link = facts.link(r.dev)
        if link is not None and not link.up:
            return tunnel_down(node, r.dev)
    if conf.uses_bgp and all_facts is not None:
        problem = bgp(spec, spec.node(node), all_facts)
        if problem:
            return f"{node} has not learned {exp.peer}'s block {r.dst} over BGP: {problem}"
    if found:
        shown = "; ".join(str(f) for f in found)
        return (f"{node} routes {exp.peer}'s block as {shown}, not {r.via} dev {r.dev}: the pool's encapsulation "
                f"is {conf.encapsulation}; check the IPPool (`calicoctl get ippool -o yaml`)")
    maker = "BIRD (it learns it from the peer)" if conf.uses_bgp else "Felix"
    return f"the route to {exp.peer}'s block {r.dst} is missing on {node}: {maker} writes it"


def pod_trace(spec: LabSpec, src: Node, dst: Node, target: IPv4Address, facts: Mapping[str, NodeFacts],
              src_pod: str | None, dst_pod: str | None, source: IPv4Address | None = None) -> list[str]:
    """Calico's reasons for a failed pod trace: the pods' own links and /32 routes (the replies need the
    source's), then the way across."""
    reasons = []
    for node, pod, ip in ((src, src_pod, source), (dst, dst_pod, target)):
        nf = facts.get(node.name)
        if nf is None or pod is None:
            continue
        if problem := veth(node.name, pod, nf):
            reasons.append(problem)
        if ip is not None and not nf.routes_to(IPv4Network(f"{ip}/32")):
            exp = RouteExpectation(node.name, Route(IPv4Network(f"{ip}/32"), calico.veth_name(pod)), pod=pod)
            reasons.append(route(spec, exp, nf, facts))
    conf = spec.calico
    assert conf is not None
    if src.name != dst.name:
        for here, there in ((src, dst), (dst, src)):
            nf = facts.get(here.name)
            if nf is None:
                continue
            tunnel = conf.tunnel
            if tunnel and (link := nf.link(tunnel)) is not None and not link.up:
                reasons.append(tunnel_down(here.name, tunnel))
            elif not nf.routes_to(there.pod_subnet):
                problem = bgp(spec, here, facts) if conf.uses_bgp else None
                reasons.append(f"{here.name} has no route to {there.name}'s block {there.pod_subnet}"
                               + (f": {problem}" if problem else ""))
    return list(dict.fromkeys(reasons))
