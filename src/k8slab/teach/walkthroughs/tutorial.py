"""The tutorial's four practical examples as walkthrough steps, with the tutorial's pod names.

1 a pod runs (nginx), 2 node to node: one hop, 3 pod to pod on one node: one hop (busybox -> httpd on
node-1), 4 pod to pod across nodes: three hops (busybox on node-2 -> httpd on node-1).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from ipaddress import IPv4Address

from k8slab.errors import CommandFailedError
from k8slab.labs.base import Pod
from k8slab.spec.expect import flannel_tunnel, next_hop_into
from k8slab.spec.facts import BRIDGE_IF, HOST_ONLY_IF, POD_IF
from k8slab.spec.model import LabSpec, Node
from k8slab.teach.explain import Endpoint, Explanation, expected_encapsulation
from k8slab.teach.walkthroughs.model import (
    Check,
    PodPart,
    Roles,
    Step,
    StepContext,
    StepResult,
    StepText,
    Walkthrough,
    needs_workers,
)

# The tutorial's pods. The nginx image is real only where Kubernetes runs (the VirtualBox lab).
NGINX, HTTPD, BUSYBOX = "nginx", "httpd", "busybox"
NGINX_IMAGE = "nginx:latest"
POD_READY_TIMEOUT = 180
SLEEP = "sleep 3600"


def pinned(name: str, image: str, node: str, command: str = "") -> str:
    overrides = json.dumps({"spec": {"nodeSelector": {"kubernetes.io/hostname": node}}})
    return f"kubectl run {name} --image={image} --overrides='{overrides}'" + (f" -- {command}" if command else "")


def _ip_of(pods: Mapping[str, Pod], name: str, node: Node) -> str:
    return str(pods[name].ip) if name in pods else f"<{name}'s address in {node.pod_subnet}>"


def _workers(n: int):
    return needs_workers(n, "two workers (the tutorial node-1 and node-2)")


def _two_nodes(spec: LabSpec, roles: Roles) -> str | None:
    return None if len(spec.nodes) > 1 else f"it traces between nodes and lab {spec.name!r} has one node"


# ---------------------------------------------------------------- step 1: a pod runs


def _text1(spec: LabSpec, r: Roles, pods: Mapping[str, Pod]) -> StepText:
    w1 = r.node("dst_worker").name
    return StepText(
        1, "a pod runs", "Kubernetes schedules a pod and the CNI plugins give it an address from its node's pod "
        "subnet; on the VirtualBox lab the node also pulls the image from a registry through eth0 (NAT)",
        (f"kubectl run {NGINX} --image={NGINX_IMAGE}", f"kubectl get pods/{NGINX} -o wide"),
        (f"k8slab pod run {NGINX} --node {w1}", "k8slab pod list"),
        f"{NGINX} is Running with an address in its node's pod subnet")


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


def _run1(ctx: StepContext, text: StepText) -> StepResult:
    if ctx.lab.has_kubernetes:
        return _run1_kubernetes(ctx, text)
    lab, node = ctx.lab, ctx.roles.node("dst_worker")
    pod = ctx.start(NGINX, node.name)
    ran = [f"k8slab pod run {NGINX} --node {node.name}", f"ip -4 addr show {POD_IF}   # in pod {NGINX}",
           f"ip route   # in pod {NGINX}", f"ip -4 addr show {BRIDGE_IF}   # on {node.name}"]
    outs = [lab.pod_run(NGINX, ["ip", "-4", "addr", "show", POD_IF]), lab.pod_run(NGINX, ["ip", "route"]),
            lab.node_run(node.name, ["ip", "-4", "addr", "show", BRIDGE_IF])]
    output = "\n".join([f"pod {pod.name} on {pod.node}: {pod.ip}"] + [(r.stdout or r.stderr).rstrip() for r in outs])
    checks = judge_pod_running(ctx.spec, pod, "Running", pod.node)
    checks.append(Check(f"inet {pod.ip}/" in outs[0].stdout, f"the pod's {POD_IF} carries {pod.ip}"))
    checks.append(Check(f"default via {node.pod_gateway}" in outs[1].stdout,
                        f"the pod's default route is via {node.pod_gateway}, {node.name}'s {BRIDGE_IF}"))
    checks.append(Check(f"inet {node.pod_gateway}/" in outs[2].stdout,
                        f"{node.name}'s {BRIDGE_IF} is the pod gateway {node.pod_gateway}"))
    explanation = [
        "the emulated lab has no Kubernetes and no container images: nothing is pulled through eth0 here.",
        (f"what this step proves here: a pod network namespace was wired by the real CNI plugins (bridge, "
         f"host-local, loopback) on {node.name}, got an address from {node.name}'s pod subnet {node.pod_subnet}, "
         f"a veth on {BRIDGE_IF}, and a default route to {node.pod_gateway}, as kubelet's CNI call does."),
    ]
    return StepResult(text, ran, output, checks, explanation)


def _run1_kubernetes(ctx: StepContext, text: StepText) -> StepResult:
    lab = ctx.lab
    ctx.adopt(NGINX)
    ctx.progress(f"kubectl run {NGINX}: the node pulls {NGINX_IMAGE} (up to {POD_READY_TIMEOUT} s)")
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
    checks = judge_pod_running(ctx.spec, pod, phase, node_name)
    explanation = [(f"the node pulled {NGINX_IMAGE} from a registry through eth0 (VirtualBox NAT) and the "
                    "CNI plugins gave the pod an address from that node's pod subnet")]
    return StepResult(text, list(text.tutorial), (shown.stdout or shown.stderr).rstrip(), checks, explanation)


# ---------------------------------------------------------------- steps 2-4: traces


ENCAPSULATED = {"vxlan": "VXLAN-encapsulated", "ipip": "IP-in-IP-encapsulated"}


def judge_trace(spec: LabSpec, ex: Explanation) -> list[Check]:
    """A trace step's verdict: the hops in order, and the capture's word on encapsulation when it has one."""
    want = ", ".join(str(h.address) for h in ex.expected)
    seen = ", ".join(str(h.observed or "*") for h in ex.hops if h.ttl <= len(ex.hops))
    checks = [Check(ex.ok, f"{ex.src.short} -> {ex.dst.short}: {len(ex.expected)} hop(s) expected ({want}); "
                           f"seen: {seen or 'nothing'}")]
    if ex.encapsulation_ok is not None:
        # Which tunnel the two nodes use is the dataplane's word (Calico's CrossSubnet: none inside one subnet).
        how = ENCAPSULATED.get(expected_encapsulation(spec, ex.src, ex.dst), "not encapsulated")
        where = f"stays off {HOST_ONLY_IF}" if ex.src.node == ex.dst.node else f"is {how} on {HOST_ONLY_IF}"
        checks.append(Check(ex.encapsulation_ok, f"the capture shows the traffic {where} "
                            f"({'as' if ex.encapsulation_ok else 'NOT as'} {spec.dataplane} does)"))
    return checks


def traced(ctx: StepContext, text: StepText, pairs: Sequence[tuple[Endpoint, Endpoint]], capture: bool) -> StepResult:
    """Trace each pair: judged on the engine's short trace, shown as the tutorial's `traceroute -n`."""
    from k8slab.teach.trace import observe_trace, tutorial_traceroute

    ran, outputs, checks, explanation = [], [], [], []
    pods = list(ctx.pods.values())
    for src, dst in pairs:
        ctx.progress(f"tracing {src.short} -> {dst.short}")
        run = observe_trace(ctx.lab, src, dst, capture=capture, pods=pods, progress=ctx.progress)
        shown = tutorial_traceroute(ctx.lab, src, dst, run, ctx.progress)
        ran.append(shown.command)
        outputs.append(shown.text.rstrip())
        ran += run.capture_commands
        checks += judge_trace(ctx.spec, run.explanation)
        if shown.agrees is not None:
            checks.append(Check(shown.agrees, f"the tutorial's `traceroute -n` shows the same hops "
                                              f"({', '.join(str(a or '*') for a in shown.path)})"))
        explanation += run.explanation.lines[1:]
    return StepResult(text, ran, "\n".join(outputs), checks, explanation)


def pod_endpoint(ctx: StepContext, name: str) -> Endpoint:
    pod = ctx.pods[name]
    return Endpoint(pod.ip, pod.node, pod=pod.name)


def _text2(spec: LabSpec, r: Roles, pods: Mapping[str, Pod]) -> StepText:
    others = [n for n in spec.nodes if n != r.control_plane]
    return StepText(
        2, "node to node: one hop", "the nodes share one L2 segment, the host-only network on eth1, so "
        "each is one hop from the control plane",
        tuple(f"traceroute -n {n.ip}   # on {r.control_plane.name}" for n in others),
        tuple(f"k8slab node exec {r.control_plane.name} -- traceroute -n {n.ip}" for n in others),
        "; ".join(f"{n.name}: 1 hop, {n.ip} itself" for n in others))


def _run2(ctx: StepContext, text: StepText) -> StepResult:
    cp = ctx.roles.control_plane
    src = Endpoint(cp.ip, cp.name, is_node=True)
    pairs = [(src, Endpoint(n.ip, n.name, is_node=True)) for n in ctx.spec.nodes if n != cp]
    return traced(ctx, text, pairs, capture=False)


def _busybox_traces_httpd(busybox_on: str, httpd_on: str, dst: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Steps 3 and 4's commands: httpd and busybox pinned to their nodes, busybox traces httpd; as the tutorial
    writes them (kubectl) and as the emulated lab runs them (k8slab)."""
    tutorial = (pinned(HTTPD, "httpd", httpd_on), pinned(BUSYBOX, "busybox", busybox_on, SLEEP),
                f"kubectl exec -it {BUSYBOX} -- traceroute -n {dst}")
    emulated = (f"k8slab pod run {HTTPD} --node {httpd_on}", f"k8slab pod run {BUSYBOX} --node {busybox_on}",
                f"k8slab pod exec {BUSYBOX} -- traceroute -n {dst}")
    return tutorial, emulated


