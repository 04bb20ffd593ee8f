"""lab.yaml's dataplane choice (flannel host-gw/vxlan/ipip, Calico's five IPPool modes) and the emulated
lab's plan for each, checked without root against values computed from the spec and Calico's or
flannel's own rules (k8slab.spec.calico, labs/netns/plan.py). BIRD itself parses every config made."""

from __future__ import annotations

import hashlib
import shutil
import socket
import struct
import subprocess
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

import pytest
import yaml

from k8slab.errors import LabSpecError
from k8slab.labs.netns import names
from k8slab.labs.netns.kernel import RTM_NEWROUTE, route_message
from k8slab.labs.netns.lab import ipip_refusal
from k8slab.labs.netns.plan import build_plan
from k8slab.labs.netns.plan_calico import bird_config
from k8slab.spec import calico
from k8slab.spec.facts import DEFAULT_ROUTE, FLANNEL_IPIP_IF, HOST_ONLY_IF, NAT_GATEWAY, NAT_IF
from k8slab.spec.load import parse_spec
from k8slab.spec.model import LabSpec
from k8slab.spec.route import Route

ROOT = Path(__file__).resolve().parents[2]
RTN_BLACKHOLE = 6


def lab_data(**cni) -> dict:
    data = yaml.safe_load((ROOT / "lab.yaml").read_text())
    data["name"] = "dp"
    data["cni"] = {"plugin": "flannel", "backend": "host-gw", "interface": "eth1", **cni}
    return data


def calico_spec(encapsulation: str, nodes: int = 3, **extra) -> LabSpec:
    data = lab_data()
    data["cni"] = {"plugin": "calico", "encapsulation": encapsulation, **extra}
    data["nodes"] = [data["nodes"][0]] + [
        {"name": f"node-{i}", "role": "worker", "ip": f"192.168.56.{10 + i}"} for i in range(1, nodes)]
    return parse_spec(yaml.safe_dump(data))


def problems(data: dict) -> list[str]:
    with pytest.raises(LabSpecError) as err:
        parse_spec(yaml.safe_dump(data))
    return err.value.problems


def routes_of(plan, netns):
    return {(r.dst, r.via, r.dev, r.onlink, r.proto, r.blackhole)
            for r in (x.route for x in plan.routes if x.netns == netns)}


# ---- lab.yaml --------------------------------------------------------------------------------
def test_calico_defaults_to_the_operators_pool_and_26_bit_blocks_one_per_node_in_order():
    data = lab_data()
    data["cni"] = {"plugin": "calico"}
    spec = parse_spec(yaml.safe_dump(data))
    assert spec.calico == calico.CalicoConfig("VXLANCrossSubnet", 26)
    assert spec.dataplane == "calico VXLANCrossSubnet"
    block = 2 ** (32 - 26)
    for n in spec.nodes:
        assert n.pod_subnet == IPv4Network(f"{spec.pod_cidr.network_address + n.index * block}/26")
        assert n.pod_gateway == calico.POD_GATEWAY


@pytest.mark.parametrize(("cni", "field", "says"), [
    ({"plugin": "calico", "backend": "vxlan"}, "cni.backend", "encapsulation"),
    ({"plugin": "calico", "encapsulation": "vxlan"}, "cni.encapsulation", "VXLANCrossSubnet"),
    ({"plugin": "calico", "block_size": 19}, "cni.block_size", "20..32"),
    ({"plugin": "calico", "block_size": "26"}, "cni.block_size", "must be int"),
    ({"plugin": "flannel", "backend": "host-gw", "encapsulation": "IPIP"}, "cni.encapsulation", "flannel"),
    ({"plugin": "flannel", "backend": "host-gw", "block_size": 26}, "cni.block_size", "flannel"),
    ({"plugin": "flannel"}, "cni.backend", "missing"),
    ({"plugin": "flannel", "backend": "wireguard"}, "cni.backend", "ipip"),
    ({"plugin": "cilium", "backend": "host-gw"}, "cni.plugin", "calico"),
])
def test_each_plugin_refuses_the_others_keys_and_bad_values(cni, field, says):
    data = lab_data()
    data["cni"] = cni
    found = [p for p in problems(data) if p.startswith(field)]
    assert found and says in found[0], problems(data)


def test_blocks_must_fit_the_pool_for_every_node():
    data = lab_data()
    data["kubernetes"]["pod_cidr"] = "10.244.0.0/24"
    data["cni"] = {"plugin": "calico", "block_size": 23}
    assert any("larger than the pool" in p for p in problems(data))
    data["cni"] = {"plugin": "calico", "block_size": 26}
    data["nodes"] += [{"name": f"w{i}", "role": "worker", "ip": f"192.168.56.{30 + i}"} for i in range(3)]
    assert any("holds 4 /26 blocks but the lab has 6 nodes" in p for p in problems(data))


