"""The emulated lab's plan (what `up --backend netns` builds), checked without root against values
computed from the spec: the tutorial's lab.yaml and a 4-node lab with another pod CIDR."""

from __future__ import annotations

import dataclasses
import socket
import struct
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import pytest
import yaml

from k8slab.errors import LabSpecError
from k8slab.labs.netns import NetnsLab, names
from k8slab.labs.netns.kernel import RTM_NEWROUTE, RTNH_F_ONLINK, route_message
from k8slab.labs.netns.lab import InvalidPodNameError
from k8slab.labs.netns.plan import build_plan
from k8slab.spec.facts import (
    BRIDGE_IF,
    DEFAULT_ROUTE,
    HOST_ONLY_IF,
    NAT_ADDRESS,
    NAT_DNS,
    NAT_GATEWAY,
    NAT_IF,
    NAT_NETWORK,
    VXLAN_IF,
)
from k8slab.spec.load import load_spec, parse_spec
from k8slab.spec.model import LabSpec
from k8slab.spec.route import Route

ROOT = Path(__file__).resolve().parents[2]


def four_nodes(backend: str = "host-gw", name: str = "four") -> LabSpec:
    data = yaml.safe_load((ROOT / "lab.yaml").read_text())
    data["name"] = name
    data["network"]["host_only"] = "192.168.57.0/24"
    data["kubernetes"]["pod_cidr"] = "10.32.0.0/16"
    data["cni"]["backend"] = backend
    data["nodes"] = [
        {"name": "cp", "role": "control-plane", "ip": "192.168.57.20", "cpus": 2, "memory": 2048},
        *({"name": f"worker-{i}", "role": "worker", "ip": f"192.168.57.{20 + i}"} for i in (1, 2, 3)),
    ]
    return parse_spec(yaml.safe_dump(data), source="four-nodes.yaml")


SPECS = {"tutorial": lambda: load_spec(ROOT / "lab.yaml"), "four": four_nodes}


@pytest.fixture(params=sorted(SPECS))
def spec(request) -> LabSpec:
    return SPECS[request.param]()


def routes_of(plan, netns):
    return {(r.route.dst, r.route.via, r.route.dev, r.route.onlink) for r in plan.routes if r.netns == netns}


def test_one_namespace_per_node_plus_nat_ends_and_the_switch(spec):
    plan = build_plan(spec)
    prefix = f"k8slab-{spec.name}_"
    expected = {prefix + "hostonly"}
    expected |= {prefix + n.name for n in spec.nodes}
    expected |= {prefix + "nat-" + n.name for n in spec.nodes}
    assert {ns.name for ns in plan.namespaces} == expected
    assert len(plan.namespaces) == 2 * len(spec.nodes) + 1
    for ns in plan.namespaces:
        if ns.role == "node":
            assert ns.hostname == ns.node
            assert ("net.ipv4.ip_forward", "1") in ns.sysctls


def test_addresses_come_from_the_spec(spec):
    plan = build_plan(spec)
    addrs = {(a.netns, a.ifname, a.address) for a in plan.addrs}
    hostonly = names.hostonly_netns(spec.name)
    assert (hostonly, names.HOSTONLY_BRIDGE, IPv4Interface(f"{spec.host_ip}/{spec.host_only.prefixlen}")) in addrs
    for n in spec.nodes:
        ns = names.node_netns(spec.name, n.name)
        nat = names.nat_netns(spec.name, n.name)
        assert (ns, HOST_ONLY_IF, IPv4Interface(f"{n.ip}/{spec.host_only.prefixlen}")) in addrs
        assert (ns, NAT_IF, IPv4Interface(f"{NAT_ADDRESS}/{NAT_NETWORK.prefixlen}")) in addrs
        assert {a.address.ip for a in plan.addrs if a.netns == nat} == {NAT_GATEWAY, NAT_DNS}


