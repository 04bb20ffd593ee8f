"""The Calico article as a walkthrough: a Calico cluster whose nodes share one subnet. 1 a pod on Calico
(its eth0 a /32, its gateway 169.254.1.1 answered by proxy ARP on the node's cali veth, the node's /32
route back), 2 two pods of one node (routed through the node: no bridge), 3 pods across nodes (the route
BIRD learned over BGP, or Felix wrote on vxlan.calico, and a capture on eth1), 4 two containers of one pod
on localhost (the pods walkthrough's step, reused), 5 the articles' curl across nodes captured on eth1 into a
pcap the step offers (curl_capture.py's step): the pods' addresses unchanged, or inside VXLAN's UDP 4789.

Every hop, route and encapsulation a step expects comes from spec/expect.py and spec/expect_calico.py; the
facts behind them, with their sources in Calico's code, are in spec/calico.py. The pods have names of
their own (httpd-1 serves on node-1, busybox-1 and busybox-2 reach it from node-1 and node-2), so a
student's tutorial pods are never in the way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from ipaddress import IPv4Address, IPv4Network

from k8slab.labs.base import Pod
from k8slab.spec import calico, expect_calico
from k8slab.spec.expect import ExpectedHop, hops_from_pod
from k8slab.spec.facts import HOST_ONLY_IF, NAT_IF, POD_IF
from k8slab.spec.model import LabSpec, Node
from k8slab.spec.route import Route
from k8slab.teach.walkthroughs.curl_capture import curl_step
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
from k8slab.teach.walkthroughs.pods import PODS
from k8slab.teach.walkthroughs.tutorial import SLEEP, pinned, pod_endpoint, traced

SERVER, NEAR, FAR = "httpd-1", "busybox-1", "busybox-2"
SERVER_PART = PodPart(SERVER, "dst_worker", "httpd")
NEAR_PART = PodPart(NEAR, "dst_worker", "busybox", SLEEP)
FAR_PART = PodPart(FAR, "src_worker", "busybox", SLEEP)
GATEWAY, MAC = calico.POD_GATEWAY, calico.HOST_VETH_MAC


def _address(spec: LabSpec, pods: Mapping[str, Pod], name: str, node: Node) -> tuple[IPv4Address, str]:
    """The pod's address and how to show it; before it runs, the address a fresh block hands out first
    (to compute the hops) shown as a placeholder."""
    if name in pods:
        return pods[name].ip, str(pods[name].ip)
    assert spec.calico is not None
    first = node.pod_subnet.network_address + calico.first_pod_ordinal(spec.calico)
    return first, f"<{name}'s address in {node.name}'s block {node.pod_subnet}>"


def describe_hop(hop: ExpectedHop, shown: str) -> str:
    if hop.node is None:
        return f"{shown} (the pod)"
    if hop.interface == NAT_IF:  # expect_calico.first_hop: the cali veth has no address to answer from
        return f"{hop.address} ({hop.node}'s {NAT_IF}, its first address: the cali veth has none)"
    return f"{hop.address} ({hop.node}'s {hop.interface})"


def hops_said(spec: LabSpec, src: Node, dst: Node, target: str, pods: Mapping[str, Pod]) -> str:
    """The hops a pod on src must see tracing target on dst, as spec/expect.py computes them."""
    address, shown = _address(spec, pods, target, dst)
    hops = hops_from_pod(spec, src, address)
    said = ", ".join(describe_hop(h, shown if h.address == address else str(h.address)) for h in hops)
    return f"{len(hops)} hop{'s' if len(hops) > 1 else ''} in this order: {said}"


def _pod_route(spec: LabSpec, name: str, address: IPv4Address) -> Route:
    return Route(IPv4Network(f"{address}/32"), calico.veth_name(name), scope="link")


def _route_check(ctx: StepContext, pod: Pod) -> tuple[str, str, Check]:
    """The node's /32 route to its pod on the pod's cali veth, as Calico's CNI plugin adds it."""
    want = _pod_route(ctx.spec, pod.name, pod.ip)
    r = ctx.lab.node_run(pod.node, ["ip", "route", "show", str(pod.ip)])
    lines = [line.split() for line in r.stdout.splitlines()]
    ok = any(w[:3] == [str(pod.ip), "dev", want.dev] and "scope" in w and w[w.index("scope") + 1] == "link"
             for w in lines if "scope" in w[:-1])
    return (f"ip route show {pod.ip}   # on {pod.node}", (r.stdout or r.stderr).rstrip(),
            Check(ok, f"{pod.node} routes {pod.ip} (pod {pod.name}) as Calico's CNI plugin does: "
                      f"{pod.ip} dev {want.dev} scope link"))


