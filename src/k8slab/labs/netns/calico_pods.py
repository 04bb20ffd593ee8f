"""A pod wired the way Calico's CNI plugin wires it (cni-plugin/pkg/dataplane/linux/dataplane_linux.go),
with an address from the node's block handed out as Calico's IPAM does (facts: k8slab.spec.calico).

The block's free list lives in the lab's state dir (Calico keeps it in its datastore): ordinals in
order, a released one going to the back. Callers hold the lab's lock.
"""

from __future__ import annotations

import os
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute

from k8slab.errors import CommandFailedError
from k8slab.labs.netns import nsfs, state
from k8slab.spec import calico

RT_SCOPE_LINK = 253
RTPROT_BOOT = 3  # what netlink.RouteAdd in Calico's CNI plugin leaves; `ip route` does not print it


def _block_state(root: Path, path: Path, block: IPv4Network, first_ordinal: int) -> dict[str, Any]:
    """The block's free list and who holds what, checked to be what this module writes (state is data)."""
    if not path.exists():
        return {"block": str(block), "free": list(range(first_ordinal, block.num_addresses)), "pods": {}}
    data = state.read_json(root, path)
    ordinals = range(block.num_addresses)
    ok = (isinstance(data, dict) and data.get("block") == str(block) and isinstance(data.get("free"), list)
          and isinstance(data.get("pods"), dict)
          and all(isinstance(o, int) and o in ordinals for o in [*data["free"], *data["pods"].values()])
          and all(isinstance(k, str) for k in data["pods"]))
    if not ok:
        raise state.UnsafeStateError(f"{path} is not the block record k8slab writes for {block}; refusing to use "
                                     "it. `k8slab destroy` removes the lab")
    return data


def allocate(root: Path, path: Path, block: IPv4Network, first_ordinal: int, pod: str) -> IPv4Address:
    """The next free address of the node's block (ordinal order, as Calico's autoAssign)."""
    data = _block_state(root, path, block, first_ordinal)
    if not data["free"]:
        raise CommandFailedError(f"block {block} has no free address left for pod {pod}")
    ordinal = data["free"].pop(0)
    data["pods"][pod] = ordinal
    state.write_json(root, path, data)
    return block.network_address + ordinal


def release(root: Path, path: Path, block: IPv4Network, first_ordinal: int, pod: str) -> None:
    """Give the pod's address back: to the end of the free list, as Calico's release does."""
    data = _block_state(root, path, block, first_ordinal)
    ordinal = data["pods"].pop(pod, None)
    if ordinal is not None:
        data["free"].append(ordinal)
        state.write_json(root, path, data)


def wire(node_ns: Path, pod_ns: Path, pod: str, ip: IPv4Address, mtu: int) -> str:
    """veth cali… (node) <-> eth0 (pod); returns the host side's name."""
    host_if = calico.veth_name(pod)
    fd = os.open(pod_ns, os.O_RDONLY)
    try:
        with nsfs.entered(node_ns):
            ipr = IPRoute()
        try:
            ipr.link("add", ifname=host_if, kind="veth", mtu=mtu, peer={"ifname": "eth0", "net_ns_fd": fd, "mtu": mtu})
            idx = ipr.link_lookup(ifname=host_if)[0]
            ipr.link("set", index=idx, address=calico.HOST_VETH_MAC, state="up")
            with nsfs.entered(node_ns):
                for key, value in (("net.ipv4.conf.{}.route_localnet", "1"), ("net.ipv4.neigh.{}.proxy_delay", "0"),
                                   ("net.ipv4.conf.{}.proxy_arp", "1"), ("net.ipv4.conf.{}.forwarding", "1")):
                    nsfs.write_sysctl(key.format(host_if), value)
        finally:
            ipr.close()
    finally:
        os.close(fd)
    with nsfs.entered(pod_ns):
        ipr = IPRoute()
    try:
        idx = ipr.link_lookup(ifname="eth0")[0]
        ipr.link("set", index=idx, state="up")
        ipr.addr("add", index=idx, address=str(ip), prefixlen=32)
        ipr.route("add", dst=f"{calico.POD_GATEWAY}/32", oif=idx, scope=RT_SCOPE_LINK, proto=RTPROT_BOOT)
        ipr.route("add", dst="0.0.0.0/0", gateway=str(calico.POD_GATEWAY), oif=idx, proto=RTPROT_BOOT)
    finally:
        ipr.close()
    with nsfs.entered(node_ns):
        ipr = IPRoute()
    try:
        ipr.route("add", dst=f"{ip}/32", oif=ipr.link_lookup(ifname=host_if)[0], scope=RT_SCOPE_LINK,
                  proto=RTPROT_BOOT)
    finally:
        ipr.close()
    return host_if


def unwire(node_ns: Path, pod: str) -> None:
    """Remove the pod's veth from its node (its /32 route goes with it); nothing to do if it is gone."""
    if not node_ns.exists():
        return
    with nsfs.entered(node_ns):
        ipr = IPRoute()
    try:
        found = ipr.link_lookup(ifname=calico.veth_name(pod))
        if found:
            ipr.link("del", index=found[0])
    finally:
        ipr.close()
