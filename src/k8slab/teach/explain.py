"""Why a trace shows the hops it shows: from recorded outputs to sentences a student reads.

Pure: given the spec, the parsed traceroute, the `ip route get DST` output recorded at the
source and on each node, and optionally a short tcpdump on the destination node's eth1, say
which interface and which route carried the packet at each stop, why the trace is one hop or
three, and whether the packet was encapsulated. Running those commands is teach/trace.py's job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from k8slab.errors import LabStateError
from k8slab.labs.base import Pod
from k8slab.spec import calico
from k8slab.spec.expect import ExpectedHop, hops_from_node, hops_from_pod, interface_of
from k8slab.spec.facts import BRIDGE_IF, FLANNEL_IPIP_IF, HOST_ONLY_IF, NAT_ADDRESS, NAT_IF, VXLAN_IF, VXLAN_PORT
from k8slab.spec.model import LabSpec, Node
from k8slab.verify.traceroute import Trace

TUNNELS = {VXLAN_IF: f"VXLAN (UDP {VXLAN_PORT})", calico.VXLAN_IF: f"VXLAN (UDP {calico.VXLAN_PORT})",
           calico.IPIP_IF: "IP-in-IP (protocol 4)", FLANNEL_IPIP_IF: "IP-in-IP (protocol 4)"}

# ---------------------------------------------------------------- endpoints


@dataclass(frozen=True)
class Endpoint:
    """One end of a trace: a pod, a node (its eth1 address), or a bare address inside the lab."""

    address: IPv4Address
    node: str | None        # the node it is or lives on
    pod: str | None = None
    is_node: bool = False

    @property
    def label(self) -> str:
        if self.pod:
            return f"pod {self.pod} ({self.address}, on {self.node})"
        if self.is_node:
            return f"node {self.node} ({self.address})"
        return str(self.address)

    @property
    def short(self) -> str:
        return f"pod {self.pod}" if self.pod else self.node if self.is_node else str(self.address)


def resolve_endpoint(spec: LabSpec, pods: Sequence[Pod], text: str, *, source: bool = False) -> Endpoint:
    """A pod name, node name or address -> Endpoint; LabStateError naming what exists otherwise."""
    for pod in pods:
        if pod.name == text:
            return Endpoint(pod.ip, pod.node, pod=pod.name)
    for node in spec.nodes:
        if node.name == text:
            return Endpoint(node.ip, node.name, is_node=True)
    try:
        addr = IPv4Address(text)
    except ValueError:
        addr = None
    if addr is not None:
        for pod in pods:
            if pod.ip == addr:
                return Endpoint(pod.ip, pod.node, pod=pod.name)
        owner = spec.node_by_ip(addr)
        if owner is not None and addr in (owner.ip, owner.pod_gateway):
            return Endpoint(addr, owner.name, is_node=True)
        if owner is not None and not source:
            return Endpoint(addr, owner.name)
    names = ", ".join([p.name for p in pods] + [n.name for n in spec.nodes])
    what = "a pod or a node to run the trace from" if source else "a pod, a node or an address inside the lab"
    raise LabStateError(f"{text!r} is not {what}; known here: {names} (addresses: node eth1 addresses, "
                        f"pod addresses in {spec.pod_cidr})")


def expected_hops(spec: LabSpec, src: Endpoint, dst: Endpoint) -> list[ExpectedHop]:
    src_node = spec.node(src.node or "")
    if src.pod:
        return hops_from_pod(spec, src_node, dst.address)
    return hops_from_node(spec, src_node, dst.address)


# ---------------------------------------------------------------- ip route get


@dataclass(frozen=True)
class RouteGet:
    """One `ip route get DST` answer: where the kernel sends DST from that place."""

    dst: IPv4Address
    dev: str
    via: IPv4Address | None = None
    src: IPv4Address | None = None
    local: bool = False
    line: str = ""

    def text(self) -> str:
        return self.line or " ".join(
            ["local " if self.local else "", str(self.dst)] + ([f"via {self.via}"] if self.via else [])
            + [f"dev {self.dev}"] + ([f"src {self.src}"] if self.src else [])).strip()


_ROUTE_GET = re.compile(r"^(?P<local>local\s+)?(?:(?:unicast|broadcast)\s+)?"
                        r"(?P<dst>\d+\.\d+\.\d+\.\d+)\s+(?P<rest>.*)$")


def parse_route_get(text: str) -> RouteGet | None:
    """The first line of `ip route get` (iproute2 or busybox); None when there is no route."""
    for raw in text.splitlines():
        m = _ROUTE_GET.match(raw.strip())
        if not m:
            continue
        words = m["rest"].split()
        opts = {words[i]: words[i + 1] for i in range(len(words) - 1) if words[i] in ("via", "dev", "src")}
        if "dev" not in opts:
            continue
        line = " ".join(raw.split())
        line = re.sub(r"\s+uid \d+.*$", "", line)  # uid and cache flags say nothing about the path
        return RouteGet(dst=IPv4Address(m["dst"]), dev=opts["dev"],
                        via=IPv4Address(opts["via"]) if "via" in opts else None,
                        src=IPv4Address(opts["src"]) if "src" in opts else None,
                        local=bool(m["local"]), line=line)
    return None


@dataclass(frozen=True)
class Stop:
    """One place the packet passes: the source pod or a node, with the route it took there."""

    where: str               # "pod w-src" or a node name
    node: str | None         # the node name when the stop is a node
    route: RouteGet | None
    meaning: str             # why the kernel there did what it did
    arrives: str = ""        # the interface the packet came in on, for a node along the way


def route_chain(spec: LabSpec, src: Endpoint, dst: Endpoint, src_route: str | None,
                node_routes: Mapping[str, str]) -> list[Stop]:
    """Follow the recorded `ip route get` answers from the source to the destination.

    src_route is the answer inside the source pod (None for a node source); node_routes maps a
    node name to the answer recorded on that node. The walk stops at the destination, at a
    missing answer, or at a loop (a misrouted lab), each explained.
    """
    stops: list[Stop] = []
    current: str | None  # node name we are at
    if src.pod:
        route = parse_route_get(src_route or "")
        if route is None:
            stops.append(Stop(f"pod {src.pod}", None, None,
                              f"the pod has no route to {dst.address}: {(src_route or 'nothing recorded').strip()}"))
            return stops
        if route.via is None:
            peer = ("the node's own bridge answers" if dst.is_node else
                    f"{src.node}'s bridge {BRIDGE_IF} delivers it to the target's veth at layer 2")
            stops.append(Stop(f"pod {src.pod}", None, route,
                              f"{dst.address} is on the pod's own link ({route.dev}, no 'via'): the pod sends it "
                              f"straight out and {peer}; no router is involved"))
            return stops
        first = spec.node_by_ip(route.via)
        if spec.calico is not None and route.via == calico.POD_GATEWAY:
            first = spec.node(src.node or "")
            role = (f"an address no one has: {src.node}'s cali veth answers the pod's ARP for it by proxy "
                    f"(with {calico.HOST_VETH_MAC}), so the packet goes to {src.node}")
        else:
            role = _address_role(spec, route.via)
        stops.append(Stop(f"pod {src.pod}", None, route,
                          f"the pod's default route sends it out of its {route.dev} to {route.via}, {role}"))
        current = first.name if first else None
    else:
        current = src.node
    seen: set[str] = set()
    arrives = ""
    if stops and stops[-1].route:
        arrives = (f"{calico.veth_name(src.pod or '')} (the pod's veth)" if spec.calico is not None
                   else f"{BRIDGE_IF} (from the pod's veth)")
    while current is not None:
        if current in seen:
            stops.append(Stop(current, current, None, f"loop: the packet came back to {current}"))
            break
        seen.add(current)
        node = spec.node(current)
        raw = node_routes.get(current)
        route = parse_route_get(raw or "")
        if route is None:
            why = (raw or "").strip() or "no `ip route get` answer was recorded here"
            stops.append(Stop(current, current, None, f"{current} has no route to {dst.address}: {why}"))
            break
        meaning, nxt = _node_step(spec, node, route, dst)
        stops.append(Stop(current, current, route, meaning, arrives))
        arrives = (f"{HOST_ONLY_IF} as {TUNNELS[route.dev]}, unwrapped by {route.dev}" if route.dev in TUNNELS
                   else f"{route.dev} (from {current})")
        current = nxt
    return stops


def _node_step(spec: LabSpec, node: Node, route: RouteGet, dst: Endpoint) -> tuple[str, str | None]:
    if route.local:
        return f"{dst.address} is {node.name}'s own address: the packet is delivered here", None
    owner = spec.node_by_ip(dst.address)
    if route.dev == NAT_IF and dst.address in spec.pod_cidr and owner is not None:
        return (f"WRONG: {dst.address} is a pod address, yet {node.name} sends it out of {NAT_IF} (VirtualBox NAT, "
                f"its default route): flannel's route to {owner.name}'s pod subnet {owner.pod_subnet} is missing, "
                "so the packet is lost behind the NAT"), None
    if route.dev.startswith(calico.VETH_PREFIX) and route.via is None:
        return (f"Calico's /32 route to the pod on its veth {route.dev}: {node.name} routes the packet to it "
                "(no bridge: even pods of one node are a routed hop apart)"), None
    if spec.calico is not None and route.via is not None and (peer := spec.node_by_ip(route.via)) is not None \
            and dst.address in peer.pod_subnet:
        made = "learned from BIRD over BGP" if spec.calico.uses_bgp else "written by Felix"
        if route.dev in TUNNELS:
            return (f"Calico's route for {peer.name}'s block {peer.pod_subnet} ({made}): into {route.dev}, which "
                    f"wraps the packet in {TUNNELS[route.dev]} to {peer.name}'s {HOST_ONLY_IF} ({peer.ip})"), peer.name
        return (f"Calico's route for {peer.name}'s block {peer.pod_subnet} ({made}): out of {route.dev} to "
                f"{peer.name}'s {HOST_ONLY_IF} ({peer.ip}), the packet unchanged"), peer.name
    if route.via is not None:
        peer = spec.node_by_ip(route.via)
        subnet = peer.pod_subnet if peer else None
        if route.dev == FLANNEL_IPIP_IF and peer is not None:
            return (f"flannel's ipip route for {peer.name}'s pod subnet {subnet}: into {FLANNEL_IPIP_IF}, which "
                    f"wraps the packet in an IP header (protocol 4) to {peer.name}'s {HOST_ONLY_IF} ({peer.ip})"), \
                peer.name
        if route.dev == VXLAN_IF and peer is not None:
            return (f"flannel's vxlan route for {peer.name}'s pod subnet {subnet}: into {VXLAN_IF}, which wraps "
                    f"the packet in UDP {VXLAN_PORT} to {peer.name}'s {HOST_ONLY_IF} ({peer.ip})"), peer.name
        if peer is not None and route.via == peer.ip and dst.address in peer.pod_subnet:
            return (f"flannel's host-gw route for {peer.name}'s pod subnet {subnet}: out of {route.dev} to "
                    f"{peer.name}'s {HOST_ONLY_IF} ({peer.ip}), the packet unchanged"), peer.name
        where = f"{peer.name} ({_address_role(spec, route.via)})" if peer else f"{route.via}, outside the lab"
        return f"out of {route.dev} via {route.via}, that is {where}", peer.name if peer else None
    if route.dev == BRIDGE_IF and dst.address in node.pod_subnet:
        return (f"{node.pod_subnet} is {node.name}'s own pod subnet, on {BRIDGE_IF}: the bridge hands the packet "
                "to the target pod's veth"), None
    target = spec.node_by_ip(dst.address)
    if target is not None and dst.address == target.ip and target.name != node.name:
        return (f"{dst.address} is on the network of {route.dev} (no 'via'): sent straight to {target.name} "
                "on the shared segment, no router in between"), target.name
    return f"sent out of {route.dev} to {dst.address} directly (no 'via')", None


# ---------------------------------------------------------------- tcpdump


@dataclass(frozen=True)
class Packet:
    src: IPv4Address
    dst: IPv4Address
    summary: str                    # what tcpdump says after the addresses ("ICMP echo request...")
    dport: int | None = None
    inner: Packet | None = None     # the packet a VXLAN datagram carries


_PKT = re.compile(r"\bIP (?P<src>\d+\.\d+\.\d+\.\d+)(?:\.(?P<sport>\d+))? > "
                  r"(?P<dst>\d+\.\d+\.\d+\.\d+)(?:\.(?P<dport>\d+))?: (?P<summary>.*)$")


def parse_capture(text: str) -> list[Packet]:
    """`tcpdump -nn` lines -> packets; a VXLAN line's inner packet (next line) is attached to it."""
    packets: list[Packet] = []
    for line in text.splitlines():
        m = _PKT.search(line)
        if not m:
            continue
        pkt = Packet(IPv4Address(m["src"]), IPv4Address(m["dst"]), m["summary"].strip(),
                     int(m["dport"]) if m["dport"] else None)
        outer = packets[-1] if packets else None
        # tcpdump prints a tunnel's payload on its own line, without a timestamp.
        if outer is not None and outer.inner is None and _is_vxlan(outer) and not line[:1].isdigit():
            packets[-1] = Packet(outer.src, outer.dst, outer.summary, outer.dport, inner=pkt)
            continue
        packets.append(pkt)
    return packets


