"""The tutorial's four practical examples, run in order on whichever lab is up.

Two layers: what each step shows, which commands stand for it and how its real output is
judged (pure, from the spec and recorded outputs), and the thin side of it that starts pods,
runs traceroute / `ip route get` / a short tcpdump through lab.node_run and lab.pod_run, and
removes every pod it made (named "w-...") also on Ctrl-C.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from k8slab.errors import CommandFailedError, LabStateError
from k8slab.interrupts import no_interrupts
from k8slab.labs.base import Lab, Pod, Progress, Result, quiet
from k8slab.spec.expect import POD_IF
from k8slab.spec.model import BRIDGE_IF, HOST_ONLY_IF, VXLAN_IF, LabSpec, Node
from k8slab.teach.explain import Capture, Endpoint, Explanation, expected_hops, explain_trace
from k8slab.verify.checks import trace_path
from k8slab.verify.traceroute import parse_traceroute

STEPS = (1, 2, 3, 4)
POD_PREFIX = "w-"
# The tutorial's nginx pod is a real image only where Kubernetes runs (the VirtualBox lab).
NGINX_IMAGE = "nginx:latest"
POD_READY_TIMEOUT = 180
CAPTURE_SECONDS = 4
PROBES = 2


# ---------------------------------------------------------------- what each step is (pure)


@dataclass(frozen=True)
class Roles:
    """Which nodes play the tutorial's parts in this lab (node-1 and node-2 in the tutorial's)."""

    control_plane: Node
    dst_worker: Node      # node-1: runs httpd
    src_worker: Node      # node-2: runs the busybox that traces across nodes


def roles(spec: LabSpec) -> Roles:
    workers = spec.workers
    if len(workers) < 2:
        raise LabStateError(f"the walkthrough needs two workers (the tutorial's node-1 and node-2) for its "
                            f"cross-node step; lab {spec.name!r} has {len(workers)}. Add a worker to "
                            f"{spec.source} and recreate the lab")
    return Roles(spec.control_plane, workers[0], workers[1])


# Pod names the walkthrough uses, after the tutorial's pods.
NGINX, HTTPD, BUSYBOX, BUSYBOX_2 = "w-nginx", "w-httpd", "w-busybox", "w-busybox-2"


@dataclass(frozen=True)
class StepText:
    number: int
    title: str
    demonstrates: str
    tutorial: tuple[str, ...]     # as the tutorial writes it, with this lab's names and addresses
    emulated: tuple[str, ...]     # the emulated lab's equivalent
    expected: str                 # what the tutorial says must be seen


def _pinned(name: str, image: str, node: str, command: str = "") -> str:
    overrides = json.dumps({"spec": {"nodeSelector": {"kubernetes.io/hostname": node}}})
    return f"kubectl run {name} --image={image} --overrides='{overrides}'" + (f" -- {command}" if command else "")


def step_text(spec: LabSpec, number: int, pods: Mapping[str, Pod] | None = None) -> StepText:
    """What step `number` shows and the commands for it; pod addresses filled in once the pods run."""
    pods = pods or {}
    r = roles(spec)
    w1, w2 = r.dst_worker.name, r.src_worker.name

    def ip_of(name: str, node: Node) -> str:
        return str(pods[name].ip) if name in pods else f"<{name}'s address in {node.pod_subnet}>"

    if number == 1:
        return StepText(
            1, "a pod runs", "Kubernetes schedules a pod and the CNI plugins give it an address from its "
            "node's pod subnet; on the VirtualBox lab the node also pulls the image from a registry through eth0 (NAT)",
            (f"kubectl run {NGINX} --image={NGINX_IMAGE}", f"kubectl get pods/{NGINX} -o wide"),
            (f"k8slab pod run {NGINX} --node {w1}", "k8slab pod list"),
            f"{NGINX} is Running with an address in its node's pod subnet")
    if number == 2:
        others = [n for n in spec.nodes if n != r.control_plane]
        return StepText(
            2, "node to node: one hop", "the nodes share one L2 segment, the host-only network on eth1, so "
            "each is one hop from the control plane",
            tuple(f"traceroute -n {n.ip}   # on {r.control_plane.name}" for n in others),
            tuple(f"k8slab node exec {r.control_plane.name} -- traceroute -n {n.ip}" for n in others),
            "; ".join(f"{n.name}: 1 hop, {n.ip} itself" for n in others))
    if number == 3:
        dst = ip_of(HTTPD, r.dst_worker)
        return StepText(
            3, "pod to pod on one node: one hop", f"two pods on {w1} talk through {w1}'s bridge {BRIDGE_IF}; "
            "the packet never leaves the node and no router is crossed",
            (_pinned(HTTPD, "httpd", w1), _pinned(BUSYBOX, "busybox", w1, "sleep 3600"),
             f"kubectl exec -it {BUSYBOX} -- traceroute -n {dst}"),
            (f"k8slab pod run {HTTPD} --node {w1}", f"k8slab pod run {BUSYBOX} --node {w1}",
             f"k8slab pod exec {BUSYBOX} -- traceroute -n {dst}"),
            f"1 hop: {dst}, the target itself")
    if number == 4:
        dst = ip_of(HTTPD, r.dst_worker)
        return StepText(
            4, "pod to pod across nodes: three hops", f"a pod on {w2} reaches a pod on {w1}: {w2} routes the "
            f"packet out of {HOST_ONLY_IF} to {w1} (flannel {spec.cni_backend}), which hands it to its {BRIDGE_IF}",
            (_pinned(HTTPD, "httpd", w1), _pinned(BUSYBOX_2, "busybox", w2, "sleep 3600"),
             f"kubectl exec -it {BUSYBOX_2} -- traceroute -n {dst}"),
            (f"k8slab pod run {HTTPD} --node {w1}", f"k8slab pod run {BUSYBOX_2} --node {w2}",
             f"k8slab pod exec {BUSYBOX_2} -- traceroute -n {dst}"),
            f"3 hops in this order: {r.src_worker.pod_gateway} ({w2}'s {BRIDGE_IF}), "
            + (f"{r.dst_worker.ip} ({w1}'s {HOST_ONLY_IF})" if spec.cni_backend == "host-gw"
               else f"{r.dst_worker.pod_subnet.network_address} ({w1}'s {VXLAN_IF})") + f", {dst} (the pod)")
    raise LabStateError(f"there is no step {number}; the walkthrough has steps {', '.join(map(str, STEPS))}")


def pods_for_step(spec: LabSpec, number: int) -> list[tuple[str, str]]:
    """(pod, node) pairs a step needs; step 1 starts its own pod."""
    r = roles(spec)
    return {3: [(HTTPD, r.dst_worker.name), (BUSYBOX, r.dst_worker.name)],
            4: [(HTTPD, r.dst_worker.name), (BUSYBOX_2, r.src_worker.name)]}.get(number, [])


@dataclass(frozen=True)
class Check:
    ok: bool
    text: str


@dataclass
class StepResult:
    text: StepText
    ran: list[str]                      # the commands actually run, as shown
    output: str                         # their real output
    checks: list[Check]
    explanation: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)


def judge_pod_running(spec: LabSpec, pod: Pod | None, phase: str, node_name: str | None) -> list[Check]:
    """Step 1's verdict: Running, on a node of the lab, with an address from that node's pod subnet."""
    checks = [Check(phase == "Running", f"phase is {phase or 'unknown'} (must be Running)")]
    if pod is None or node_name is None:
        return checks + [Check(False, "the pod has no node or no address yet")]
    node = next((n for n in spec.nodes if n.name == node_name), None)
    if node is None:
        return checks + [Check(False, f"it runs on {node_name}, which is not a node of lab {spec.name!r}")]
    checks.append(Check(pod.ip in node.pod_subnet,
                        f"its address {pod.ip} is {'in' if pod.ip in node.pod_subnet else 'NOT in'} "
                        f"{node.name}'s pod subnet {node.pod_subnet}"))
    return checks


def judge_trace(spec: LabSpec, ex: Explanation) -> list[Check]:
    """A trace step's verdict: the hops in order, and the capture's word on encapsulation when it has one."""
    want = ", ".join(str(h.address) for h in ex.expected)
    seen = ", ".join(str(h.observed or "*") for h in ex.hops if h.ttl <= len(ex.hops))
    checks = [Check(ex.ok, f"{ex.src.short} -> {ex.dst.short}: {len(ex.expected)} hop(s) expected ({want}); "
                           f"seen: {seen or 'nothing'}")]
    if ex.encapsulation_ok is not None:
        how = "VXLAN-encapsulated" if spec.cni_backend == "vxlan" else "not encapsulated"
        where = "stays off eth1" if ex.src.node == ex.dst.node else f"is {how} on {HOST_ONLY_IF}"
        checks.append(Check(ex.encapsulation_ok, f"the capture shows the traffic {where} "
                            f"({'as' if ex.encapsulation_ok else 'NOT as'} flannel {spec.cni_backend} does)"))
    return checks


# ---------------------------------------------------------------- observing a trace (side effects)


@dataclass
class TraceRun:
    command: str
    trace_text: str
    explanation: Explanation


def _show(argv: Sequence[str]) -> str:
    return " ".join(argv)


def _run_at(lab: Lab, ep: Endpoint, argv: Sequence[str], timeout: float) -> Result:
    if ep.pod:
        return lab.pod_run(ep.pod, argv, timeout=timeout)
    return lab.node_run(ep.node or "", argv, timeout=timeout)


def observe_trace(lab: Lab, src: Endpoint, dst: Endpoint, *, capture: bool = True,
                  pods: Sequence[Pod] = ()) -> TraceRun:
    """Run traceroute from src to dst, `ip route get` at the source and on every node, and (with
    capture) a short tcpdump on the destination node's eth1 while a few pings cross; explain it all."""
    spec = lab.spec
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
    for node in spec.nodes:
        r = lab.node_run(node.name, route_argv, timeout=15)
        node_routes[node.name] = r.stdout + r.stderr
    cap = take_capture(lab, src, dst) if capture and dst.node else None
    where = f"in pod {src.pod}" if src.pod else f"on {src.node}"
    ex = explain_trace(spec, src, dst, trace, src_route=src_route, node_routes=node_routes, capture=cap, pods=pods)
    return TraceRun(f"{seen.command}   # {where}", text, ex)


