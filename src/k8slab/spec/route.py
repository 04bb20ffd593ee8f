"""One routing-table row, the way `ip route` prints it.

Expectations, the emulated lab's plan, the facts read from a node, explanations and the diagram
all hold a Route, so the text a student compares with `ip route` is written once, here.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

RTPROT_BOOT = 3  # what `ip route add` sets and `ip route` does not print
PROTO_NAMES = {2: "kernel", 4: "static", 12: "bird"}  # as iproute2 names them (rt_protos); others by number


@dataclass(frozen=True)
class Route:
    dst: IPv4Network
    dev: str  # "" for a blackhole, which has no device
    via: IPv4Address | None = None
    onlink: bool = False  # the gateway is on dev though no address of dev's network holds it (flannel.1)
    src: IPv4Address | None = None  # the preferred source, shown on connected routes
    proto: int = RTPROT_BOOT  # who made it, as `ip route` shows it ("proto 80": Calico's Felix)
    blackhole: bool = False
    scope: str | None = None  # "link": dst is on dev itself (a Calico pod's /32 on its cali veth)

    def __str__(self) -> str:
        """In iproute2's order: destination, via, dev, proto, scope, src, then flags such as onlink."""
        dst = "default" if self.dst.prefixlen == 0 else str(self.dst)
        proto = PROTO_NAMES.get(self.proto, str(self.proto))
        words = ["blackhole", dst] if self.blackhole else [dst] + ([f"via {self.via}"] if self.via else []) + [
            f"dev {self.dev}"]
        words += [f"proto {proto}"] if self.proto != RTPROT_BOOT else []
        words += ([f"scope {self.scope}"] if self.scope else []) + ([f"src {self.src}"] if self.src else [])
        return " ".join(words + (["onlink"] if self.onlink else []))
