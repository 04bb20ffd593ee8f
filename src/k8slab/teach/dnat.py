"""Tracing to a ClusterIP service, the pure half: which service and port a DST names, what kube-proxy's nat
rules must do to a connection to it, what one real connection showed, and the sentences a student reads.
Running the connection and the snapshots is teach/service_trace.py's job.

Expected: from the service records and kube_proxy.rules() (the very text kube-proxy, or k8slab in its place,
writes): the KUBE-SERVICES rule for CLUSTERIP:PORT, its KUBE-SVC chain, each KUBE-SEP pick with its odds, and
where the rewrite happens: on the source's own node, in nat PREROUTING for a pod's packet (it enters the node
from the pod's veth) or nat OUTPUT for a packet the node sends itself.
Observed: `iptables-save -c -t nat` on every node before and after one connection. The nat table sees only a
connection's first packet (conntrack rewrites the rest and the replies), so one connection adds 1 to exactly
one DNAT rule: its KUBE-SEP chain names the endpoint, its node names where DNAT happened.
"""

from __future__ import annotations

import re
import shlex
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from k8slab.errors import LabStateError
from k8slab.labs.base import Pod
from k8slab.labs.kube_proxy import Rule, Service, ServicePort, parse_rules, rules
from k8slab.spec.model import LabSpec
from k8slab.teach.explain import Endpoint, parse_route_get

SERVICE_PREFIXES = ("svc/", "service/")  # kubectl's short and long kind prefixes
TRACEROUTE_PORT = 33434  # traceroute's first UDP probe port
# The page the lab's (and k8slab's VirtualBox) server images answer with names the pod (labs/netns/images.py).
_PAGE_POD = re.compile(r"\bin pod (?P<pod>[a-z0-9][a-z0-9-]*) \(container ")
_COUNTED = re.compile(r"^\[(?P<packets>\d+):\d+\] (?P<rule>-A .*)$")


# ---------------------------------------------------------------- what DST names


@dataclass(frozen=True)
class ServiceTarget:
    """A trace's destination that is a ClusterIP: the service that has it (None: none has it) and the port
    traced (None: the service does not expose the port asked for)."""

    address: IPv4Address
    service: Service | None
    port: ServicePort | None
    asked_port: int | None = None

    @property
    def dport(self) -> int | None:
        return self.port.port if self.port else self.asked_port

    @property
    def protocol(self) -> str:
        return self.port.protocol if self.port else "tcp"

    @property
    def where(self) -> str:
        return f"{self.address}:{self.dport}/{self.protocol}" if self.dport else str(self.address)

    @property
    def label(self) -> str:
        return f"service {self.service.name} ({self.where})" if self.service else self.where

    @property
    def short(self) -> str:
        return f"svc/{self.service.name}" if self.service else self.where


def _split_port(text: str) -> tuple[str, int | None]:
    host, colon, port = text.rpartition(":")
    if colon and port.isdigit() and 0 < int(port) < 65536:
        return host, int(port)
    if colon:
        raise LabStateError(f"{text!r}: {port[:20]!r} is not a port number (1-65535)")
    return text, None


def _port(svc: Service, asked: int | None) -> ServicePort | None:
    """The port traced: the one asked for (TCP first, as the probe is a TCP connection), else the first TCP one."""
    ports = sorted(svc.ports, key=lambda p: p.protocol != "tcp")
    return next((p for p in ports if asked is None or p.port == asked), None)


