"""The emulated lab with Calico's dataplane, on the real kernel with the real BIRD: pods wired by Calico's
rules, routes learned over BGP (`proto bird`) or written as Felix writes them, hops that follow the
kernel's rule for the address an ICMP error leaves from; IPIP refused on a kernel without it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from k8slab.errors import ToolMissingError
from k8slab.labs.netns import NetnsLab, kernel, nsfs
from k8slab.spec import calico
from k8slab.spec.facts import HOST_ONLY_IF, NAT_ADDRESS

from .labtools import leftovers, many_node_data, spec_data, spec_from, unique_name


def calico_data(encapsulation: str, nodes: int = 3) -> dict:
    data = many_node_data(nodes) if nodes != 3 else spec_data()
    data["cni"] = {"plugin": "calico", "encapsulation": encapsulation}
    return data


def routes(lab: NetnsLab, node: str) -> list[dict]:
    res = lab.node_run(node, ["ip", "-j", "-4", "route", "show", "table", "main"])
    assert res.ok, res.stderr
    return json.loads(res.stdout)


def trace(lab: NetnsLab, pod: str, target) -> list[str]:
    res = lab.pod_run(pod, ["traceroute", "-n", "-q", "1", "-w", "1", "-m", "4", str(target)])
    assert res.ok, res.stderr
    return [line.split()[1] for line in res.stdout.splitlines()[1:]]


@pytest.mark.parametrize("encapsulation", ["None", "VXLAN", "VXLANCrossSubnet"])
def test_calico_dataplane_as_calico_builds_it(labs, encapsulation):
    spec = spec_from(calico_data(encapsulation), unique_name("c"))
    conf = spec.calico
    lab = labs(spec)
    lab.up()
    a, b = spec.workers[0], spec.workers[1]
    p1, p2 = lab.pod_start("p1", a.name), lab.pod_start("p2", a.name)
    q1 = lab.pod_start("q1", b.name)
    first = a.pod_subnet.network_address + calico.first_pod_ordinal(conf)
    assert (p1.ip, p2.ip, q1.ip) == (first, first + 1, b.pod_subnet.network_address + calico.first_pod_ordinal(conf))

    # the pod: eth0 /32, default via 169.254.1.1; the node: cali… without an address, proxy ARP, a /32 route
    pod_routes = lab.pod_run("p1", ["ip", "-j", "route"])
    assert {(r["dst"], r.get("gateway")) for r in json.loads(pod_routes.stdout)} == {
        ("default", str(calico.POD_GATEWAY)), (str(calico.POD_GATEWAY), None)}
    addr = json.loads(lab.pod_run("p1", ["ip", "-j", "-4", "addr", "show", "dev", "eth0"]).stdout)[0]
    assert [(i["local"], i["prefixlen"]) for i in addr["addr_info"]] == [(str(p1.ip), 32)]
    assert addr["mtu"] == conf.pod_mtu
    veth = calico.veth_name("p1")
    link = json.loads(lab.node_run(a.name, ["ip", "-j", "addr", "show", "dev", veth]).stdout)[0]
    assert link["address"] == calico.HOST_VETH_MAC
    assert [i for i in link.get("addr_info", []) if i["family"] == "inet"] == []
    assert lab.node_run(a.name, ["cat", f"/proc/sys/net/ipv4/conf/{veth}/proxy_arp"]).stdout.strip() == "1"

    seen = routes(lab, a.name)
    to_p1 = [(r["dev"], r.get("scope"), r.get("gateway")) for r in seen if r["dst"] == str(p1.ip)]
    assert to_p1 == [(veth, "link", None)]
    (hole,) = [r for r in seen if r.get("type") == "blackhole"]
    assert hole["dst"] == str(a.pod_subnet)
    assert hole["protocol"] == ("bird" if conf.uses_bgp else str(calico.PROTO_FELIX))
    for peer in spec.nodes:
        if peer is a:
            continue
        (r,) = [r for r in seen if r["dst"] == str(peer.pod_subnet)]
        if conf.encapsulates(a.ip, peer.ip, spec.host_only):
            assert (r["dev"], r["gateway"], "onlink" in r["flags"]) == (
                calico.VXLAN_IF, str(peer.pod_subnet.network_address), True)
        else:
            assert (r["dev"], r["gateway"]) == (HOST_ONLY_IF, str(peer.ip))
            assert r["protocol"] == ("bird" if conf.uses_bgp else str(calico.PROTO_FELIX))

    # The host side of a pod's veth has no address: the kernel answers from the first device that has a
    # global one (eth0, made first as on a VirtualBox VM); the next node from the device it routes back on.
    entry = str(b.ip) if not conf.encapsulates(a.ip, b.ip, spec.host_only) else str(b.pod_subnet.network_address)
    assert trace(lab, "p1", p2.ip) == [str(NAT_ADDRESS), str(p2.ip)]
    assert trace(lab, "p1", q1.ip) == [str(NAT_ADDRESS), entry, str(q1.ip)]


def test_destroy_ends_bird_and_nothing_of_the_lab_is_left(labs):
    spec = spec_from(calico_data("None"), unique_name("c"))
    lab = labs(spec)
    lab.up()
    netns = [nsfs.netns_path(f"{lab.prefix}{n.name}") for n in spec.nodes]
    birds = nsfs.pids_in(netns)
    assert len(birds) == len(spec.nodes)
    assert all(Path(f"/proc/{p}/comm").read_text().strip() == "bird" for p in birds)
    lab.destroy()
    assert leftovers(spec.name) == []
    assert not any(nsfs._exists(p) for p in birds)


@pytest.mark.parametrize(("cni", "edit"), [
    ({"plugin": "calico", "encapsulation": "IPIP"}, "cni.encapsulation: VXLAN"),
    ({"plugin": "calico", "encapsulation": "IPIPCrossSubnet"}, "cni.encapsulation: VXLANCrossSubnet"),
    ({"plugin": "flannel", "backend": "ipip"}, "cni.backend: vxlan"),
])
def test_ipip_is_refused_before_anything_is_built_on_a_kernel_without_it(labs, cni, edit):
    if kernel.ipip_missing(f"k8slab-{unique_name('p')}_") is None:
        pytest.skip("this kernel has ipip; the refusal is only for kernels without it")
    data = spec_data()
    data["cni"] = cni
    spec = spec_from(data, unique_name("i"))
    lab = labs(spec)
    with pytest.raises(ToolMissingError) as err:
        lab.up()
    assert "module `ipip`" in str(err.value) and edit in str(err.value)
    assert leftovers(spec.name) == []
    assert not lab.is_up()
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert lab.prefix not in out
