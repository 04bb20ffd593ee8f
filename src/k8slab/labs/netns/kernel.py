"""How the emulated lab is built: the plan (plan.py) applied to the kernel over netlink, in-process.

One netlink socket per namespace (pyroute2), opened from a thread that stands in that namespace;
links and addresses go through pyroute2; routes, the bulk of a big lab (n × (n-1)), go as one
batch of raw RTM_NEWROUTE messages per node. flannel's masquerade rules go through
iptables-restore, one process per node, all started at once.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
from collections.abc import Sequence
from ipaddress import IPv4Address

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from k8slab.errors import CommandFailedError
from k8slab.labs.base import Progress
from k8slab.labs.netns import nsfs
from k8slab.labs.netns.names import StatePaths
from k8slab.labs.netns.plan import LabPlan
from k8slab.labs.netns.state import make_dirs
from k8slab.spec.facts import DEFAULT_ROUTE
from k8slab.spec.route import Route

NUD_PERMANENT = 0x80
NTF_SELF = 0x02


def open_rtnl(netns: str) -> IPRoute:
    with nsfs.entered(nsfs.netns_path(netns)):
        return IPRoute()


class Sockets:
    """One pyroute2 socket per namespace, opened on first use, all closed together."""

    def __init__(self) -> None:
        self._open: dict[str, IPRoute] = {}
        self._index: dict[str, dict[str, int]] = {}

    def __getitem__(self, netns: str) -> IPRoute:
        if netns not in self._open:
            self._open[netns] = open_rtnl(netns)
        return self._open[netns]

    def index(self, netns: str, ifname: str) -> int:
        """An interface's index; one dump per namespace, redone only when a name is new to it
        (interfaces are only ever added here, so a cached index is never stale)."""
        known = self._index.get(netns, {})
        if ifname not in known:
            known = {link.get("ifname"): link["index"] for link in self[netns].get_links()}
            self._index[netns] = known
        if ifname not in known:
            raise CommandFailedError(f"interface {ifname} is missing in {netns} right after it was created")
        return known[ifname]

    def close(self) -> None:
        for ipr in self._open.values():
            ipr.close()
        self._open.clear()


def build(plan: LabPlan, state: StatePaths, progress: Progress) -> None:
    nsfs.ensure_netns_dir()
    socks = Sockets()
    try:
        _namespaces(plan, state, progress)
        _links(plan, socks, progress)
        _routes(plan, socks, progress)
        _sysctls(plan)
        _masquerade(plan, progress)
    except NetlinkError as exc:
        raise CommandFailedError(f"building the emulated lab {plan.spec.name!r}: netlink: {exc}") from exc
    finally:
        socks.close()


def _namespaces(plan: LabPlan, state: StatePaths, progress: Progress) -> None:
    make_dirs(state.root, state.uts_dir)  # 0700 whatever the umask, checked like every state directory
    for ns in plan.namespaces:
        nsfs.create_netns(ns.name)
        if ns.hostname:
            nsfs.create_uts(state.node_uts(ns.node or ns.hostname), ns.hostname)
    progress(f"{len(plan.namespaces)} network namespaces {plan.prefix}* "
             f"({len(plan.nodes)} nodes, their NAT ends, the host-only switch)")


def _links(plan: LabPlan, socks: Sockets, progress: Progress) -> None:
    fds: dict[str, int] = {}
    try:
        for link in plan.links:
            ipr = socks[link.netns]
            if link.kind == "bridge":
                ipr.link("add", ifname=link.ifname, kind="bridge", state="up")
            elif link.kind == "veth":
                assert link.peer_netns and link.peer_ifname
                if link.peer_netns not in fds:
                    fds[link.peer_netns] = os.open(nsfs.netns_path(link.peer_netns), os.O_RDONLY)
                mac = {"address": link.mac} if link.mac else {}
                ipr.link("add", ifname=link.ifname, kind="veth", state="up", **mac,
                         peer={"ifname": link.peer_ifname, "net_ns_fd": fds[link.peer_netns]})
            elif link.kind == "ipip":
                ipr.link("add", ifname=link.ifname, kind="ipip", ipip_local=str(link.local), mtu=link.mtu, state="up")
            elif link.kind == "tunl0":
                # The ipip module makes tunl0 in every namespace; Calico only configures it.
                ipr.link("set", index=socks.index(link.netns, link.ifname), mtu=link.mtu, state="up")
            elif link.kind == "vxlan":
                v = link.vxlan
                assert v is not None
                ipr.link("add", ifname=link.ifname, kind="vxlan", vxlan_id=v.vni, vxlan_port=v.port,
                         vxlan_local=str(v.local), vxlan_link=socks.index(link.netns, v.dev), vxlan_learning=0,
                         address=link.mac, mtu=link.mtu, state="up")
    finally:
        for fd in fds.values():
            os.close(fd)

    # Links come up as they are made; a veth's far end and each namespace's lo need a word of their own.
    ports = {(p.netns, p.ifname): p.bridge for p in plan.ports}
    for link in plan.links:
        if link.kind == "veth":
            assert link.peer_netns and link.peer_ifname
            ns, name = link.peer_netns, link.peer_ifname
            bridge = ports.get((ns, name))
            extra = {"master": socks.index(ns, bridge)} if bridge else {}
            socks[ns].link("set", index=socks.index(ns, name), state="up", **extra)
    for ns in plan.namespaces:
        socks[ns.name].link("set", index=socks.index(ns.name, "lo"), state="up")
    for addr in plan.addrs:
        ipr = socks[addr.netns]
        ipr.addr("add", index=socks.index(addr.netns, addr.ifname), address=str(addr.address.ip),
                 prefixlen=addr.address.network.prefixlen)
    bridge_ports = len(plan.ports)
    tunnels = sorted({x.ifname for x in plan.links if x.kind in ("vxlan", "ipip", "tunl0")})
    progress(f"links: host-only switch with {bridge_ports} ports, eth0 (NAT) and eth1 (host-only) on every node"
             + (f", {' and '.join(tunnels)}" if tunnels else ""))


def _routes(plan: LabPlan, socks: Sockets, progress: Progress) -> None:
    by_ns: dict[str, list[Route]] = {}
    for r in plan.routes:
        by_ns.setdefault(r.netns, []).append(r.route)
    for netns, routes in by_ns.items():
        index = {name: socks.index(netns, name) for name in {r.dev for r in routes if r.dev}}
        with nsfs.entered(nsfs.netns_path(netns)):
            add_routes(routes, index)
    for n in plan.neighs:
        ipr = socks[n.netns]
        ipr.neigh("add", dst=str(n.dst), lladdr=n.lladdr, ifindex=socks.index(n.netns, n.dev), state=NUD_PERMANENT)
    for f in plan.fdbs:
        ipr = socks[f.netns]
        ipr.fdb("append", ifindex=socks.index(f.netns, f.dev), lladdr=f.lladdr, dst=str(f.dst),
                state=NUD_PERMANENT, flags=NTF_SELF)
    progress(f"routes: {len(plan.routes)} ({plan.spec.dataplane} routes to the other nodes' pods, default via NAT)")


def _sysctls(plan: LabPlan) -> None:
    for ns in plan.namespaces:
        if ns.sysctls:
            with nsfs.entered(nsfs.netns_path(ns.name)):
                for key, value in ns.sysctls:
                    nsfs.write_sysctl(key, value)


def _masquerade(plan: LabPlan, progress: Progress) -> None:
    procs = []
    try:
        for node in plan.nodes:
            with nsfs.entered(nsfs.netns_path(node.netns)):
                proc = subprocess.Popen(["iptables-restore", "--noflush"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            procs.append((node, proc))
            proc.stdin.write(node.masquerade)  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]
        failed = []
        for node, proc in procs:
            err = proc.stderr.read()  # type: ignore[union-attr]
            if proc.wait() != 0:
                failed.append(f"{node.node.name}: {err.strip()}")
    finally:
        for _, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if failed:
        raise CommandFailedError(f"iptables-restore could not install {plan.spec.cni_plugin}'s masquerade rules:\n  "
                                 + "\n  ".join(failed))
    chain = "cali-nat-outgoing" if plan.spec.cni_plugin == "calico" else "FLANNEL-POSTRTG"
    progress(f"masquerade: {plan.spec.cni_plugin}'s {chain} nat chain on {len(procs)} nodes")


# Raw RTM_NEWROUTE batches: pyroute2 spends ~0.4 ms encoding one route; the kernel needs ~4 µs.
RTM_NEWROUTE = 24
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
RT_TABLE_MAIN, RT_SCOPE_UNIVERSE, RTN_UNICAST, RTN_BLACKHOLE, RTNH_F_ONLINK = 254, 0, 1, 6, 0x4
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5


def _rta(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def route_message(route: Route, oif: int, seq: int) -> bytes:
    """One RTM_NEWROUTE as `ip route add` sends it: proto boot unless the plan names its maker (Felix's 80),
    a blackhole without a device."""
    flags = RTNH_F_ONLINK if route.onlink else 0
    kind = RTN_BLACKHOLE if route.blackhole else RTN_UNICAST
    body = struct.pack("BBBBBBBBI", socket.AF_INET, route.dst.prefixlen, 0, 0, RT_TABLE_MAIN, route.proto,
                       RT_SCOPE_UNIVERSE, kind, flags)
    if route.dst != DEFAULT_ROUTE:
        body += _rta(RTA_DST, route.dst.network_address.packed)
    if route.via is not None:
        body += _rta(RTA_GATEWAY, IPv4Address(route.via).packed)
    if not route.blackhole:
        body += _rta(RTA_OIF, struct.pack("I", oif))
    header = struct.pack("IHHII", 16 + len(body), RTM_NEWROUTE,
                         NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, 0)
    return header + body


def add_routes(routes: Sequence[Route], oif: dict[str, int]) -> None:
    """Add routes in the calling thread's namespace: all requests in one send, then every ack read."""
    if not routes:
        return
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as sock:  # NETLINK_ROUTE = 0
        sock.bind((0, 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        by_seq = {i + 1: r for i, r in enumerate(routes)}
        sock.sendall(b"".join(route_message(r, oif.get(r.dev, 0), seq) for seq, r in by_seq.items()))
        pending, errors = set(by_seq), []
        while pending:
            buf = sock.recv(1 << 16)
            off = 0
            while off + 16 <= len(buf):
                length, kind, _, seq, _ = struct.unpack_from("IHHII", buf, off)
                if kind == NLMSG_ERROR:
                    (code,) = struct.unpack_from("i", buf, off + 16)
                    pending.discard(seq)
                    if code and seq in by_seq:
                            errors.append(f"{by_seq[seq]}: {os.strerror(-code)}")
                off += (length + 3) & ~3
    if errors:
        raise CommandFailedError("the kernel refused routes:\n  " + "\n  ".join(errors))


IPIP_PROBE = "probe-ipip"


def ipip_missing(prefix: str) -> str | None:
    """Can this kernel make IP-in-IP devices? Asked in a scratch namespace of the lab's own prefix (the
    kernel loads the `ipip` module on demand where it has one, and then gives every namespace a tunl0).
    None when it can, else the kernel's answer."""
    nsfs.ensure_netns_dir()
    name = f"{prefix}{IPIP_PROBE}"
    path = nsfs.create_netns(name)
    try:
        ipr = open_rtnl(name)
        try:
            ipr.link("add", ifname="k8slab-probe", kind="ipip")
        except NetlinkError as exc:
            return f"`ip link add type ipip` fails ({os.strerror(exc.code)}): the kernel module `ipip` is missing"
        finally:
            ipr.close()
        return None
    finally:
        nsfs.unbind(path)
