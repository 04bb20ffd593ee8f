"""From what a failed check observed to the likely cause, in words a student can act on.

Pure functions over observed facts. The causes are the classic faults of this lab
(ARTICLE.md's fault table), each with the fix and, where there is one, the upstream issue.
A trace that goes wrong is explained by what the nodes on its path show (routes, forwarding,
cni0, the pods' addresses), so a broken lab is named by its fault, not only by its symptom.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from k8slab.spec.expect import InterfaceExpectation, RouteExpectation, node_routes
from k8slab.spec.facts import BRIDGE_IF, FLANNEL_IPIP_IF, HOST_ONLY_IF, NAT_ADDRESS, NAT_IF, NAT_NETWORK, VXLAN_IF
from k8slab.spec.model import LabSpec, Node
from k8slab.spec.route import Route
from k8slab.verify import diagnose_ipip
from k8slab.verify.advice import VIRTUALBOX, Advice
from k8slab.verify.facts import NodeFacts

FLANNEL_ON_NAT = (f"flannel is probably bound to {NAT_IF}; set --iface={HOST_ONLY_IF} "
                  "(kubespray#2114, flannel-io/flannel#1379)")
BOX_NIC_NAMES = (f"the box names its NICs enp0s3/enp0s8, so there is no {HOST_ONLY_IF} and pinning by name fails; "
                 "use a box whose NICs are eth0/eth1 (the one pinned in lab.yaml)")


def on_nat(advice: Advice = VIRTUALBOX) -> str:
    """Why pod traffic leaves by eth0: flannel bound to the NAT NIC on VMs; an edited route on the emulated lab."""
    if advice.emulated:
        return (f"a pod-subnet route points at {NAT_IF} (VirtualBox NAT on the VM lab, where no peer node can be "
                f"reached), as a flannel bound to {NAT_IF} would write it; the emulated lab has no flannel: the "
                "route was edited")
    return FLANNEL_ON_NAT


def forwarding_off(node: str, advice: Advice = VIRTUALBOX) -> str:
    return (f"IP forwarding is off on {node}: it drops packets it should route between cni0 and {HOST_ONLY_IF}; "
            f"{advice.on_node(node, 'sysctl', '-w', 'net.ipv4.ip_forward=1')}{advice.persist()}")


def kubelet_on_nat(node: str, ip: IPv4Address) -> str:
    return (f"kubelet on {node} registered with {NAT_ADDRESS}, the VirtualBox NAT address every node shares; "
            f"set kubelet --node-ip={ip} (KUBELET_EXTRA_ARGS) and restart it "
            "(kubernetes/kubernetes#45583, #60835); `kubectl logs/exec` fail until then")


def cni0_down(node: str, advice: Advice = VIRTUALBOX) -> str:
    return (f"{BRIDGE_IF} is down on {node}: its pods lose their gateway and the kernel dropped the route to "
            f"the node's pod subnet; {advice.on_node(node, 'ip', 'link', 'set', BRIDGE_IF, 'up')}")


def flannel_tunnel_down(node: str, dev: str, advice: Advice = VIRTUALBOX) -> str:
    """flannel.ipip or flannel.1 down: no route through it is left, and what arrives wrapped for it is dropped."""
    what = "IP-in-IP" if dev == FLANNEL_IPIP_IF else "VXLAN"
    return (f"{dev} is down on {node}: the kernel dropped every route through it, so {node} cannot wrap pod traffic "
            f"in {what} to its peers, nor unwrap theirs; {advice.on_node(node, 'ip', 'link', 'set', dev, 'up')}, "
            "then put the routes back: " + (advice.flannel_restart(node) if advice.emulated else
                                             f"restart kube-flannel on {node}, which writes them"))


def link_down(node: str, name: str, advice: Advice = VIRTUALBOX) -> str:
    if name in (FLANNEL_IPIP_IF, VXLAN_IF):
        return flannel_tunnel_down(node, name, advice)
    fix = advice.on_node(node, "ip", "link", "set", name, "up")
    if name == HOST_ONLY_IF:
        return (f"{HOST_ONLY_IF} is down on {node}: the node is cut off from its peers, and the kernel dropped every "
                f"route through {HOST_ONLY_IF} (the peers' pod subnets); {fix}, then put those routes back: "
                + (advice.flannel_restart(node) if advice.emulated else
                   f"flannel re-adds them (or `vagrant reload {node}`)"))
    return f"{name} is down on {node}; {fix}"


def dropped_with_link(node: str, dev: str, dest: IPv4Network, advice: Advice = VIRTUALBOX) -> str:
    """A route is missing because its link went down: a consequence, named after its cause."""
    return (f"a consequence of {dev} being down on {node}: the kernel drops the routes through a link that goes "
            f"down (this one to {dest} included), and setting the link up does not bring them back; "
            + (cni0_down(node, advice) if dev == BRIDGE_IF else link_down(node, dev, advice)))


def _is_nat(route_dev: str, via: IPv4Address | None) -> bool:
    return route_dev == NAT_IF or (via is not None and via in NAT_NETWORK)


def interface(exp: InterfaceExpectation, facts: NodeFacts, advice: Advice = VIRTUALBOX) -> str:
    link = facts.link(exp.name)
    if link is None:
        if exp.name in (HOST_ONLY_IF, NAT_IF) and any(lk.name.startswith("enp") for lk in facts.links):
            return BOX_NIC_NAMES
        if exp.name == BRIDGE_IF:
            return (f"{BRIDGE_IF} does not exist on {exp.node}: the CNI bridge plugin creates it with the node's first "
                    "pod; no pod was wired there"
                    + ("" if advice.emulated else " (is kube-flannel running on the node? see `kubectl describe pod`)"))
        if exp.name == HOST_ONLY_IF:
            return (f"{exp.node} has no {HOST_ONLY_IF}: " + (f"it was deleted; {advice.rebuild(exp.node)}"
                    if advice.emulated else "the VM lacks its host-only NIC (Vagrantfile private_network); "
                    f"{advice.rebuild(exp.node)}"))
        return f"{exp.name} is missing on {exp.node}"
    if not link.up:
        if exp.name == BRIDGE_IF:
            return cni0_down(exp.node, advice)
        if exp.name in ("tunl0", "vxlan.calico"):
            from k8slab.verify import diagnose_calico

            return diagnose_calico.tunnel_down(exp.node, exp.name)
        return link_down(exp.node, exp.name, advice)
    if exp.name == HOST_ONLY_IF:
        return (f"{exp.node}'s {HOST_ONLY_IF} does not carry its lab.yaml address: " + (
            f"the address was changed; {advice.rebuild(exp.node)}" if advice.emulated else
            "the VM was made from another lab.yaml (recreate it) or the box configured the NIC itself"))
    if exp.name == NAT_IF:
        return f"{NAT_IF} is not VirtualBox NAT ({NAT_ADDRESS}/{NAT_NETWORK.prefixlen}): the VM's first NIC must be NAT"
    if exp.name == BRIDGE_IF:
        if advice.emulated:
            return (f"{BRIDGE_IF} on {exp.node} lacks the node's gateway address {exp.address}; "
                    f"{advice.on_node(exp.node, 'ip', 'addr', 'add', str(exp.address), 'dev', BRIDGE_IF)}")
        return (f"{BRIDGE_IF} on {exp.node} has another gateway than the node's pod subnet: the CNI config "
                "(flannel's /run/flannel/subnet.env) disagrees with the node's spec.podCIDR; delete cni0 and "
                "restart kube-flannel on the node")
    return f"{exp.name} on {exp.node} has an unexpected address"


def veths(node: str, facts: NodeFacts, advice: Advice = VIRTUALBOX) -> str:
    if facts.link(BRIDGE_IF) is None:
        return f"{BRIDGE_IF} does not exist on {node}, so no pod's veth can be attached to it"
    return (f"a pod on {node} has no host-side veth on {BRIDGE_IF}: its CNI ADD failed half way or the veth was "
            "moved off the bridge; delete and recreate the pod")


def _down_link(facts: NodeFacts, dev: str) -> bool:
    link = facts.link(dev)
    return link is not None and not link.up


def route(spec: LabSpec, exp: RouteExpectation, facts: NodeFacts,
          all_facts: Mapping[str, NodeFacts] | None = None, advice: Advice = VIRTUALBOX) -> str:
    if spec.calico is not None:
        from k8slab.verify import diagnose_calico

        return diagnose_calico.route(spec, exp, facts, all_facts)
    found = facts.routes_to(exp.route.dst)
    node = exp.node
    if exp.peer is None:  # the node's own pod subnet on cni0
        bridge = facts.link(BRIDGE_IF)
        if bridge is not None and not bridge.up:
            return cni0_down(node, advice)
        if bridge is None:
            return f"{BRIDGE_IF} does not exist on {node} yet: it comes with the first pod there"
        return (f"{BRIDGE_IF} on {node} is not in {exp.route.dst}: the CNI bridge was configured with another subnet "
                "than the node's podCIDR")
    if any(_is_nat(r.dev, r.via) for r in found):
        return on_nat(advice) + (f"; {_put_back(exp, advice)}" if advice.emulated else "")
    if not found:
        if _down_link(facts, exp.route.dev):
            return dropped_with_link(node, exp.route.dev, exp.route.dst, advice)
        peer_subnets = [n.pod_subnet for n in spec.nodes if n.name != node]
        if not advice.emulated and not any(facts.routes_to(s) for s in peer_subnets):
            return (f"{node} has no route to any peer's pod subnet: flannel is not running there or uses another "
                    f"backend (its net-conf must say \"Type\": \"{spec.cni_backend}\"); check the kube-flannel pod "
                    f"on {node}; or {FLANNEL_ON_NAT}")
        return (f"the route to {exp.peer}'s pod subnet is missing on {node}"
                + ("" if advice.emulated else ": flannel writes one per peer node; restart kube-flannel on it, or")
                + f"; {_put_back(exp, advice)}")
    return wrong_next_hop(spec, node, exp.peer, found[0], exp, advice)


def _put_back(exp: RouteExpectation, advice: Advice) -> str:
    return "put it back: " + advice.on_node(exp.node, "ip", "route", "replace", str(exp.route))


def wrong_next_hop(spec: LabSpec, node: str, peer: str | None, used: Route, exp: RouteExpectation,
                   advice: Advice = VIRTUALBOX) -> str:
    """A peer route on the right NIC with another next hop: flannel's idea of the peer's address is off."""
    owner = spec.node_by_ip(used.via) if used.via else None
    whose = f" ({owner.name}'s {HOST_ONLY_IF} address)" if owner is not None and used.via == owner.ip else ""
    why = ("the route was edited" if advice.emulated else
           f"flannel's public-ip for {peer} (annotation flannel.alpha.coreos.com/public-ip) is wrong, or the route "
           "was edited")
    return f"{node} sends {peer}'s pods to the wrong next hop {used.via}{whose} instead of {exp.route.via}: {why}; " + \
        _put_back(exp, advice)


def eth0_pod_routes(node: str, advice: Advice = VIRTUALBOX) -> str:
    return f"{node} routes pod traffic out of {NAT_IF}, where no peer node can be reached: {on_nat(advice)}"


def pod_address(node: Node, observed: Sequence[IPv4Interface], advice: Advice = VIRTUALBOX) -> str:
    if not observed:
        return (f"the pod has no IPv4 address on its eth0: the CNI ADD on {node.name} failed"
                + ("" if advice.emulated else " (see the kubelet log or `kubectl describe pod`)"))
    if advice.emulated:
        return (f"the pod's address is outside {node.name}'s pod subnet {node.pod_subnet}: it was changed by hand "
                "inside the pod; delete and run the pod again")
    return (f"the pod's address is outside {node.name}'s pod subnet {node.pod_subnet}: the CNI IPAM (host-local) on "
            f"{node.name} hands out another range than the node's podCIDR (flannel's subnet.env is stale or "
            "the pod's address was changed by hand); recreate the pod")


def _route_problem(spec: LabSpec, facts: NodeFacts, peer: Node, advice: Advice = VIRTUALBOX) -> str | None:
    """What is wrong with facts.node's way to peer's pods, or None if it routes them as flannel would."""
    exp = next((r for r in node_routes(spec, spec.node(facts.node)) if r.peer == peer.name), None)
    found = facts.routes_to(peer.pod_subnet)
    if any(_is_nat(r.dev, r.via) for r in found):
        return f"{facts.node} routes {peer.pod_subnet} out of {NAT_IF}: {on_nat(advice)}"
    if not found:
        if exp is not None and _down_link(facts, exp.route.dev):
            return dropped_with_link(facts.node, exp.route.dev, peer.pod_subnet, advice)
        used = facts.route_for(peer.pod_subnet.network_address)
        how = f" (its packets follow {used})" if used else ""
        cause = "it was deleted" if advice.emulated else "flannel did not write it or it was deleted"
        fix = f"; {_put_back(exp, advice)}" if exp is not None else ""
        return (f"{facts.node} has no route to {peer.name}'s pod subnet {peer.pod_subnet}{how}: the host-gw route "
                f"is missing ({cause}){fix}")
    if exp is not None and not any(r.via == exp.route.via and r.dev == exp.route.dev for r in found):
        return wrong_next_hop(spec, facts.node, peer.name, found[0], exp, advice)
    return None


def path_causes(spec: LabSpec, src: Node, dst: Node, target: IPv4Address, facts: Mapping[str, NodeFacts],
                pod_addresses: Mapping[IPv4Address, Sequence[IPv4Interface]] | None = None,
                source: IPv4Address | None = None, advice: Advice = VIRTUALBOX,
                pods: tuple[str, str] | None = None) -> list[str]:
    """Every fault the nodes of a pod-to-pod path show, root causes first: the pods' addresses, cni0 on
    either end, forwarding on either end, then the way there and the way back. The one rule set that
    verify's trace checks, `k8slab trace` and the walkthrough all name causes with (empty: nothing found)."""
    reasons: list[str] = []
    for role, ip, node in (("target", target, dst), ("source", source, src)):
        if ip is None or pod_addresses is None or ip not in pod_addresses:
            continue
        real = pod_addresses[ip]
        if ip not in [a.ip for a in real] or any(a.ip not in node.pod_subnet for a in real):
            shown = ", ".join(str(a) for a in real) or "none"
            reasons.append(f"the {role} pod on {node.name} no longer has {ip} (its eth0 has {shown}): "
                           + pod_address(node, real, advice))
    ends = list(dict.fromkeys([src.name, dst.name]))
    if spec.calico is not None:
        from k8slab.verify import diagnose_calico

        src_pod, dst_pod = pods or (None, None)
        reasons += diagnose_calico.pod_trace(spec, src, dst, target, facts, src_pod, dst_pod, source)
        if src.name != dst.name:
            reasons += [forwarding_off(n, advice) for n in ends
                        if (nf := facts.get(n)) is not None and nf.ip_forward == 0]
        return list(dict.fromkeys(reasons + diagnose_ipip.firewall_causes(spec, src, dst, facts)))
    for name in ends:
        nf = facts.get(name)
        if nf is not None and _down_link(nf, BRIDGE_IF):
            reasons.append(cni0_down(name, advice))
    if src.name != dst.name:
        for name in ends:
            nf = facts.get(name)
            if nf is not None and _down_link(nf, HOST_ONLY_IF):
                reasons.append(link_down(name, HOST_ONLY_IF, advice))
        for name in ends:
            nf = facts.get(name)
            if nf is not None and nf.ip_forward == 0:
                reasons.append(forwarding_off(name, advice))
        for here, there in ((src, dst), (dst, src)):
            nf = facts.get(here.name)
            problem = _route_problem(spec, nf, there, advice) if nf else None
            if problem and not (_down_link(nf, HOST_ONLY_IF) and "a consequence of" in problem):
                reasons.append(problem if here is src else f"on the replies' way back, {problem}")
        reasons += diagnose_ipip.firewall_causes(spec, src, dst, facts)
    return list(dict.fromkeys(reasons))