# ---- Calico plans ------------------------------------------------------------------------------
@pytest.mark.parametrize("encapsulation", calico.ENCAPSULATIONS)
def test_calico_tunnel_device_address_and_mtu_per_mode(encapsulation):
    spec = calico_spec(encapsulation)
    conf = spec.calico
    plan = build_plan(spec)
    expected_mtu = 1500 - {"IPIP": 20, "VXLAN": 50}.get(encapsulation.replace("CrossSubnet", ""), 0)
    for n in spec.nodes:
        ns = names.node_netns(spec.name, n.name)
        tunnels = [x for x in plan.links if x.netns == ns and x.kind in ("vxlan", "tunl0")]
        assert plan.node_plan(n.name).cni_config["mtu"] == expected_mtu == conf.pod_mtu
        assert not any(x.kind == "bridge" for x in plan.links if x.netns == ns)
        if encapsulation == "None":
            assert tunnels == []
            continue
        (tun,) = tunnels
        assert tun.ifname == ("tunl0" if encapsulation.startswith("IPIP") else "vxlan.calico")
        assert tun.mtu == expected_mtu
        assert {a.address for a in plan.addrs if a.netns == ns and a.ifname == tun.ifname} == {
            IPv4Interface(f"{n.pod_subnet.network_address}/32")}
        if tun.kind == "vxlan":
            assert (tun.vxlan.vni, tun.vxlan.port, tun.vxlan.local, tun.vxlan.dev) == (4096, 4789, n.ip, HOST_ONLY_IF)


@pytest.mark.parametrize("encapsulation", ["None", "IPIP", "IPIPCrossSubnet"])
def test_bgp_modes_leave_routes_to_bird_with_a_full_mesh(encapsulation):
    spec = calico_spec(encapsulation, nodes=4)
    plan = build_plan(spec)
    assert {b.node for b in plan.bird} == {n.name for n in spec.nodes}
    for b in plan.bird:
        node = spec.node(b.node)
        ns = names.node_netns(spec.name, node.name)
        assert routes_of(plan, ns) == {(DEFAULT_ROUTE, NAT_GATEWAY, NAT_IF, False, 3, False)}
        assert set(b.peers) == {p.ip for p in spec.nodes if p is not node}
        assert f"router id {node.ip};" in b.config
        assert f"route {node.pod_subnet} blackhole;" in b.config
        for peer in spec.nodes:
            if peer is node:
                continue
            session = b.config.split(f"protocol bgp {calico.mesh_name(peer.ip)} from bgp_template {{")[1].split("}")[0]
            assert f"neighbor {peer.ip} as {calico.BGP_AS};" in session
            assert ("passive on;" in session) == (int(peer.ip) > int(node.ip))
        assert b.socket.startswith(plan.state_dir) and b.config_path.startswith(plan.state_dir)
        tunnels_in_kernel = 'ifname = "tunl0"' in b.config
        assert tunnels_in_kernel == encapsulation.startswith("IPIP")
        assert (f"bgp_next_hop ~ {spec.host_only}" in b.config) == (encapsulation == "IPIPCrossSubnet")