def service_target(spec: LabSpec, services: Sequence[Service], text: str) -> ServiceTarget | None:
    """svc/NAME[:PORT], a service's NAME[:PORT] or CLUSTERIP[:PORT] -> what it names; None when text is no
    service and no address of the service CIDR (then it is a pod, node or address for the plain trace).
    A ClusterIP that no service has, or a port the service does not expose, is a target too: the trace
    explains that nothing rewrites it."""
    named = text.startswith(SERVICE_PREFIXES)
    body = text.split("/", 1)[1] if named else text
    host, asked = _split_port(body) if (named or ":" in body) else (body, None)
    try:
        address: IPv4Address | None = IPv4Address(host)
    except ValueError:
        address = None
    if address is not None:
        if address not in spec.service_cidr:
            if named or asked is not None:
                raise LabStateError(f"{text!r}: {address} is not in the service CIDR {spec.service_cidr}; a service's "
                                    f"ClusterIP is (`k8slab service list`)")
            return None
        svc = next((s for s in services if s.cluster_ip == address), None)
        return ServiceTarget(address, svc, _port(svc, asked) if svc else None, asked)
    found = sorted((s for s in services if s.name == host), key=lambda s: s.namespace != "default")
    if not found:
        if named or asked is not None:
            known = ", ".join(sorted(s.name for s in services)) or "none"
            raise LabStateError(f"no service named {host!r}; services: {known} (`k8slab service list`)")
        return None
    svc = found[0]
    return ServiceTarget(svc.cluster_ip, svc, _port(svc, asked), asked)


# ---------------------------------------------------------------- what kube-proxy's rules say


@dataclass(frozen=True)
class Pick:
    """One endpoint of the KUBE-SVC chain: its KUBE-SEP chain, DNAT target and odds."""

    chain: str
    endpoint: IPv4Address
    target_port: int
    probability: float | None  # the rule's `statistic --probability`; None for the last one (taken unconditionally)
    overall: float             # its share of all connections


@dataclass(frozen=True)
class ExpectedDnat:
    node: str                  # where the rewrite happens: the source's node
    hook: str                  # nat PREROUTING (a pod's packet) or OUTPUT (the node's own)
    entry: Rule | None         # KUBE-SERVICES's rule for CLUSTERIP:PORT/proto; None: nothing DNATs it
    masquerade: bool           # the KUBE-SVC chain marks this source for masquerade (it is outside the pod CIDR)
    picks: tuple[Pick, ...]
    exposed: tuple[str, ...]   # "port/proto" KUBE-SERVICES matches for this address, for the no-DNAT case

    @property
    def svc_chain(self) -> str | None:
        return self.entry.target if self.entry else None


def expect_dnat(spec: LabSpec, services: Sequence[Service], target: ServiceTarget, src: Endpoint) -> ExpectedDnat:
    """What the nat rules kube-proxy writes for these services do to src's connection to target."""
    table = parse_rules("\n".join(rules(services, spec.pod_cidr)[1]))
    dest = f"{target.address}/32"
    for_address = [r for r in table if r.chain == "KUBE-SERVICES" and r.opt("-d") == dest]
    exposed = tuple(f"{r.opt('--dport')}/{r.opt('-p')}" for r in for_address)
    entry = next((r for r in for_address if r.opt("--dport") == str(target.dport) and r.opt("-p") == target.protocol),
                 None)
    hook = "PREROUTING" if src.pod else "OUTPUT"
    if entry is None:
        return ExpectedDnat(src.node or "", hook, None, False, (), exposed)
    chain = entry.target
    jumps = [r for r in table if r.chain == chain and (r.target or "").startswith("KUBE-SEP-")]
    picks, left = [], 1.0
    for jump in jumps:
        dnat = next(r for r in table if r.chain == jump.target and r.target == "DNAT")
        ip, port = (dnat.opt("--to-destination") or "").rsplit(":", 1)
        p = jump.opt("--probability")
        share = left * (float(p) if p else 1.0)
        left -= share
        picks.append(Pick(jump.target or "", IPv4Address(ip), int(port), float(p) if p else None, share))
    mark = next((r for r in table if r.chain == chain and r.target == "KUBE-MARK-MASQ"), None)
    # the rule is `! -s POD_CIDR`: a pod's own address is inside, a node's (the NAT or eth1 one) outside
    masquerade = mark is not None and not (src.pod and src.address in spec.pod_cidr)
    return ExpectedDnat(src.node or "", hook, entry, masquerade, tuple(picks), exposed)


