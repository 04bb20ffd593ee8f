"""The trace engine behind `k8slab trace`, `diagram --trace` and the walkthrough's trace steps: run
traceroute, `ip route get` at the source and on every node, optionally a short tcpdump on the
destination's eth1, and explain it all (teach/explain.py). The walkthroughs themselves (steps as data,
their runner) live in teach/walkthroughs/, their text in render/walkthrough_text.py.
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address

from k8slab.errors import CommandFailedError
from k8slab.labs.base import Lab, Pod, Progress, Result, quiet
from k8slab.spec import calico
from k8slab.spec.facts import HOST_ONLY_IF, VXLAN_PORT
from k8slab.teach.explain import Capture, Endpoint, Explanation, expected_hops, explain_trace
from k8slab.verify import diagnose
from k8slab.verify.advice import Advice
from k8slab.verify.observe import observe_nodes, pod_addresses
from k8slab.verify.traceroute import TracerouteParseError, parse_traceroute
from k8slab.verify.tracing import trace_path

CAPTURE_SECONDS = 4
PROBES = 2
# The tutorial's own command: traceroute's defaults, 30 hops max and 3 probes per hop.
TUTORIAL_TRACEROUTE = ("traceroute", "-n")


# ---------------------------------------------------------------- observing a trace (side effects)


@dataclass
class ExplainedTrace:
    command: str
    trace_text: str
    explanation: Explanation
    capture_commands: tuple[str, ...] = ()   # the tcpdump and the probes it saw, as run (empty: no capture)


@dataclass(frozen=True)
class ShownTrace:
    """The tutorial's `traceroute -n DST` as a student types it, and whether its hops agree with the judged trace."""

    command: str
    text: str
    path: tuple[IPv4Address | None, ...]
    agrees: bool | None   # None: not run (the judged trace failed, so its short output is shown instead)


def _show(argv: Sequence[str]) -> str:
    return shlex.join(argv)  # as a student would type it (the tcpdump filter quoted)


def _run_at(lab: Lab, ep: Endpoint, argv: Sequence[str], timeout: float) -> Result:
    if ep.pod:
        return lab.pod_run(ep.pod, argv, timeout=timeout)
    return lab.node_run(ep.node or "", argv, timeout=timeout)


def observe_trace(lab: Lab, src: Endpoint, dst: Endpoint, *, capture: bool = True,
                  pods: Sequence[Pod] = (), progress: Progress = quiet) -> ExplainedTrace:
    """Run traceroute from src to dst, `ip route get` at the source and on every node, and (with
    capture) a short tcpdump on the destination node's eth1 while a few pings cross; explain it all."""
    spec = lab.spec
    progress(f"traceroute -n {dst.address} from {src.short}, probing no further than the expected path")
    expected = expected_hops(spec, src, dst)
    # The same probing as the checks (no TTL past the expected path, one retry for a lost probe): a
    # detour still shows, as a path that ends somewhere else.
    seen = trace_path(lambda argv: _run_at(lab, src, argv, timeout=60), dst.address, [h.address for h in expected])
    if seen.error:
        raise CommandFailedError(f"traceroute from {src.short} gave no usable output: {seen.error}")
    text = seen.output
    trace = parse_traceroute(text)
    route_argv = ["ip", "route", "get", str(dst.address)]
    src_route = None
    if src.pod:
        r = lab.pod_run(src.pod, route_argv, timeout=15)
        src_route = r.stdout + r.stderr
    node_routes: dict[str, str] = {}
    progress(f"ip route get {dst.address} on every node: which route each one uses")
    for node in spec.nodes:
        r = lab.node_run(node.name, route_argv, timeout=15)
        node_routes[node.name] = r.stdout + r.stderr
    cap, shown = None, ()
    if capture and dst.node:
        progress(f"tcpdump on {dst.node}'s {HOST_ONLY_IF} for up to {CAPTURE_SECONDS} s while {src.short} pings "
                 f"{dst.address} {PROBES} times")
        cap = take_capture(lab, src, dst)
        shown = (f"{_show(capture_argv(dst))}   # on {dst.node}, while:",
                 f"{_show(ping_argv(dst))}   # {_where(src)}")
    ex = explain_trace(spec, src, dst, trace, src_route=src_route, node_routes=node_routes, capture=cap, pods=pods)
    if not ex.ok:
        progress("the trace failed: reading every node's links, routes and forwarding to name the cause")
        cause = trace_cause(lab, src, dst, tuple(trace.path), pods)
        ex = explain_trace(spec, src, dst, trace, src_route=src_route, node_routes=node_routes, capture=cap,
                           pods=pods, cause=cause)
    return ExplainedTrace(f"{seen.command}   # {_where(src)}", text, ex, shown)