def _is_vxlan(p: Packet) -> bool:
    return p.dport in (VXLAN_PORT, calico.VXLAN_PORT) or "OTV" in p.summary or "VXLAN" in p.summary


@dataclass(frozen=True)
class Capture:
    node: str
    interface: str
    text: str                 # tcpdump's stdout as recorded
    note: str = ""            # why there is no capture (tcpdump missing...), when text is empty


def capture_verdict(spec: LabSpec, src: Endpoint, dst: Endpoint, capture: Capture) -> tuple[bool | None, list[str]]:
    """Was the packet encapsulated on eth1, as the spec's flannel backend says it must (not) be?

    Returns (ok, lines); ok is None when the capture cannot tell (nothing seen where nothing is
    expected either, or no capture taken).
    """
    where = f"{capture.node}'s {capture.interface}"
    if capture.note:
        return None, [f"no capture on {where}: {capture.note}"]
    packets = parse_capture(capture.text)
    same_node = src.node == dst.node
    if not packets:
        if same_node:
            inside = f"on {BRIDGE_IF}" if spec.calico is None else "inside the node (cali veth to cali veth)"
            return True, [(f"a capture on {where} saw none of the pings: traffic between two pods of "
                           f"{src.node} stays {inside} and never reaches the wire")]
        return None, [f"a capture on {where} saw none of the pings, so it cannot tell about encapsulation"]
    vxlan = [p for p in packets if _is_vxlan(p)]
    ipip = [p for p in packets if "ipip-proto-4" in p.summary or p.summary.startswith("IP ")]
    plain = [p for p in packets if not _is_vxlan(p) and p not in ipip]
    # The capture watches the pings shown with it (ICMP echo): traceroute's own probes are UDP datagrams.
    lines = [(f"a capture on {where} saw {len(packets)} packet(s) of the ping shown above (ICMP echo; traceroute's "
             "own probes are UDP to ports 33434 and up), e.g.:")]
    lines += [f"    {_show(p)}" for p in packets[:2]]
    want = expected_encapsulation(spec, src, dst)
    if vxlan:
        inner = vxlan[0].inner
        carried = f", carrying {inner.src} > {inner.dst}" if inner else ""
        lines.append(f"encapsulated: node addresses {vxlan[0].src} > {vxlan[0].dst} outside, UDP port "
                     f"{vxlan[0].dport} (VXLAN){carried}; the pod addresses travel inside (50 bytes more per packet)")
    if ipip:
        lines.append(f"encapsulated: node addresses {ipip[0].src} > {ipip[0].dst} outside, IP protocol 4 (IP-in-IP); "
                     "the pod addresses travel inside (20 bytes more per packet)")
    if plain:
        lines.append(f"not encapsulated: {plain[0].src} > {plain[0].dst} on the wire as the pods sent it; "
                     "the route only changes the next hop, never the packet")
    if same_node:
        lines.append(f"unexpected: pods on the same node should not put traffic on {capture.interface}")
        return False, lines
    ok = {"vxlan": bool(vxlan), "ipip": bool(ipip)}.get(want, bool(plain) and not vxlan and not ipip)
    lines.append(f"{'as expected' if ok else 'NOT as expected'} for {spec.dataplane}")
    return ok, lines