@pytest.mark.skipif(shutil.which("bird", path="/usr/sbin:/usr/bin") is None, reason="bird2 is not installed")
@pytest.mark.parametrize("encapsulation", ["None", "IPIP", "IPIPCrossSubnet"])
def test_bird_itself_accepts_every_config(tmp_path, encapsulation):
    spec = calico_spec(encapsulation)
    for node in spec.nodes:
        conf = tmp_path / f"{node.name}.conf"
        conf.write_text(bird_config(spec, node, str(tmp_path / "log")))
        proc = subprocess.run(["bird", "-p", "-c", str(conf)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr


def test_vxlan_mode_routes_are_felixs_over_vxlan_calico_with_neighbours_and_fdb():
    spec = calico_spec("VXLAN", nodes=4)
    plan = build_plan(spec)
    assert plan.bird == ()
    for n in spec.nodes:
        ns = names.node_netns(spec.name, n.name)
        others = [m for m in spec.nodes if m is not n]
        vteps = {m.pod_subnet.network_address for m in others}
        expected = {(m.pod_subnet, m.pod_subnet.network_address, "vxlan.calico", True, 3, False) for m in others}
        expected |= {(n.pod_subnet, None, "", False, calico.PROTO_FELIX, True),
                     (DEFAULT_ROUTE, NAT_GATEWAY, NAT_IF, False, 3, False)}
        assert routes_of(plan, ns) == expected
        assert {(x.dst, x.lladdr) for x in plan.neighs if x.netns == ns} == {
            (m.pod_subnet.network_address, calico.vtep_mac(m.ip)) for m in others}
        assert {x.dst for x in plan.neighs if x.netns == ns} == vteps
        fdb = {(x.lladdr, x.dst) for x in plan.fdbs if x.netns == ns}
        assert fdb == {(calico.vtep_mac(m.ip), m.ip) for m in others}


def test_vxlan_cross_subnet_routes_a_shared_subnet_directly_via_eth1():
    spec = calico_spec("VXLANCrossSubnet")
    plan = build_plan(spec)
    for n in spec.nodes:
        ns = names.node_netns(spec.name, n.name)
        peers = {(r.dst, r.via, r.dev, r.proto) for r in (x.route for x in plan.routes if x.netns == ns)
                 if r.dst.subnet_of(spec.pod_cidr)
                 and not r.blackhole}
        assert peers == {(m.pod_subnet, m.ip, HOST_ONLY_IF, calico.PROTO_FELIX) for m in spec.nodes if m is not n}


def test_calico_pods_are_wired_by_calicos_rules():
    spec = calico_spec("None")
    plan = build_plan(spec)
    for n in spec.nodes:
        conf = plan.node_plan(n.name).cni_config
        ipam = conf["ipam"]
        assert (conf["type"], ipam["type"], ipam["block"]) == ("calico", "calico-ipam", str(n.pod_subnet))
        assert conf["ipam"]["first_ordinal"] == 0  # no tunnel address: the block's network address is a pod's
    vxlan = calico_spec("VXLAN")
    assert vxlan.calico and build_plan(vxlan).nodes[0].cni_config["ipam"]["first_ordinal"] == 1
    assert calico.veth_name("web") == "cali" + hashlib.sha1(b"default.web").hexdigest()[:11]
    assert len(calico.veth_name("x" * 63)) <= names.IFNAMSIZ


def test_blackhole_route_message_has_no_device_and_carries_felixs_protocol():
    route = Route(IPv4Network("10.244.0.64/26"), "", blackhole=True, proto=calico.PROTO_FELIX)
    msg = route_message(route, 0, seq=5)
    length, kind, _, seq, _ = struct.unpack_from("IHHII", msg)
    assert (length, kind, seq) == (len(msg), RTM_NEWROUTE, 5)
    family, dst_len, _, _, _, proto, _, rtype, _ = struct.unpack_from("BBBBBBBBI", msg, 16)
    assert (family, dst_len, proto, rtype) == (socket.AF_INET, 26, calico.PROTO_FELIX, RTN_BLACKHOLE)
    attrs, off = {}, 28
    while off < len(msg):
        alen, akind = struct.unpack_from("HH", msg, off)
        attrs[akind] = msg[off + 4: off + alen]
        off += (alen + 3) & ~3
    assert 4 not in attrs  # RTA_OIF
    assert attrs[1] == IPv4Network("10.244.0.64/26").network_address.packed
    assert str(route) == "blackhole 10.244.0.64/26 proto 80"


# ---- flannel ipip ------------------------------------------------------------------------------
def test_flannel_ipip_device_addresses_routes_and_mtu():
    spec = parse_spec(yaml.safe_dump(lab_data(backend="ipip")))
    plan = build_plan(spec)
    for n in spec.nodes:
        ns = names.node_netns(spec.name, n.name)
        (tun,) = [x for x in plan.links if x.netns == ns and x.kind == "ipip"]
        assert (tun.ifname, tun.local, tun.mtu) == (FLANNEL_IPIP_IF, n.ip, 1480)
        assert {a.address for a in plan.addrs if a.netns == ns and a.ifname == FLANNEL_IPIP_IF} == {
            IPv4Interface(f"{n.pod_subnet.network_address}/32")}
        peers = {(r.dst, r.via, r.dev, r.onlink) for r in (x.route for x in plan.routes if x.netns == ns)
                 if r.dst != DEFAULT_ROUTE}
        assert peers == {(m.pod_subnet, m.ip, FLANNEL_IPIP_IF, True) for m in spec.nodes if m is not n}
        assert plan.node_plan(n.name).cni_config["mtu"] == 1480
    assert "mode ipip local" in plan.render()


@pytest.mark.parametrize(("spec", "edit"), [
    (lambda: parse_spec(yaml.safe_dump(lab_data(backend="ipip"))), "cni.backend: vxlan"),
    (lambda: calico_spec("IPIP"), "cni.encapsulation: VXLAN"),
    (lambda: calico_spec("IPIPCrossSubnet"), "cni.encapsulation: VXLANCrossSubnet"),
])
def test_ipip_refusal_names_the_kernel_feature_and_the_vxlan_mode(spec, edit):
    text = ipip_refusal(spec(), "`ip link add type ipip` fails: the kernel module `ipip` is missing")
    assert "module `ipip`" in text and edit in text and "Nothing was built" in text