def test_eth1_on_the_shared_switch_and_eth0_on_a_private_link(spec):
    plan = build_plan(spec)
    hostonly = names.hostonly_netns(spec.name)
    ports = {(p.netns, p.ifname, p.bridge) for p in plan.ports}
    nat_peers = set()
    for n in spec.nodes:
        ns = names.node_netns(spec.name, n.name)
        (eth1,) = [x for x in plan.links if x.netns == ns and x.ifname == HOST_ONLY_IF]
        assert (eth1.kind, eth1.peer_netns) == ("veth", hostonly)
        assert (hostonly, eth1.peer_ifname, names.HOSTONLY_BRIDGE) in ports
        (eth0,) = [x for x in plan.links if x.netns == ns and x.ifname == NAT_IF]
        assert (eth0.kind, eth0.peer_netns) == ("veth", names.nat_netns(spec.name, n.name))
        nat_peers.add(eth0.peer_netns)
    # Every node's NAT end is its own namespace: the nodes cannot reach each other over eth0.
    assert len(nat_peers) == len(spec.nodes)
    assert len(ports) == len(spec.nodes)
    assert all(len(p.ifname) <= names.IFNAMSIZ for p in plan.ports)


def test_host_gw_routes_to_every_other_node_via_its_eth1(spec):
    plan = build_plan(spec)
    for n in spec.nodes:
        ns = names.node_netns(spec.name, n.name)
        expected = {(m.pod_subnet, m.ip, HOST_ONLY_IF, False) for m in spec.nodes if m is not n}
        expected.add((DEFAULT_ROUTE, NAT_GATEWAY, NAT_IF, False))
        assert routes_of(plan, ns) == expected
        assert not any(r.route.dst.subnet_of(spec.pod_cidr) and r.route.dev == NAT_IF for r in plan.routes)
    assert not plan.neighs and not plan.fdbs
    assert not any(x.kind == "vxlan" for x in plan.links)


def test_vxlan_routes_neighbours_and_fdb_as_flannel_writes_them():
    spec = four_nodes("vxlan")
    plan = build_plan(spec)
    for n in spec.nodes:
        ns = names.node_netns(spec.name, n.name)
        (vx,) = [x for x in plan.links if x.netns == ns and x.kind == "vxlan"]
        assert (vx.ifname, vx.mtu, vx.vxlan.vni, vx.vxlan.port, vx.vxlan.local, vx.vxlan.dev) == (
            VXLAN_IF, 1450, 1, 8472, n.ip, HOST_ONLY_IF)
        assert IPv4Interface(f"{n.pod_subnet.network_address}/32") in {
            a.address for a in plan.addrs if a.netns == ns and a.ifname == VXLAN_IF}
        others = [m for m in spec.nodes if m is not n]
        expected = {(m.pod_subnet, m.pod_subnet.network_address, VXLAN_IF, True) for m in others}
        expected.add((DEFAULT_ROUTE, NAT_GATEWAY, NAT_IF, False))
        assert routes_of(plan, ns) == expected
        macs = {m.name: next(x.mac for x in plan.links if x.netns == names.node_netns(spec.name, m.name)
                             and x.kind == "vxlan") for m in others}
        assert {(x.dst, x.lladdr) for x in plan.neighs if x.netns == ns} == {
            (m.pod_subnet.network_address, macs[m.name]) for m in others}
        assert {(x.lladdr, x.dst) for x in plan.fdbs if x.netns == ns} == {(macs[m.name], m.ip) for m in others}
        assert plan.node_plan(n.name).cni_config["mtu"] == 1450
    all_macs = [x.mac for x in plan.links if x.kind == "vxlan"]
    assert len(set(all_macs)) == len(spec.nodes)


def test_cni_config_is_flannels_delegate_for_the_node(spec):
    plan = build_plan(spec)
    state = names.StatePaths(spec.name)
    dirs = set()
    for n in spec.nodes:
        conf = plan.node_plan(n.name).cni_config
        assert (conf["type"], conf["bridge"], conf["isGateway"], conf["hairpinMode"], conf["ipMasq"]) == (
            "bridge", BRIDGE_IF, True, True, False)
        assert conf["mtu"] == 1500
        ipam = conf["ipam"]
        assert ipam["type"] == "host-local"
        assert ipam["ranges"] == [[{"subnet": str(n.pod_subnet)}]]
        assert ipam["routes"] == [{"dst": str(spec.pod_cidr)}]
        assert Path(ipam["dataDir"]).is_relative_to(state.dir)
        dirs.add(ipam["dataDir"])
    assert len(dirs) == len(spec.nodes)