def expected_encapsulation(spec: LabSpec, src: Endpoint, dst: Endpoint) -> str:
    """"vxlan", "ipip" or "" (none) for traffic between the two endpoints' nodes."""
    if spec.calico is not None:
        a, b = spec.node(src.node or ""), spec.node(dst.node or "")
        if not spec.calico.encapsulates(a.ip, b.ip, spec.host_only):
            return ""
        return "vxlan" if spec.calico.tunnel == calico.VXLAN_IF else "ipip"
    return {"vxlan": "vxlan", "ipip": "ipip"}.get(spec.cni_backend, "")


def _show(p: Packet) -> str:
    port = f".{p.dport}" if p.dport else ""
    text = f"IP {p.src} > {p.dst}{port}: {p.summary}"
    return text + (f"  |  inside: IP {p.inner.src} > {p.inner.dst}: {p.inner.summary}" if p.inner else "")


# ---------------------------------------------------------------- the explanation


@dataclass(frozen=True)
class HopLine:
    ttl: int
    observed: IPv4Address | None
    expected: ExpectedHop | None
    ok: bool
    who: str                  # whose address answered
    why: str


@dataclass
class Explanation:
    src: Endpoint
    dst: Endpoint
    expected: list[ExpectedHop]
    hops: list[HopLine]
    stops: list[Stop]
    ok: bool
    encapsulation_ok: bool | None = None
    lines: list[str] = field(default_factory=list)
    cause: str | None = None  # verify/diagnose.py's named cause when the trace failed

    @property
    def covered(self) -> bool:
        """The tutorial traces node to node and pod to pod; other paths are judged, not quoted from it."""
        return (self.src.is_node and self.dst.is_node) or bool(self.src.pod and self.dst.pod)

    @property
    def summary(self) -> str:
        n = len(self.expected)
        answered = sum(h.observed is not None for h in self.hops)
        silent = len(self.hops) - answered
        shape = f"{answered} of {n} hop(s) answered" + (f", {silent} silent (*)" if silent else "")
        if len(self.hops) != n:
            shape += f", {len(self.hops)} probed"
        source = "the tutorial says" if self.covered else "expected"
        verdict = f"as {source}" if self.ok else f"NOT as {source}"
        return f"{self.src.short} -> {self.dst.short}: {shape}: {verdict}"


