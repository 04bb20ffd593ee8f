"""The trace explanation on recorded outputs: traceroute, `ip route get` per node, tcpdump on eth1.

The recorded texts are what the tutorial's lab (lab.yaml) prints; every expected value below is
computed from the spec, so a wrong address in the logic cannot hide behind a copied one.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest
import yaml

from k8slab.errors import LabStateError
from k8slab.spec.load import load_spec, parse_spec
from k8slab.teach.explain import (
    Capture,
    Endpoint,
    capture_verdict,
    explain_trace,
    parse_capture,
    parse_route_get,
    resolve_endpoint,
    route_chain,
)
from k8slab.verify.traceroute import parse_traceroute

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def spec():
    return load_spec(ROOT / "lab.yaml")


@pytest.fixture
def vxlan_spec():
    data = yaml.safe_load((ROOT / "lab.yaml").read_text())
    data["cni"]["backend"] = "vxlan"
    return parse_spec(yaml.safe_dump(data))


# Recorded on the tutorial's lab: pod w-busybox-2 (node-2) -> pod w-httpd (node-1).
CROSS_TRACE = """\
traceroute to 10.244.1.3 (10.244.1.3), 30 hops max, 60 byte packets
 1  10.244.2.1  0.061 ms  0.011 ms  0.009 ms
 2  192.168.56.11  0.040 ms  0.015 ms  0.014 ms
 3  10.244.1.3  0.045 ms  0.019 ms  0.017 ms
"""
CROSS_POD_ROUTE = "10.244.1.3 via 10.244.2.1 dev eth0 src 10.244.2.3 uid 0 \n    cache \n"
CROSS_NODE_ROUTES = {
    "controlplane": "10.244.1.3 via 192.168.56.11 dev eth1 src 192.168.56.10 uid 0 \n    cache \n",
    "node-1": "10.244.1.3 dev cni0 src 10.244.1.1 uid 0 \n    cache \n",
    "node-2": "10.244.1.3 via 192.168.56.11 dev eth1 src 192.168.56.12 uid 0 \n    cache \n",
}
PLAIN_CAPTURE = """\
10:32:36.534838 IP 10.244.2.3 > 10.244.1.3: ICMP echo request, id 17101, seq 1, length 64
10:32:36.535046 IP 10.244.1.3 > 10.244.2.3: ICMP echo reply, id 17101, seq 1, length 64
"""
VXLAN_CAPTURE = """\
10:32:29.036193 IP 192.168.56.12.35681 > 192.168.56.11.8472: OTV, flags [I] (0x08), overlay 0, instance 1
IP 10.244.2.3 > 10.244.1.3: ICMP echo request, id 16347, seq 1, length 64
10:32:29.036435 IP 192.168.56.11.35681 > 192.168.56.12.8472: OTV, flags [I] (0x08), overlay 0, instance 1
IP 10.244.1.3 > 10.244.2.3: ICMP echo reply, id 16347, seq 1, length 64
"""

SAME_TRACE = """\
traceroute to 10.244.1.3 (10.244.1.3), 30 hops max, 60 byte packets
 1  10.244.1.3  0.050 ms  0.010 ms  0.008 ms
"""
SAME_POD_ROUTE = "10.244.1.3 dev eth0 src 10.244.1.4 uid 0 \n    cache \n"

NODE_TRACE = """\
traceroute to 192.168.56.11 (192.168.56.11), 30 hops max, 60 byte packets
 1  192.168.56.11  0.041 ms  0.012 ms  0.010 ms
"""
NODE_ROUTES = {
    "controlplane": "192.168.56.11 dev eth1 src 192.168.56.10 uid 0 \n    cache \n",
    "node-1": "local 192.168.56.11 dev lo src 192.168.56.11 uid 0 \n    cache <local> \n",
    "node-2": "192.168.56.11 dev eth1 src 192.168.56.12 uid 0 \n    cache \n",
}

# Forwarding off on node-1: its eth1 never answers and the pod is never reached.
STOPPED_TRACE = """\
traceroute to 10.244.1.3 (10.244.1.3), 4 hops max, 60 byte packets
 1  10.244.2.1  0.061 ms  0.011 ms  0.009 ms
 2  * * *
 3  * * *
 4  * * *