def _run_busybox_traces_httpd(ctx: StepContext, text: StepText) -> StepResult:
    return traced(ctx, text, [(pod_endpoint(ctx, BUSYBOX), pod_endpoint(ctx, HTTPD))], ctx.capture)


def _text3(spec: LabSpec, r: Roles, pods: Mapping[str, Pod]) -> StepText:
    w1 = r.node("dst_worker").name
    dst = _ip_of(pods, HTTPD, r.node("dst_worker"))
    return StepText(
        3, "pod to pod on one node: one hop", f"two pods on {w1} talk through {w1}'s bridge {BRIDGE_IF}; "
        "the packet never leaves the node and no router is crossed",
        *_busybox_traces_httpd(w1, w1, dst), f"1 hop: {dst}, the target itself")


def _text4(spec: LabSpec, r: Roles, pods: Mapping[str, Pod]) -> StepText:
    n1, n2 = r.node("dst_worker"), r.node("src_worker")
    w1, w2 = n1.name, n2.name
    dst = _ip_of(pods, HTTPD, n1)
    entry = next_hop_into(spec, n1)  # eth1's address on host-gw, the tunnel device's on vxlan and ipip
    via = f"{entry.address} ({w1}'s {entry.interface})"
    tunnel = flannel_tunnel(spec)
    how = (f"routes the packet into {tunnel}, which wraps it and sends it out of {HOST_ONLY_IF} to {w1}; {w1} "
           f"unwraps it on its {tunnel}" if tunnel else f"routes the packet out of {HOST_ONLY_IF} to {w1}")
    return StepText(
        4, "pod to pod across nodes: three hops", f"a pod on {w2} reaches a pod on {w1}: {w2} {how} "
        f"({spec.dataplane}) and hands it to its {BRIDGE_IF}",
        *_busybox_traces_httpd(w2, w1, dst),
        f"3 hops in this order: {n2.pod_gateway} ({w2}'s {BRIDGE_IF}), {via}, {dst} (the pod)")


TUTORIAL = Walkthrough(
    "tutorial", "the tutorial's four practical examples: a pod runs, node to node, pod to pod on one node and "
    "across nodes",
    (Step("a pod runs", _text1, _run1, needs=_workers(1), starts=(NGINX,)),
     Step("node to node: one hop", _text2, _run2, needs=_two_nodes),
     Step("pod to pod on one node: one hop", _text3, _run_busybox_traces_httpd, needs=_workers(1),
          pods=(PodPart(HTTPD, "dst_worker", "httpd"), PodPart(BUSYBOX, "dst_worker", "busybox", SLEEP))),
     Step("pod to pod across nodes: three hops", _text4, _run_busybox_traces_httpd, needs=_workers(2),
          pods=(PodPart(HTTPD, "dst_worker", "httpd"), PodPart(BUSYBOX, "src_worker", "busybox", SLEEP)))),
    # its texts and checks are flannel's: cni0 as the pods' gateway, the bridge, flannel's routes
    plugins=("flannel",))