def describe_address(spec: LabSpec, pods: Sequence[Pod], addr: IPv4Address | None) -> str:
    if addr is None:
        return "no answer (*)"
    for pod in pods:
        if pod.ip == addr:
            return f"pod {pod.name}'s eth0 (on {pod.node})"
    return _address_role(spec, addr)


def _address_role(spec: LabSpec, addr: IPv4Address) -> str:
    if spec.calico is not None and addr == NAT_ADDRESS:
        return f"a node's {NAT_IF} ({NAT_ADDRESS} on every node): the first address of the node that routed it"
    owned = interface_of(spec, addr)
    if owned is not None:
        return f"{owned[0].name}'s {owned[1]}"
    node = spec.node_by_ip(addr)
    return "an address outside the lab" if node is None else f"a pod address on {node.name}"


def explain_trace(spec: LabSpec, src: Endpoint, dst: Endpoint, trace: Trace, *, src_route: str | None,
                  node_routes: Mapping[str, str], capture: Capture | None = None,
                  pods: Sequence[Pod] = (), cause: str | None = None) -> Explanation:
    """cause: what verify/diagnose.py names from the nodes' facts when the trace failed; a failed trace
    gets it instead of the healthy "why N hops" text."""
    expected = expected_hops(spec, src, dst)
    stops = route_chain(spec, src, dst, src_route, node_routes)
    hops: list[HopLine] = []
    for i in range(max(len(trace.hops), len(expected))):
        hop = trace.hops[i] if i < len(trace.hops) else None
        exp = expected[i] if i < len(expected) else None
        observed = hop.address if hop else None
        ok = exp is not None and hop is not None and exp.address in hop.addresses
        who = describe_address(spec, pods, observed) if hop else "(the trace ended before this hop)"
        if exp is None:
            why = "an extra hop the tutorial's lab does not have"
        elif ok:
            why = exp.why
        else:
            why = f"expected {exp.address} ({_address_role(spec, exp.address)}): {exp.why}"
        hops.append(HopLine(hop.ttl if hop else i + 1, observed, exp, ok, who, why))
    ok = len(trace.hops) == len(expected) and all(h.ok for h in hops)

    lines = [f"trace from {src.label} to {dst.label}"]
    lines.append(f"the packet's path, from `ip route get {dst.address}` at each stop:")
    for stop in stops:
        came = f" [in on {stop.arrives}]" if stop.arrives else ""
        lines.append(f"  {stop.where}{came}: {stop.route.text() if stop.route else '(no route)'}")
        lines.append(f"      -> {stop.meaning}")
    lines.append("the hops traceroute saw (each is the first probe's responder for that TTL):")
    for h in hops:
        mark = "✓" if h.ok else "✗"
        lines.append(f"  {mark} {h.ttl}  {h.observed or '*'!s:15}  {h.who}")
        lines.append(f"        {h.why}")
    if ok:
        lines.append(_why_count(spec, src, dst, expected, stops))
    else:
        lines.append(f"likely cause: {cause}" if cause else
                     "likely cause: none of the nodes shows a fault in its links, routes or forwarding")
    if not dst.pod and not dst.is_node:
        lines.append(f"note: {dst.address} is in {dst.node}'s pod subnet but no pod of this lab has it, so the last "
                     "hop can only stay silent")
    enc_ok = None
    if capture is not None:
        enc_ok, cap_lines = capture_verdict(spec, src, dst, capture)
        lines += cap_lines
    return Explanation(src, dst, expected, hops, stops, ok, enc_ok, lines, cause)


