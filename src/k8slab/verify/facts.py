"""What a node or a pod actually shows: links, addresses, routes, forwarding, as plain data.

Parsing is pure (JSON from `ip -j`, text from busybox's `ip`), so checks and diagnoses are
tested on recorded output; gathering goes through a testinfra Host, the same way on a
VirtualBox node over SSH and on an emulated node inside its namespace.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import TYPE_CHECKING, Any

from k8slab.errors import CommandFailedError
from k8slab.labs.base import Result
from k8slab.spec.route import Route

if TYPE_CHECKING:
    import testinfra.host

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
class NodeFacts:
    node: str
    links: tuple[LinkFact, ...]
    routes: tuple[Route, ...]
    ip_forward: int | None  # None: could not be read

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


def parse_ip_route(text: str) -> tuple[Route, ...]:
    """`ip -j route show table main` -> its IPv4 unicast routes (local/broadcast live in other tables)."""
    routes = []
    for item in _json_list(text, "ip -j route show"):
        if item.get("type", "unicast") != "unicast" or "dev" not in item:
            continue  # blackhole/unreachable routes have no device and carry no traffic
        dst = item["dst"]
        net = IPv4Network("0.0.0.0/0") if dst == "default" else IPv4Network(dst if "/" in dst else f"{dst}/32")
        via = IPv4Address(item["gateway"]) if "gateway" in item else None
        routes.append(Route(net, item["dev"], via=via, onlink="onlink" in item.get("flags", [])))
    return tuple(routes)


def parse_inet(text: str) -> tuple[IPv4Interface, ...]:
    """The IPv4 addresses in `ip -4 addr show dev eth0` output; busybox's and iproute2's look alike."""
    return tuple(IPv4Interface(m["addr"]) for m in _INET.finditer(text))


def gather_node(host: testinfra.host.Host, node: str) -> NodeFacts:
    """Observe one node through its testinfra Host: three commands, nothing changed."""
    addr = host.run("ip -j -d addr show")
    route = host.run("ip -j -4 route show table main")
    for res, what in ((addr, "ip -j -d addr show"), (route, "ip -j -4 route show table main")):
        if res.rc != 0:
            raise FactsError(f"{node}: `{what}` failed (rc {res.rc}): {res.stderr.strip() or res.stdout.strip()}")
    return NodeFacts(node=node, links=parse_ip_addr(addr.stdout), routes=parse_ip_route(route.stdout),
                     ip_forward=read_forwarding(host))


def read_forwarding(host: testinfra.host.Host) -> int | None:
    """net.ipv4.ip_forward on the node, None when it cannot be read."""
    try:
        return int(host.sysctl("net.ipv4.ip_forward"))
    except (AssertionError, ValueError, TypeError):
        return None


def _json_list(text: str, what: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise FactsError(f"`{what}` did not print JSON ({exc.msg}): {text[:200]!r}") from None
    if not isinstance(data, list):
        raise FactsError(f"`{what}` printed {type(data).__name__}, not a list: {text[:200]!r}")
    return [d for d in data if isinstance(d, dict)]