# ---------------------------------------------------------------- step 1: a pod on Calico

def _text1(spec: LabSpec, r: Roles, pods: Mapping[str, Pod]) -> StepText:
    node = r.node("dst_worker")
    w1 = node.name
    _, ip = _address(spec, pods, NEAR, node)
    veth = calico.veth_name(NEAR)
    proxy_arp = f"/proc/sys/net/ipv4/conf/{veth}/proxy_arp"
    in_pod = (f"ip -4 addr show {POD_IF}", "ip route", f"ping -c 1 -W 1 {node.ip}", f"ip neigh show {GATEWAY}")
    on_node = (f"ip route show {ip}", f"ip addr show dev {veth}", f"cat {proxy_arp}")
    return StepText(
        1, "a pod on Calico: a /32 and a gateway no one has", f"Calico's CNI plugin gives the pod's {POD_IF} its "
        f"address as a /32 and a default route via {GATEWAY}, an address no interface holds: the node's end of "
        f"the pod's veth ({veth}) has no address and answers the pod's ARP for {GATEWAY} by proxy, with "
        f"{MAC}; {w1} reaches the pod by a /32 route on that veth",
        (pinned(NEAR, "busybox", w1, SLEEP), *(f"kubectl exec {NEAR} -- {c}" for c in in_pod),
         *(f"{c}   # on {w1}" for c in on_node)),
        (f"k8slab pod run {NEAR} --node {w1}", *(f"k8slab pod exec {NEAR} -- {c}" for c in in_pod),
         *(f"k8slab node exec {w1} -- {c}" for c in on_node)),
        f"{POD_IF} holds {ip}/32 and the default route is via {GATEWAY}, which the pod finds at {MAC}; {w1} "
        f"routes {ip} dev {veth} scope link, and {veth} has no IPv4 address and proxy_arp 1")


def _run1(ctx: StepContext, text: StepText) -> StepResult:
    lab, pod = ctx.lab, ctx.pods[NEAR]
    node = ctx.spec.node(pod.node)
    veth = calico.veth_name(pod.name)
    addr = lab.pod_run(pod.name, ["ip", "-4", "addr", "show", POD_IF])
    routes = lab.pod_run(pod.name, ["ip", "route"])
    ping = lab.pod_run(pod.name, ["ping", "-c", "1", "-W", "1", str(node.ip)])  # resolves the gateway first
    neigh = lab.pod_run(pod.name, ["ip", "neigh", "show", str(GATEWAY)])
    shown_route, route_out, route_ok = _route_check(ctx, pod)
    link = lab.node_run(node.name, ["ip", "addr", "show", "dev", veth])
    proxy = lab.node_run(node.name, ["cat", f"/proc/sys/net/ipv4/conf/{veth}/proxy_arp"])
    outs = [(f"ip -4 addr show {POD_IF}   # in {pod.name}", addr), (f"ip route   # in {pod.name}", routes),
            (f"ping -c 1 -W 1 {node.ip}   # in {pod.name}", ping),
            (f"ip neigh show {GATEWAY}   # in {pod.name}", neigh),
            (f"ip addr show dev {veth}   # on {node.name}", link),
            (f"cat /proc/sys/net/ipv4/conf/{veth}/proxy_arp   # on {node.name}", proxy)]
    output = [f"pod {pod.name} on {pod.node}: {pod.ip}"]
    for shown, r in outs[:4]:
        output += [f"$ {shown}", (r.stdout or r.stderr).rstrip()]
    output += [f"$ {shown_route}", route_out]
    for shown, r in outs[4:]:
        output += [f"$ {shown}", (r.stdout or r.stderr).rstrip()]
    default = any(line.split()[:3] == ["default", "via", str(GATEWAY)] for line in routes.stdout.splitlines())
    answered = any(str(GATEWAY) in line.split() and MAC in line.lower().split() for line in neigh.stdout.splitlines())
    checks = [
        Check(pod.ip in node.pod_subnet, f"its address {pod.ip} is {'in' if pod.ip in node.pod_subnet else 'NOT in'} "
                                         f"{node.name}'s block {node.pod_subnet}, handed out by Calico's IPAM"),
        Check(f"inet {pod.ip}/32 " in addr.stdout, f"the pod's {POD_IF} holds {pod.ip}/32: no other address is on "
                                                   "its link"),
        Check(default, f"the pod's default route is via {GATEWAY}"),
        Check(ping.ok and answered, f"the pod's ARP table has {GATEWAY} at {MAC}, {veth}'s MAC: {node.name} "
                                    f"answered by proxy (the ping to {node.ip} went through it)"),
        route_ok,
        Check(link.ok and MAC in link.stdout.lower() and "inet " not in link.stdout,
              f"{veth}, the pod's veth on {node.name}, has MAC {MAC} and no IPv4 address"),
        Check(proxy.stdout.strip() == "1", f"{veth} answers ARP by proxy (proxy_arp {proxy.stdout.strip() or '?'})"),
    ]
    why = [(f"Calico routes, it does not bridge: with a /32 on {POD_IF} every destination is off-link, so the pod "
            f"sends everything to its gateway {GATEWAY}. No interface holds {GATEWAY}; the pod's ARP request for it "
            f"reaches {veth}, which has proxy_arp on and a route to {GATEWAY} through another device (the node's "
            f"default route), so it answers with its own MAC {MAC}."),
           (f"every cali veth has that same MAC: a MAC need only be unique on its link, and each veth is a link of "
            f"its own. The way back is {node.name}'s /32 route on {veth}, which Calico's CNI plugin adds with the "
            "veth and which goes with it when the pod is deleted.")]
    return StepResult(text, list(text.emulated), "\n".join(output), checks, why)


