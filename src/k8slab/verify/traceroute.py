"""Parsing traceroute output, Debian's (traceroute 2.x, iputils' traceroute) and busybox's alike.

The harness judges a lab by the hops a trace shows, so this one pure function decides what a
"hop" is: the addresses that answered for one TTL, in probe order, with `*` for silence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address

_HEADER = re.compile(r"^traceroute to (?P<name>\S+) \((?P<addr>[\d.]+)\)")
_HOP = re.compile(r"^\s*(?P<ttl>\d+)\s+(?P<rest>.*)$")
# One probe's answer: "10.0.0.1", "name (10.0.0.1)", "*", with RTTs and !H-style notes after it.
_TOKEN = re.compile(r"\*|(?P<name>[^\s()]+)\s+\((?P<paren>[\d.]+)\)|(?P<bare>\d+\.\d+\.\d+\.\d+)(?!\s*ms)"
                    r"|(?P<rtt>[\d.]+)\s*ms|(?P<note>![A-Za-z]*\d*)")


class TracerouteParseError(ValueError):
    """The text is not traceroute output; the message quotes the line that is not."""


@dataclass(frozen=True)
class Hop:
    ttl: int
    # Each probe's responder in order; None for a probe that timed out (`*`).
    probes: tuple[IPv4Address | None, ...]
    names: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def address(self) -> IPv4Address | None:
        """The first address that answered this TTL, or None if every probe timed out."""
        return next((p for p in self.probes if p is not None), None)

    @property
    def addresses(self) -> tuple[IPv4Address, ...]:
        """Each distinct responder, in the order first seen (several when paths balance)."""
        seen: list[IPv4Address] = []
        for p in self.probes:
            if p is not None and p not in seen:
                seen.append(p)
        return tuple(seen)

    @property
    def silent(self) -> bool:
        return self.address is None


@dataclass(frozen=True)
class Trace:
    target: IPv4Address | None
    hops: tuple[Hop, ...]

    @property
    def path(self) -> list[IPv4Address | None]:
        """One entry per TTL: who answered, None for silence; what the harness compares."""
        return [h.address for h in self.hops]

    @property
    def reached(self) -> bool:
        return self.target is not None and bool(self.hops) and self.target in self.hops[-1].addresses


def parse_traceroute(text: str) -> Trace:
    target: IPv4Address | None = None
    hops: list[Hop] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        header = _HEADER.match(line.strip())
        if header:
            target = IPv4Address(header["addr"])
            continue
        hop = _HOP.match(line)
        if not hop:
            if hops or target:
                raise TracerouteParseError(f"not a traceroute hop line: {line!r}")
            continue  # warnings before the header ("traceroute: warning: ...")
        hops.append(_parse_hop(int(hop["ttl"]), hop["rest"], line))
    if target is None and not hops:
        raise TracerouteParseError(f"no traceroute output found in: {text[:200]!r}")
    return Trace(target=target, hops=tuple(hops))


def _parse_hop(ttl: int, rest: str, line: str) -> Hop:
    probes: list[IPv4Address | None] = []
    names: list[str] = []
    notes: list[str] = []
    current: IPv4Address | None = None
    pos = 0
    for m in _TOKEN.finditer(rest):
        if rest[pos:m.start()].strip():
            raise TracerouteParseError(f"unexpected {rest[pos:m.start()].strip()!r} in hop line: {line!r}")
        pos = m.end()
        token = m.group(0)
        if token == "*":
            probes.append(None)
        elif m["paren"]:
            current = IPv4Address(m["paren"])
            if m["name"] != m["paren"]:
                names.append(m["name"])
        elif m["bare"]:
            current = IPv4Address(m["bare"])
        elif m["rtt"]:
            if current is None:
                raise TracerouteParseError(f"a time before any address in hop line: {line!r}")
            probes.append(current)
        elif m["note"]:
            notes.append(token)
    if rest[pos:].strip():
        raise TracerouteParseError(f"unexpected {rest[pos:].strip()!r} in hop line: {line!r}")
    return Hop(ttl=ttl, probes=tuple(probes), names=tuple(names), notes=tuple(notes))
