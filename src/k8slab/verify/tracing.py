"""How the checks trace a path: traceroute with no TTL past the expected path, one probe per hop, one
retry, and the parsed result (TraceRun); verify's many traces batched per source and paced by the plan of
verify/schedule.py. Side effects only through the runner a caller hands in."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address

from k8slab.labs.base import Result
from k8slab.verify.concurrency import concurrently
from k8slab.verify.schedule import NEIGHBOURS_PER_S, Buckets, Limits, Planned, plan
from k8slab.verify.traceroute import TracerouteParseError, parse_traceroute

# One probe per TTL is enough; a trace that misses is retried with one more. Few probes matter: each host
# answers one address with at most a burst of 6 ICMP errors, then 1 per second (verify/schedule.py).
TRACE_WAIT_S = 1
TRACE_PROBES = 1
TRACE_PROBES_RETRY = 2


@dataclass(frozen=True)
class TraceRun:
    """What one traceroute printed, parsed; error says why there is no path (tool missing, junk)."""
    command: str
    path: tuple[IPv4Address | None, ...]
    output: str
    error: str | None = None

    @staticmethod
    def from_result(res: Result, argv: Sequence[str]) -> TraceRun:
        command = " ".join(argv)  # as asked: res.argv may be the backend's wrapping (nsenter, kubectl exec)
        try:
            trace = parse_traceroute(res.stdout)
        except TracerouteParseError as exc:
            why = res.stderr.strip() or str(exc)
            return TraceRun(command, (), res.stdout, f"traceroute failed (rc {res.rc}): {why[:300]}")
        return TraceRun(command, tuple(trace.path), res.stdout)

    def describe(self) -> str:
        if self.error:
            return self.error
        return ", ".join("*" if h is None else str(h) for h in self.path) or "no hops"


def trace_argv(target: IPv4Address, max_hops: int, probes: int = TRACE_PROBES) -> list[str]:
    # Options busybox's traceroute and Debian's share; -m also bounds a broken path to a few seconds.
    return ["traceroute", "-n", "-q", str(probes), "-w", str(TRACE_WAIT_S), "-m", str(max_hops), str(target)]


def trace_path(run: Callable[[list[str]], Result], target: IPv4Address, wanted: Sequence[IPv4Address]) -> TraceRun:
    """Trace with one probe per hop and no TTL beyond the expected path; retry once on a mismatch.

    Every host limits the ICMP errors it sends to one address (a burst of 6, then 1 per second), and
    each probe past the target costs one of the target's; a few traces in a row would otherwise go
    silent. A single lost probe or answer (seen under load: a trace silent after its first hop, whole
    again a moment later) must not fail a healthy lab, so a path that differs from the expected one
    is traced once more with more probes; a lab that is really broken fails both times."""
    max_hops = len(wanted)
    argv = trace_argv(target, max_hops)
    first = TraceRun.from_result(run(argv), argv)
    if first.error is None and list(first.path) != list(wanted):
        argv = trace_argv(target, max_hops, TRACE_PROBES_RETRY)
        return TraceRun.from_result(run(argv), argv)
    return first


# ---- many traces from one source, paced (verify/schedule.py) --------------------------------------------
MARK = "@@k8slab-trace"


@dataclass(frozen=True)
class TraceJob:
    """One trace a source makes: filed under key, to target, expecting wanted; the two nodes it joins (for the
    neighbour budget) and its wave (verify/schedule.py)."""
    key: Hashable
    target: IPv4Address
    wanted: tuple[IPv4Address, ...]
    source_ip: IPv4Address
    pair: frozenset[str] | None = None
    wave: int = 0

    def planned(self, source: Hashable) -> Planned:
        # Each answer is an ICMP error from the hop's namespace (its address stands for it) to the source.
        return Planned(source, tuple((hop, self.source_ip) for hop in self.wanted), self.pair, self.wave)


Runner = Callable[[list[str], float], Result]  # argv, timeout -> Result, on the source (node or pod)


# The batch's clock: hundredths of a second since boot, read from /proc/uptime by the shell's own builtins (no
# process per trace), and a wait until a planned time from the batch's start. The plan's times are the earliest
# each trace may start, so a trace that ran long (a loaded machine, a silent hop's wait) delays the next one
# only as far as its own plan says, never before it; a node without /proc/uptime (clock 0) sleeps every time
# in full, later still.
CLOCK = ('clock() { read up _ </proc/uptime || up=0.00; now=$(( ${up%.*} * 100 + 1${up#*.} - 100 )); }; '
         'at() { clock; d=$(( zero + $1 - now )); if [ "$d" -gt 0 ]; then sleep $(( d / 100 )).$(( d % 100 / 10 ))'
         '$(( d % 10 )); fi; }; clock; zero=$now')


def batch_script(jobs: Sequence[TraceJob], offsets: Sequence[float], probes: int) -> str:
    """One shell script that runs a source's traces in order, each no sooner than its planned offset from the
    script's start (rounded up to the clock's hundredths, plus one for the clock's own truncation); a marker
    line before each trace splits the output (busybox sh and sleep take fractions, like Debian's)."""
    parts = [CLOCK]
    for job, offset in zip(jobs, offsets):
        argv = " ".join(trace_argv(job.target, len(job.wanted), probes))
        wait = f"at {math.ceil(offset * 100 - 1e-9) + 1}; " if offset > 0.0005 else ""
        parts.append(f"{wait}echo {MARK}; {argv} 2>&1")
    return "; ".join(parts)


def split_batch(res: Result, jobs: Sequence[TraceJob], probes: int) -> list[TraceRun]:
    """The batch's output cut back into one TraceRun per job; a job the script never reached fails."""
    sections = res.stdout.split(MARK + "\n")[1:]
    runs = []
    for i, job in enumerate(jobs):
        argv = trace_argv(job.target, len(job.wanted), probes)
        text = sections[i] if i < len(sections) else ""
        if not text.strip():
            why = (res.stderr.strip() or f"the batch stopped (rc {res.rc})")[:300]
            runs.append(TraceRun(" ".join(argv), (), text, f"traceroute did not run: {why}"))
            continue
        runs.append(TraceRun.from_result(Result(tuple(argv), 0, text, ""), argv))
    return runs


def _round(runners: Mapping[Hashable, Runner], jobs: Mapping[Hashable, Sequence[TraceJob]], buckets: Buckets,
           starts: Mapping[Hashable, float], probes: int, neighbours_per_s: float
           ) -> tuple[dict[Hashable, list[TraceRun]], dict[Hashable, float]]:
    """Plan every source's traces together, then run each source's as one paced script, all at once."""
    flat = [(src, job) for src in jobs for job in jobs[src]]
    times = plan([job.planned(src) for src, job in flat], buckets, starts, cost=probes,
                 neighbours_per_s=neighbours_per_s)
    by_source: dict[Hashable, list[float]] = {}
    for (src, _), t in zip(flat, times):
        by_source.setdefault(src, []).append(t)

    def one(src: Hashable) -> list[TraceRun]:
        own = by_source[src]
        # The script starts no sooner than the plan's time starts[src] (the round's start, or this source's last
        # trace of the first round), so offsets from it keep every trace at or after its planned time.
        offsets = [t - starts.get(src, 0.0) for t in own]
        hops = max(len(j.wanted) for j in jobs[src])
        timeout = offsets[-1] + len(own) * (TRACE_WAIT_S * probes * hops + 2) + 15
        res = runners[src](["sh", "-c", batch_script(jobs[src], offsets, probes)], timeout)
        return split_batch(res, jobs[src], probes)

    runs = concurrently({src: (lambda src=src: one(src)) for src in by_source}, workers=max(1, len(by_source)))
    return runs, {src: ts[-1] for src, ts in by_source.items()}


def trace_sources(runners: Mapping[Hashable, Runner], jobs: Mapping[Hashable, Sequence[TraceJob]],
                  limits: Limits, shared_neighbours: bool = True) -> dict[Hashable, TraceRun]:
    """Every source's traces at once, as planned; then the ones that missed once more, with two probes per
    hop, planned from the same buckets after the first round (so a retry waits for tokens, not bursts).
    shared_neighbours: the nodes learn each other into one neighbour table (Lab.learns_node_neighbours), so
    new pairs of nodes are joined at most NEIGHBOURS_PER_S entries a second."""
    buckets = Buckets(limits)
    per_s = NEIGHBOURS_PER_S if shared_neighbours else 0.0
    jobs = {src: list(js) for src, js in jobs.items() if js}
    runs, ends = _round(runners, jobs, buckets, {}, TRACE_PROBES, per_s)
    results: dict[Hashable, TraceRun] = {}
    again: dict[Hashable, list[TraceJob]] = {}
    for src, trs in runs.items():
        for job, tr in zip(jobs[src], trs):
            results[job.key] = tr
            if tr.error is None and list(tr.path) != list(job.wanted):
                again.setdefault(src, []).append(job)
    if again:
        retried, _ = _round(runners, again, buckets, ends, TRACE_PROBES_RETRY, per_s)
        for src, trs in retried.items():
            for job, tr in zip(again[src], trs):
                results[job.key] = tr
    return results
