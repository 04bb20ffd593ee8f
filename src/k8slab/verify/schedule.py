"""When each trace may start, so the kernel's ICMP rate limits never silence a healthy lab (pure).

Every answer a traceroute gets is an ICMP error (time exceeded from a router, port unreachable from the
target), and Linux limits those per destination: net/ipv4/icmp.c icmpv4_xrlim_allow() asks
inet_peer_xrlim_allow() (net/ipv4/inetpeer.c) for a token of the bucket of (the answering namespace, the
address it answers), a bucket that holds XRLIM_BURST_FACTOR = 6 tokens, earns one per
net.ipv4.icmp_ratelimit (1000 ms by default) and starts full for an address not seen before (rate_last =
jiffies - 60*HZ). Types in net.ipv4.icmp_ratemask (0x1818: unreachable, time exceeded...) are limited. A
host-wide bucket (icmp_global_allow: icmp_msgs_burst 50, icmp_msgs_per_sec 1000, per network namespace
since Linux 6.12) is far from reached by these traces, which each node answers a few dozen times over seconds.

So one source pod tracing many peers meets its own gateway's limit first: every cross-node trace costs
the gateway a token for that pod. The plan spreads a node's traces over its pods (up to MAX_SOURCES) and paces each
source's traces so every answering bucket has a token left, with a margin (one token kept back, a slower
refill than the kernel's) for timer slop; a retry is planned from the same buckets, so it is not a second
burst.

The emulated lab has a second limit real machines do not: all its nodes share one kernel's neighbour
(ARP) table, which refuses new entries once gc_thresh3 (1024) entries were updated in the last 5 seconds
(net/core/neighbour.c neigh_alloc/neigh_forced_gc), whatever the namespace, other labs on the host
included. Every pair of nodes a trace joins costs two entries (each node's for the other's eth1), so the
plan takes pairs in waves of growing distance (node i with i+d and i-d, both directions together) and
lets at most NEIGHBOURS_PER_S new entries start per second. Only there: an emulated lab of more than 17 nodes
pins its eth1 neighbours (permanent entries, exempt from the cap: labs/netns/plan.py) and real nodes each have
a table of their own, so Lab.learns_node_neighbours is False and the plan joins pairs as the buckets allow.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

XRLIM_BURST_FACTOR = 6          # include/net/inetpeer.h... net/ipv4/inetpeer.c: the bucket holds 6 timeouts
DEFAULT_RATELIMIT_MS = 1000     # net.ipv4.icmp_ratelimit's default
KEEP_BACK = 1                   # tokens the plan leaves in each bucket
SLOWER = 1.15                   # the plan's refill is this much slower than the kernel's
PACE_BUDGET_S = 10.0            # how long one source may spend waiting for tokens before another pod helps
# More source pods a node than four cost more than they save: each starts a container and adds two entries to
# the emulated lab's shared neighbour table. At 50 nodes (49 traces a node, 13 a source within the budget) four
# planned 9.2 s of tracing instead of two's 23 s; verify took 29 s instead of 32 s (2 CPUs, load 4 to 7).
MAX_SOURCES = 4
NEIGHBOURS_PER_S = 80.0         # new neighbour entries a second: 400 in gc's 5 s window, well under gc_thresh3


@dataclass(frozen=True)
class Limits:
    """The per-destination limit of the lab's nodes: seconds per token (0: no limit) and the burst."""
    interval_s: float = DEFAULT_RATELIMIT_MS / 1000
    burst: int = XRLIM_BURST_FACTOR

    @staticmethod
    def from_ratelimits(values_ms: Sequence[int | None]) -> Limits:
        """The strictest of the nodes' net.ipv4.icmp_ratelimit (an unreadable one counts as the default)."""
        known = [DEFAULT_RATELIMIT_MS if v is None else v for v in values_ms] or [DEFAULT_RATELIMIT_MS]
        return Limits(max(known) / 1000)

    @property
    def planned_interval(self) -> float:
        return self.interval_s * SLOWER

    @property
    def planned_burst(self) -> int:
        return max(1, self.burst - KEEP_BACK)

    def per_source(self, budget_s: float = PACE_BUDGET_S) -> int:
        """How many traces one source can make within budget_s through one answering bucket."""
        if self.interval_s <= 0:
            return 1_000_000
        return self.planned_burst + int(budget_s / self.planned_interval)