# ---------------------------------------------------------------- what the counters showed


@dataclass(frozen=True)
class Counted:
    node: str
    rule: Rule
    packets: int  # how many more than in the first snapshot


def parse_counters(saved: str) -> list[tuple[Rule, int]]:
    """`iptables-save -c` lines "[packets:bytes] -A CHAIN ..." -> (rule, packets)."""
    found = []
    for line in saved.splitlines():
        m = _COUNTED.match(line.strip())
        if m:
            rule = parse_rules(m["rule"])[0]
            found.append((rule, int(m["packets"])))
    return found


def counter_rises(before: Mapping[str, str], after: Mapping[str, str]) -> list[Counted]:
    """The rules whose packet counter rose between two snapshots, per node (node -> `iptables-save -c -t nat`).
    Rules are matched by chain, arguments and rank among identical ones; one new in the second snapshot
    (the chains were rewritten meanwhile) counts from 0."""
    rises = []
    for node, text in after.items():
        def keyed(saved: str) -> dict[tuple, int]:
            seen: Counter[tuple] = Counter()
            out = {}
            for rule, packets in parse_counters(saved):
                key = (rule.chain, rule.args)
                out[(*key, seen[key])] = packets
                seen[key] += 1
            return out
        old, new = keyed(before.get(node, "")), keyed(text)
        for key, packets in new.items():
            if packets > old.get(key, 0):
                rises.append(Counted(node, Rule(key[0], key[1]), packets - old.get(key, 0)))
    return rises


def dnat_rises(rises: Sequence[Counted]) -> list[Counted]:
    """The KUBE-SEP DNAT rules that counted a packet: each is one connection rewritten to its endpoint."""
    return [c for c in rises if c.rule.chain.startswith("KUBE-SEP-") and c.rule.target == "DNAT"]


def page_pod(text: str) -> str | None:
    """The pod a server page names ("httpd in pod web-2 (container web-2), ..."), None when it names none."""
    m = _PAGE_POD.search(text)
    return m["pod"] if m else None


# ---------------------------------------------------------------- the explanation


@dataclass
class DnatExplanation:
    src: Endpoint
    target: ServiceTarget
    expected: ExpectedDnat
    seen: list[Counted]               # DNAT rules that counted a packet, every node
    chosen: Pick | None               # the endpoint the counters name, when it is one of the service's
    ok: bool                          # the counters (and the page) agree with the rules
    lines: list[str] = field(default_factory=list)

    @property
    def rewritten(self) -> bool:
        return self.chosen is not None

    @property
    def diagram_note(self) -> str:
        """One line for the diagram's title: where the destination was rewritten, and to what."""
        if self.chosen is None:
            return f"{self.target.short}: no DNAT"
        return (f"{self.target.short}: DNAT on {self.expected.node} (nat {self.expected.hook}) "
                f"{self.target.where.rsplit('/', 1)[0]} -> {self.chosen.endpoint}:{self.chosen.target_port}")

    @property
    def summary(self) -> str:
        if self.expected.entry is None:
            verdict = "as the rules say" if self.ok else "NOT as the rules say"
            return f"{self.src.short} -> {self.target.where}: nothing DNATs it, {verdict}; no pod answers there"
        if self.chosen is None:
            return f"{self.src.short} -> {self.target.label}: no DNAT seen: NOT as the rules say"
        verdict = "as the rules say" if self.ok else "NOT as the rules say"
        return (f"{self.src.short} -> {self.target.label}: DNAT on {self.expected.node} ({self.expected.hook}) to "
                f"{self.chosen.endpoint}:{self.chosen.target_port}, {verdict}")


def _who(spec: LabSpec, pods: Sequence[Pod], ip: IPv4Address) -> str:
    pod = next((p for p in pods if p.ip == ip), None)
    if pod is not None:
        return f"pod {pod.name} on {pod.node}"
    owner = spec.node_by_ip(ip)
    return f"a pod on {owner.name}" if owner else "an address outside the lab"


