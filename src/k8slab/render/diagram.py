"""A picture of the lab like the tutorial's figures, as Graphviz DOT text, and its rendering.

build_dot is pure (spec + pods + optional traced path -> DOT); render runs Graphviz's `dot`.
Each node is a box holding lo, eth0, eth1, cni0 (and flannel.1 with vxlan) around its routing
table; its pods hang under cni0; every eth1 joins the host-only network, where the host sits;
every eth0 goes to its own VirtualBox NAT. A traced path is drawn as red arrows, and the
addresses that answered the trace carry their hop number.
"""

from __future__ import annotations

import html
import shutil
import subprocess
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from itertools import pairwise
from pathlib import Path

from k8slab.errors import CommandFailedError, ToolMissingError, UsageError
from k8slab.labs.base import Pod
from k8slab.render.output_files import write_output
from k8slab.spec import calico, expect_calico
from k8slab.spec.expect import flannel_tunnel, interface_of, node_routes
from k8slab.spec.facts import (
    BRIDGE_IF,
    DEFAULT_ROUTE,
    HOST_ONLY_IF,
    LOOPBACK,
    NAT_ADDRESS,
    NAT_GATEWAY,
    NAT_IF,
    NAT_NETWORK,
    POD_IF,
    VXLAN_IF,
    VXLAN_PORT,
    VXLAN_VNI,
)
from k8slab.spec.model import LabSpec
from k8slab.spec.route import Route

FORMATS = ("svg", "png")
SWITCH = "host-only"
HOST = "host"

HIGHLIGHT = "#d62728"
TUNNEL_FILL = "#fce5cd"
_FILL = {HOST_ONLY_IF: "#cfe2f3", BRIDGE_IF: "#d9ead3", NAT_IF: "#eeeeee", "lo": "#f7f7f7", VXLAN_IF: TUNNEL_FILL,
         "pod": "#fff2cc", "router": "#ffffff"}


def tunnel(spec: LabSpec, node) -> tuple[str, str, str] | None:
    """(device, its address and kind, what rides on eth1) of the dataplane's tunnel on node, if it has one."""
    if spec.calico is not None:
        found = expect_calico.tunnel_interface(spec, node)
        if found is None:
            return None
        dev, addr = found
        if dev == calico.VXLAN_IF:
            return dev, f"{addr}, VNI {calico.VXLAN_VNI}", f"UDP {calico.VXLAN_PORT}"
        return dev, f"{addr}, IP-in-IP", "IP proto 4"
    dev = flannel_tunnel(spec)
    if dev is None:
        return None
    addr = f"{node.pod_subnet.network_address}/32"
    return ((dev, f"{addr}, VNI {VXLAN_VNI}", f"UDP {VXLAN_PORT}") if dev == VXLAN_IF
            else (dev, f"{addr}, IP-in-IP", "IP proto 4"))


def if_id(node: str, iface: str) -> str:
    return f"{node}/{iface}"


def router_id(node: str) -> str:
    return f"{node}/routes"


def pod_id(pod: str) -> str:
    return f"pod/{pod}"


@dataclass(frozen=True)
class Path_:
    """A traced path: the diagram elements the packet passed, in order, and who answered each hop."""

    elements: tuple[str, ...]
    hops: tuple[IPv4Address | None, ...] = ()
    title: str = ""
    dst: IPv4Address | None = None   # its routing-table row is marked on every node the packet crossed
    lost_at: str | None = None       # a failed trace: the element where the packet was last seen
    lost_why: str = ""               # why it went no further there
    missing: tuple[str, str] | None = None   # (node, route line) the packet needed there and did not find


