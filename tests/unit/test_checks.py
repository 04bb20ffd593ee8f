"""The check functions on observed facts: a healthy lab passes every check, and each classic fault
fails the right check with the fault table's cause. Expected values come from the spec."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest
from factsbuilder import healthy, link_down, pod_ip, with_route, without_route

from k8slab.labs.base import Pod, Result
from k8slab.render.junit import junit_xml
from k8slab.spec.expect import hops_from_pod, node_interfaces, node_routes
from k8slab.spec.facts import BRIDGE_IF, HOST_ONLY_IF, NAT_ADDRESS, NAT_GATEWAY, NAT_IF
from k8slab.spec.load import load_spec, parse_spec
from k8slab.spec.route import Route
from k8slab.verify import checks, diagnose, facts, names, tracing
from k8slab.verify.facts import LinkFact, parse_inet, parse_ip_addr, parse_ip_route

ROOT = Path(__file__).resolve().parents[2]

FIVE_NODES = """
name: five
box: {name: debian/bookworm64, version: "12.20240905.1"}
network: {host_only: 192.168.57.0/24}
kubernetes: {version: "1.31", pod_cidr: 10.100.0.0/16, service_cidr: 10.32.0.0/16}
cni: {plugin: flannel, backend: host-gw}
nodes:
  - {name: cp, role: control-plane, ip: 192.168.57.20, cpus: 2, memory: 2048}
  - {name: w1, role: worker, ip: 192.168.57.21}
  - {name: w2, role: worker, ip: 192.168.57.22}
  - {name: w3, role: worker, ip: 192.168.57.23}
  - {name: w4, role: worker, ip: 192.168.57.24}
