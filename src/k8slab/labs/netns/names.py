"""Where the emulated lab lives on this machine: namespace names, interface names, state paths.

Every name starts with the lab's prefix `k8slab-<lab>_`, so leftovers of any run (also a crashed
one) are found by that prefix alone, and two labs with different names never share anything.
Lab names are [a-z0-9-]; the `_` ends the prefix so lab "a" never matches lab "a-2".
"""

from __future__ import annotations

from pathlib import Path

from k8slab.labs.base import name_problem
from k8slab.spec.facts import NETNS_HOSTONLY, NETNS_NAT_PREFIX, NETNS_POD_PREFIX
from k8slab.spec.model import Node

NETNS_DIR = Path("/run/netns")  # where `ip netns` keeps named namespaces; `ip netns list` reads it
STATE_ROOT = Path("/run/k8slab")  # tmpfs on most systems: a reboot clears a lab the kernel forgot anyway

HOSTONLY = NETNS_HOSTONLY
POD_PREFIX = NETNS_POD_PREFIX
NAT_PREFIX = NETNS_NAT_PREFIX

# The VirtualBox host's adapter on the host-only network is vboxnet0; the emulated host keeps the name.
HOSTONLY_BRIDGE = "vboxnet0"
# The far end of a node's eth0: VirtualBox's NAT engine, which answers as the gateway and DNS.
NAT_PEER_IF = "vboxnat"
IFNAMSIZ = 15

def prefix(lab: str) -> str:
    return f"k8slab-{lab}_"


def hostonly_netns(lab: str) -> str:
    return f"{prefix(lab)}{HOSTONLY}"


def node_netns(lab: str, node: str) -> str:
    return f"{prefix(lab)}{node}"


def nat_netns(lab: str, node: str) -> str:
    return f"{prefix(lab)}{NAT_PREFIX}{node}"


def pod_netns(lab: str, pod: str) -> str:
    return f"{prefix(lab)}{POD_PREFIX}{pod}"


def hostonly_port(node: Node) -> str:
    """The host-only switch's port for a node: index first, so truncation never makes two alike."""
    return f"n{node.index}-{node.name}"[:IFNAMSIZ]


def pod_name_problem(name: str) -> str | None:
    return name_problem("pod", name)


class StatePaths:
    """The files one lab keeps under /run/k8slab/<lab>/ (all removed by destroy)."""

    def __init__(self, lab: str, root: Path = STATE_ROOT):
        self.root = root
        self.dir = root / lab

    @property
    def lock(self) -> Path:
        return self.dir / "lock"

    @property
    def session_lock(self) -> Path:
        """Held by a verify or walkthrough for its whole run: one at a time per lab."""
        return self.dir / "session.lock"

    @property
    def lab_file(self) -> Path:
        """Written last by `up`: its presence is what "the lab is up" means."""
        return self.dir / "lab.json"

    @property
    def pods_dir(self) -> Path:
        return self.dir / "pods"

    def pod_file(self, pod: str) -> Path:
        return self.pods_dir / f"{pod}.json"

    @property
    def uts_dir(self) -> Path:
        return self.dir / "uts"

    def node_uts(self, node: str) -> Path:
        return self.uts_dir / node

    def pod_uts(self, pod: str) -> Path:
        return self.uts_dir / f"{POD_PREFIX}{pod}"

    def ipam_dir(self, node: str) -> Path:
        """host-local's dataDir for one node (kubelet's is /var/lib/cni/networks on a real node)."""
        return self.dir / "ipam" / node

    def calico_block(self, node: str) -> Path:
        """The node's Calico block: its free list and the pods holding addresses (Calico's datastore)."""
        return self.dir / "ipam" / f"{node}.calico.json"

    @property
    def bird_dir(self) -> Path:
        """BIRD's configs, control sockets, pid files and logs, one set per node."""
        return self.dir / "bird"

    def cni_conf(self, node: str) -> Path:
        """The node's CNI config as flannel writes it, kept for people to read (`/etc/cni/net.d` on a VM)."""
        return self.dir / "cni" / f"{node}.json"