def path_from_stops(spec: LabSpec, src, dst, stops, hops: Sequence[IPv4Address | None] = ()) -> Path_:
    """The elements a packet crosses, from explain.route_chain's stops (the real routes taken)."""
    ids: list[str] = []
    if src.pod:
        ids.append(pod_id(src.pod))
    for stop in stops:
        route = stop.route
        if stop.node is None:  # the source pod
            if route is None:
                break
            if spec.calico is None:
                ids.append(if_id(src.node, BRIDGE_IF))
                if route.via is None and dst.pod:
                    ids.append(pod_id(dst.pod))
            continue
        n = stop.node
        tun = tunnel(spec, spec.node(n))
        if ids and ids[-1] == SWITCH:
            ids.append(if_id(n, HOST_ONLY_IF))
            if tun and tun[0] in stop.arrives:
                ids.append(if_id(n, tun[0]))
        if route is None or route.local:
            break
        ids.append(router_id(n))
        if route.dev.startswith(calico.VETH_PREFIX):  # Calico: the router hands it to the pod's own veth
            if dst.pod:
                ids.append(pod_id(dst.pod))
            continue
        ids.append(if_id(n, route.dev))
        if route.dev == NAT_IF:
            ids.append(f"{n}/nat")  # out to VirtualBox's NAT: the packet leaves the lab here
        if tun and route.dev == tun[0]:
            ids.append(if_id(n, HOST_ONLY_IF))
        if route.dev == HOST_ONLY_IF or (tun and route.dev == tun[0]):
            ids.append(SWITCH)
        elif route.dev == BRIDGE_IF and dst.pod:
            ids.append(pod_id(dst.pod))
    title = f"traced: {src.short} -> {dst.short}"
    lost = _where_lost(spec, src, dst, stops, ids)
    return Path_(tuple(ids), tuple(hops), title, dst.address, *lost)


def _where_lost(spec: LabSpec, src, dst, stops, ids: Sequence[str]) -> tuple[str | None, str, tuple[str, str] | None]:
    """For a packet that did not reach dst: the last element it reached, why, and the route it lacked there."""
    last = stops[-1] if stops else None
    if last is None or (last.route is not None and last.route.local) or \
            (dst.pod and ids and ids[-1] == pod_id(dst.pod)):
        return None, "", None
    if last.route is not None and last.route.via is None and last.route.dev == BRIDGE_IF and not dst.pod:
        return None, "", None  # a node's own bridge answered: delivered
    node = last.node or src.node
    need = next((r for r in node_routes(spec, spec.node(node)) if dst.address in r.route.dst), None) if node else None
    missing = (node, str(need.route)) if need is not None else None
    where = ids[-1] if ids else (pod_id(src.pod) if src.pod else router_id(node or ""))
    return where, last.meaning, missing


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _attrs(**kw: str | float | None) -> str:
    parts = []
    for k, v in kw.items():
        if v is None:
            continue
        if isinstance(v, str) and v.startswith("<") and v.endswith(">"):
            parts.append(f"{k}={v}")  # an HTML-like label
        else:
            parts.append(f"{k}={_q(str(v))}")
    return "[" + ", ".join(parts) + "]"


def _html_label(title: str, lines: Sequence[str], badge: str = "") -> str:
    head = f"<B>{html.escape(title)}</B>"
    if badge:
        head = f'<FONT COLOR="{HIGHLIGHT}"><B>{html.escape(badge)}</B></FONT>  ' + head
    rows = "".join(f"<BR/>{html.escape(line)}" for line in lines)
    return f"<{head}{rows}>"