def test_masquerade_keeps_pod_to_pod_and_masquerades_the_rest(spec):
    plan = build_plan(spec)
    for n in spec.nodes:
        rules = plan.node_plan(n.name).masquerade.splitlines()
        assert rules[0] == "*nat" and rules[-1] == "COMMIT"
        assert any(f"-s {n.pod_subnet} -d {spec.pod_cidr}" in r and r.endswith("-j RETURN") for r in rules)
        assert any(f"-s {spec.pod_cidr} ! -d 224.0.0.0/4" in r and "MASQUERADE" in r for r in rules)


def test_render_names_every_namespace_address_and_route(spec):
    lab = NetnsLab(spec)
    text = lab.plan()
    plan = lab.lab_plan
    for ns in plan.namespaces:
        assert f"namespace {ns.name}" in text
    for a in plan.addrs:
        assert f"address {a.address} dev {a.ifname}" in text
    for r in plan.routes:
        assert f"route {r.route}" in text
    for n in spec.nodes:
        assert f"{BRIDGE_IF} {n.pod_gateway}/{n.pod_subnet.prefixlen}" in text
        assert f"pods get {n.pod_gateway + 1}, {n.pod_gateway + 2}" in text


def test_prefixes_keep_labs_apart():
    a, a2 = load_spec(ROOT / "lab.yaml").renamed("a"), load_spec(ROOT / "lab.yaml").renamed("a-2")
    names_a = {ns.name for ns in build_plan(a).namespaces}
    names_a2 = {ns.name for ns in build_plan(a2).namespaces}
    assert not names_a & names_a2
    assert not any(n.startswith(names.prefix("a")) for n in names_a2)
    assert all(n.startswith(names.prefix("a")) for n in names_a)


def test_node_names_that_would_collide_with_the_labs_own_namespaces_are_refused():
    """By the spec itself (so `k8slab spec` refuses what `up` would), and by the plan of a spec made in code."""
    data = yaml.safe_load((ROOT / "lab.yaml").read_text())
    good = load_spec(ROOT / "lab.yaml")
    for bad in ("hostonly", "pod-x", "nat-1"):
        data["nodes"][1]["name"] = bad
        with pytest.raises(LabSpecError, match=f"'{bad}'.*emulated lab"):
            parse_spec(yaml.safe_dump(data))
        nodes = (good.nodes[0], dataclasses.replace(good.nodes[1], name=bad), *good.nodes[2:])
        with pytest.raises(LabSpecError, match=bad):
            NetnsLab(dataclasses.replace(good, nodes=nodes)).plan()


@pytest.mark.parametrize("bad", ["Busybox", "-x", "x_y", "a" * 64, ""])
def test_pod_names_must_be_dns_labels(bad):
    lab = NetnsLab(load_spec(ROOT / "lab.yaml").renamed("h3-unit"))
    with pytest.raises(InvalidPodNameError, match="DNS label"):
        lab.pods_start([(bad, lab.spec.nodes[0].name)])


def test_long_node_names_get_distinct_switch_ports():
    data = yaml.safe_load((ROOT / "lab.yaml").read_text())
    data["nodes"][1]["name"] = "worker-with-a-very-long-name-1"
    data["nodes"][2]["name"] = "worker-with-a-very-long-name-2"
    plan = build_plan(parse_spec(yaml.safe_dump(data)))
    port_names = [p.ifname for p in plan.ports]
    assert len(set(port_names)) == len(port_names)
    assert all(len(p) <= names.IFNAMSIZ for p in port_names)