def pod_trace(spec: LabSpec, src: Node, dst: Node, target: IPv4Address,
              observed: Sequence[IPv4Address | None], facts: Mapping[str, NodeFacts],
              pod_addresses: Mapping[IPv4Address, Sequence[IPv4Interface]] | None = None,
              source: IPv4Address | None = None, pods: tuple[str, str] | None = None,
              advice: Advice = VIRTUALBOX) -> str:
    """Why a trace from a pod on src to target (a pod on dst) did not show the expected hops.

    pod_addresses maps each pod's expected address to what its eth0 really carries: a pod whose
    address moved is a cause before any route is."""
    reasons = path_causes(spec, src, dst, target, facts, pod_addresses, source, advice, pods)
    if reasons:
        return "; ".join(reasons)
    if diagnose_ipip.encapsulates(spec, src, dst) and observed and observed[0] is not None and all(
            h is None for h in observed[1:]):
        return diagnose_ipip.suspected(spec, src, dst)
    if spec.cni_plugin == "calico":  # hop 1 is the node's eth0 address by rule there: no blame on eth0
        return _calico_shape_only(src, dst, observed)
    return _shape_only(src, dst, observed, advice)


def _calico_shape_only(src: Node, dst: Node, observed: Sequence[IPv4Address | None]) -> str:
    """No node shows a fault on a Calico lab, where hop 1 is the node's eth0 address (10.0.2.15) by rule."""
    if not observed or all(h is None for h in observed):
        return (f"nothing answered: the source pod cannot reach {src.name} (its ARP for 169.254.1.1 unanswered, "
                "or its default route gone); or the node was too busy to answer in time: trace again")
    if observed[0] == NAT_ADDRESS and all(h is None for h in observed[1:]):
        return (f"the trace stops after {src.name}: the next node did not answer in time, or does not route "
                f"{dst.pod_subnet} back (compare `ip route` on both nodes with the expected routes)")
    return "the path differs from Calico's: compare `ip route` on both nodes with the expected routes"


