"""ClusterIP services of the emulated lab and the kube-proxy work they need: one JSON record per service,
addresses from the service CIDR, and every node's nat table kept as kube-proxy's iptables mode keeps it
(kube_proxy.py writes the rules; here they are applied to each node namespace with iptables-restore).
The cluster DNS's hosts file follows the same sync, so names and chains always match the pods."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from k8slab.errors import CommandFailedError, LabStateError
from k8slab.labs.kube_proxy import Service, ServicePort, restore_input, rules
from k8slab.labs.netns import containers, dns, names, nsfs, state
from k8slab.labs.netns.state import PodRecord
from k8slab.spec.model import LabSpec

NAMESPACE = "default"
# The apiserver's ClusterIP (.1, the `kubernetes` service) and kube-dns's (.10) are kubeadm's; never handed out.
RESERVED = (1, 10)


@dataclass(frozen=True)
class ServiceRecord:
    name: str
    cluster_ip: str
    port: int
    target_port: int
    protocol: str
    pods: list[str]


def validate(data: Any, expect_name: str, spec: LabSpec) -> ServiceRecord:
    """A service record as this lab writes it, else UnsafeStateError (state on disk is data, checked)."""
    def bad(why: str) -> state.UnsafeStateError:
        return state.UnsafeStateError(f"the record of service {expect_name!r} is not one this lab wrote ({why}); "
                                      "`k8slab destroy` removes the lab without reading it")

    kinds = {"name": str, "cluster_ip": str, "port": int, "target_port": int, "protocol": str, "pods": list}
    if not isinstance(data, dict) or set(data) != set(kinds):
        raise bad("not the fields of a service")
    if any(not isinstance(data[k], t) or isinstance(data[k], bool) for k, t in kinds.items()):
        raise bad("a field of the wrong type")
    if data["name"] != expect_name or data["protocol"] not in ("tcp", "udp"):
        raise bad("another name or protocol")
    if not all(isinstance(p, str) and not names.pod_name_problem(p) for p in data["pods"]):
        raise bad("a pod that is no pod name")
    if not all(0 < data[k] < 65536 for k in ("port", "target_port")):
        raise bad("a port out of range")
    try:
        if IPv4Address(data["cluster_ip"]) not in spec.service_cidr:
            raise ValueError
    except ValueError:
        raise bad(f"address {data['cluster_ip'][:40]!r} is not in the service CIDR") from None
    return ServiceRecord(**data)


def services_dir(state_dir: Path) -> Path:
    return state_dir / "services"


def dns_hosts_file(state_dir: Path) -> Path:
    return state_dir / "dns" / "hosts"


def records(spec: LabSpec, root: Path, state_dir: Path) -> list[ServiceRecord]:
    folder = services_dir(state_dir)
    try:
        state.check_dirs(root, folder)
        entries = sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        if entry.startswith(".") or not entry.endswith(".json"):
            continue  # a write in progress
        name = entry[:-len(".json")]
        if names.pod_name_problem(name):
            raise state.UnsafeStateError(f"{folder} holds {entry[:80]!r}, which is no service's record; "
                                         "`k8slab destroy` removes the lab without reading it")
        found.append(validate(state.read_json(root, folder / entry), name, spec))
    return found


def allocate(spec: LabSpec, taken: set[IPv4Address]) -> IPv4Address:
    """The lowest free address of the service CIDR (kube-apiserver picks at random; lowest reads better)."""
    net = spec.service_cidr
    reserved = {net.network_address + i for i in RESERVED}
    for ip in net.hosts():
        if ip not in taken and ip not in reserved:
            return ip
    raise LabStateError(f"the service CIDR {net} has no free address left; delete a service")


def expose_problems(spec: LabSpec, name: str, port: int, target_port: int, pods: Sequence[str],
                    known_pods: set[str], existing: set[str]) -> list[str]:
    found = []
    if problem := names.pod_name_problem(name):
        found.append(problem.replace("pod name", "service name", 1))
    if name in existing:
        found.append(f"service {name!r} exists; `service delete {name}` first or pick another name")
    for value, flag in ((port, "--port"), (target_port, "--target-port")):
        if not 0 < value < 65536:
            found.append(f"{flag} {value} is not a port number (1-65535)")
    if not pods:
        found.append("name the pods behind the service, e.g. --pods web-1,web-2")
    missing = [p for p in pods if p not in known_pods]
    if missing:
        found.append(f"no pod named {', '.join(missing)}; pods: {', '.join(sorted(known_pods)) or 'none'}")
    return found


def to_services(recs: Sequence[ServiceRecord], pods: Sequence[PodRecord]) -> list[Service]:
    """Services with the addresses of those of their pods that exist, in the order they were named."""
    ip_of = {p.name: IPv4Address(p.ip) for p in pods if p.ip}
    return [Service(NAMESPACE, r.name, IPv4Address(r.cluster_ip),
                    (ServicePort(r.port, r.target_port, r.protocol),),
                    tuple(ip_of[p] for p in r.pods if p in ip_of)) for r in recs]


def cluster_services(spec: LabSpec, root: Path, state_dir: Path, pods: Sequence[PodRecord]) -> list[Service]:
    """Every service the nodes' chains carry: the user's and, when its pod exists, kube-dns."""
    found = to_services(records(spec, root, state_dir), pods)
    dns_pod = next((p for p in pods if p.name == dns.POD and p.ip), None)
    if dns_pod is not None:
        found.append(dns.service(spec, IPv4Address(dns_pod.ip)))
    return found


def sync(spec: LabSpec, root: Path, state_dir: Path, pods: Sequence[PodRecord]) -> None:
    """Make every node's nat table and the DNS names match the services and pods on disk now. The nat
    tables are rewritten only when the rules change (most pods are no service's endpoint)."""
    services = cluster_services(spec, root, state_dir, pods)
    wanted = "\n".join(rules(services, spec.pod_cidr)[1]).encode()
    applied = state_dir / "kube-proxy.rules"
    if not applied.exists() or state.read_bytes(root, applied) != wanted:
        for node in spec.nodes:
            apply(names.node_netns(spec.name, node.name), services, spec)
        state.write_bytes(root, applied, wanted)
    write_dns_hosts(spec, root, state_dir, services, pods)


def _in_netns(netns: str, argv: list[str], stdin: str | None = None) -> str:
    with nsfs.entered(nsfs.netns_path(netns)):
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    out, err = proc.communicate(stdin, timeout=60)
    if proc.returncode != 0:
        raise CommandFailedError(f"{argv[0]} in {netns} failed: {err.strip()}")
    return out


def saved_nat(netns: str) -> str:
    return _in_netns(netns, ["iptables-save", "-t", "nat"])


def apply(netns: str, services: Sequence[Service], spec: LabSpec) -> None:
    _in_netns(netns, ["iptables-restore", "--noflush"], restore_input(services, spec.pod_cidr, saved_nat(netns)))


def write_dns_hosts(spec: LabSpec, root: Path, state_dir: Path, services: Sequence[Service],
                    pods: Sequence[PodRecord]) -> None:
    """The DNS pod's hosts file, then SIGHUP to its dnsmasq so it rereads it (if it runs)."""
    named = [dns.Name(p.name, IPv4Address(p.ip)) for p in pods if p.ip and not dns.is_system(p.name)]
    state.write_bytes(root, dns_hosts_file(state_dir), dns.hosts(spec, named, services).encode())
    init = containers.running(nsfs.netns_path(names.pod_netns(spec.name, dns.POD))).get("dnsmasq")
    for pid in containers.children(init) if init is not None else []:
        # dnsmasq itself: its container's PID 1 (sh, the supervisor) would ignore it, and while dnsmasq is
        # backing off after a crash the child is the supervisor's sleep, which a SIGHUP would cut short
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):  # gone meanwhile: nothing to reread
            if Path(f"/proc/{pid}/comm").read_text().strip() == "dnsmasq":
                os.kill(pid, signal.SIGHUP)


