"""The lab as k8slab sees it: a frozen LabSpec of Nodes, and the values derived from it.

Everything else in k8slab (Vagrantfile, Ansible variables, the emulated lab, the expected
results) reads a LabSpec; no address of the tutorial's lab is written anywhere else. Reading
and validating lab.yaml is load.py's job; the fixed facts live in facts.py.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from k8slab.errors import UsageError
from k8slab.spec import calico as calico_facts
from k8slab.spec.calico import CalicoConfig
from k8slab.spec.facts import NODE_CIDR_PREFIX


@dataclass(frozen=True)
class Node:
    name: str
    role: str
    ip: IPv4Address
    cpus: int
    memory: int
    index: int
    pod_subnet: IPv4Network
    pod_gateway: IPv4Address

    @property
    def is_control_plane(self) -> bool:
        return self.role == "control-plane"


@dataclass(frozen=True)
class LabSpec:
    name: str
    box_name: str
    box_version: str
    host_only: IPv4Network
    k8s_version: str
    pod_cidr: IPv4Network
    service_cidr: IPv4Network
    cni_plugin: str
    cni_backend: str
    cni_interface: str
    nodes: tuple[Node, ...]
    source: str = "lab.yaml"
    calico: CalicoConfig | None = None  # set when cni_plugin is calico (cni_backend is then "")

    @property
    def dataplane(self) -> str:
        """The CNI and its mode in a few words: "flannel host-gw", "calico VXLANCrossSubnet"."""
        if self.calico is not None:
            return f"calico {self.calico.encapsulation}"
        return f"{self.cni_plugin} {self.cni_backend}"

    @property
    def host_ip(self) -> IPv4Address:
        """The VirtualBox host's own address on the host-only network."""
        return self.host_only.network_address + 1

    @property
    def control_plane(self) -> Node:
        return next(n for n in self.nodes if n.is_control_plane)

    @property
    def workers(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if not n.is_control_plane)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        known = ", ".join(n.name for n in self.nodes)
        # A mistyped node name on the command line, not a fault of lab.yaml.
        raise UsageError(f"there is no node {name!r} in lab {self.name!r} ({self.source}); "
                            f"its nodes are: {known}")

    def node_by_ip(self, ip: IPv4Address | str) -> Node | None:
        """The node whose eth1 address, pod gateway or pod subnet holds ip, if any."""
        addr = IPv4Address(str(ip))
        for n in self.nodes:
            if addr == n.ip or addr in n.pod_subnet:
                return n
        return None

    def command(self, rest: str, backend: str | None = None, inventory: Path | str | None = None) -> str:
        """A k8slab command line for this lab: --spec when it is not the default lab.yaml, and the backend (and
        inventory) in use, before the subcommand so a `-- CMD` at the end of rest stays last."""
        words = ["k8slab"] + ([f"--spec {self.source}"] if self.source != "lab.yaml" else [])
        words += ([f"--backend {backend}"] if backend else []) + ([f"--inventory {inventory}"] if inventory else [])
        return " ".join([*words, rest])

    def with_dataplane(self, dataplane: str) -> LabSpec:
        """The same lab with another dataplane, "flannel vxlan" or "calico VXLAN" (pod subnets re-derived:
        /24s for flannel, one block per node for Calico, as lab.yaml with that cni: section would give)."""
        plugin, mode = dataplane.split()
        if plugin == "calico":
            conf = CalicoConfig(mode, self.calico.block_size if self.calico else calico_facts.DEFAULT_BLOCK_SIZE)
            subnets = calico_facts.blocks(self.pod_cidr, conf.block_size, len(self.nodes))
            nodes = tuple(replace(n, pod_subnet=b, pod_gateway=calico_facts.POD_GATEWAY)
                          for n, b in zip(self.nodes, subnets))
            return replace(self, cni_plugin=plugin, cni_backend="", calico=conf, nodes=nodes)
        subnets = list(self.pod_cidr.subnets(new_prefix=NODE_CIDR_PREFIX))[:len(self.nodes)]
        nodes = tuple(replace(n, pod_subnet=s, pod_gateway=s.network_address + 1) for n, s in zip(self.nodes, subnets))
        return replace(self, cni_plugin=plugin, cni_backend=mode, calico=None, nodes=nodes)

    def renamed(self, name: str) -> LabSpec:
        """The same lab under another name, so two copies can be up side by side."""
        return replace(self, name=name)