def _routers(stops: Sequence[Stop], src: Endpoint) -> list[str]:
    """The nodes that forwarded the packet (each decrements the TTL); the source node itself does not."""
    names = [s.node for s in stops if s.node and s.route and not s.route.local]
    if not src.pod and names and names[0] == src.node:
        names = names[1:]
    return names


def _why_count(spec: LabSpec, src: Endpoint, dst: Endpoint, expected: Sequence[ExpectedHop],
               stops: Sequence[Stop]) -> str:
    n = len(expected)
    routers = _routers(stops, src)
    if n == 1:
        if src.pod and src.node == dst.node and spec.calico is None:
            return (f"why 1 hop: both pods sit on {src.node}'s {BRIDGE_IF}; a bridge forwards frames without "
                    "touching the TTL, so the very first probe reaches the target and it answers itself")
        return (f"why 1 hop: {dst.address} is on a network {src.short} is attached to ({HOST_ONLY_IF}, one L2 "
                "segment), so no router stands between them and the target answers the first probe")
    parts = ", then ".join(routers) if routers else "none recorded"
    if len(routers) + 1 != n:
        return (f"why {n} hops: the tutorial's lab has {n - 1} router(s) on this path, but the recorded routes "
                f"show {len(routers)} ({parts}): the routing above is where this lab differs")
    return (f"why {n} hops: {len(routers)} router(s) forward the packet ({parts}); each one that receives a probe "
            "with TTL 1 drops it and answers 'time exceeded' from its address facing back to the source, and the "
            f"target answers the last probe: {len(routers)} + 1 = {len(routers) + 1}")