"""


def ep(spec, pods, name, source=False):
    return resolve_endpoint(spec, pods, name, source=source)


def test_route_get_shapes():
    r = parse_route_get(CROSS_NODE_ROUTES["node-2"])
    assert (str(r.via), r.dev, str(r.src), r.local) == ("192.168.56.11", "eth1", "192.168.56.12", False)
    assert r.text() == "10.244.1.3 via 192.168.56.11 dev eth1 src 192.168.56.12"
    local = parse_route_get(NODE_ROUTES["node-1"])
    assert local.local and local.dev == "lo" and local.via is None
    busybox = parse_route_get("10.244.1.3 via 10.244.2.1 dev eth0  src 10.244.2.3 \n")
    assert busybox.via == IPv4Address("10.244.2.1") and busybox.dev == "eth0"
    assert parse_route_get("RTNETLINK answers: Network is unreachable\n") is None
    assert parse_route_get("") is None


def test_resolve_pods_nodes_and_addresses(spec, pods):
    n1 = spec.workers[0]
    assert ep(spec, pods, "w-httpd") == Endpoint(pods[0].ip, n1.name, pod="w-httpd")
    assert ep(spec, pods, n1.name) == Endpoint(n1.ip, n1.name, is_node=True)
    assert ep(spec, pods, str(pods[2].ip)).pod == "w-busybox-2"
    assert ep(spec, pods, str(n1.pod_gateway)).is_node
    # A free pod address is a fine destination (nothing answers) but nothing can trace from it.
    free = str(n1.pod_subnet.network_address + 200)
    assert ep(spec, pods, free).node == n1.name
    with pytest.raises(LabStateError, match="to run the trace from"):
        ep(spec, pods, free, source=True)
    with pytest.raises(LabStateError, match="w-httpd.*controlplane"):
        ep(spec, pods, "nginx")
    with pytest.raises(LabStateError):
        ep(spec, pods, "8.8.8.8")


def test_cross_node_three_hops_explained(spec, pods):
    n1, n2 = spec.workers[0], spec.workers[1]
    src, dst = ep(spec, pods, "w-busybox-2", True), ep(spec, pods, "w-httpd")
    ex = explain_trace(spec, src, dst, parse_traceroute(CROSS_TRACE), src_route=CROSS_POD_ROUTE,
                       node_routes=CROSS_NODE_ROUTES, capture=Capture(n1.name, "eth1", PLAIN_CAPTURE), pods=pods)
    assert ex.ok and [h.observed for h in ex.hops] == [n2.pod_gateway, n1.ip, pods[0].ip]
    assert [s.where for s in ex.stops] == ["pod w-busybox-2", n2.name, n1.name]
    assert ex.stops[1].route.dev == "eth1" and ex.stops[1].route.via == n1.ip
    assert f"host-gw route for {n1.name}'s pod subnet {n1.pod_subnet}" in ex.stops[1].meaning
    assert "own pod subnet, on cni0" in ex.stops[2].meaning
    assert ex.stops[1].arrives.startswith("cni0") and ex.stops[2].arrives == f"eth1 (from {n2.name})"
    assert [h.who for h in ex.hops] == [f"{n2.name}'s cni0", f"{n1.name}'s eth1", f"pod w-httpd's eth0 (on {n1.name})"]
    text = "\n".join(ex.lines)
    assert f"why 3 hops: 2 router(s) forward the packet ({n2.name}, then {n1.name})" in text
    assert ex.encapsulation_ok is True
    assert "not encapsulated" in text and "as expected for flannel host-gw" in text


def test_same_node_one_hop_explained(spec, pods):
    src, dst = ep(spec, pods, "w-busybox", True), ep(spec, pods, "w-httpd")
    n1 = spec.workers[0]
    ex = explain_trace(spec, src, dst, parse_traceroute(SAME_TRACE), src_route=SAME_POD_ROUTE,
                       node_routes=CROSS_NODE_ROUTES, capture=Capture(n1.name, "eth1", ""), pods=pods)
    assert ex.ok and len(ex.hops) == 1 and ex.hops[0].observed == dst.address
    assert [s.where for s in ex.stops] == ["pod w-busybox"]
    assert "no router is involved" in ex.stops[0].meaning
    text = "\n".join(ex.lines)
    assert f"why 1 hop: both pods sit on {n1.name}'s cni0" in text
    assert ex.encapsulation_ok is True and "never reaches the wire" in text


def test_node_to_node_one_hop(spec):
    cp, n1 = spec.control_plane, spec.workers[0]
    src, dst = ep(spec, [], cp.name, True), ep(spec, [], n1.name)
    ex = explain_trace(spec, src, dst, parse_traceroute(NODE_TRACE), src_route=None, node_routes=NODE_ROUTES)
    assert ex.ok and [h.observed for h in ex.hops] == [n1.ip]
    assert [s.where for s in ex.stops] == [cp.name, n1.name]
    assert "no router in between" in ex.stops[0].meaning and "own address" in ex.stops[1].meaning
    assert "why 1 hop" in "\n".join(ex.lines)


def test_stopped_trace_is_not_ok_and_says_what_was_expected(spec, pods):
    n1 = spec.workers[0]
    src, dst = ep(spec, pods, "w-busybox-2", True), ep(spec, pods, "w-httpd")
    ex = explain_trace(spec, src, dst, parse_traceroute(STOPPED_TRACE), src_route=CROSS_POD_ROUTE,
                       node_routes=CROSS_NODE_ROUTES, pods=pods)
    assert not ex.ok
    assert [h.ok for h in ex.hops] == [True, False, False, False]
    assert ex.hops[1].observed is None and ex.hops[1].who == "no answer (*)"
    assert ex.hops[1].why.startswith(f"expected {n1.ip} ({n1.name}'s eth1)")
    assert ex.hops[3].why == "an extra hop the tutorial's lab does not have"
    assert "NOT as the tutorial says" in ex.summary


def test_missing_peer_route_stops_the_chain(spec, pods):
    src, dst = ep(spec, pods, "w-busybox-2", True), ep(spec, pods, "w-httpd")
    routes = dict(CROSS_NODE_ROUTES, **{"node-2": "RTNETLINK answers: Network is unreachable\n"})
    stops = route_chain(spec, src, dst, CROSS_POD_ROUTE, routes)
    assert stops[-1].where == spec.workers[1].name and stops[-1].route is None
    assert "Network is unreachable" in stops[-1].meaning


def test_wrong_next_hop_is_named(spec, pods):
    # node-2 sends node-1's pods to the control plane instead: the chain shows where it went.
    src, dst = ep(spec, pods, "w-busybox-2", True), ep(spec, pods, "w-httpd")
    cp, n1, n2 = spec.control_plane, spec.workers[0], spec.workers[1]
    routes = dict(CROSS_NODE_ROUTES, **{"node-2": "10.244.1.3 via 192.168.56.10 dev eth1 src 192.168.56.12\n"})
    stops = route_chain(spec, src, dst, CROSS_POD_ROUTE, routes)
    assert [s.where for s in stops] == ["pod w-busybox-2", n2.name, cp.name, n1.name]
    assert f"that is {cp.name} ({cp.name}'s eth1)" in stops[1].meaning


def test_capture_parsing_attaches_vxlan_payload():
    pkts = parse_capture(VXLAN_CAPTURE)
    assert len(pkts) == 2 and all(p.dport == 8472 and p.inner is not None for p in pkts)
    assert (str(pkts[0].inner.src), str(pkts[0].inner.dst)) == ("10.244.2.3", "10.244.1.3")
    plain = parse_capture(PLAIN_CAPTURE + "tcpdump: listening on eth1\n")
    assert len(plain) == 2 and plain[0].inner is None and plain[0].summary.startswith("ICMP echo request")


def test_vxlan_on_the_wire_is_wrong_for_host_gw_and_right_for_vxlan(spec, vxlan_spec, pods):
    n1 = spec.workers[0]
    for s, want in ((spec, False), (vxlan_spec, True)):
        src, dst = ep(s, pods, "w-busybox-2", True), ep(s, pods, "w-httpd")
        ok, lines = capture_verdict(s, src, dst, Capture(n1.name, "eth1", VXLAN_CAPTURE))
        assert ok is want
        assert any("UDP port 8472" in line for line in lines)
    src, dst = ep(vxlan_spec, pods, "w-busybox-2", True), ep(vxlan_spec, pods, "w-httpd")
    ok, _ = capture_verdict(vxlan_spec, src, dst, Capture(n1.name, "eth1", PLAIN_CAPTURE))
    assert ok is False


def test_no_capture_cannot_tell(spec, pods):
    src, dst = ep(spec, pods, "w-busybox-2", True), ep(spec, pods, "w-httpd")
    assert capture_verdict(spec, src, dst, Capture("node-1", "eth1", ""))[0] is None
    ok, lines = capture_verdict(spec, src, dst, Capture("node-1", "eth1", "", note="tcpdump is not installed"))
    assert ok is None and "tcpdump is not installed" in lines[0]


def test_vxlan_cross_node_chain(vxlan_spec, pods):
    n1, n2 = vxlan_spec.workers[0], vxlan_spec.workers[1]
    src, dst = ep(vxlan_spec, pods, "w-busybox-2", True), ep(vxlan_spec, pods, "w-httpd")
    trace = parse_traceroute(CROSS_TRACE.replace(" 192.168.56.11 ", " 10.244.1.0 "))
    routes = dict(CROSS_NODE_ROUTES, **{"node-2": "10.244.1.3 via 10.244.1.0 dev flannel.1 src 10.244.2.0 uid 0\n"})
    ex = explain_trace(vxlan_spec, src, dst, trace, src_route=CROSS_POD_ROUTE, node_routes=routes, pods=pods)
    assert ex.ok and ex.hops[1].observed == n1.pod_subnet.network_address
    assert ex.hops[1].who == f"{n1.name}'s flannel.1"
    assert "UDP 8472" in ex.stops[1].meaning and [s.where for s in ex.stops][1:] == [n2.name, n1.name]


def test_pod_traffic_leaving_by_the_nat_default_route_is_called_wrong(spec, pods):
    # node-2 lost its route to node-1's pods: `ip route get` answers with the default route on eth0.
    src, dst = ep(spec, pods, "w-busybox-2", True), ep(spec, pods, "w-httpd")
    routes = dict(CROSS_NODE_ROUTES, **{"node-2": "10.244.1.3 via 10.0.2.2 dev eth0 src 10.0.2.15 uid 0\n"})
    stops = route_chain(spec, src, dst, CROSS_POD_ROUTE, routes)
    n1, n2 = spec.workers[0], spec.workers[1]
    assert [s.where for s in stops] == ["pod w-busybox-2", n2.name]
    assert stops[-1].meaning.startswith("WRONG:")
    assert f"route to {n1.name}'s pod subnet {n1.pod_subnet} is missing" in stops[-1].meaning


def test_a_failed_trace_gets_its_cause_not_the_healthy_why_and_counts_silent_hops():
    """Issue 13: `k8slab trace` printed "why 3 hops" and "3 hop(s), expected 3" for a trace whose later hops
    were `*`; a failed trace carries verify/diagnose.py's cause instead."""
    from k8slab.spec.load import load_spec
    from k8slab.teach.explain import Endpoint, explain_trace
    from k8slab.verify.traceroute import parse_traceroute

    spec = load_spec(Path(__file__).resolve().parents[2] / "lab.yaml")
    src_node, dst_node = spec.nodes[2], spec.nodes[1]
    src = Endpoint(src_node.pod_subnet.network_address + 2, src_node.name, pod="busybox")
    dst = Endpoint(dst_node.pod_subnet.network_address + 2, dst_node.name, pod="httpd")
    text = (f"traceroute to {dst.address} ({dst.address}), 3 hops max, 46 byte packets\n"
            f" 1  {src_node.pod_gateway}  0.1 ms\n 2  *\n 3  *\n")
    ex = explain_trace(spec, src, dst, parse_traceroute(text), src_route="", node_routes={},
                       cause="IP forwarding is off on node-1")
    assert not ex.ok and "likely cause: IP forwarding is off on node-1" in ex.lines
    assert not any(line.startswith("why ") for line in ex.lines)
    assert ex.summary.endswith("1 of 3 hop(s) answered, 2 silent (*): NOT as the tutorial says")
    node = Endpoint(dst_node.ip, dst_node.name, is_node=True)
    assert not explain_trace(spec, src, node, parse_traceroute(text), src_route="", node_routes={}).covered
