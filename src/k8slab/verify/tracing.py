"""How the checks trace a path: traceroute with no TTL past the expected path, one probe per hop, one
retry, and the parsed result (TraceRun). Side effects only through the runner a caller hands in."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address

from k8slab.labs.base import Result
from k8slab.verify.traceroute import TracerouteParseError, parse_traceroute

# One probe per TTL is enough on a lab this small; a trace that misses is retried with one more. Few probes
# matter: each host answers one address with at most a burst of 6 ICMP errors, then 1 per second.
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