def _shape_only(src: Node, dst: Node, observed: Sequence[IPv4Address | None], advice: Advice = VIRTUALBOX) -> str:
    """No node shows a fault: say what the shape of the trace itself suggests."""
    if not observed or all(h is None for h in observed):
        return (f"nothing answered: the source pod cannot reach its gateway on {src.name} (is its default route "
                f"via {src.pod_gateway}?" + ("" if advice.emulated else " is traceroute allowed by a NetworkPolicy?")
                + ")")
    if src.name != dst.name and observed[0] == src.pod_gateway and all(h is None for h in observed[1:]):
        return (f"the trace stops after the first hop, yet {src.name} and {dst.name} show no fault in their "
                f"links, routes or forwarding: look for a firewall rule (`iptables -S` on both) or a lost answer")
    if any(h is not None and h in NAT_NETWORK for h in observed):
        return f"the trace crosses the NAT network: {on_nat(advice)}"
    return ("the path differs from flannel host-gw's; another CNI or an overlay (vxlan) may be in use: compare "
            "`ip route` on both nodes with the expected routes")


def node_trace(spec: LabSpec, src: Node, dst: Node, observed: Sequence[IPv4Address | None],
               facts: Mapping[str, NodeFacts], advice: Advice = VIRTUALBOX) -> str:
    for name in (src.name, dst.name):
        nf = facts.get(name)
        link = nf.link(HOST_ONLY_IF) if nf else None
        if nf is not None and link is None:
            return f"{name} has no {HOST_ONLY_IF}" + (f": {BOX_NIC_NAMES}" if any(
                lk.name.startswith("enp") for lk in nf.links) else "")
        if link is not None and not link.up:
            return link_down(name, HOST_ONLY_IF, advice)
        if link is not None and name == dst.name and dst.ip not in [a.ip for a in link.addresses]:
            return f"{dst.name}'s {HOST_ONLY_IF} does not carry {dst.ip}: " + (
                f"its address was changed; {advice.rebuild(dst.name)}" if advice.emulated
                else "the VM was built from another lab.yaml")
    if len([h for h in observed if h is not None]) > 1:
        return (f"{src.name} reaches {dst.ip} through a router: the nodes are not on one {HOST_ONLY_IF} segment, "
                "which flannel host-gw requires" + ("" if advice.emulated else
                                                     " (are both VMs on the same host-only network?)"))
    if advice.emulated:
        return (f"{dst.name} does not answer on {HOST_ONLY_IF}, and neither node shows a fault: look for a firewall "
                f"rule (`iptables -S`) on {dst.name}")
    return (f"{dst.name} does not answer on {HOST_ONLY_IF}: the host-only network is broken between {src.name} "
            f"and {dst.name} (VirtualBox host-only adapter, or a firewall dropping UDP/ICMP)")