def _odds(p: float) -> str:
    return f"1 in {round(1 / p)}" if p > 0 else "never"


def explain_dnat(spec: LabSpec, src: Endpoint, target: ServiceTarget, expected: ExpectedDnat,
                 rises: Sequence[Counted], *, probe: str, reply: str, reply_ok: bool,
                 route_on_node: str = "", pods: Sequence[Pod] = ()) -> DnatExplanation:
    """probe: the connection as run; reply: what it printed (a page, or its error); route_on_node: `ip route get
    CLUSTERIP` on the source's node (where a packet nothing rewrites goes)."""
    node, hook = expected.node, expected.hook
    seen = dnat_rises(rises)
    lines = [f"trace from {src.label} to {target.label}"]
    chains = {p.chain: p for p in expected.picks}
    if expected.entry is None:
        lines += _no_dnat(target, expected, seen, route_on_node)
        lines.append("observed (one real connection; `iptables-save -c -t nat` on every node before and after it):")
        lines.append(f"  $ {probe}")
        lines.append(f"  -> {_first_line(reply) or '(nothing)'}")
        ok = not seen and not reply_ok
        lines.append(f"  {'✓' if not seen else '✗'} no KUBE-SEP DNAT rule counted a packet on any node"
                     if not seen else f"  ✗ DNAT counted anyway: {_counted(seen)}")
        return DnatExplanation(src, target, expected, seen, None, ok, lines)

    svc = target.service
    assert svc is not None and target.port is not None
    lines.append(f"the service: {svc.namespace}/{svc.name}, ClusterIP {target.where} -> {len(expected.picks)} "
                 f"endpoint(s), port {target.port.target_port}; kube-proxy's chains, the same on every node:")
    lines.append(f"  nat {hook} -> KUBE-SERVICES: -d {target.address}/32 -p {target.protocol} --dport {target.dport} "
                 f"-> {expected.svc_chain}")
    if expected.masquerade:
        lines.append(f"  {expected.svc_chain}: the source is outside the pod CIDR {spec.pod_cidr}, so KUBE-MARK-MASQ "
                     "marks it and KUBE-POSTROUTING masquerades it: the endpoint sees the node's address")
    else:
        lines.append(f"  {expected.svc_chain}: the source {src.address} is inside the pod CIDR {spec.pod_cidr}: no "
                     "masquerade mark, the endpoint sees the pod's own address")
    if src.pod and any(p.endpoint == src.address for p in expected.picks):
        lines.append(f"  {src.short} is one of the endpoints: should it pick itself (hairpin), the KUBE-SEP "
                     "chain's first rule (-s its own address) marks it for masquerade, so the reply comes back "
                     "through the node")
    for i, pick in enumerate(expected.picks, 1):
        odds = (f"probability {pick.probability:.4f} of what is left" if pick.probability is not None
                else "whatever is left")
        lines.append(f"    {i}. {odds} ({_odds(pick.overall)} overall) -> {pick.chain}: DNAT to "
                     f"{pick.endpoint}:{pick.target_port} ({_who(spec, pods, pick.endpoint)})")
    lines.append("step 0, DNAT: one real connection, `iptables-save -c -t nat` on every node before and after it:")
    lines.append(f"  $ {probe}")
    lines.append(f"  -> {_first_line(reply) or '(nothing)'}")
    mine = [c for c in seen if c.rule.chain in chains]
    others = [c for c in seen if c.rule.chain not in chains]
    chosen = chains[mine[0].rule.chain] if len(mine) == 1 and mine[0].node == node else None
    ok = chosen is not None and mine[0].packets == 1
    if not mine:
        lines.append("  ✗ none of the service's KUBE-SEP DNAT rules counted a packet on any node: the connection "
                     "was not rewritten (are the chains there? `k8slab verify` checks them)")
    for c in mine:
        good = c.node == node and len(mine) == 1
        place = (f"{node} is the source's node: the packet's first stop, nat {hook}" if c.node == node else
                 f"{c.node} is NOT the source's node {node}, where kube-proxy's rules rewrite it")
        lines.append(f"  {'✓' if good else '✗'} {c.node}: {c.rule.chain} DNAT --to-destination "
                     f"{c.rule.opt('--to-destination')} counted {c.packets} packet(s): {place}")
    if chosen is not None:
        lines.append(f"  the destination {target.where.split('/')[0]} became {chosen.endpoint}:{chosen.target_port} "
                     f"({_who(spec, pods, chosen.endpoint)}); conntrack on {node} rewrites the rest of the connection "
                     "and un-does it on the replies")
        quiet = [n.name for n in spec.nodes if n.name != node]
        lines.append(f"  ✓ no other node's DNAT counted it ({', '.join(quiet) or 'no other node'}): a packet "
                     "already rewritten to a pod address matches no KUBE-SERVICES rule on the way")
    if others:
        lines.append(f"  (other traffic meanwhile: {_counted(others)})")
    answered = page_pod(reply) if reply_ok else None
    if chosen is not None and answered is not None:
        agrees = any(p.name == answered and p.ip == chosen.endpoint for p in pods)
        ok = ok and agrees
        lines.append(f"  {'✓' if agrees else '✗'} the page names pod {answered}, "
                     f"{'the endpoint the counter names' if agrees else 'not the endpoint the counter names'}")
    elif chosen is not None and reply_ok:
        lines.append("  the answer names no pod (a server's own page): the counter alone names the endpoint")
    elif chosen is not None:
        lines.append(f"  no page answered (nothing serves HTTP on port {chosen.target_port} there?), yet the "
                     "connection was rewritten: the counter alone names the endpoint")
    lines += _why_not_traceroute(target, node, route_on_node)
    return DnatExplanation(src, target, expected, seen, chosen, ok, lines)