# ---------------------------------------------------------------- step 2: two pods of one node

def _text2(spec: LabSpec, r: Roles, pods: Mapping[str, Pod]) -> StepText:
    node = r.node("dst_worker")
    w1 = node.name
    _, dst = _address(spec, pods, SERVER, node)
    return StepText(
        2, "pods on one node: routed through the node", f"{NEAR} and {SERVER} both run on {w1}, yet no bridge "
        f"joins them: {NEAR} sends the packet to {GATEWAY} (that is {w1}, by proxy ARP) and {w1} routes it by its "
        f"/32 route into {SERVER}'s cali veth. {w1} is a router on the path, so it is a hop of the trace",
        (pinned(SERVER, "httpd", w1), f"kubectl exec {NEAR} -- traceroute -n {dst}",
         f"ip route show {dst}   # on {w1}"),
        (f"k8slab pod run {SERVER} --node {w1}", f"k8slab pod exec {NEAR} -- traceroute -n {dst}",
         f"k8slab node exec {w1} -- ip route show {dst}"),
        hops_said(spec, node, node, SERVER, pods))


def _run2(ctx: StepContext, text: StepText) -> StepResult:
    result = traced(ctx, text, [(pod_endpoint(ctx, NEAR), pod_endpoint(ctx, SERVER))], ctx.capture)
    shown, out, check = _route_check(ctx, ctx.pods[SERVER])
    result.ran.append(shown)
    result.output += f"\n$ {shown}\n{out}"
    result.checks.append(check)
    return result


# ---------------------------------------------------------------- step 3: pods across nodes

def _how(spec: LabSpec, src: Node, dst: Node) -> str:
    """How src sends dst's block: who wrote the route, and what it does to the packet."""
    conf = expect_calico.config(spec)
    route = expect_calico.route_to(spec, src, dst)
    who = (f"a route BIRD learned from {dst.name} over BGP, full-mesh iBGP in AS {calico.BGP_AS}: `ip route` says "
           "proto bird" if conf.uses_bgp else f"a route Felix wrote: {conf.encapsulation} needs no BGP")
    if route.dev == HOST_ONLY_IF:
        same = (f"; both nodes are in {spec.host_only}, so {conf.encapsulation} does not encapsulate"
                if conf.cross_subnet else "")
        return (f"{src.name} routes {dst.name}'s block {dst.pod_subnet} via {dst.ip} on {HOST_ONLY_IF} ({who}): the "
                f"packet crosses {HOST_ONLY_IF} with the pods' addresses unchanged{same}")
    return (f"{src.name} routes {dst.name}'s block {dst.pod_subnet} into {route.dev} ({who}), which wraps the packet: "
            f"{expect_calico.encapsulation_text(spec, src, dst)}")


def _bird_socket(spec: LabSpec, node: str) -> str:
    from k8slab.labs.netns.names import StatePaths

    return str(StatePaths(spec.name).bird_dir / f"{node}.ctl")