"""


@pytest.fixture(params=["default", "five"])
def spec(request):
    return load_spec(ROOT / "lab.yaml") if request.param == "default" else parse_spec(FIVE_NODES)


def pods_for(spec):
    return [Pod(f"t-{n.name}-{s}", n.name, pod_ip(n, i)) for n in spec.nodes for i, s in ((2, "a"), (3, "b"))]


def test_a_healthy_lab_passes_every_node_check(spec):
    results = checks.node_checks(spec, healthy(spec), pods_for(spec))
    assert results and all(r.ok and r.cause is None for r in results), [r.message for r in results if not r.ok]
    per_node = len(node_interfaces(spec, spec.nodes[0], True)) + 1 + len(node_routes(spec, spec.nodes[0])) + 2
    assert len(results) == per_node * len(spec.nodes)
    assert {r.group for r in results} == {"interfaces", "routes", "sysctl"}


def test_check_names_are_the_names_pytest_ids_use(spec):
    facts = healthy(spec)
    seen = {r.name for r in checks.node_checks(spec, facts, pods_for(spec))}
    for n in spec.nodes:
        assert names.forwarding_name(n) in seen
        assert names.veth_name(n) in seen
        for e in node_routes(spec, n):
            assert names.route_name(e) in seen


def test_peer_route_deleted_is_a_missing_route(spec):
    src, peer = spec.nodes[-1], spec.nodes[1]
    facts = healthy(spec)
    facts[src.name] = without_route(facts[src.name], peer.pod_subnet)
    failed = [r for r in checks.node_checks(spec, facts, pods_for(spec)) if not r.ok]
    assert [r.name for r in failed] == [f"{src.name} routes {peer.pod_subnet} via {peer.ip} on {HOST_ONLY_IF}"]
    assert failed[0].node == src.name
    assert failed[0].observed.startswith(f"no route to {peer.pod_subnet}")
    assert f"default via {NAT_GATEWAY} dev {NAT_IF}" in failed[0].observed
    assert "missing" in failed[0].cause and peer.name in failed[0].cause


def test_peer_route_on_eth0_blames_flannel_bound_to_eth0(spec):
    src, peer = spec.nodes[-1], spec.nodes[1]
    facts = healthy(spec)
    facts[src.name] = with_route(facts[src.name], Route(peer.pod_subnet, NAT_IF, NAT_ADDRESS))
    failed = [r for r in checks.node_checks(spec, facts, pods_for(spec)) if not r.ok]
    assert {r.name for r in failed} == {f"{src.name} routes {peer.pod_subnet} via {peer.ip} on {HOST_ONLY_IF}",
                                        f"{src.name} has no pod-network route on {NAT_IF}"}
    route = next(r for r in failed if "routes" in r.name)
    assert route.observed == f"{peer.pod_subnet} via {NAT_ADDRESS} dev {NAT_IF}"
    assert route.message == (f"{route.name}: expected {peer.pod_subnet} via {peer.ip} dev {HOST_ONLY_IF}, "
                             f"observed {peer.pod_subnet} via {NAT_ADDRESS} dev {NAT_IF} — {diagnose.FLANNEL_ON_NAT}")
    assert "set --iface=eth1" in route.cause


def test_peer_route_on_eth1_via_a_wrong_address_fails(spec):
    # Right device, wrong next hop (flannel's public-ip annotation on another address): only `via` differs.
    src, peer = spec.nodes[-1], spec.nodes[1]
    facts = healthy(spec)
    facts[src.name] = with_route(facts[src.name], Route(peer.pod_subnet, HOST_ONLY_IF, spec.host_ip))
    failed = [r for r in checks.node_checks(spec, facts, pods_for(spec)) if not r.ok]
    assert [r.name for r in failed] == [f"{src.name} routes {peer.pod_subnet} via {peer.ip} on {HOST_ONLY_IF}"], [
        r.message for r in failed]
    assert failed[0].observed == f"{peer.pod_subnet} via {spec.host_ip} dev {HOST_ONLY_IF}"
    assert "wrong next hop" in failed[0].cause and "public-ip" in failed[0].cause


def test_no_peer_routes_at_all_says_flannel_is_not_routing(spec):
    node = spec.nodes[1]
    facts = healthy(spec)
    for peer in spec.nodes:
        if peer is not node:
            facts[node.name] = without_route(facts[node.name], peer.pod_subnet)
    failed = [r for r in checks.node_checks(spec, facts, pods_for(spec)) if not r.ok]
    assert len(failed) == len(spec.nodes) - 1
    assert all("flannel is not running there" in r.cause for r in failed)


def test_forwarding_off(spec):
    node = spec.nodes[1]
    facts = healthy(spec)
    facts[node.name] = replace(facts[node.name], ip_forward=0)
    failed = [r for r in checks.node_checks(spec, facts, pods_for(spec)) if not r.ok]
    assert [(r.group, r.name, r.expected, r.observed) for r in failed] == [
        ("sysctl", names.forwarding_name(node), "1", "0")]
    assert failed[0].cause == diagnose.forwarding_off(node.name)


def test_cni0_down_fails_the_bridge_and_its_route(spec):
    node = spec.nodes[0]
    facts = healthy(spec)
    facts[node.name] = link_down(facts[node.name], BRIDGE_IF)
    failed = [r for r in checks.node_checks(spec, facts, pods_for(spec)) if not r.ok]
    assert {r.name for r in failed} == {f"{node.name} has {BRIDGE_IF} with {node.pod_gateway}/24",
                                        f"{node.name} routes {node.pod_subnet} on {BRIDGE_IF}"}
    assert all(r.cause == diagnose.cni0_down(node.name) for r in failed)
    assert next(r for r in failed if r.group == "interfaces").observed.startswith("DOWN")


@pytest.mark.parametrize("ifname", [HOST_ONLY_IF, BRIDGE_IF])
def test_interface_up_with_another_address_fails(spec, ifname):
    # Up, but not the spec's address: a VM made from another lab.yaml, or a CNI config from another podCIDR.
    node, other = spec.nodes[1], spec.nodes[2]
    if ifname == HOST_ONLY_IF:
        taken = {n.ip for n in spec.nodes} | {spec.host_ip}
        free = next(ip for ip in spec.host_only.hosts() if ip not in taken)
        wrong = IPv4Interface(f"{free}/{spec.host_only.prefixlen}")
    else:
        wrong = IPv4Interface(f"{other.pod_gateway}/{other.pod_subnet.prefixlen}")
    facts = healthy(spec)
    nf = facts[node.name]
    facts[node.name] = replace(nf, links=tuple(replace(lk, addresses=(wrong,)) if lk.name == ifname else lk
                                               for lk in nf.links))
    (exp,) = [e for e in node_interfaces(spec, node, True) if e.name == ifname]
    failed = [r for r in checks.node_checks(spec, facts, pods_for(spec)) if not r.ok]
    assert [r.name for r in failed] == [names.interface_name(exp)], [r.message for r in failed]
    assert failed[0].expected == f"up, {exp.address}" and failed[0].observed == f"up, {wrong}"
    assert failed[0].cause == diagnose.interface(exp, facts[node.name])
    assert "lab.yaml address" in failed[0].cause if ifname == HOST_ONLY_IF else "another gateway" in failed[0].cause


def test_box_with_enp_names_is_named(spec):
    node = spec.nodes[2]
    facts = healthy(spec)
    nf = facts[node.name]
    facts[node.name] = replace(nf, links=tuple(replace(lk, name={"eth0": "enp0s3", "eth1": "enp0s8"}.get(
        lk.name, lk.name)) for lk in nf.links))
    failed = [r for r in checks.node_checks(spec, facts, pods_for(spec)) if r.group == "interfaces" and not r.ok]
    assert {r.observed for r in failed} == {"missing"}
    assert len(failed) == 2 and all(r.cause == diagnose.BOX_NIC_NAMES for r in failed)


def test_missing_veth_and_cni0_without_pods(spec):
    node = spec.nodes[1]
    facts = healthy(spec)
    nf = facts[node.name]
    facts[node.name] = replace(nf, links=tuple(lk for lk in nf.links if lk.master is None or lk.name != "veth0000"))
    veth = checks.check_veths(node, facts[node.name], ["a", "b"])
    assert not veth.ok and veth.observed.startswith("1:") and "CNI ADD" in veth.cause
    # With no pod on the node, cni0 is not expected at all (the bridge comes with the first pod).
    names = [r.name for r in checks.node_checks(spec, facts, [])]
    assert not any(BRIDGE_IF in n for n in names)


def test_pod_address_outside_its_node_subnet(spec):
    node, other = spec.nodes[1], spec.nodes[2]
    pod = Pod("t-x", node.name, pod_ip(node))
    good = checks.check_pod_address(spec, pod, [IPv4Interface(f"{pod.ip}/24")])
    assert good.ok and good.name == f"pod on {node.name} gets an address in {node.pod_subnet}"
    moved = IPv4Interface(f"{pod_ip(other, 9)}/24")
    bad = checks.check_pod_address(spec, pod, [moved])
    assert not bad.ok and bad.observed == f"t-x: {moved}"
    assert f"outside {node.name}'s pod subnet {node.pod_subnet}" in bad.cause
    gateway = checks.check_pod_address(spec, pod, [IPv4Interface(f"{node.pod_gateway}/24")])
    assert not gateway.ok
    assert not checks.check_pod_address(spec, pod, []).ok


def _run(path):
    return tracing.TraceRun("traceroute", tuple(path), "")


def test_pod_traces_exact_hops_every_ordered_pair(spec):
    facts = healthy(spec)
    for src_node, dst_node in names.node_pairs(spec):
        src = Pod("s", src_node.name, pod_ip(src_node))
        dst = Pod("d", dst_node.name, pod_ip(dst_node, 3))
        if src_node == dst_node:
            right = [dst.ip]
        else:
            right = [src_node.pod_gateway, dst_node.ip, dst.ip]
        ok = checks.check_pod_trace(spec, src, dst, _run(right), facts)
        assert ok.ok, ok.message
        assert ok.name == names.pod_trace_name(spec, src_node, dst_node)
        for wrong in (right[:-1], [*right, dst.ip], [None] * len(right), right[::-1] if len(right) > 1 else [None]):
            assert not checks.check_pod_trace(spec, src, dst, _run(wrong), facts).ok


def test_pod_trace_names_read_like_the_tutorial():
    spec = load_spec(ROOT / "lab.yaml")
    one, two = spec.nodes[1], spec.nodes[2]
    assert names.pod_trace_name(spec, two, one) == (
        f"pod on {two.name} -> pod on {one.name}: 3 hops, {two.pod_gateway}, {one.ip}, the pod")
    assert names.pod_trace_name(spec, one, one) == f"pod on {one.name} -> another pod on {one.name}: one hop, the pod"
    assert names.node_trace_name(spec, spec.nodes[0], one) == f"{spec.nodes[0].name} -> {one.name} ({one.ip}): one hop"


def test_trace_stopping_after_first_hop_names_the_node_not_forwarding(spec):
    src_node, dst_node = spec.nodes[2], spec.nodes[1]
    facts = healthy(spec)
    facts[dst_node.name] = replace(facts[dst_node.name], ip_forward=0)
    src, dst = Pod("s", src_node.name, pod_ip(src_node)), Pod("d", dst_node.name, pod_ip(dst_node))
    res = checks.check_pod_trace(spec, src, dst, _run([src_node.pod_gateway, None, None, None, None]), facts)
    assert not res.ok and res.group == "pod traces" and res.node == src_node.name
    assert res.cause == diagnose.forwarding_off(dst_node.name)
    assert res.observed == f"s -> {dst.ip}: {src_node.pod_gateway}, *, *, *, *"


def test_trace_through_a_moved_pod_names_the_pod(spec):
    src_node, dst_node = spec.nodes[0], spec.nodes[1]
    src, dst = Pod("s", src_node.name, pod_ip(src_node)), Pod("d", dst_node.name, pod_ip(dst_node))
    moved = {dst.ip: (IPv4Interface("172.31.9.9/24"),), src.ip: (IPv4Interface(f"{src.ip}/24"),)}
    res = checks.check_pod_trace(spec, src, dst, _run([src_node.pod_gateway, dst_node.ip, None]), healthy(spec), moved)
    assert not res.ok
    assert f"the target pod on {dst_node.name} no longer has {dst.ip}" in res.cause
    assert "outside" in res.cause


def test_unparsable_trace_is_a_failure_with_the_tool_error(spec):
    run = tracing.TraceRun.from_result(Result(("traceroute",), 127, "", "traceroute: not found"), ["traceroute"])
    assert run.error and "not found" in run.error and run.path == ()
    a, b = spec.nodes[0], spec.nodes[1]
    res = checks.check_node_trace(spec, a, b, run, healthy(spec))
    assert not res.ok and "not found" in res.observed


def test_node_trace(spec):
    cp, w = spec.control_plane, spec.workers[0]
    assert checks.check_node_trace(spec, cp, w, _run([w.ip]), healthy(spec)).ok
    facts = healthy(spec)
    facts[w.name] = link_down(facts[w.name], HOST_ONLY_IF)
    res = checks.check_node_trace(spec, cp, w, _run([None, None, None]), facts)
    assert not res.ok and res.cause == diagnose.link_down(w.name, HOST_ONLY_IF)
    assert "dropped every route through" in res.cause and "vagrant reload" in res.cause
    routed = checks.check_node_trace(spec, cp, w, _run([spec.host_ip, w.ip]), healthy(spec))
    assert not routed.ok and "not on one eth1 segment" in routed.cause


def kube_nodes(spec, **overrides):
    items = []
    for n in spec.nodes:
        o = overrides.get(n.name, {})
        items.append({
            "metadata": {"name": n.name, "annotations": {checks.FLANNEL_PUBLIC_IP: o.get("public", str(n.ip))}},
            "spec": {"podCIDR": o.get("cidr", str(n.pod_subnet))},
            "status": {"addresses": [{"type": "InternalIP", "address": o.get("internal", str(n.ip))},
                                     {"type": "Hostname", "address": n.name}],
                       "conditions": [{"type": "Ready", "status": o.get("ready", "True"), "reason": "KubeletReady"}]},
        })
    return json.dumps({"items": items})


def kube(spec, netconf=None, logs_rc=0, **overrides):
    netconf = netconf or json.dumps({"Network": str(spec.pod_cidr), "Backend": {"Type": spec.cni_backend}})
    logs = {n.name: Result(("kubectl", "logs"), logs_rc, "", "" if logs_rc == 0 else
                           f"Error from server: Get \"https://{NAT_ADDRESS}:10250/containerLogs\": dial tcp")
            for n in spec.nodes}
    return facts.KubeFacts(kube_nodes(spec, **overrides), netconf, logs)


def test_kubernetes_facts_healthy(spec):
    results = checks.check_kubernetes(spec, kube(spec))
    assert all(r.ok for r in results), [r.message for r in results if not r.ok]
    assert [r.name for r in results] == [r for r in names.kubernetes_names(spec)]


def test_kubelet_on_the_nat_address(spec):
    n = spec.nodes[1]
    results = checks.check_kubernetes(spec, kube(spec, logs_rc=1, **{n.name: {"internal": str(NAT_ADDRESS)}}))
    failed = {r.name: r for r in results if not r.ok}
    assert failed[f"{n.name}'s InternalIP is {n.ip}"].cause == diagnose.kubelet_on_nat(n.name, n.ip)
    assert "--node-ip" in failed[f"kubectl logs works for a pod on {n.name}"].cause


def test_flannel_on_eth0_annotation_and_wrong_backend(spec):
    n = spec.nodes[2]
    vx = json.dumps({"Network": str(spec.pod_cidr), "Backend": {"Type": "vxlan"}})
    results = checks.check_kubernetes(spec, kube(spec, netconf=vx, **{n.name: {"public": str(NAT_ADDRESS)},
                                                                      spec.nodes[0].name: {"ready": "False"}}))
    failed = {r.name: r for r in results if not r.ok}
    assert set(failed) == {f"{n.name}'s flannel public-ip is {n.ip}", f"{spec.nodes[0].name} is Ready",
                           f"flannel's net-conf says host-gw on {spec.pod_cidr}"}
    assert failed[f"{n.name}'s flannel public-ip is {n.ip}"].cause == diagnose.FLANNEL_ON_NAT
    assert failed[f"flannel's net-conf says host-gw on {spec.pod_cidr}"].observed == f"vxlan on {spec.pod_cidr}"


def test_pod_cidrs_swapped_between_nodes(spec):
    # Nodes that joined in another order than lab.yaml lists them get each other's /24.
    a, b = spec.nodes[1], spec.nodes[2]
    results = checks.check_kubernetes(spec, kube(spec, **{a.name: {"cidr": str(b.pod_subnet)},
                                                          b.name: {"cidr": str(a.pod_subnet)}}))
    failed = {r.name: r for r in results if not r.ok}
    assert set(failed) == {f"{a.name}'s podCIDR is {a.pod_subnet}", f"{b.name}'s podCIDR is {b.pod_subnet}"}, [
        r.message for r in failed.values()]
    wrong = failed[f"{a.name}'s podCIDR is {a.pod_subnet}"]
    assert (wrong.expected, wrong.observed) == (str(a.pod_subnet), str(b.pod_subnet))
    assert wrong.cause == diagnose.pod_cidr(a, str(b.pod_subnet))


def test_node_missing_from_kubectl_fails_its_node_facts(spec):
    gone = spec.nodes[-1]
    listed = json.loads(kube(spec).nodes_json)
    listed["items"] = [i for i in listed["items"] if i["metadata"]["name"] != gone.name]
    results = checks.check_kubernetes(spec, replace(kube(spec), nodes_json=json.dumps(listed)))
    failed = {r.name: r for r in results if not r.ok}
    assert set(failed) == {f"{gone.name} is Ready", f"{gone.name}'s podCIDR is {gone.pod_subnet}",
                           f"{gone.name}'s InternalIP is {gone.ip}", f"{gone.name}'s flannel public-ip is {gone.ip}"}
    assert failed[f"{gone.name} is Ready"].observed == "node not registered"


def test_junit_xml_one_testcase_per_check_with_failure_text(spec):
    facts = healthy(spec)
    facts[spec.nodes[1].name] = replace(facts[spec.nodes[1].name], ip_forward=0)
    results = checks.node_checks(spec, facts, pods_for(spec))
    root = ET.fromstring(junit_xml(results, "k8slab verify t", 1.5))
    cases = root.findall("./testsuite/testcase")
    assert sorted(c.get("name") for c in cases) == sorted(r.name for r in results)
    failures = root.findall("./testsuite/testcase/failure")
    assert len(failures) == 1 == int(root.get("failures"))
    assert failures[0].get("message") == next(r.message for r in results if not r.ok)
    assert "likely cause: IP forwarding is off" in failures[0].text
    assert {s.get("name") for s in root.findall("testsuite")} == {"interfaces", "routes", "sysctl"}


# Parsing what the nodes print (shapes recorded from iproute2 6.1 and busybox 1.36)
IP_ADDR_JSON = json.dumps([
    {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP", "LOWER_UP"], "operstate": "UNKNOWN",
     "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}, {"family": "inet6", "local": "::1",
                                                                               "prefixlen": 128}]},
    {"ifindex": 4, "link_index": 5, "ifname": "cni0", "flags": ["BROADCAST", "MULTICAST"], "operstate": "DOWN",
     "linkinfo": {"info_kind": "bridge", "info_data": {}},
     "addr_info": [{"family": "inet", "local": "10.244.1.1", "prefixlen": 24}]},
    {"ifindex": 6, "ifname": "veth5f2c1a3b", "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
     "master": "cni0", "linkinfo": {"info_kind": "veth", "info_slave_kind": "bridge"}, "addr_info": []},
])
IP_ROUTE_JSON = json.dumps([
    {"dst": "default", "gateway": "10.0.2.2", "dev": "eth0", "flags": []},
    {"dst": "10.244.0.0/24", "gateway": "192.168.56.10", "dev": "eth1", "flags": []},
    {"dst": "10.244.2.0/24", "gateway": "10.244.2.0", "dev": "flannel.1", "flags": ["onlink"]},
    {"dst": "10.1.2.3", "dev": "eth1", "scope": "link", "flags": ["linkdown"]},
    {"type": "blackhole", "dst": "10.99.0.0/16", "protocol": "bird", "flags": []},
    {"type": "unreachable", "dst": "10.98.0.0/16", "flags": []},
])
BUSYBOX_IP_ADDR = """\
3: eth0@if7: <BROADCAST,MULTICAST,UP,LOWER_UP,M-DOWN> mtu 1500 qdisc noqueue
    link/ether 6a:33:0f:1e:7c:aa brd ff:ff:ff:ff:ff:ff
    inet 10.244.1.3/24 brd 10.244.1.255 scope global eth0
       valid_lft forever preferred_lft forever
