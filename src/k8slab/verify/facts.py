"""What a node or a pod actually shows: links, addresses, routes, forwarding, as plain data.

Parsing is pure (JSON from `ip -j`, text from busybox's `ip`), so checks and diagnoses are
tested on recorded output; gathering goes through the Lab's node_run, the same way on a
VirtualBox node over SSH and on an emulated node inside its namespace.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

from k8slab.errors import CommandFailedError
from k8slab.labs.base import Result
from k8slab.spec import calico
from k8slab.spec.route import RTPROT_BOOT, Route

_INET = re.compile(r"\binet (?P<addr>\d+\.\d+\.\d+\.\d+/\d+)")


class FactsError(CommandFailedError, ValueError):
    """A command's output is not what it should be; the message quotes it. A CommandFailedError, so
    `k8slab verify` on a node that cannot answer (kubectl down, an `ip` without -j) prints it, not a traceback."""


@dataclass(frozen=True)
class LinkFact:
    name: str
    up: bool  # administratively up (the UP flag): `ip link set X down` clears it
    addresses: tuple[IPv4Interface, ...]
    master: str | None = None  # the bridge this link is a port of (cni0 for a pod's host-side veth)
    kind: str | None = None  # veth, bridge, vxlan... (None for a plain NIC)

    def describe(self) -> str:
        addrs = ", ".join(str(a) for a in self.addresses) or "no IPv4 address"
        return f"{'up' if self.up else 'DOWN'}, {addrs}"


@dataclass(frozen=True)
class BgpFacts:
    """What a node's BIRD says (`birdc show status`, `show protocols`); running False: no answer on its socket."""
    running: bool
    router_id: IPv4Address | None = None
    sessions: Mapping[str, str] = field(default_factory=dict)  # Mesh_192_168_56_11 -> "up Established"


@dataclass(frozen=True)
class NodeFacts:
    node: str
    links: tuple[LinkFact, ...]
    routes: tuple[Route, ...]
    ip_forward: int | None  # None: could not be read
    proxy_arp: Mapping[str, int] = field(default_factory=dict)  # cali* veth -> its proxy_arp (Calico)
    bgp: BgpFacts | None = None  # Calico's BIRD, where the lab has one
    icmp_ratelimit_ms: int | None = None  # net.ipv4.icmp_ratelimit: how verify paces its traces
    firewall: tuple[str, ...] | None = None  # `iptables -S` lines on an IP-in-IP lab (None: not read)

    def link(self, name: str) -> LinkFact | None:
        return next((lk for lk in self.links if lk.name == name), None)

    def routes_to(self, dst: IPv4Network) -> list[Route]:
        return [r for r in self.routes if r.dst == dst]

    def route_for(self, address: IPv4Address) -> Route | None:
        """The route the kernel would pick (longest prefix in the main table)."""
        matches = [r for r in self.routes if address in r.dst]
        return max(matches, key=lambda r: r.dst.prefixlen, default=None)

    def bridge_ports(self, bridge: str, kind: str = "veth") -> list[LinkFact]:
        return [lk for lk in self.links if lk.master == bridge and lk.kind == kind]


@dataclass(frozen=True)
class KubeFacts:
    """What a lab's Kubernetes API says (only labs that have one)."""
    nodes_json: str             # `kubectl get nodes -o json`
    flannel_netconf: str | None  # net-conf.json of kube-flannel-cfg, None if not found
    logs: Mapping[str, Result]  # node -> `kubectl logs <a pod on it>`


def parse_ip_addr(text: str) -> tuple[LinkFact, ...]:
    """`ip -j -d addr show` -> one LinkFact per link, IPv4 addresses only."""
    links = []
    for item in _json_list(text, "ip -j -d addr show"):
        addrs = tuple(IPv4Interface(f"{a['local']}/{a['prefixlen']}") for a in item.get("addr_info", [])
                      if a.get("family") == "inet")
        links.append(LinkFact(name=item["ifname"], up="UP" in item.get("flags", []), addresses=addrs,
                              master=item.get("master"), kind=(item.get("linkinfo") or {}).get("info_kind")))
    return tuple(links)


# `ip -j route` names a route's protocol when /etc/iproute2/rt_protos does, else prints its number.
PROTOCOLS = {"kernel": 2, "boot": RTPROT_BOOT, "static": 4, "bird": 12, "dhcp": 16}