def _no_dnat(target: ServiceTarget, expected: ExpectedDnat, seen: Sequence[Counted], route: str) -> list[str]:
    if target.service is None:
        has = f"no service has the ClusterIP {target.address}"
    else:
        has = (f"service {target.service.name} has {target.address} but does not expose "
               f"{target.dport}/{target.protocol}")
    ports = ", ".join(expected.exposed) or "no port"
    lines = [(f"nothing DNATs {target.where}: {has}; KUBE-SERVICES matches {target.address} on {ports}, "
             f"so on {expected.node} (nat {expected.hook}) the packet keeps its destination")]
    lines.append(f"  a ClusterIP is a rule, not a host: no interface has {target.address}, so {expected.node} "
                 f"routes it like any foreign address: {_route(route)}; no pod answers")
    return lines


def _why_not_traceroute(target: ServiceTarget, node: str, route: str) -> list[str]:
    """The classic surprise: a traceroute to a ClusterIP reaches no pod."""
    argv = shlex.join(["traceroute", "-n", str(target.address)])
    return [(f"why not `{argv}`: KUBE-SERVICES matches {target.protocol} port {target.dport} only; traceroute's "
            f"probes are UDP to ports {TRACEROUTE_PORT} and up, so no rule rewrites them: they keep the ClusterIP, "
            f"which no interface has, and {node} routes them like any foreign address "
            f"({_route(route)}): they reach no pod. The path below is traced to the "
            "endpoint the connection reached.")]


def _first_line(text: str) -> str:
    lines = [line.strip() for line in re.sub(r"<[^>]+>", " ", text).splitlines() if line.strip()]
    cleaned = [" ".join(line.split()) for line in lines]
    return next((line for line in cleaned if page_pod(line)), cleaned[0] if cleaned else "")


def _route(text: str) -> str:
    route = parse_route_get(text)
    return f"`ip route get` says {route.text()}" if route else (text.strip() or "no route recorded")


def _counted(rises: Sequence[Counted]) -> str:
    return "; ".join(f"{c.node} {c.rule.chain} -> {c.rule.opt('--to-destination')} +{c.packets}" for c in rises)