"""


def test_parse_ip_addr():
    lo, cni0, veth = parse_ip_addr(IP_ADDR_JSON)
    assert lo == LinkFact("lo", True, (IPv4Interface("127.0.0.1/8"),))
    assert not cni0.up and cni0.kind == "bridge" and cni0.addresses == (IPv4Interface("10.244.1.1/24"),)
    assert veth.master == "cni0" and veth.kind == "veth" and veth.addresses == ()


def test_parse_ip_route():
    default, hostgw, vxlan, host, hole = parse_ip_route(IP_ROUTE_JSON)  # unreachable routes are left out
    assert default.dst.prefixlen == 0 and default.via == IPv4Address("10.0.2.2") and str(default) == (
        "default via 10.0.2.2 dev eth0")
    assert str(hostgw) == "10.244.0.0/24 via 192.168.56.10 dev eth1"
    assert vxlan.onlink and vxlan.dev == "flannel.1"
    assert str(host.dst) == "10.1.2.3/32"
    # Calico blackholes the node's own block; `ip route` names who made it
    assert hole.blackhole and hole.dev == "" and hole.proto == 12
    assert str(hole) == "blackhole 10.99.0.0/16 proto bird"


def test_route_lookup_is_longest_prefix():
    from k8slab.verify.facts import NodeFacts

    nf = NodeFacts("n", (), parse_ip_route(IP_ROUTE_JSON), 1)
    assert nf.route_for(IPv4Address("10.244.0.7")).dev == "eth1"
    assert nf.route_for(IPv4Address("10.244.7.7")).dev == "eth0"


def test_parse_busybox_and_iproute2_inet_lines():
    assert parse_inet(BUSYBOX_IP_ADDR) == (IPv4Interface("10.244.1.3/24"),)
    assert parse_inet("") == ()


def test_bad_json_is_a_clear_error():
    from k8slab.verify.facts import FactsError

    with pytest.raises(FactsError, match="did not print JSON"):
        parse_ip_addr("Object \"-j\" is unknown")


def _recorded(*outputs: str):
    """A traceroute runner that replays recorded outputs and keeps the argv of each call."""
    calls: list[list[str]] = []

    def run(argv: list[str]) -> Result:
        calls.append(argv)
        return Result(tuple(argv), 0, outputs[len(calls) - 1], "")
    return run, calls


def _trace_text(target: str, *hops: str) -> str:
    lines = [f"traceroute to {target} ({target}), {len(hops)} hops max, 60 byte packets"]
    lines += [f" {i}  {'*' if h == '*' else h + '  0.05 ms'}" for i, h in enumerate(hops, 1)]
    return "\n".join(lines) + "\n"


def test_trace_path_retries_a_mismatch_once_and_never_a_match():
    spec = load_spec(ROOT / "lab.yaml")
    src, dst = spec.nodes[2], spec.nodes[1]
    target = dst.pod_subnet.network_address + 3
    wanted = [h.address for h in hops_from_pod(spec, src, target)]
    good = _trace_text(str(target), *map(str, wanted))
    lost = _trace_text(str(target), str(wanted[0]), "*", "*")

    run, calls = _recorded(good)
    assert list(tracing.trace_path(run, target, wanted).path) == wanted and len(calls) == 1
    assert calls[0][calls[0].index("-m") + 1] == str(len(wanted))  # no TTL past the expected path

    run, calls = _recorded(lost, good)
    assert list(tracing.trace_path(run, target, wanted).path) == wanted and len(calls) == 2

    run, calls = _recorded(lost, lost)
    assert list(tracing.trace_path(run, target, wanted).path) == [wanted[0], None, None] and len(calls) == 2