def take_capture(lab: Lab, src: Endpoint, dst: Endpoint) -> Capture:
    """tcpdump on the destination node's eth1 for a few seconds while src pings dst."""
    node = dst.node or ""
    filt = f"(icmp and host {dst.address}) or udp port 8472"
    argv = ["timeout", str(CAPTURE_SECONDS), "tcpdump", "-l", "-nn", "-c", str(2 * PROBES), "-i", HOST_ONLY_IF, filt]
    box: dict[str, Result] = {}

    def dump() -> None:
        box["r"] = lab.node_run(node, argv, timeout=CAPTURE_SECONDS + 5)

    t = threading.Thread(target=dump, daemon=True)
    t.start()
    time.sleep(0.8)  # tcpdump needs a moment to open the interface before the first probe
    _run_at(lab, src, ["ping", "-c", str(PROBES), "-W", "1", str(dst.address)], timeout=PROBES + 5)
    t.join(CAPTURE_SECONDS + 8)
    r = box.get("r")
    if r is None:
        return Capture(node, HOST_ONLY_IF, "", note="tcpdump did not finish")
    if r.rc == 127 or "not found" in r.stderr:
        return Capture(node, HOST_ONLY_IF, "", note=f"tcpdump is not installed on {node}")
    if r.rc not in (0, 124) and not r.stdout.strip():
        return Capture(node, HOST_ONLY_IF, "", note=f"tcpdump failed: {r.stderr.strip()[:200]}")
    return Capture(node, HOST_ONLY_IF, r.stdout)


