"""Fixed facts of the tutorial's world: what VirtualBox, Kubernetes and flannel decide, not lab.yaml.

Every module that needs one of these imports it from here, so a fact is written once; what
each one means on the wire is told in docs/network.md.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

# VirtualBox NAT: every VM's NAT NIC gets the same addresses on a private link of its own.
NAT_NETWORK = IPv4Network("10.0.2.0/24")
NAT_ADDRESS = IPv4Address("10.0.2.15")
NAT_GATEWAY = IPv4Address("10.0.2.2")
NAT_DNS = IPv4Address("10.0.2.3")
# VirtualBox 6.1.28+ refuses host-only addresses outside this range unless /etc/vbox/networks.conf allows them.
VBOX_HOST_ONLY_RANGE = IPv4Network("192.168.56.0/21")

# Interface names: the Vagrant box's two NICs, the bridge plugin's bridge, flannel's VXLAN device, a pod's NIC.
NAT_IF = "eth0"
HOST_ONLY_IF = "eth1"
BRIDGE_IF = "cni0"
VXLAN_IF = "flannel.1"
POD_IF = "eth0"
LOOPBACK = IPv4Interface("127.0.0.1/8")
DEFAULT_ROUTE = IPv4Network("0.0.0.0/0")

# flannel's vxlan backend on Linux: VNI 1 and the kernel's default UDP port 8472 (flannel's
# Documentation/backends.md: "defaults to kernel default, currently 8472"). 4789 is the port IANA
# assigned to VXLAN later; flannel uses it only on Windows. 50 bytes of outer headers under a 1500 MTU.
VXLAN_VNI = 1
VXLAN_PORT = 8472
VXLAN_OVERHEAD = 50
ETH_MTU = 1500
# flannel's ipip backend (pkg/backend/ipip/ipip.go): its own device flannel.ipip (local = the node's eth1
# address, so it is not the namespace's fallback tunl0), MTU 20 below the NIC's, the subnet's network
# address as a /32, and routes `<peer subnet> via <peer eth1> dev flannel.ipip onlink`.
FLANNEL_IPIP_IF = "flannel.ipip"
IPIP_OVERHEAD = 20

# kube-controller-manager's default --node-cidr-mask-size for IPv4: one /24 per node.
NODE_CIDR_PREFIX = 24

ROLES = ("control-plane", "worker")
CNI_PLUGINS = ("flannel", "calico")
CNI_BACKENDS = ("host-gw", "vxlan", "ipip")  # flannel's backends (ipip: pkg/backend/ipip)
# kubeadm's preflight checks refuse a control plane with less (NumCPU, Mem).
CONTROL_PLANE_MIN_CPUS = 2
CONTROL_PLANE_MIN_MEMORY_MB = 1700

# Patterns are used with fullmatch only, ASCII classes only: `$` would accept a trailing newline ("1.31\n")
# and `\d` any Unicode digit ("1.٣١").
# A node or pod name becomes a hostname and a Kubernetes name: an RFC 1123 DNS label.
DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
# A lab name prefixes namespaces and interface names, whose 15-byte limit keeps it short.
LAB_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?")
KUBERNETES_MINOR = re.compile(r"1\.[0-9]{2}")
# Names the emulated lab gives its own namespaces next to the nodes' (k8slab-<lab>_hostonly, _nat-<node>,
# _pod-<pod>): a node named like them would share a namespace with the switch, a NAT end or a pod.
NETNS_HOSTONLY = "hostonly"
NETNS_POD_PREFIX = "pod-"
NETNS_NAT_PREFIX = "nat-"
# What VirtualBox accepts for a VM (include/VBox/param.h: VMM_MAX_CPU_COUNT 64, MM_RAM_MAX_IN_MB 2097152 on
# 64-bit hosts); beyond it `vagrant up` fails late, after the other VMs were made.
MAX_CPUS = 64
MIN_MEMORY_MB = 512
MAX_MEMORY_MB = 2_097_152
