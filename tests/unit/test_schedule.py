"""The trace plan against the kernel's own rule: every answer it plans must be one Linux would send.

kernel_allows() is net/ipv4/inetpeer.c's inet_peer_xrlim_allow() in seconds: a bucket of
XRLIM_BURST_FACTOR (6) timeouts, full for a new address, one timeout spent per ICMP error."""

from __future__ import annotations

from ipaddress import IPv4Address

from k8slab.labs.base import Result
from k8slab.verify.schedule import Buckets, Limits, Planned, plan, sources_needed, spread, wave_order
from k8slab.verify.tracing import TraceJob, trace_sources

NODES = [f"n{i}" for i in range(7)]


def kernel_allows(times: list[float], timeout: float = 1.0, factor: int = 6) -> list[bool]:
    """Which of the answers sent at `times` (to one address, from one namespace) the kernel lets out."""
    token, last, out = factor * timeout, None, []
    for t in times:
        if last is not None:
            token = min(factor * timeout, token + (t - last))
        last = t
        if token >= timeout:
            token -= timeout
            out.append(True)
        else:
            out.append(False)
    return out


def one_source(count: int) -> list[Planned]:
    gateway, src = IPv4Address("10.244.1.1"), IPv4Address("10.244.1.2")
    return [Planned("src", ((gateway, src),), None, wave=i) for i in range(count)]


def test_a_source_with_many_peers_is_paced_within_the_kernels_limit():
    limits = Limits()
    times = plan(one_source(20), Buckets(limits))
    assert all(kernel_allows(times)), times
    assert times == sorted(times)
    # The burst goes out at once, the rest one planned interval apart: no slower than it must be.
    assert times[:limits.planned_burst] == [0.0] * limits.planned_burst
    assert abs(times[-1] - (20 - limits.planned_burst) * limits.planned_interval) < 1e-9


def test_unpaced_traces_would_be_silenced_after_the_burst():
    """Why the plan exists: twelve traces at once get six answers."""
    assert kernel_allows([0.0] * 12).count(True) == 6


def test_a_retry_is_planned_from_the_same_buckets_not_a_second_burst():
    buckets = Buckets(Limits())
    first = plan(one_source(5), buckets)
    retry = plan(one_source(3), buckets, {"src": first[-1]}, cost=2)
    sent = first + [t for t in retry for _ in range(2)]  # a retry sends two probes per hop
    assert all(kernel_allows(sent)), sent


def test_no_limit_means_no_wait():
    assert plan(one_source(30), Buckets(Limits(interval_s=0))) == [0.0] * 30


def test_the_strictest_node_sets_the_pace():
    assert Limits.from_ratelimits([1000, None, 2000]).interval_s == 2.0
    assert Limits.from_ratelimits([]).interval_s == 1.0


def test_waves_take_the_nearest_peers_first_and_spread_them_over_sources():
    assert wave_order(NODES, "n0") == ["n1", "n6", "n2", "n5", "n3", "n4"]
    dealt = spread(NODES, "n0", 2)
    assert [dealt[n] for n in wave_order(NODES, "n0")] == [0, 1, 0, 1, 0, 1]
    assert sources_needed(11, Limits()) == 1 and sources_needed(19, Limits()) == 2
    assert sources_needed(49, Limits()) == 4 and sources_needed(99, Limits()) == 4


def test_new_pairs_of_nodes_stay_within_the_neighbour_budget():
    traces = [Planned(f"s{i}", (), frozenset((NODES[i], NODES[(i + 1) % 7])), 1) for i in range(7)]
    times = plan(traces, Buckets(Limits()), neighbours_per_s=10.0)
    # Two neighbour entries per new pair: 10 a second is one new pair every 0.2 s.
    assert all(abs(t - 0.2 * i) < 1e-9 for i, t in enumerate(sorted(times))), times


def test_pairs_of_nodes_are_joined_at_once_where_the_nodes_do_not_learn_each_other():
    """Lab.learns_node_neighbours False (a big emulated lab pins its eth1 neighbours; real nodes have tables of
    their own): the neighbour budget does not hold a trace back, the ICMP buckets still do."""
    scripts: dict[str, str] = {}

    def runner(src: str):
        def run(argv: list[str], timeout: float) -> Result:
            scripts[src] = argv[-1]
            return Result(tuple(argv), 0, "", "")
        return run

    pairs = [(NODES[i], NODES[j]) for i in range(7) for j in range(i + 1, 7)]
    jobs = {a + b: [TraceJob(a + b, IPv4Address("10.0.0.9"), (), IPv4Address(f"10.0.1.{k}"), frozenset((a, b)))]
            for k, (a, b) in enumerate(pairs)}
    runners = {src: runner(src) for src in jobs}
    for shared in (True, False):
        scripts.clear()
        trace_sources(runners, jobs, Limits(), shared_neighbours=shared)
        slept = [src for src, script in scripts.items() if "; at " in script]
        assert len(scripts) == len(pairs) and (slept != []) == shared, scripts