def sources_needed(traces_per_node: int, limits: Limits, budget_s: float = PACE_BUDGET_S) -> int:
    """Source pods per node so each one's traces fit the budget (at most MAX_SOURCES)."""
    return min(MAX_SOURCES, max(1, math.ceil(traces_per_node / limits.per_source(budget_s))))


def distance(order: Sequence[str], a: str, b: str) -> int:
    """How far apart two nodes are in the lab's order, around the ring: the wave their pair belongs to."""
    n = len(order)
    d = (order.index(b) - order.index(a)) % n
    return min(d, n - d)


def wave_order(order: Sequence[str], src: str) -> list[str]:
    """src's peers nearest first (i+1, i-1, i+2, i-2 ...): the order its traces run in."""
    i, n = order.index(src), len(order)
    out: list[str] = []
    for d in range(1, n):
        for peer in (order[(i + d) % n], order[(i - d) % n]):
            if peer != src and peer not in out:
                out.append(peer)
    return out


@dataclass
class Buckets:
    """The plan's model of the kernel's buckets, keyed by (who answers, whom it answers); time in seconds."""
    limits: Limits
    tokens: dict[Hashable, float] = field(default_factory=dict)
    stamp: dict[Hashable, float] = field(default_factory=dict)

    def level(self, key: Hashable, t: float) -> float:
        if self.limits.interval_s <= 0:
            return math.inf
        cap = float(self.limits.planned_burst)
        if key not in self.tokens:
            return cap  # an address the answerer has not seen: a full bucket
        earned = (t - self.stamp[key]) / self.limits.planned_interval
        return min(cap, self.tokens[key] + earned)

    def earliest(self, keys: Sequence[Hashable], cost: int, t: float) -> float:
        """The first time from t at which every bucket of keys holds cost tokens."""
        start = t
        for key in keys:
            short = cost - self.level(key, t)
            if short > 0:
                start = max(start, t + short * self.limits.planned_interval)
        return start

    def take(self, keys: Sequence[Hashable], cost: int, t: float) -> None:
        if self.limits.interval_s <= 0:
            return
        for key in keys:
            self.tokens[key] = self.level(key, t) - cost
            self.stamp[key] = t


def pace(answerers: Sequence[Sequence[Hashable]], cost: int, buckets: Buckets, start: float = 0.0) -> list[float]:
    """Start times for traces run one after another by one source: answerers[i] lists who answers the i-th
    trace's probes (each answer costs `cost` tokens of (answerer, source) - cost = probes per hop)."""
    times, t = [], start
    for keys in answerers:
        t = buckets.earliest(keys, cost, t)
        buckets.take(keys, cost, t)
        times.append(t)
    return times


def spread(order: Sequence[str], src: str, k: int) -> Mapping[str, int]:
    """Which of src's k source pods traces to each other node: peers in wave order, dealt round robin."""
    return {dst: j % k for j, dst in enumerate(wave_order(order, src))}


@dataclass(frozen=True)
class Planned:
    """One trace for the plan: its source, who answers it, and the pair of nodes it joins (None: same node)."""
    source: Hashable
    answerers: tuple[Hashable, ...]
    pair: frozenset[str] | None
    wave: int


def plan(traces: Sequence[Planned], buckets: Buckets, starts: Mapping[Hashable, float] | None = None,
         cost: int = 1, neighbours_per_s: float = NEIGHBOURS_PER_S) -> list[float]:
    """A start time for every trace: in wave order, each after its source's previous trace, when all its
    answering buckets hold `cost` tokens, and no sooner than the neighbour budget allows for a pair of nodes
    not yet joined. Returned in the order of traces; each source's traces must be given in wave order."""
    starts = dict(starts or {})
    times = [0.0] * len(traces)
    joined: set[frozenset[str]] = set()
    budget_t = 0.0  # when the neighbour budget next has room
    for i in sorted(range(len(traces)), key=lambda i: traces[i].wave):
        tr = traces[i]
        t = starts.get(tr.source, 0.0)
        if tr.pair is not None and tr.pair not in joined and neighbours_per_s > 0:
            t = max(t, budget_t)
            budget_t = t + 2 / neighbours_per_s
            joined.add(tr.pair)
        t = buckets.earliest(tr.answerers, cost, t)
        buckets.take(tr.answerers, cost, t)
        times[i] = t
        starts[tr.source] = t
    return times