def parse_ip_route(text: str) -> tuple[Route, ...]:
    """`ip -j route show table main` -> its IPv4 unicast and blackhole routes with who made them (Calico
    blackholes a node's own block; local/broadcast live in other tables; unreachable ones are left out)."""
    routes = []
    for item in _json_list(text, "ip -j route show"):
        kind = item.get("type", "unicast")
        if kind not in ("unicast", "blackhole") or (kind == "unicast" and "dev" not in item):
            continue
        dst = item["dst"]
        net = IPv4Network("0.0.0.0/0") if dst == "default" else IPv4Network(dst if "/" in dst else f"{dst}/32")
        via = IPv4Address(item["gateway"]) if "gateway" in item else None
        proto = str(item.get("protocol", "boot"))
        routes.append(Route(net, item.get("dev", ""), via=via, onlink="onlink" in item.get("flags", []),
                            proto=PROTOCOLS.get(proto, int(proto) if proto.isdigit() else RTPROT_BOOT),
                            blackhole=kind == "blackhole"))
    return tuple(routes)


def parse_proxy_arp(text: str) -> dict[str, int]:
    """`grep -H . /proc/sys/net/ipv4/conf/cali*/proxy_arp` -> {interface: value}."""
    found = {}
    for line in text.splitlines():
        path, _, value = line.partition(":")
        parts = path.split("/")
        if len(parts) >= 2 and value.strip().isdigit():
            found[parts[-2]] = int(value.strip())
    return found


def parse_bgp(status: str | None, protocols: str | None) -> BgpFacts:
    """`birdc show status` and `birdc show protocols` (None: BIRD did not answer) -> BgpFacts."""
    if status is None or protocols is None:
        return BgpFacts(running=False)
    match = re.search(r"Router ID is (\d+\.\d+\.\d+\.\d+)", status)
    return BgpFacts(True, IPv4Address(match[1]) if match else None, calico.parse_bird_protocols(protocols))


def parse_inet(text: str) -> tuple[IPv4Interface, ...]:
    """The IPv4 addresses in `ip -4 addr show dev eth0` output; busybox's and iproute2's look alike."""
    return tuple(IPv4Interface(m["addr"]) for m in _INET.finditer(text))


Runner = Callable[[list[str]], Result]  # runs argv on one node (Lab.node_run bound to the node)
SYSCTLS = ("net.ipv4.ip_forward", "net.ipv4.icmp_ratelimit")


def gather_node(run: Runner, node: str) -> NodeFacts:
    """Observe one node through the Lab's own runner: three read-only commands, nothing changed."""
    outputs = []
    for argv in (["ip", "-j", "-d", "addr", "show"], ["ip", "-j", "-4", "route", "show", "table", "main"]):
        res = run(argv)
        if res.rc != 0:
            raise FactsError(f"{node}: `{' '.join(argv)}` failed (rc {res.rc}): "
                             f"{res.stderr.strip() or res.stdout.strip()}")
        outputs.append(res.stdout)
    links = parse_ip_addr(outputs[0])
    proxy_arp: dict[str, int] = {}
    if any(lk.name.startswith(calico.VETH_PREFIX) for lk in links):
        proxy_arp = parse_proxy_arp(run(["sh", "-c", "grep -H . /proc/sys/net/ipv4/conf/cali*/proxy_arp"]).stdout)
    forward, ratelimit = read_sysctls(run)
    return NodeFacts(node=node, links=links, routes=parse_ip_route(outputs[1]), ip_forward=forward,
                     proxy_arp=proxy_arp, icmp_ratelimit_ms=ratelimit)


def read_sysctls(run: Runner) -> tuple[int | None, int | None]:
    """net.ipv4.ip_forward and net.ipv4.icmp_ratelimit on the node, each None when it cannot be read."""
    res = run(["sysctl", "-n", *SYSCTLS])
    values: list[int | None] = []
    for line in (res.stdout.splitlines() if res.ok else [])[:len(SYSCTLS)]:
        try:
            values.append(int(line.strip()))
        except ValueError:
            values.append(None)
    values += [None] * (len(SYSCTLS) - len(values))
    return values[0], values[1]


def _json_list(text: str, what: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise FactsError(f"`{what}` did not print JSON ({exc.msg}): {text[:200]!r}") from None
    if not isinstance(data, list):
        raise FactsError(f"`{what}` printed {type(data).__name__}, not a list: {text[:200]!r}")
    return [d for d in data if isinstance(d, dict)]