# ---------------------------------------------------------------- running steps


class Walkthrough:
    """Runs steps on a lab; remembers the pods it started and removes them in cleanup()."""

    def __init__(self, lab: Lab, progress: Progress = quiet, capture: bool = True):
        self.lab = lab
        self.spec = lab.spec
        self.roles = roles(self.spec)
        self.progress = progress
        self.capture = capture
        self.started: list[str] = []
        self.pods: dict[str, Pod] = {}

    def check_free(self, steps: Sequence[int]) -> None:
        """Refuse before starting anything if a pod name we need is already taken."""
        wanted = {name for s in steps for name, _ in pods_for_step(self.spec, s)} | ({NGINX} if 1 in steps else set())
        taken = sorted(wanted & {p.name for p in self.lab.pods()})
        if taken:
            raise LabStateError(f"pod(s) {', '.join(taken)} already exist in lab {self.spec.name!r} (left from an "
                                f"earlier walkthrough?); remove them with `k8slab pod delete NAME` and run again")

    def _start(self, name: str, node: str) -> Pod:
        if name not in self.pods:
            self.progress(f"starting pod {name} on {node}")
            self.started.append(name)
            self.pods[name] = self.lab.pod_start(name, node)
        return self.pods[name]

    def cleanup(self) -> None:
        errors = []
        for name in reversed(self.started):
            try:
                self.progress(f"removing pod {name}")
                if hasattr(self.lab, "kubectl") and name == NGINX:
                    self.lab.kubectl("delete", "pod", NGINX, "--now", "--ignore-not-found", timeout=120)
                else:
                    self.lab.pod_delete(name)
            except Exception as exc:  # noqa: BLE001 - keep removing the others, report at the end
                errors.append(f"{name}: {exc}")
        self.started.clear()
        self.pods.clear()
        if errors:
            raise CommandFailedError("could not remove every walkthrough pod: " + "; ".join(errors))

    def run(self, number: int) -> StepResult:
        for name, node in pods_for_step(self.spec, number):
            self._start(name, node)
        text = step_text(self.spec, number, self.pods)
        return {1: self._step1, 2: self._step2, 3: self._step3, 4: self._step4}[number](text)

    def _step1(self, text: StepText) -> StepResult:
        lab, node = self.lab, self.roles.dst_worker
        if hasattr(lab, "kubectl"):
            return self._step1_kubernetes(text)
        pod = self._start(NGINX, node.name)
        ran = [f"k8slab pod run {NGINX} --node {node.name}", f"ip -4 addr show {POD_IF}   # in pod {NGINX}",
               f"ip route   # in pod {NGINX}", f"ip -4 addr show {BRIDGE_IF}   # on {node.name}"]
        outs = [lab.pod_run(NGINX, ["ip", "-4", "addr", "show", POD_IF]), lab.pod_run(NGINX, ["ip", "route"]),
                lab.node_run(node.name, ["ip", "-4", "addr", "show", BRIDGE_IF])]
        output = "\n".join([f"pod {pod.name} on {pod.node}: {pod.ip}"] + [(r.stdout or r.stderr).rstrip() for r in outs])
        checks = judge_pod_running(self.spec, pod, "Running", pod.node)
        checks.append(Check(f"inet {pod.ip}/" in outs[0].stdout, f"the pod's {POD_IF} carries {pod.ip}"))
        gw = f"default via {node.pod_gateway}"
        checks.append(Check(gw in outs[1].stdout, f"the pod's default route is via {node.pod_gateway}, "
                                                  f"{node.name}'s {BRIDGE_IF}"))
        checks.append(Check(f"inet {node.pod_gateway}/" in outs[2].stdout,
                            f"{node.name}'s {BRIDGE_IF} is the pod gateway {node.pod_gateway}"))
        explanation = [
            "the emulated lab has no Kubernetes and no container images: nothing is pulled through eth0 here.",
            (f"what this step proves here: a pod network namespace was wired by the real CNI plugins (bridge, "
            f"host-local, loopback) on {node.name}, got an address from {node.name}'s pod subnet {node.pod_subnet}, "
            f"a veth on {BRIDGE_IF}, and a default route to {node.pod_gateway}, as kubelet's CNI call does."),
        ]
        return StepResult(text, ran, output, checks, explanation)

    def _step1_kubernetes(self, text: StepText) -> StepResult:
        lab = self.lab
        self.started.append(NGINX)
        run = lab.kubectl("run", NGINX, f"--image={NGINX_IMAGE}", "--restart=Never")
        if not run.ok:
            raise CommandFailedError(f"kubectl run {NGINX} failed: {(run.stderr or run.stdout).strip()}")
        lab.kubectl("wait", "--for=condition=Ready", f"pod/{NGINX}", f"--timeout={POD_READY_TIMEOUT}s",
                    timeout=POD_READY_TIMEOUT + 30)
        shown = lab.kubectl("get", f"pods/{NGINX}", "-o", "wide")
        raw = lab.kubectl("get", f"pods/{NGINX}", "-o", "json")
        phase, node_name, pod = "", None, None
        if raw.ok:
            data = json.loads(raw.stdout)
            phase = data.get("status", {}).get("phase", "")
            node_name = data.get("spec", {}).get("nodeName")
            ip = data.get("status", {}).get("podIP")
            pod = Pod(NGINX, node_name, IPv4Address(ip)) if node_name and ip else None
        checks = judge_pod_running(self.spec, pod, phase, node_name)
        explanation = [(f"the node pulled {NGINX_IMAGE} from a registry through eth0 (VirtualBox NAT) and the "
                       "CNI plugins gave the pod an address from that node's pod subnet")]
        return StepResult(text, list(text.tutorial), (shown.stdout or shown.stderr).rstrip(), checks, explanation)

    def _traced(self, text: StepText, pairs: Sequence[tuple[Endpoint, Endpoint]], capture: bool) -> StepResult:
        ran, outputs, checks, explanation = [], [], [], []
        pods = list(self.pods.values())
        for src, dst in pairs:
            run = observe_trace(self.lab, src, dst, capture=capture, pods=pods)
            ran.append(run.command)
            outputs.append(run.trace_text.rstrip())
            checks += judge_trace(self.spec, run.explanation)
            explanation += run.explanation.lines[1:]
        return StepResult(text, ran, "\n".join(outputs), checks, explanation)

    def _pod_ep(self, name: str) -> Endpoint:
        pod = self.pods[name]
        return Endpoint(pod.ip, pod.node, pod=pod.name)

    def _step2(self, text: StepText) -> StepResult:
        cp = self.roles.control_plane
        src = Endpoint(cp.ip, cp.name, is_node=True)
        pairs = [(src, Endpoint(n.ip, n.name, is_node=True)) for n in self.spec.nodes if n != cp]
        return self._traced(text, pairs, capture=False)

    def _step3(self, text: StepText) -> StepResult:
        return self._traced(text, [(self._pod_ep(BUSYBOX), self._pod_ep(HTTPD))], self.capture)

    def _step4(self, text: StepText) -> StepResult:
        return self._traced(text, [(self._pod_ep(BUSYBOX_2), self._pod_ep(HTTPD))], self.capture)


