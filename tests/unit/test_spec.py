"""lab.yaml validation: the default spec resolves as the tutorial's lab; every bad input is a named error."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
import yaml

from k8slab.errors import LabSpecError
from k8slab.spec.load import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = yaml.safe_load((ROOT / "lab.yaml").read_text())


def spec_text(**changes) -> str:
    """The default lab.yaml with some top-level sections replaced (None deletes a key)."""
    data = yaml.safe_load((ROOT / "lab.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    return yaml.safe_dump(data)


def problems(text: str) -> list[str]:
    with pytest.raises(LabSpecError) as err:
        parse_spec(text)
    return err.value.problems


def test_default_spec_derives_one_24_per_node_in_order():
    spec = load_spec(ROOT / "lab.yaml")
    pod_cidr = IPv4Network(DEFAULT["kubernetes"]["pod_cidr"])
    subnets = list(pod_cidr.subnets(new_prefix=24))
    assert [n.name for n in spec.nodes] == [n["name"] for n in DEFAULT["nodes"]]
    for i, node in enumerate(spec.nodes):
        assert node.pod_subnet == subnets[i]
        assert node.pod_gateway == subnets[i].network_address + 1
        assert node.ip == IPv4Address(DEFAULT["nodes"][i]["ip"])
    assert spec.control_plane.name == DEFAULT["nodes"][0]["name"]
    assert spec.host_ip == IPv4Network(DEFAULT["network"]["host_only"]).network_address + 1


def test_tutorial_facts_hold_for_the_default_spec():
    # ARTICLE.md's table, as a cross-check that the default lab.yaml is the tutorial's lab.
    spec = load_spec(ROOT / "lab.yaml")
    assert [(n.name, str(n.ip), str(n.pod_subnet)) for n in spec.nodes] == [
        ("controlplane", "192.168.56.10", "10.244.0.0/24"),
        ("node-1", "192.168.56.11", "10.244.1.0/24"),
        ("node-2", "192.168.56.12", "10.244.2.0/24"),
    ]


def test_yaml_that_does_not_parse():
    (msg,) = problems("nodes: [\n")
    assert "YAML does not parse at line" in msg


def test_missing_file_names_the_flag(tmp_path):
    with pytest.raises(LabSpecError, match="--spec FILE"):
        load_spec(tmp_path / "nope.yaml")


def test_unknown_missing_and_wrong_type_keys():
    data = yaml.safe_load(spec_text(colour="blue", cni=None))
    data["nodes"][1]["cpus"] = "two"
    found = problems(yaml.safe_dump(data))
    assert any(p.startswith("colour: unknown key") for p in found), found
    assert "cni: missing (required)" in found
    assert any(f"nodes[1] ({data['nodes'][1]['name']}).cpus: must be int" in p for p in found), found


HOST_ONLY = IPv4Network(DEFAULT["network"]["host_only"])


@pytest.mark.parametrize("index, ip, fragment", [
    (1, "10.0.0.12", "outside the host-only network"),
    (1, str(HOST_ONLY.network_address), "network address"),
    (1, str(HOST_ONLY.broadcast_address), "broadcast address"),
    (1, str(HOST_ONLY.network_address + 1), "VirtualBox host's own address"),
    (2, DEFAULT["nodes"][1]["ip"], "duplicate: nodes[1] also has"),
    (2, "not-an-ip", "is not an IPv4 address"),
])
def test_bad_node_addresses(index, ip, fragment):
    data = yaml.safe_load(spec_text())
    data["nodes"][index]["ip"] = ip
    found = problems(yaml.safe_dump(data))
    assert any(fragment in p and p.startswith(f"nodes[{index}]") for p in found), found


def test_duplicate_and_invalid_names():
    data = yaml.safe_load(spec_text())
    taken = data["nodes"][1]["name"]
    data["nodes"][2]["name"] = taken
    found = problems(yaml.safe_dump(data))
    assert any(f"duplicate: nodes[1] is also called {taken!r}" in p for p in found), found
    data["nodes"][2]["name"] = "Node_2"
    found = problems(yaml.safe_dump(data))
    assert any("is not a valid hostname" in p for p in found), found


@pytest.mark.parametrize("net, ips", [
    ("192.168.16.0/24", ("192.168.16.10", "192.168.16.11", "192.168.16.12")),  # the Calico article's nodes
    ("192.168.64.0/24", ("192.168.64.4", "192.168.64.5", "192.168.64.6")),  # Linux from scratch: node-0/1/2
])
def test_the_articles_own_host_only_networks_are_valid_specs(net, ips):
    """VirtualBox's 192.168.56.0/21 rule binds the VirtualBox lab only (VagrantLab.check_host_only)."""
    data = yaml.safe_load(spec_text())
    data["network"]["host_only"] = net
    for n, ip in zip(data["nodes"], ips):
        n["ip"] = ip
    spec = parse_spec(yaml.safe_dump(data))  # raised LabSpecError ("outside 192.168.56.0/21") before
    assert str(spec.host_only) == net and [str(n.ip) for n in spec.nodes] == list(ips)