def build_dot(spec: LabSpec, pods: Sequence[Pod] = (), path: Path_ | None = None,
              routes: Mapping[str, Sequence[str]] | None = None) -> str:
    """The lab as DOT. routes: node -> route lines as observed (`ip -4 route`); else what flannel installs."""
    known = {n.name for n in spec.nodes}
    badges: dict[str, list[str]] = {}
    if path:
        routers = [e.split("/")[0] for e in path.elements if e.endswith("/routes")]
        for i, addr in enumerate(path.hops, start=1):
            element = _element_of(spec, pods, addr)
            if element is None and spec.calico is not None and addr == NAT_ADDRESS and routers:
                element = if_id(routers[0], NAT_IF)  # a cali veth has no address: the node answers from eth0
            if element:
                badges.setdefault(element, []).append(f"hop {i}")

    def badge(element: str) -> str:
        return ", ".join(badges.get(element, []))

    title = _html_label(f"lab {spec.name}: {spec.dataplane} on {HOST_ONLY_IF}, pod CIDR {spec.pod_cidr}",
                        [path.title] if path and path.title else [])
    graph_attrs = _attrs(label=title, labelloc="t", fontname="Helvetica", fontsize=16, rankdir="TB", nodesep=0.35,
                         ranksep=0.45, newrank="true", bgcolor="white", pad=0.3)
    node_attrs = _attrs(shape="box", style="rounded,filled", fontname="Helvetica", fontsize=11, margin="0.12,0.06")
    edge_attrs = _attrs(dir="none", color="#555555", fontname="Helvetica", fontsize=9, penwidth=1.2)
    host_attrs = _attrs(label=_html_label("host", [f"{spec.host_ip} on the host-only network"]),
                        fillcolor="#e8e8f8", shape="box3d", style="filled")
    switch_attrs = _attrs(label=_html_label("host-only network", [str(spec.host_only), "one L2 segment: every eth1"]),
                          fillcolor="#9fc5e8", width=6)
    out = [f"digraph {_q('lab ' + spec.name)} {{", f"  graph {graph_attrs};", f"  node {node_attrs};",
           f"  edge {edge_attrs};", f"  {_q(HOST)} {host_attrs};", f"  {_q(SWITCH)} {switch_attrs};"]
    edges: list[tuple[str, str, dict[str, str]]] = [(HOST, SWITCH, {})]

    for node in spec.nodes:
        n = node.name
        role = "control plane" if node.is_control_plane else "worker"
        out.append(f"  subgraph {_q('cluster_' + n)} {{")
        node_title = _html_label(f'{n} ({role})', [f'pod subnet {node.pod_subnet}'])
        box_attrs = _attrs(label=node_title, style='rounded,filled', fillcolor='#f3f3f3', color='#888888', fontsize=13,
                           margin=12, labelloc='b')
        out.append(f"    graph {box_attrs};")
        lines = list(routes.get(n, [])) if routes and n in routes else spec_route_lines(spec, node)
        lacking = path.missing[1] if path and path.missing and path.missing[0] == n else None
        lines = [line for line in lines if line != lacking]  # the trace proved it absent, whatever the spec says
        used = _used_route(lines, path.dst) if path and path.dst and router_id(n) in path.elements else None
        table = _route_table(lines, badge(router_id(n)), used, lacking)
        out.append(f"    {_q(router_id(n))} {_attrs(label=table, shape='plain', style='')};")
        ifaces = [(HOST_ONLY_IF, f"{node.ip}/{spec.host_only.prefixlen}"),
                  (BRIDGE_IF, f"{node.pod_gateway}/{node.pod_subnet.prefixlen}"),
                  (NAT_IF, f"{NAT_ADDRESS}/{NAT_NETWORK.prefixlen} (NAT)"),
                  ("lo", str(LOOPBACK))]
        if spec.calico is not None:  # no bridge: every pod has its own cali veth on the node's router
            ifaces = [i for i in ifaces if i[0] != BRIDGE_IF]
        tun = tunnel(spec, node)
        if tun:
            ifaces.insert(1, tun[:2])
        # On a live lab a node that never ran a pod has no cni0 yet (the bridge plugin makes it for the first pod).
        no_bridge = routes is not None and n in routes and not any(
            line.split()[:1] == [str(node.pod_subnet)] and f"dev {BRIDGE_IF}" in line for line in routes[n])
        for name, addr in ifaces:
            eid = if_id(n, name)
            extra = ["(made with the first pod)"] if name == BRIDGE_IF and no_bridge else []
            style = "rounded,filled,dashed" if extra else None
            label = _html_label(name, [addr, *extra], badge(eid))
            out.append(f"    {_q(eid)} {_attrs(label=label, fillcolor=_FILL.get(name, TUNNEL_FILL), style=style)};")
        for pod in [p for p in pods if p.node == n]:
            pid = pod_id(pod.name)
            pod_label = _html_label('pod ' + pod.name, [f'{POD_IF} {pod.ip}'], badge(pid))
            out.append(f"    {_q(pid)} {_attrs(label=pod_label, fillcolor=_FILL['pod'], shape='box', style='filled')};")
            if spec.calico is not None:
                edges.append((router_id(n), pid, {"label": f"{calico.veth_name(pod.name)} (proxy ARP)"}))
            else:
                edges.append((if_id(n, BRIDGE_IF), pid, {"label": "veth"}))
        same_rank = [NAT_IF, "lo"] if spec.calico is not None else [NAT_IF, BRIDGE_IF, "lo"]
        out.append(f"    {{ rank=same; {'; '.join(_q(if_id(n, i)) for i in same_rank)}; }}")
        nat = f"{n}/nat"
        nat_label = _html_label("VirtualBox NAT", [f"gateway {NAT_GATEWAY}", f"reaches {n} only"])
        nat_attrs = _attrs(label=nat_label, fillcolor='white', style='dashed,rounded', fontsize=9, color='#999999')
        out.append(f"    {_q(nat)} {nat_attrs};")
        if path and path.lost_at and _node_of(path.lost_at, pods) == n:
            out += _lost_mark(path)  # inside the node's box, so its arrow crosses no title
        out.append("  }")
        edges += [(SWITCH, if_id(n, HOST_ONLY_IF), {})]
        if tun:
            edges += [(if_id(n, HOST_ONLY_IF), if_id(n, tun[0]), {"label": tun[2]}),
                      (if_id(n, tun[0]), router_id(n), {})]
        if spec.calico is None:
            edges.append((router_id(n), if_id(n, BRIDGE_IF), {}))
        edges += [(if_id(n, HOST_ONLY_IF), router_id(n), {}), (router_id(n), if_id(n, NAT_IF), {}),
                  (router_id(n), if_id(n, "lo"), {"style": "dotted"}),
                  (if_id(n, NAT_IF), nat, {"style": "dashed"})]

    on_path = _path_pairs(path.elements) if path else {}
    seen_pairs = set()
    for a, b, attrs in edges:
        if a.split("/")[0] not in known | {HOST, SWITCH, "pod"}:
            continue
        key = frozenset((a, b))
        seen_pairs.add(key)
        attrs = dict(attrs)
        if key in on_path:
            forward = on_path[key] == (a, b)
            attrs.update(color=HIGHLIGHT, penwidth="3.5", dir="forward" if forward else "back", arrowsize="1.1",
                         fontcolor=HIGHLIGHT)
        out.append(f"  {_q(a)} -> {_q(b)} {_attrs(**attrs)};")
    missing = [pair for pair in on_path if pair not in seen_pairs]
    if missing:
        # The path crossed something the diagram has no link for (a misrouted lab): draw it anyway.
        for key in missing:
            a, b = on_path[key]
            edge_attrs = _attrs(color=HIGHLIGHT, penwidth='3.5', dir='forward', style='dashed', constraint='false')
            out.append(f"  {_q(a)} -> {_q(b)} {edge_attrs};")
    if path and path.lost_at and _node_of(path.lost_at, pods) is None:
        out += _lost_mark(path)
    tun = tunnel(spec, spec.nodes[0])
    out += _legend(path is not None, f"{tun[2]}: {tun[0]} wraps pod packets, sent on eth1" if tun else "")
    # under the lab: hung below a node's NAT box, the lowest row of every node
    out.append(f"  {_q(spec.nodes[len(spec.nodes) // 2].name + '/nat')} -> {_q(LEGEND)} {_attrs(style='invis')};")
    out.append("}")
    return "\n".join(out) + "\n"