# ---------------------------------------------------------------- how a step reads


def format_step(result: StepResult, backend: str, total: int = len(STEPS), columns: int = 120) -> list[str]:
    t = result.text
    emulated = backend == "netns"
    lines = [f"━━ step {t.number} of {total}: {t.title} ━━", f"what it shows: {t.demonstrates}", "commands:"]
    pairs = [(t.tutorial[i] if i < len(t.tutorial) else "", t.emulated[i] if i < len(t.emulated) else "")
             for i in range(max(len(t.tutorial), len(t.emulated)))]
    width = max(len(left) for left, _ in pairs)
    if width + max(len(right) for _, right in pairs) <= columns - 7:
        head = "tutorial (VirtualBox lab)"
        lines.append(f"  {head:{width}}  |  emulated lab")
        lines += [f"  {left:{width}}  |  {right}" for left, right in pairs]
    else:  # too wide for two columns: each tutorial command right above its emulated equivalent
        for left, right in pairs:
            lines += [f"  tutorial: {left}", f"  emulated: {right}"]
    lab_kind = "emulated lab" if emulated else f"{backend} lab"
    lines.append(f"ran on this {lab_kind}:")
    lines += [f"  $ {c}" for c in result.ran]
    lines.append("output:")
    lines += [f"  | {line}" for line in result.output.splitlines()] or ["  | (nothing)"]
    lines.append(f"the tutorial says: {t.expected}")
    lines += [f"  {'✓' if c.ok else '✗'} {c.text}" for c in result.checks]
    if result.explanation:
        lines.append("why:")
        lines += [f"  {line}" for line in result.explanation]
    lines.append(f"{'✓' if result.ok else '✗'} step {t.number}: "
                 f"{'matches the tutorial' if result.ok else 'does NOT match the tutorial'}")
    return lines


def run_walkthrough(lab: Lab, steps: Sequence[int], show: Callable[[list[str]], None],
                    pause: Callable[[int], None] | None = None, progress: Progress = quiet,
                    capture: bool = True) -> list[StepResult]:
    """Run steps in order, show each, pause between them; the pods are removed whatever happens."""
    for s in steps:
        step_text(lab.spec, s)  # an unknown step or a lab without two workers fails before anything starts
    walk = Walkthrough(lab, progress, capture)
    walk.check_free(steps)
    results = []
    try:
        for i, s in enumerate(steps):
            result = walk.run(s)
            results.append(result)
            show(format_step(result, lab.backend, columns=shutil.get_terminal_size().columns))
            if pause and i + 1 < len(steps):
                pause(steps[i + 1])
    finally:
        with no_interrupts():
            walk.cleanup()
    return results