def expose(spec: LabSpec, root: Path, state_dir: Path, name: str, port: int, target_port: int, pods: Sequence[str],
           known: Sequence[PodRecord], protocol: str = "tcp") -> ServiceRecord:
    """Record a ClusterIP service and program it on every node; refused before anything changes if it cannot be."""
    existing = records(spec, root, state_dir)
    users = {p.name for p in known if not dns.is_system(p.name)}
    problems = expose_problems(spec, name, port, target_port, pods, users, {r.name for r in existing})
    if problems:
        raise LabStateError("; ".join(problems))
    ip = allocate(spec, {IPv4Address(r.cluster_ip) for r in existing})
    rec = ServiceRecord(name, str(ip), port, target_port, protocol, list(dict.fromkeys(pods)))
    path = services_dir(state_dir) / f"{name}.json"
    state.write_json(root, path, asdict(rec))
    try:
        sync(spec, root, state_dir, known)
    except BaseException:
        path.unlink(missing_ok=True)
        sync(spec, root, state_dir, known)
        raise
    return rec


def delete(spec: LabSpec, root: Path, state_dir: Path, name: str, known: Sequence[PodRecord]) -> ServiceRecord:
    found = {r.name: r for r in records(spec, root, state_dir)}
    if name not in found:
        raise LabStateError(f"no service named {name!r}; services: {', '.join(found) or 'none'}")
    (services_dir(state_dir) / f"{name}.json").unlink()
    sync(spec, root, state_dir, known)
    return found[name]