# Kubernetes facts (only labs with a Kubernetes API)
def internal_ip(node: Node, observed: str | None) -> str:
    if observed == str(NAT_ADDRESS):
        return kubelet_on_nat(node.name, node.ip)
    return (f"kubelet on {node.name} registered with {observed or 'no InternalIP'}: set kubelet --node-ip={node.ip} "
            "(KUBELET_EXTRA_ARGS) and restart it")


def public_ip(node: Node, observed: str | None) -> str:
    if observed == str(NAT_ADDRESS) or (observed and IPv4Address(observed) in NAT_NETWORK):
        return FLANNEL_ON_NAT
    if observed is None:
        return (f"kube-flannel has not annotated {node.name}: it is not running there "
                "(see `kubectl -n kube-flannel get pods -o wide`)")
    return f"flannel on {node.name} uses {observed}, not its {HOST_ONLY_IF} address: {FLANNEL_ON_NAT}"


def pod_cidr(node: Node, observed: str | None) -> str:
    return (f"{node.name} got podCIDR {observed or 'none'} instead of {node.pod_subnet}: nodes get /24s in the order "
            "they registered (control plane first, then lab.yaml's order); kubeadm init needs "
            "--pod-network-cidr matching lab.yaml's kubernetes.pod_cidr; join the workers in order")


def not_ready(node: str, reason: str | None) -> str:
    why = f" ({reason})" if reason else ""
    return (f"{node} is not Ready{why}: usually no CNI yet (kube-flannel not running there) or kubelet down; "
            f"`kubectl describe node {node}`")


def flannel_backend(spec: LabSpec, observed: str) -> str:
    return (f"flannel's net-conf.json (ConfigMap kube-flannel-cfg) must say Network {spec.pod_cidr} and Backend "
            f"Type {spec.cni_backend}; found {observed}; edit it and restart the kube-flannel DaemonSet")


def logs_fail(node: Node, stderr: str) -> str:
    if str(NAT_ADDRESS) in stderr:
        return kubelet_on_nat(node.name, node.ip)
    return (f"the API server cannot reach kubelet on {node.name} for logs: kubelet's node IP is probably not "
            f"{node.ip} (set --node-ip) — kubernetes/kubernetes#45583")
