"""Calico's dataplane as facts, computed from the spec alone: blocks, devices, addresses, routes, MTU.

Each fact below was checked against Calico's own source (projectcalico/calico) or docs; the emulated
lab builds from these and the expectations judge a lab against them, so both say the same thing.

- Pods (cni-plugin/pkg/dataplane/linux/dataplane_linux.go, DoNetworking): the pod's eth0 holds its
  address as a /32; the pod gets `169.254.1.1 dev eth0 scope link` and `default via 169.254.1.1`.
  The host end is `cali` + the first 11 hex digits of sha1("<namespace>.<pod>")
  (VethNameForWorkload), MAC ee:ee:ee:ee:ee:ee, no address, and the sysctls proxy_arp=1,
  neigh proxy_delay=0, forwarding=1, route_localnet=1. The node gets `<pod>/32 dev cali… scope link`.
  Proxy ARP answers for 169.254.1.1 only because the node has a route to it through another device
  (its default route): a node without one cannot serve Calico pods (projectcalico/calico#8481).
- IPAM (libcalico-go/lib/ipam): the pool is cut into blocks of `blockSize` (default 26; IPv4 allows
  20..32); a node claims a block (a BlockAffinity) picked by a generator seeded with a hash of its
  hostname (randomBlockGenerator), and hands out the block's addresses in order, ordinal 0 first:
  every address of a block is usable, the network address included (Calico is fully routed). A
  released ordinal goes to the back of the block's free list. The emulated lab gives node i the
  i-th block, in node order; the VirtualBox lab reads the blocks from the cluster (block affinities).
- Tunnel devices take the first address of the node's block (calico-node allocates it before any
  pod): `tunl0` for IPIP (the kernel's fallback ipip device, MTU 1500-20) and `vxlan.calico` for
  VXLAN (VNI 4096, UDP 4789: felix/config/config_params.go VXLANVNI/VXLANPort; MTU 1500-50),
  both with a /32.
- Routes between nodes. BGP modes (None, IPIP, IPIPCrossSubnet): BIRD, full-mesh iBGP on the node
  address (AS 64512), exports the node's blocks (calico_aggr: the block, nothing beneath it) and
  programs what it learns into the kernel (`proto bird`): `<block> via <peer> dev eth1`, or
  `dev tunl0 onlink` when the pool's ipipMode says to encapsulate (confd bird_ipam.cfg.template,
  krt_tunnel), and its static protocol blackholes the node's own blocks (bird_aggr.cfg.template).
  VXLAN modes: Felix programs every route itself and BIRD's kernel export rejects them
  (bird_ipam.cfg.template): `<block> via <peer's vxlan.calico address> dev vxlan.calico onlink`,
  same-subnet peers `<block> via <peer> dev eth1` in CrossSubnet mode (route_mgr.go noEncapRoute),
  and the blackhole for its own block, all `proto 80` (dataplanedefs.DefaultRouteProto) except the
  tunnel routes, which Felix identifies by their device.
- CrossSubnet: encapsulate only towards a node outside this node's subnet (the host-only network
  holds every node here, so no traffic is encapsulated in the tutorial's lab).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from k8slab.spec.facts import ETH_MTU

POD_GATEWAY = IPv4Address("169.254.1.1")
HOST_VETH_MAC = "ee:ee:ee:ee:ee:ee"
VETH_PREFIX = "cali"
POD_NAMESPACE = "default"
IPIP_IF = "tunl0"
VXLAN_IF = "vxlan.calico"
VXLAN_VNI = 4096
VXLAN_PORT = 4789
IPIP_OVERHEAD = 20  # an outer IPv4 header (protocol 4)
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
BGP_AS = 64512
PROTO_BIRD = 12  # RTPROT_BIRD: `ip route` prints "proto bird"
PROTO_FELIX = 80  # felix/dataplane/linux/dataplanedefs.DefaultRouteProto
ENCAPSULATIONS = ("None", "IPIP", "VXLAN", "IPIPCrossSubnet", "VXLANCrossSubnet")
DEFAULT_ENCAPSULATION = "VXLANCrossSubnet"  # the Tigera operator's default IPPool
DEFAULT_BLOCK_SIZE = 26
MIN_BLOCK_SIZE, MAX_BLOCK_SIZE = 20, 32


@dataclass(frozen=True)
class CalicoConfig:
    """The cni: section of lab.yaml for Calico, in Calico's own IPPool vocabulary."""

    encapsulation: str = DEFAULT_ENCAPSULATION
    block_size: int = DEFAULT_BLOCK_SIZE

    @property
    def tunnel(self) -> str | None:
        """The tunnel device the pool needs on every node, None for encapsulation None."""
        if self.encapsulation.startswith("IPIP"):
            return IPIP_IF
        if self.encapsulation.startswith("VXLAN"):
            return VXLAN_IF
        return None

    @property
    def uses_bgp(self) -> bool:
        """BIRD programs the routes (None, IPIP*); in VXLAN modes Felix does, without BGP."""
        return not self.encapsulation.startswith("VXLAN")

    @property
    def cross_subnet(self) -> bool:
        return self.encapsulation.endswith("CrossSubnet")

    @property
    def overhead(self) -> int:
        return {IPIP_IF: IPIP_OVERHEAD, VXLAN_IF: VXLAN_OVERHEAD}.get(self.tunnel or "", 0)

    @property
    def pod_mtu(self) -> int:
        """Calico's auto-detected MTU: the NIC's less the pool's encapsulation (also in CrossSubnet mode,
        where some paths are encapsulated)."""
        return ETH_MTU - self.overhead

    def encapsulates(self, src: IPv4Address, dst: IPv4Address, subnet: IPv4Network) -> bool:
        """Whether traffic from the node at src to the node at dst is tunnelled."""
        if self.tunnel is None:
            return False
        if self.cross_subnet:
            return not (src in subnet and dst in subnet)
        return True

    def describe(self) -> str:
        return f"calico {self.encapsulation}, blocks /{self.block_size}"


