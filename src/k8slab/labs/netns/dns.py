"""Cluster DNS of the emulated lab: Debian's dnsmasq as the kube-dns pod, behind the kube-dns ClusterIP.

What it answers, from one hosts file k8slab rewrites whenever pods or services change (dnsmasq
rereads it on SIGHUP): node names, pod names, `NAME.NAMESPACE.svc.cluster.local` for services, and
through --synth-domain every `A-B-C-D.default.pod.cluster.local` of the pod CIDR (and its reverse,
so traceroute without -n names the hops at once). Everything else is NXDOMAIN at once (--address=/#/
with no address; the hosts file still wins for its names) and private reverse zones too
(--bogus-priv): nothing waits for an upstream server the lab does not have.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from k8slab.labs.base import Container
from k8slab.labs.kube_proxy import Service, ServicePort
from k8slab.spec.model import LabSpec

DOMAIN = "cluster.local"
NAMESPACE = "kube-system"
SERVICE = "kube-dns"
POD = SERVICE  # the lab's own pod (kube-system's, on a real cluster): kept out of `pod list`, its name refused
DNS_PORT = 53
SEARCH = (f"default.svc.{DOMAIN}", f"svc.{DOMAIN}", DOMAIN)


def is_system(pod: str) -> bool:
    return pod == POD


def cluster_ip(spec: LabSpec) -> IPv4Address:
    """kubeadm's clusterDNS: the 10th address of the service CIDR (10.96.0.10 for 10.96.0.0/12)."""
    return spec.service_cidr.network_address + 10


def resolv_conf(spec: LabSpec) -> str:
    """A pod's /etc/resolv.conf as the kubelet writes it (dnsPolicy ClusterFirst)."""
    return f"nameserver {cluster_ip(spec)}\nsearch {' '.join(SEARCH)}\noptions ndots:5\n"


def service(spec: LabSpec, pod_ip: IPv4Address) -> Service:
    """kube-dns with kubeadm's port names, so its chains are KUBE-SVC-TCOU7JCQXEZGVUNU (dns) and -ERIFXISQEP7F7OF4."""
    return Service(NAMESPACE, SERVICE, cluster_ip(spec),
                   (ServicePort(DNS_PORT, DNS_PORT, "udp", "dns"), ServicePort(DNS_PORT, DNS_PORT, "tcp", "dns-tcp")),
                   (pod_ip,))


@dataclass(frozen=True)
class Name:
    name: str
    ip: IPv4Address


def hosts(spec: LabSpec, pods: Iterable[Name], services: Iterable[Service]) -> str:
    lines = [f"{n.ip}\t{n.name}" for n in spec.nodes]
    lines += [f"{p.ip}\t{p.name}" for p in pods]
    lines += [f"{s.cluster_ip}\t{s.name}.{s.namespace}.svc.{DOMAIN}" for s in services]
    return "\n".join(lines) + "\n"


def container(spec: LabSpec, hosts_file: Path) -> Container:
    command = ("dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", f"--addn-hosts={hosts_file}",
               "--bogus-priv", "--address=/#/", f"--synth-domain=default.pod.{DOMAIN},{spec.pod_cidr}",
               "--local-ttl=5", "--user=root", "--group=root", "--pid-file=", "--log-facility=-")
    return Container("dnsmasq", "kube-dns", command)


# `ip netns exec NS` (how `node exec` enters a node) binds the files of /etc/netns/NS/ over /etc: that is how
# an emulated node gets the /etc/hosts the VirtualBox nodes get from roles/common (every node by its eth1
# address) and a resolv.conf. A node has no upstream DNS here; a server on its own loopback that is not
# there is refused at once (no ICMP rate limit on lo), so an unknown name fails at once instead of hanging.
ETC_NETNS = Path("/etc/netns")


def node_hosts(spec: LabSpec) -> str:
    return "127.0.0.1\tlocalhost\n" + "".join(f"{n.ip}\t{n.name}\n" for n in spec.nodes)


NODE_RESOLV_CONF = ("# k8slab emulated node: names of the lab's nodes come from /etc/hosts; no upstream DNS\n"
                    "nameserver 127.0.0.1\n")


def node_files(spec: LabSpec, netns_of: dict[str, str]) -> dict[Path, str]:
    """/etc/netns/<node namespace>/{hosts,resolv.conf} for every node (netns_of: node -> its namespace)."""
    files = {}
    for node in spec.nodes:
        folder = ETC_NETNS / netns_of[node.name]
        files[folder / "hosts"] = node_hosts(spec)
        files[folder / "resolv.conf"] = NODE_RESOLV_CONF
    return files


def remove_node_files(prefix: str) -> None:
    """Every /etc/netns/<prefix>* folder (destroy: also those of a crashed run)."""
    if not ETC_NETNS.is_dir() or ETC_NETNS.is_symlink():
        return
    for folder in ETC_NETNS.iterdir():
        if folder.name.startswith(prefix):
            if folder.is_symlink() or not folder.is_dir():
                folder.unlink()
            else:
                shutil.rmtree(folder)
    with contextlib.suppress(OSError):
        ETC_NETNS.rmdir()  # only when empty: another lab's or tool's files keep it