LOST = "lost"


def _node_of(element: str, pods: Sequence[Pod]) -> str | None:
    """The lab node whose box holds a diagram element (None: the host or the host-only network)."""
    if element.startswith("pod/"):
        return next((p.node for p in pods if pod_id(p.name) == element), None)
    head = element.split("/")[0]
    return head if "/" in element else None


def _lost_mark(path: Path_) -> list[str]:
    """A red mark beside the element where a failed trace's packet was last seen: why, and the route it lacked."""
    lines = textwrap.wrap(path.lost_why, 48)
    if path.missing:
        lines.append(f"{path.missing[0]} lacks: {path.missing[1]}")
    label = _html_label("✗ packet lost here", lines)
    mark = _attrs(label=label, shape='box', style='filled,bold', fillcolor='#fdecea', color=HIGHLIGHT,
                  fontcolor=HIGHLIGHT, fontsize=10)
    edge = _attrs(color=HIGHLIGHT, style='bold', dir='forward', arrowhead='dot')
    return [f"  {_q(LOST)} {mark};", f"  {_q(str(path.lost_at))} -> {_q(LOST)} {edge};"]


LEGEND = "legend"


def _legend(traced: bool, tunnel_text: str) -> list[str]:
    """What the line styles mean: a sample of each line beside its text, in one box under the lab."""
    entries = [("#555555", "────", "a link: cable, veth, or the node's routing between its interfaces"),
               ("#555555", "·······", "lo: traffic a node sends to itself, never on a wire"),
               ("#555555", "- - - -",
                "each node's own VirtualBox NAT (eth0), not shared; a dashed box: made with the first pod")]
    if tunnel_text:
        entries.append(("#555555", "────", tunnel_text))
    if traced:
        entries += [(HIGHLIGHT, "━━━▶", "the traced packet's path; hop N: who answered traceroute's Nth probe"),
                    (HIGHLIGHT, "red row", "the routing-table row the kernel used; struck out: a row that is missing")]
    rows = "".join(f'<TR><TD ALIGN="LEFT"><FONT COLOR="{color}"><B>{html.escape(sample)}</B></FONT></TD>'
                   f'<TD ALIGN="LEFT">{html.escape(text)}</TD></TR>' for color, sample, text in entries)
    table = (f'<<TABLE BORDER="1" CELLBORDER="0" CELLSPACING="0" CELLPADDING="3" COLOR="#bbbbbb" BGCOLOR="white">'
             f'<TR><TD COLSPAN="2" ALIGN="LEFT"><B>legend</B></TD></TR>{rows}</TABLE>>')
    return [f"  {_q(LEGEND)} {_attrs(label=table, shape='plain', style='', fontsize=10)};",
            ]