def blocks(pod_cidr: IPv4Network, block_size: int, count: int) -> list[IPv4Network]:
    """The first count blocks of the pool, in order (the emulated lab's block per node)."""
    found = []
    for block in pod_cidr.subnets(new_prefix=block_size):
        if len(found) == count:
            break
        found.append(block)
    return found


def tunnel_address(block: IPv4Network) -> IPv4Address:
    """Ordinal 0 of the node's block, claimed by calico-node for tunl0 / vxlan.calico before any pod."""
    return block.network_address


def first_pod_ordinal(config: CalicoConfig) -> int:
    return 1 if config.tunnel else 0


def veth_name(pod: str, namespace: str = POD_NAMESPACE) -> str:
    """The host-side veth Calico's CNI plugin names for a pod (VethNameForWorkload)."""
    return VETH_PREFIX + hashlib.sha1(f"{namespace}.{pod}".encode()).hexdigest()[:11]


def vtep_mac(node_ip: IPv4Address) -> str:
    """vxlan.calico's MAC for a node: locally administered, derived from its address (calico-node picks a
    random one and publishes it on its Node; deriving it keeps the plan a pure function of the spec)."""
    return "66:ca:" + ":".join(f"{b:02x}" for b in node_ip.packed)


def parse_bird_protocols(text: str) -> dict[str, str]:
    """BGP rows of `birdc show protocols` (Name Proto Table State Since Info) -> {name: "state info"}."""
    found = {}
    for line in text.splitlines():
        cols = line.split()
        if len(cols) >= 4 and cols[1] == "BGP":
            found[cols[0]] = " ".join(cols[3:4] + cols[5:])
    return found


def mesh_name(ip: IPv4Address) -> str:
    """calico-node's name for the BGP session to a mesh peer (bird.cfg.template): Mesh_192_168_56_11."""
    return "Mesh_" + str(ip).replace(".", "_")
