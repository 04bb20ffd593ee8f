"""The emulated lab's network behaves as the tutorial says: one hop between nodes, one hop between
pods of a node, three hops across nodes (the source's cni0 gateway, the target node's eth1, the
pod). Expected values come from the spec; tools run for real inside the lab's namespaces."""

from __future__ import annotations

import json
import subprocess
from ipaddress import IPv4Address

import pytest

from k8slab.labs.netns import names
from k8slab.spec.facts import HOST_ONLY_IF, NAT_ADDRESS, NAT_GATEWAY, NAT_IF
from k8slab.spec.model import LabSpec
from k8slab.verify.traceroute import parse_traceroute

from .labtools import default_spec, four_node_data, spec_from, unique_name

TRACE = ["traceroute", "-n", "-q", "1", "-w", "1", "-m", "8"]


def trace(lab, where: str, target: IPv4Address, on_node: bool = False) -> list[IPv4Address | None]:
    run = lab.node_run if on_node else lab.pod_run
    result = run(where, [*TRACE, str(target)], timeout=30)
    assert result.ok, result.stderr
    return parse_traceroute(result.stdout).path


def check_tutorial_traces(lab, spec: LabSpec) -> None:
    """ARTICLE.md examples 2-4 on any spec: first worker is the target node, last worker the source."""
    cp, dst_node, src_node = spec.control_plane, spec.workers[0], spec.workers[-1]
    for worker in spec.workers:
        assert trace(lab, cp.name, worker.ip, on_node=True) == [worker.ip]

    target = lab.pod_start("httpd", dst_node.name)
    neighbour = lab.pod_start("busybox-same", dst_node.name)
    source = lab.pod_start("busybox", src_node.name)
    # host-local hands out addresses in order after the gateway (.1).
    assert target.ip == dst_node.pod_gateway + 1
    assert neighbour.ip == dst_node.pod_gateway + 2
    assert source.ip == src_node.pod_gateway + 1
    assert {(p.name, p.node, p.ip) for p in lab.pods()} == {
        (p.name, p.node, p.ip) for p in (target, neighbour, source)}

    assert trace(lab, "busybox-same", target.ip) == [target.ip]
    cross = [src_node.pod_gateway, dst_node.ip, target.ip]
    if spec.cni_backend == "vxlan":
        cross[1] = dst_node.pod_subnet.network_address  # flannel.1 of the target node answers
    assert trace(lab, "busybox", target.ip) == cross


def test_default_lab_traces_as_the_tutorial(labs):
    spec = default_spec(unique_name())
    lab = labs(spec)
    lab.up()
    check_tutorial_traces(lab, spec)


def test_four_node_lab_with_another_pod_cidr(labs):
    spec = spec_from(four_node_data(), unique_name("four-"))
    lab = labs(spec)
    lab.up()
    check_tutorial_traces(lab, spec)


def test_vxlan_variant_traces_through_flannel_1(labs):
    spec = spec_from(four_node_data("vxlan"), unique_name("vx-"))
    lab = labs(spec)
    lab.up()
    check_tutorial_traces(lab, spec)
    pod = lab.pods()[0]
    mtu = json.loads(lab.pod_run(pod.name, ["ip", "-j", "link", "show", "eth0"]).stdout)[0]["mtu"]
    assert mtu == 1450


def test_nodes_look_like_the_tutorials_nodes_to_testinfra(labs):
    spec = default_spec(unique_name())
    lab = labs(spec)
    lab.up()
    lab.pod_start("web", spec.workers[0].name)
    for node in spec.nodes:
        host = lab.testinfra_host(node.name)
        assert host.check_output("hostname") == node.name
        eth1 = host.interface(HOST_ONLY_IF)
        assert eth1.exists
        assert str(node.ip) in eth1.addresses
        assert str(NAT_ADDRESS) in host.interface(NAT_IF).addresses
        assert host.sysctl("net.ipv4.ip_forward") == 1
        assert host.file("/proc/sys/net/ipv4/ip_forward").content_string.strip() == "1"
        # /sys is the node's own (ip netns exec mounts it), so sysfs and netlink agree on eth1.
        link = eth1.link[0]
        assert host.check_output(f"cat /sys/class/net/{HOST_ONLY_IF}/address") == link["address"]
        routes = host.check_output("ip route")
        for peer in spec.nodes:
            if peer is not node:
                assert f"{peer.pod_subnet} via {peer.ip} dev {HOST_ONLY_IF}" in routes
        assert f"default via {NAT_GATEWAY} dev {NAT_IF}" in routes
        # No node reaches another over eth0: each NAT link holds only the node and VirtualBox's NAT.
        for peer in spec.nodes:
            if peer is not node:
                route = host.check_output(f"ip route get {peer.ip}")
                assert f"dev {HOST_ONLY_IF}" in route


def test_pod_egress_is_masqueraded_to_eth0(labs):
    spec = default_spec(unique_name())
    lab = labs(spec)
    lab.up()
    node = spec.workers[0]
    pod = lab.pod_start("egress", node.name)
    nat = names.nat_netns(spec.name, node.name)
    # The NAT side has no route back to the pod network, so only a masqueraded ping can come back.
    back = subprocess.run(["ip", "-n", nat, "route", "get", str(pod.ip)], check=False,
                          capture_output=True, text=True)
    assert back.returncode != 0, back.stdout
    result = lab.pod_run("egress", ["ping", "-c", "1", "-W", "2", str(NAT_GATEWAY)])
    assert result.ok, result.stdout + result.stderr
    rules = lab.node_run(node.name, ["iptables", "-t", "nat", "-S", "FLANNEL-POSTRTG"]).stdout
    assert f"-s {spec.pod_cidr} ! -d 224.0.0.0/4" in rules and "MASQUERADE" in rules


def test_two_labs_at_once_are_independent(labs):
    first = labs(default_spec(unique_name("a-")))
    second = labs(default_spec(unique_name("b-")))
    first.up()
    second.up()
    spec = first.spec
    src, dst = spec.workers[-1], spec.workers[0]
    for lab in (first, second):
        target = lab.pod_start("httpd", dst.name)
        lab.pod_start("busybox", src.name)
        assert target.ip == dst.pod_gateway + 1  # same addresses, separate namespaces
    first.destroy()
    assert not first.is_up()
    assert second.is_up()
    assert trace(second, "busybox", dst.pod_gateway + 1) == [src.pod_gateway, dst.ip, dst.pod_gateway + 1]


@pytest.mark.parametrize("where", ["node", "pod"])
def test_commands_that_hang_are_cut_at_the_timeout(labs, where):
    spec = default_spec(unique_name())
    lab = labs(spec)
    lab.up()
    node = spec.nodes[0].name
    if where == "pod":
        lab.pod_start("sleeper", node)
        result = lab.pod_run("sleeper", ["sleep", "30"], timeout=0.5)
    else:
        result = lab.node_run(node, ["sleep", "30"], timeout=0.5)
    assert result.rc == 124
    assert "timed out" in result.stderr