def _path_pairs(elements: Sequence[str]) -> dict[frozenset[str], tuple[str, str]]:
    pairs: dict[frozenset[str], tuple[str, str]] = {}
    for a, b in pairwise(elements):
        if a != b:
            pairs.setdefault(frozenset((a, b)), (a, b))
    return pairs


def spec_route_lines(spec: LabSpec, node) -> list[str]:
    """The routing table the node has when the lab is as its spec says, in `ip route`'s order: the default
    route (VirtualBox NAT), the connected networks of eth0 and eth1, cni0's pod subnet and flannel's routes."""
    rows = [Route(DEFAULT_ROUTE, NAT_IF, via=NAT_GATEWAY), Route(NAT_NETWORK, NAT_IF, src=NAT_ADDRESS),
            Route(spec.host_only, HOST_ONLY_IF, src=node.ip)]
    rows += [r.route for r in node_routes(spec, node)]
    return [str(r) for r in sorted(rows, key=lambda r: (r.dst.prefixlen > 0, r.dst))]


def _route_dest(line: str) -> IPv4Network | None:
    word = (line.split() or [""])[0]
    try:
        return IPv4Network("0.0.0.0/0" if word == "default" else word)
    except ValueError:
        return None


def _used_route(lines: Sequence[str], dst: IPv4Address) -> int | None:
    """The row the kernel picks for dst: the longest prefix that holds it (the default route holds all)."""
    best: tuple[int, int] | None = None
    for i, line in enumerate(lines):
        net = _route_dest(line)
        if net is None:
            continue
        if dst in net and (best is None or net.prefixlen > best[0]):
            best = (net.prefixlen, i)
    return best[1] if best else None