@pytest.mark.parametrize("pod_cidr, fragment", [
    ("192.168.0.0/16", "overlaps network.host_only"),
    ("10.0.0.0/16", "overlaps VirtualBox's NAT network"),
    ("10.96.0.0/16", "overlaps kubernetes.service_cidr"),
    ("10.244.0.0/25", "smaller than one /24"),
    ("10.244.0.0/23", "holds 2 /24 subnets but the lab has 3 nodes"),
    ("10.244.0.1/16", "is not an IPv4 network"),
])
def test_bad_pod_cidrs(pod_cidr, fragment):
    data = yaml.safe_load(spec_text())
    data["kubernetes"]["pod_cidr"] = pod_cidr
    found = problems(yaml.safe_dump(data))
    assert any(fragment in p for p in found), found


def test_control_plane_count_and_position():
    data = yaml.safe_load(spec_text())
    data["nodes"][0]["role"] = "worker"
    found = problems(yaml.safe_dump(data))
    assert any("no node has role: control-plane" in p for p in found), found
    data["nodes"][0]["role"] = data["nodes"][1]["role"] = "control-plane"
    data["nodes"][1]["cpus"] = 2
    data["nodes"][1]["memory"] = 2048
    found = problems(yaml.safe_dump(data))
    assert any("2 nodes have role: control-plane" in p for p in found), found


def test_control_plane_below_kubeadm_minimum():
    data = yaml.safe_load(spec_text())
    data["nodes"][0]["cpus"] = 1
    found = problems(yaml.safe_dump(data))
    assert any("fewer than 2 CPUs" in p for p in found), found


def test_unknown_cni_backend_and_nat_interface():
    data = yaml.safe_load(spec_text())
    data["cni"]["backend"] = "udp"
    data["cni"]["interface"] = "eth0"
    found = problems(yaml.safe_dump(data))
    assert any(p.startswith("cni.backend: unknown flannel backend 'udp'") for p in found), found
    assert any(p.startswith("cni.interface: must be eth1") for p in found), found


def test_all_problems_reported_at_once():
    data = yaml.safe_load(spec_text())
    data["cni"]["backend"] = "udp"
    data["nodes"][2]["ip"] = "10.1.1.1"
    found = problems(yaml.safe_dump(data))
    assert len(found) == 2, found


def test_five_nodes_other_cidr_derive_subnets():
    data = yaml.safe_load(spec_text())
    data["kubernetes"]["pod_cidr"] = "10.100.0.0/16"
    data["kubernetes"]["service_cidr"] = "10.32.0.0/16"  # the default 10.96.0.0/12 holds 10.100.0.0/16
    data["nodes"] += [{"name": f"node-{i}", "role": "worker", "ip": f"192.168.56.{10 + i}"} for i in (3, 4)]
    spec = parse_spec(yaml.safe_dump(data))
    assert [str(n.pod_subnet) for n in spec.nodes] == [f"10.100.{i}.0/24" for i in range(5)]
    assert spec.node_by_ip("10.100.4.7").name == "node-4"


def test_unknown_node_lists_the_nodes():
    from k8slab.errors import UsageError

    spec = load_spec(ROOT / "lab.yaml")
    with pytest.raises(UsageError, match="its nodes are: " + ", ".join(n.name for n in spec.nodes)):
        spec.node("node-9")