def _text3(spec: LabSpec, r: Roles, pods: Mapping[str, Pod]) -> StepText:
    n1, n2 = r.node("dst_worker"), r.node("src_worker")
    _, dst = _address(spec, pods, SERVER, n1)
    bgp = expect_calico.config(spec).uses_bgp
    return StepText(
        3, "pods across nodes: BGP or VXLAN routes", f"{FAR} on {n2.name} reaches {SERVER} on {n1.name}: "
        + _how(spec, n2, n1),
        (pinned(FAR, "busybox", n2.name, SLEEP), f"kubectl exec {FAR} -- traceroute -n {dst}",
         f"ip route   # on {n2.name}",
         *([f"sudo calicoctl node status   # on {n2.name}: its BGP sessions"] if bgp else [])),
        (f"k8slab pod run {FAR} --node {n2.name}", f"k8slab pod exec {FAR} -- traceroute -n {dst}",
         f"k8slab node exec {n2.name} -- ip route",
         *([f"birdc -s {_bird_socket(spec, n2.name)} show protocols   # {n2.name}'s BIRD"] if bgp else [])),
        f"{hops_said(spec, n2, n1, SERVER, pods)}; {n2.name} routes {expect_calico.route_to(spec, n2, n1)}")


def _run3(ctx: StepContext, text: StepText) -> StepResult:
    from k8slab.verify.facts import parse_bgp, parse_ip_route

    lab, spec = ctx.lab, ctx.spec
    far, server = ctx.pods[FAR], ctx.pods[SERVER]
    src, dst = spec.node(far.node), spec.node(server.node)
    result = traced(ctx, text, [(pod_endpoint(ctx, FAR), pod_endpoint(ctx, SERVER))], ctx.capture)
    want = expect_calico.route_to(spec, src, dst)
    shown = lab.node_run(src.name, ["ip", "route"])
    found = [r for r in parse_ip_route(lab.node_run(src.name, ["ip", "-j", "route", "show"]).stdout)
             if r.dst == want.dst]
    ok = any((r.dev, r.via, r.proto) == (want.dev, want.via, want.proto) for r in found)
    result.ran.append(f"ip route   # on {src.name}")
    result.output += f"\n$ ip route   # on {src.name}\n{(shown.stdout or shown.stderr).rstrip()}"
    result.checks.append(Check(ok, f"{src.name} routes {dst.name}'s block: {want}" + (
        "" if ok else f" (found: {'; '.join(map(str, found)) or 'no route'})")))
    if expect_calico.config(spec).uses_bgp:
        said = lab.bgp_status(src.name)
        if said is None:
            result.explanation.append(f"this {lab.backend} lab cannot ask BIRD here; the proto bird routes above are "
                                      "what it learned")
        else:
            bgp = parse_bgp(*said)
            peers = [n for n in spec.nodes if n.name != src.name]
            states = {p.name: bgp.sessions.get(calico.mesh_name(p.ip), "missing") for p in peers}
            result.ran.append(f"birdc show protocols   # {src.name}'s BIRD")
            result.output += f"\n$ birdc show protocols   # {src.name}'s BIRD\n{(said[1] or '').rstrip()}"
            result.checks.append(Check(bgp.running and all("Established" in s for s in states.values()),
                                       f"{src.name}'s BIRD has a BGP session Established with every other node: "
                                       + ", ".join(f"{name} {state}" for name, state in states.items())))
    return result


# ---------------------------------------------------------------- step 4: the pods walkthrough's localhost step

def _renumbered(step: Step, number: int) -> Step:
    """Another walkthrough's step as this one's step number (its text says which step it is)."""
    return dataclasses.replace(step, text=lambda spec, r, pods: dataclasses.replace(step.text(spec, r, pods),
                                                                                    number=number))


CALICO = Walkthrough(
    "calico", "the Calico article: a pod's /32 and its proxy-ARP gateway, pods on one node and across nodes "
    "(BGP or VXLAN routes, a capture on eth1), two containers of one pod on localhost, curl across nodes saved as a "
    "pcap",
    (Step("a pod on Calico: a /32 and a gateway no one has", _text1, _run1, needs=needs_workers(1), pods=(NEAR_PART,)),
     Step("pods on one node: routed through the node", _text2, _run2, needs=needs_workers(1),
          pods=(NEAR_PART, SERVER_PART)),
     Step("pods across nodes: BGP or VXLAN routes", _text3, _run3, needs=needs_workers(2),
          pods=(SERVER_PART, FAR_PART)),
     _renumbered(PODS.step(1), 4),
     curl_step("calico", 5, "curl across nodes, captured on eth1", FAR_PART, SERVER_PART, needs=needs_workers(2))),
    plugins=("calico",))