def _route_table(lines: Sequence[str], badge: str, used: int | None = None, lacking: str | None = None) -> str:
    head = '<TR><TD BGCOLOR="#444444"><FONT COLOR="white"><B>routing table</B></FONT></TD></TR>'
    if badge:
        head = f'<TR><TD><FONT COLOR="{HIGHLIGHT}"><B>{html.escape(badge)}</B></FONT></TD></TR>' + head
    rows = "".join(
        f'<TR><TD ALIGN="LEFT"><FONT FACE="Courier" POINT-SIZE="10" COLOR="{HIGHLIGHT}"><B>{html.escape(line)}'
        '</B></FONT></TD></TR>' if i == used else
        f'<TR><TD ALIGN="LEFT"><FONT FACE="Courier" POINT-SIZE="10">{html.escape(line)}</FONT></TD></TR>'
        for i, line in enumerate(lines)) or '<TR><TD>(no routes)</TD></TR>'
    if lacking:  # the row a failed trace needed here: shown where it belongs, struck out
        rows += (f'<TR><TD ALIGN="LEFT" BGCOLOR="#fdecea"><FONT FACE="Courier" POINT-SIZE="10" COLOR="{HIGHLIGHT}">'
                 f'<S>{html.escape(lacking)}</S></FONT><FONT POINT-SIZE="9" COLOR="{HIGHLIGHT}"><B> missing</B>'
                 '</FONT></TD></TR>')
    return (f'<<TABLE BORDER="1" CELLBORDER="0" CELLSPACING="0" CELLPADDING="4" BGCOLOR="white" COLOR="#444444">'
            f'{head}{rows}</TABLE>>')


def _element_of(spec: LabSpec, pods: Sequence[Pod], addr: IPv4Address | None) -> str | None:
    if addr is None:
        return None
    for pod in pods:
        if pod.ip == addr:
            return pod_id(pod.name)
    owned = interface_of(spec, addr)
    return if_id(owned[0].name, owned[1]) if owned else None


def route_lines(ip_route_output: str) -> list[str]:
    """Every row of `ip -4 route show` (default, connected, pod network), shortened to dest, via, dev and,
    for a connected network, the node's own address on it (src)."""
    rows = []
    for line in ip_route_output.splitlines():
        words = line.split()
        if _route_dest(line) is None:
            continue
        keep = [words[0]]
        for key in ("via", "dev"):
            if key in words[:-1]:
                keep += [key, words[words.index(key) + 1]]
        keep += ["onlink"] if "onlink" in words else []
        if "src" in words[:-1] and "via" not in words:
            keep += ["src", words[words.index("src") + 1]]
        rows.append(" ".join(keep))
    return rows


def live_dot(lab, path: Path_ | None = None) -> str:
    """The running lab's DOT: its pods and each node's pod routes as the node has them now."""
    routes = {}
    for node in lab.spec.nodes:
        r = lab.node_run(node.name, ["ip", "-4", "route", "show"], timeout=15)
        routes[node.name] = route_lines(r.stdout) if r.ok else [f"(ip route failed: {r.stderr.strip()})"]
    return build_dot(lab.spec, lab.pods(), path, routes)


def output_format(path: str | Path) -> str:
    """svg or png, from the file name; LabStateError before anything is drawn otherwise."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise UsageError(f"cannot draw {str(path)!r}: name the output file .svg or .png (e.g. -o lab.svg)")
    return suffix


def render(dot: str, fmt: str) -> bytes:
    """Run Graphviz's dot; the picture's bytes."""
    exe = shutil.which("dot")
    if exe is None:
        raise ToolMissingError("Graphviz's `dot` is not installed; install it with `apt-get install graphviz`")
    proc = subprocess.run([exe, f"-T{fmt}"], input=dot.encode(), capture_output=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise CommandFailedError(f"dot -T{fmt} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def write(dot: str, out: str | Path) -> Path:
    return write_output(out, render(dot, output_format(out)), "diagram")
