"""The lab diagram: DOT built from the spec and a traced path, and rendered by Graphviz into valid SVG."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

# Recorded outputs shared with the explanation tests (pytest puts this folder on sys.path).
from test_explain import (
    CROSS_NODE_ROUTES,
    CROSS_POD_ROUTE,
    CROSS_TRACE,
    NODE_ROUTES,
    NODE_TRACE,
    SAME_POD_ROUTE,
    SAME_TRACE,
)

from k8slab.errors import UsageError
from k8slab.render import diagram
from k8slab.render.diagram import SWITCH, build_dot, if_id, path_from_stops, pod_id, router_id
from k8slab.spec.facts import HOST_ONLY_IF, NAT_ADDRESS, NAT_GATEWAY, NAT_IF, NAT_NETWORK
from k8slab.spec.load import load_spec, parse_spec
from k8slab.teach.explain import explain_trace, resolve_endpoint
from k8slab.verify.traceroute import parse_traceroute

ROOT = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def spec():
    return load_spec(ROOT / "lab.yaml")


def traced(spec, pods, src, dst, trace, src_route, routes):
    s, d = resolve_endpoint(spec, pods, src, source=True), resolve_endpoint(spec, pods, dst)
    ex = explain_trace(spec, s, d, parse_traceroute(trace), src_route=src_route, node_routes=routes, pods=pods)
    return path_from_stops(spec, s, d, ex.stops, [h.observed for h in ex.hops])


def highlighted_edges(dot: str) -> list[tuple[str, str, str]]:
    """(tail, head, dir) of every red edge, as drawn."""
    found = []
    for m in re.finditer(r'^\s*"([^"]+)" -> "([^"]+)" \[(.*)\];$', dot, re.MULTILINE):
        if diagram.HIGHLIGHT in m[3]:
            found.append((m[1], m[2], re.search(r'dir="(\w+)"', m[3])[1]))
    return found


def travelled(edges):
    return [(a, b) if d == "forward" else (b, a) for a, b, d in edges]


def test_cross_node_path_follows_the_real_routes(spec, pods):
    n1, n2 = spec.workers[0].name, spec.workers[1].name
    path = traced(spec, pods, "w-busybox-2", "w-httpd", CROSS_TRACE, CROSS_POD_ROUTE, CROSS_NODE_ROUTES)
    assert path.elements == (pod_id("w-busybox-2"), if_id(n2, "cni0"), router_id(n2), if_id(n2, "eth1"), SWITCH,
                             if_id(n1, "eth1"), router_id(n1), if_id(n1, "cni0"), pod_id("w-httpd"))
    dot = build_dot(spec, pods, path)
    assert sorted(travelled(highlighted_edges(dot))) == sorted(zip(path.elements, path.elements[1:]))
    # Who answered each TTL carries its hop number, and the routing rows used are marked.
    assert re.search(rf'"{n2}/cni0" \[label=<<FONT[^>]*><B>hop 1</B>', dot)
    assert "hop 2</B>" in dot and "hop 3</B>" in dot
    row = f"{spec.workers[0].pod_subnet} via {spec.workers[0].ip} dev eth1"
    assert re.search(rf'COLOR="{diagram.HIGHLIGHT}"><B>{re.escape(row)}</B>', dot)


def test_same_node_path_never_leaves_the_bridge(spec, pods):
    n1 = spec.workers[0].name
    path = traced(spec, pods, "w-busybox", "w-httpd", SAME_TRACE, SAME_POD_ROUTE, CROSS_NODE_ROUTES)
    assert path.elements == (pod_id("w-busybox"), if_id(n1, "cni0"), pod_id("w-httpd"))
    assert len(highlighted_edges(build_dot(spec, pods, path))) == 2


def test_node_to_node_path(spec):
    cp, n1 = spec.control_plane.name, spec.workers[0].name
    path = traced(spec, [], cp, n1, NODE_TRACE, None, NODE_ROUTES)
    assert path.elements == (router_id(cp), if_id(cp, "eth1"), SWITCH, if_id(n1, "eth1"))


def test_every_node_interface_and_pod_is_drawn(spec, pods):
    dot = build_dot(spec, pods)
    for node in spec.nodes:
        for iface in ("lo", "eth0", "eth1", "cni0"):
            assert f'"{if_id(node.name, iface)}" [label=' in dot
        assert f"{node.ip}/{spec.host_only.prefixlen}" in dot
        assert f"{node.pod_gateway}/{node.pod_subnet.prefixlen}" in dot
        assert f'"{diagram.SWITCH}" -> "{if_id(node.name, "eth1")}"' in dot
        for peer in spec.nodes:
            if peer != node:
                assert f"{peer.pod_subnet} via {peer.ip} dev eth1" in dot
    for pod in pods:
        assert f'"{if_id(pod.node, "cni0")}" -> "{pod_id(pod.name)}"' in dot
    assert not highlighted_edges(dot)


def test_observed_routes_replace_the_expected_ones(spec):
    n1 = spec.workers[0]
    dot = build_dot(spec, [], routes={n1.name: ["default via 10.0.2.2 dev eth0", "10.244.9.0/24 dev eth0"]})
    assert "10.244.9.0/24 dev eth0" in dot
    assert "(made with the first pod)" in dot  # n1 shows no route on cni0: its bridge is not there yet
    assert f"{spec.workers[1].pod_subnet} via {spec.workers[1].ip} dev eth1" in dot  # the other nodes keep theirs


def test_vxlan_lab_draws_flannel_1_and_a_five_node_lab_draws_five(spec):
    data = yaml.safe_load((ROOT / "lab.yaml").read_text())
    data["cni"]["backend"] = "vxlan"
    data["nodes"] += [{"name": f"node-{i}", "role": "worker", "ip": f"192.168.56.{10 + i}"} for i in (3, 4)]
    big = parse_spec(yaml.safe_dump(data))
    dot = build_dot(big)
    assert dot.count("subgraph ") == 5
    for node in big.nodes:
        assert f'"{if_id(node.name, "flannel.1")}"' in dot
        assert f"{node.pod_subnet.network_address}/32" in dot


def test_rendered_svg_is_valid_and_shows_the_lab(spec, pods, tmp_path):
    path = traced(spec, pods, "w-busybox-2", "w-httpd", CROSS_TRACE, CROSS_POD_ROUTE, CROSS_NODE_ROUTES)
    out = diagram.write(build_dot(spec, pods, path), tmp_path / "lab.svg")
    root = ET.parse(out).getroot()
    assert root.tag == f"{SVG}svg"
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    for node in spec.nodes:
        assert node.name in texts and str(node.ip) in texts
    assert "pod w-httpd" in texts and "hop 3" in texts
    png = diagram.write(build_dot(spec, pods), tmp_path / "lab.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_output_format_is_refused_before_drawing(tmp_path):
    with pytest.raises(UsageError, match=r"\.svg or \.png"):
        diagram.write("digraph {}", tmp_path / "lab.pdf")
    assert not (tmp_path / "lab.pdf").exists()


def test_route_lines_keep_default_connected_and_pod_rows(spec):
    n1, n2 = spec.workers[0], spec.workers[1]
    recorded = (f"default via 10.0.2.2 dev eth0\n"
                f"10.0.2.0/24 dev eth0 proto kernel scope link src 10.0.2.15\n"
                f"{n1.pod_subnet} dev cni0 proto kernel scope link src {n1.pod_gateway}\n"
                f"{n2.pod_subnet} via {n2.ip} dev eth1\n"
                f"{spec.host_only} dev eth1 proto kernel scope link src {n1.ip}\n")
    assert diagram.route_lines(recorded) == [
        "default via 10.0.2.2 dev eth0", "10.0.2.0/24 dev eth0 src 10.0.2.15",
        f"{n1.pod_subnet} dev cni0 src {n1.pod_gateway}", f"{n2.pod_subnet} via {n2.ip} dev eth1",
        f"{spec.host_only} dev eth1 src {n1.ip}"]


def test_spec_routing_table_shows_default_and_connected_routes(spec):
    for node in spec.nodes:
        lines = diagram.spec_route_lines(spec, node)
        assert lines[0] == f"default via {NAT_GATEWAY} dev {NAT_IF}"
        assert f"{NAT_NETWORK} dev {NAT_IF} src {NAT_ADDRESS}" in lines
        assert f"{spec.host_only} dev {HOST_ONLY_IF} src {node.ip}" in lines
        assert f"{node.pod_subnet} dev cni0" in lines
        assert len(lines) == 3 + len(spec.nodes)  # default, two connected, own pod subnet, one per peer


def test_node_titles_sit_below_the_node_so_no_link_crosses_them(spec):
    dot = build_dot(spec)
    titles = re.findall(r'subgraph "cluster_[^"]+" \{\n    graph \[(.*)\];', dot)
    assert len(titles) == len(spec.nodes) and all('labelloc="b"' in t for t in titles)


def test_a_lost_packet_is_marked_with_the_route_it_lacked(spec, pods):
    # node-2 lost its route to node-1's pods: `ip route get` there answers with the default route on eth0.
    n1, n2 = spec.workers[0], spec.workers[1]
    routes = dict(CROSS_NODE_ROUTES, **{n2.name: "10.244.1.3 via 10.0.2.2 dev eth0 src 10.0.2.15 uid 0\n"})
    lost_trace = CROSS_TRACE.splitlines()[0] + "\n 1  10.244.2.1  0.061 ms\n 2  * * *\n 3  * * *\n"
    path = traced(spec, pods, "w-busybox-2", "w-httpd", lost_trace, CROSS_POD_ROUTE, routes)
    assert path.elements[-3:] == (router_id(n2.name), if_id(n2.name, "eth0"), f"{n2.name}/nat")
    assert path.lost_at == f"{n2.name}/nat" and path.lost_why.startswith("WRONG:")
    assert path.missing == (n2.name, f"{n1.pod_subnet} via {n1.ip} dev eth1")
    dot = build_dot(spec, pods, path)
    assert f"{n2.name} lacks: {n1.pod_subnet} via {n1.ip} dev eth1" in dot
    assert f'"{n2.name}/nat" -> "{diagram.LOST}"' in dot
    # the mark sits in node-2's box, and node-2's table strikes out the missing row and marks the one used
    box = dot[dot.index(f'subgraph "cluster_{n2.name}"'):]
    assert box.index(f'"{diagram.LOST}" [label=') < box.index("  }")
    assert f"<S>{n1.pod_subnet} via {n1.ip} dev eth1</S>" in dot
    assert re.search(rf'COLOR="{diagram.HIGHLIGHT}"><B>default via {NAT_GATEWAY} dev eth0</B>', dot)


def test_a_delivered_trace_has_no_lost_mark_and_every_diagram_a_legend(spec, pods):
    path = traced(spec, pods, "w-busybox-2", "w-httpd", CROSS_TRACE, CROSS_POD_ROUTE, CROSS_NODE_ROUTES)
    assert path.lost_at is None and path.missing is None
    dot = build_dot(spec, pods, path)
    assert f'"{diagram.LOST}"' not in dot
    legend = dot[dot.index(f'"{diagram.LEGEND}" [label='):]
    assert "lo: traffic a node sends to itself" in legend and "VirtualBox NAT (eth0)" in legend
    assert "the traced packet" in legend
    assert "the traced packet" not in build_dot(spec)  # no trace, no red in the legend