@pytest.mark.parametrize("onlink", [False, True])
def test_route_message_encodes_dst_gateway_and_device(onlink):
    dst, via, oif = IPv4Network("10.244.7.0/24"), IPv4Address("192.168.56.17"), 42
    msg = route_message(Route(dst, "eth1", via, onlink=onlink), oif, seq=9)
    length, kind, _flags, seq, _pid = struct.unpack_from("IHHII", msg)
    assert (length, kind, seq) == (len(msg), RTM_NEWROUTE, 9)
    family, dst_len, *_rest, rflags = struct.unpack_from("BBBBBBBBI", msg, 16)
    assert (family, dst_len) == (socket.AF_INET, dst.prefixlen)
    assert bool(rflags & RTNH_F_ONLINK) == onlink
    attrs, off = {}, 28
    while off < len(msg):
        alen, akind = struct.unpack_from("HH", msg, off)
        attrs[akind] = msg[off + 4:off + alen]
        off += (alen + 3) & ~3
    assert attrs[1] == dst.network_address.packed
    assert attrs[5] == via.packed
    assert struct.unpack("I", attrs[4])[0] == oif


def test_default_route_message_has_no_destination():
    msg = route_message(Route(DEFAULT_ROUTE, NAT_IF, NAT_GATEWAY), 3, seq=1)
    _family, dst_len = struct.unpack_from("BB", msg, 16)
    assert dst_len == 0
    assert struct.pack("HH", 8, 1) not in msg[28:]


def test_preflight_names_what_to_install(monkeypatch, tmp_path):
    from k8slab.labs.netns import cni, preflight

    monkeypatch.setattr(preflight.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(cni, "CNI_DIRS", (tmp_path,))
    monkeypatch.setattr(preflight, "TOOLS", {**preflight.TOOLS, "no-such-tool-h3": "h3-pkg"})
    reason = NetnsLab.unavailable_reason()
    assert "needs root (network namespaces): run with sudo" in reason
    assert f"missing in {tmp_path}: apt-get install containernetworking-plugins" in reason
    assert "no-such-tool-h3 missing: apt-get install h3-pkg" in reason


def test_up_refuses_before_building_when_the_backend_cannot_run(monkeypatch):
    from k8slab.errors import ToolMissingError
    from k8slab.labs.netns import preflight

    monkeypatch.setattr(preflight, "problems", lambda: ["needs root (network namespaces): run with sudo"])
    lab = NetnsLab(load_spec(ROOT / "lab.yaml").renamed("h3-unit"))
    with pytest.raises(ToolMissingError, match="run with sudo"):
        lab.up()
    assert not lab.paths.dir.exists()


def many_nodes(count: int) -> LabSpec:
    data = yaml.safe_load((ROOT / "lab.yaml").read_text())
    net = IPv4Network(data["network"]["host_only"])
    first = IPv4Address(data["nodes"][0]["ip"])
    data["nodes"] = [{**data["nodes"][0], "ip": str(first)},
                     *({"name": f"node-{i}", "role": "worker", "ip": str(first + i)} for i in range(1, count))]
    assert all(IPv4Address(n["ip"]) in net for n in data["nodes"])
    return parse_spec(yaml.safe_dump(data), source=f"{count}-nodes.yaml")


@pytest.mark.parametrize("count", [3, 12, 16, 17, 50])
def test_eth1_neighbours_are_pinned_only_where_the_mesh_would_crowd_the_shared_arp_table(count):
    from k8slab.labs.netns.plan import ETH1_NEIGH_BUDGET, eth1_mac

    s = many_nodes(count)
    plan = build_plan(s)
    eth1 = [x for x in plan.neighs if x.dev == HOST_ONLY_IF]
    # verify paces how fast its traces join new pairs of nodes only where they are learned (verify/schedule.py)
    assert NetnsLab(s).learns_node_neighbours == (eth1 == [])
    if count * (count - 1) <= ETH1_NEIGH_BUDGET:
        # a tutorial-sized lab learns its neighbours by ARP, as real nodes do
        assert eth1 == [] and all(x.mac is None for x in plan.links if x.ifname == HOST_ONLY_IF)
        return
    assert len(eth1) == count * (count - 1)
    for node in s.nodes:
        ns = names.node_netns(s.name, node.name)
        link = next(x for x in plan.links if x.netns == ns and x.ifname == HOST_ONLY_IF)
        assert link.mac == eth1_mac(node)
        mine = {(x.dst, x.lladdr) for x in eth1 if x.netns == ns}
        assert mine == {(peer.ip, eth1_mac(peer)) for peer in s.nodes if peer is not node}
    assert len({eth1_mac(n) for n in s.nodes}) == count