def trace_cause(lab: Lab, src: Endpoint, dst: Endpoint, observed: Sequence[IPv4Address | None],
                pods: Sequence[Pod]) -> str:
    """The cause verify would name for this path (verify/diagnose.py), from the same facts: the nodes' links,
    routes and forwarding, and what the two pods' eth0 carry."""
    spec = lab.spec
    facts = observe_nodes(lab)
    advice = Advice.for_lab(lab.backend, spec)
    src_node, dst_node = spec.node(src.node or ""), spec.node(dst.node or "")
    if src.is_node and dst.is_node:
        return diagnose.node_trace(spec, src_node, dst_node, observed, facts, advice)
    ends = [p for p in pods if p.name in (src.pod, dst.pod)]
    addresses = pod_addresses(lab, ends)
    return diagnose.pod_trace(spec, src_node, dst_node, dst.address, observed, facts, addresses,
                              source=src.address if src.pod else None,
                              pods=(src.pod, dst.pod) if src.pod and dst.pod else None, advice=advice)


def _where(ep: Endpoint) -> str:
    return f"in pod {ep.pod}" if ep.pod else f"on {ep.node}"


def tutorial_traceroute(lab: Lab, src: Endpoint, dst: Endpoint, judged: ExplainedTrace,
                        progress: Progress = quiet) -> ShownTrace:
    """`traceroute -n DST` with traceroute's defaults (30 hops max, 3 probes per hop), the tutorial's shape,
    once the judged trace reached its target (a lost packet would make it probe 30 TTLs in vain: then the
    judged trace's own output is what is shown)."""
    if not judged.explanation.ok:
        trace = parse_traceroute(judged.trace_text)
        return ShownTrace(judged.command, judged.trace_text, tuple(trace.path), None)
    argv = [*TUTORIAL_TRACEROUTE, str(dst.address)]
    progress(f"{_show(argv)} {_where(src)}, as the tutorial runs it")
    r = _run_at(lab, src, argv, timeout=120)
    try:
        path = tuple(parse_traceroute(r.stdout).path)
    except TracerouteParseError:
        path = ()
    judged_path = tuple(h.observed for h in judged.explanation.hops)
    return ShownTrace(f"{_show(argv)}   # {_where(src)}", r.stdout or r.stderr, path, path == judged_path)


def capture_argv(dst: Endpoint) -> list[str]:
    # flannel vxlan, Calico VXLAN and IP-in-IP (protocol 4) carry the pings encapsulated
    filt = f"(icmp and host {dst.address}) or udp port {VXLAN_PORT} or udp port {calico.VXLAN_PORT} or ip proto 4"
    return ["timeout", str(CAPTURE_SECONDS), "tcpdump", "-l", "-nn", "-c", str(2 * PROBES), "-i", HOST_ONLY_IF, filt]


def ping_argv(dst: Endpoint) -> list[str]:
    return ["ping", "-c", str(PROBES), "-W", "1", str(dst.address)]


def take_capture(lab: Lab, src: Endpoint, dst: Endpoint) -> Capture:
    """tcpdump on the destination node's eth1 for a few seconds while src pings dst."""
    node = dst.node or ""
    argv = capture_argv(dst)
    box: dict[str, Result] = {}

    def dump() -> None:
        box["r"] = lab.node_run(node, argv, timeout=CAPTURE_SECONDS + 5)

    t = threading.Thread(target=dump, daemon=True)
    t.start()
    time.sleep(0.8)  # tcpdump needs a moment to open the interface before the first probe
    _run_at(lab, src, ping_argv(dst), timeout=PROBES + 5)
    t.join(CAPTURE_SECONDS + 8)
    r = box.get("r")
    if r is None:
        return Capture(node, HOST_ONLY_IF, "", note="tcpdump did not finish")
    if r.rc == 127 or "not found" in r.stderr:
        return Capture(node, HOST_ONLY_IF, "", note=f"tcpdump is not installed on {node}")
    if r.rc not in (0, 124) and not r.stdout.strip():
        return Capture(node, HOST_ONLY_IF, "", note=f"tcpdump failed: {r.stderr.strip()[:200]}")
    return Capture(node, HOST_ONLY_IF, r.stdout)
