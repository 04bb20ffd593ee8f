"""The catalogue of classic faults of this lab, as data: what breaks it, what repairs it, which checks
must then fail with which cause, and hints from vague to precise. One source for the fault-injection
acceptance suite (tests/acceptance/test_faults.py) and for a class's exercises (`k8slab exercise`).

Every break and repair is a list of Commands run through the Lab interface (node exec, or exec in a
pod), so a fault is made the same way on the emulated lab and on VirtualBox VMs; each is computed from
the spec and the pair of nodes the fault involves, so it can be redone from a record of its id and nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Interface

from k8slab.errors import CommandFailedError, LabStateError
from k8slab.labs.base import Lab, Pod
from k8slab.spec import calico
from k8slab.spec.expect import RouteExpectation, node_interfaces, node_routes
from k8slab.spec.facts import BRIDGE_IF, FLANNEL_IPIP_IF, HOST_ONLY_IF, NAT_ADDRESS, NAT_GATEWAY, NAT_IF
from k8slab.spec.model import LabSpec, Node
from k8slab.verify import checks, diagnose, diagnose_calico, diagnose_ipip, names
from k8slab.verify.advice import VIRTUALBOX, Advice

EASY, HARD = "easy", "hard"
LEVELS = (EASY, HARD)


@dataclass(frozen=True)
class Command:
    """One command that breaks or repairs: on a node, or in a pod (on `where` = the pod's name)."""

    where: str
    argv: tuple[str, ...]
    in_pod: bool = False

    def text(self, lab: Lab | None = None) -> str:
        """As a k8slab command line (for the lab given: its spec and backend)."""
        rest = f"{'pod' if self.in_pod else 'node'} exec {self.where} -- {' '.join(self.argv)}"
        return lab.command(rest) if lab else f"k8slab {rest}"


def run_commands(lab: Lab, commands: tuple[Command, ...]) -> None:
    for c in commands:
        res = lab.pod_run(c.where, list(c.argv)) if c.in_pod else lab.node_run(c.where, list(c.argv))
        if not res.ok:
            raise CommandFailedError(f"`{c.text(lab)}` failed: {(res.stderr or res.stdout).strip()}")


@dataclass(frozen=True)
class Pair:
    """The two nodes a fault involves (the tutorial's cross-node trace goes from src's pod to dst's), and
    for a fault made on a pod, the pod on dst it is made on."""

    spec: LabSpec
    src: Node
    dst: Node
    pod: Pod | None = None
    advice: Advice = VIRTUALBOX  # the lab in use: the causes' fixes are worded for it

    def trace(self, a: Node, b: Node) -> str:
        return names.pod_trace_name(self.spec, a, b)

    def cross_traces(self, node: Node) -> list[str]:
        """Every cross-node trace with one end on node."""
        others = [n for n in self.spec.nodes if n.name != node.name]
        return [self.trace(node, o) for o in others] + [self.trace(o, node) for o in others]

    def peer_route(self) -> RouteExpectation:
        """The route src must have to dst's pods (flannel's, for the spec's backend)."""
        return next(r for r in node_routes(self.spec, self.src) if r.peer == self.dst.name)

    def bystander(self) -> Node:
        """A node that is neither end of the pair: a wrong next hop that still forwards."""
        return next(n for n in self.spec.nodes if n.name not in (self.src.name, self.dst.name))


@dataclass(frozen=True)
class Fault:
    id: str
    title: str
    level: str
    breaks: Callable[[Pair], tuple[Command, ...]]
    repairs: Callable[[Pair], tuple[Command, ...]]
    expect: Callable[[Pair], dict[str, str]]      # failing check name -> text its cause must contain
    hints: Callable[[Pair], tuple[str, ...]]      # from vague to precise
    answer: Callable[[Pair], str]                 # what was done, in a sentence
    min_nodes: int = 2
    # The dataplane it is made on: "flannel" or "calico" (any mode), or Calico with one pool mode ("calico VXLAN").
    dataplane: str = "flannel"
    # False: no use for an exercise: it is made on a pod (exercises pick pairs of nodes), or needs something a
    # fresh lab may not have (cni0 exists only once a pod ran on the node), or the emulated lab's internals.
    # (verify no longer hides forwarding off: it reads the node before its pods and sets back what they change.)
    exercise: bool = True


def _route_argv(r: RouteExpectation) -> tuple[str, ...]:
    return ("ip", "route", "replace", *str(r.route).split())


def _restore_route(p: Pair) -> tuple[Command, ...]:
    return (Command(p.src.name, _route_argv(p.peer_route())),)


def _route_hints(p: Pair) -> tuple[str, ...]:
    r = p.peer_route()
    return ((f"pods on different nodes cannot reach each other everywhere: which traces fail? "
             f"(`{p.spec.command('verify --failed')}`)"),
            f"look at the routing table of {p.src.name}: `{p.spec.command(f'node exec {p.src.name} -- ip route')}`",
            (f"{p.src.name} must route {p.dst.name}'s pod subnet as flannel {p.spec.cni_backend} does: "
             f"`ip route` shows `{r.route}`"))


def _sysctl(value: int):
    return lambda p: (Command(p.dst.name, ("sysctl", "-q", "-w", f"net.ipv4.ip_forward={value}")),)


def _pod_break(p: Pair) -> tuple[Command, ...]:
    assert p.pod is not None, "this fault is made on a pod"
    # A /24 of the pod CIDR that no node owns: what a stale IPAM range would hand out.
    stray = list(p.spec.pod_cidr.subnets(new_prefix=p.dst.pod_subnet.prefixlen))[len(p.spec.nodes)]
    return (Command(p.pod.name, ("ip", "addr", "flush", "dev", "eth0"), True),
            Command(p.pod.name, ("ip", "addr", "add", f"{stray.network_address + 7}/{stray.prefixlen}", "dev", "eth0"),
                    True))


def _pod_repair(p: Pair) -> tuple[Command, ...]:
    assert p.pod is not None, "this fault is made on a pod"
    gw = str(p.dst.pod_gateway)
    # The address back, then the routes the CNI config gave the pod: default and the pod CIDR, via cni0.
    return (Command(p.pod.name, ("ip", "addr", "flush", "dev", "eth0"), True),
            Command(p.pod.name, ("ip", "addr", "add", str(IPv4Interface(f"{p.pod.ip}/{p.dst.pod_subnet.prefixlen}")),
                                 "dev", "eth0"), True),
            Command(p.pod.name, ("ip", "route", "replace", "default", "via", gw, "dev", "eth0"), True),
            Command(p.pod.name, ("ip", "route", "replace", str(p.spec.pod_cidr), "via", gw, "dev", "eth0"), True))


FAULTS: tuple[Fault, ...] = (
    Fault("peer-route-deleted", "a peer route deleted", EASY,
          lambda p: (Command(p.src.name, ("ip", "route", "del", str(p.dst.pod_subnet))),), _restore_route,
          lambda p: {
              names.route_name(p.peer_route()): f"the route to {p.dst.name}'s pod subnet is missing on {p.src.name}",
              p.trace(p.src, p.dst): f"{p.src.name} has no route to {p.dst.name}'s pod subnet {p.dst.pod_subnet}",
              p.trace(p.dst, p.src): f"{p.src.name} has no route to {p.dst.name}'s pod subnet",
          }, _route_hints,
          lambda p: f"{p.src.name}'s route to {p.dst.name}'s pod subnet {p.dst.pod_subnet} was deleted"),
    Fault("peer-route-on-eth0", "a peer route pointed at eth0", HARD,
          lambda p: (Command(p.src.name, ("ip", "route", "replace", str(p.dst.pod_subnet), "via", str(NAT_GATEWAY),
                                          "dev", NAT_IF)),), _restore_route,
          lambda p: {
              names.route_name(p.peer_route()): diagnose.on_nat(p.advice),
              checks.eth0_routes_name(p.src): diagnose.on_nat(p.advice),
              p.trace(p.src, p.dst): diagnose.on_nat(p.advice),
              p.trace(p.dst, p.src): diagnose.on_nat(p.advice),
          }, _route_hints,
          lambda p: (f"{p.src.name}'s route to {p.dst.name}'s pod subnet {p.dst.pod_subnet} was pointed at "
                     f"{NAT_IF} (via {NAT_GATEWAY}, VirtualBox's NAT), as a flannel bound to {NAT_IF} would do")),
    Fault("peer-route-via-another-node", "a peer route via another node's eth1", HARD,
          lambda p: (Command(p.src.name, ("ip", "route", "replace", str(p.dst.pod_subnet), "via", str(p.bystander().ip),
                                          "dev", HOST_ONLY_IF)),), _restore_route,
          lambda p: {
              names.route_name(p.peer_route()): f"wrong next hop {p.bystander().ip} ({p.bystander().name}'s",
              p.trace(p.src, p.dst): f"wrong next hop {p.bystander().ip} ({p.bystander().name}'s",
          }, _route_hints,
          lambda p: (f"{p.src.name}'s route to {p.dst.name}'s pod subnet {p.dst.pod_subnet} was sent via "
                     f"{p.bystander().name} ({p.bystander().ip}) instead of {p.dst.name}"),
          min_nodes=3),
    Fault("forwarding-off", "ip_forward=0 on one node", EASY, _sysctl(0), _sysctl(1),
          lambda p: {
              names.forwarding_name(p.dst): diagnose.forwarding_off(p.dst.name, p.advice),
              **{name: diagnose.forwarding_off(p.dst.name, p.advice) for name in p.cross_traces(p.dst)},
          },
          lambda p: ("traffic through one node stops there", f"is {p.dst.name} a router? `sysctl net.ipv4.ip_forward`",
                     f"set net.ipv4.ip_forward=1 on {p.dst.name}"),
          lambda p: f"IP forwarding was switched off on {p.dst.name}"),
    Fault("pod-outside-subnet", "a pod given an address outside its node's subnet", HARD, _pod_break, _pod_repair,
          lambda p: {
              names.pod_address_name(p.dst): f"outside {p.dst.name}'s pod subnet {p.dst.pod_subnet}",
              **{name: f"no longer has {p.pod.ip}" for name in [*p.cross_traces(p.dst), p.trace(p.dst, p.dst)]},
          },
          lambda p: ("one pod is unreachable", f"compare the pod's address with {p.dst.name}'s pod subnet",
                     f"the pod must have an address in {p.dst.pod_subnet}"),
          lambda p: f"a pod on {p.dst.name} was given an address outside {p.dst.pod_subnet}", exercise=False),
    Fault("cni0-down", "cni0 down on one node", EASY,
          lambda p: (Command(p.dst.name, ("ip", "link", "set", BRIDGE_IF, "down")),),
          lambda p: (Command(p.dst.name, ("ip", "link", "set", BRIDGE_IF, "up")),),
          lambda p: {
              f"{p.dst.name} has {BRIDGE_IF} with {p.dst.pod_gateway}/{p.dst.pod_subnet.prefixlen}":
                  diagnose.cni0_down(p.dst.name, p.advice),
              f"{p.dst.name} routes {p.dst.pod_subnet} on {BRIDGE_IF}": diagnose.cni0_down(p.dst.name, p.advice),
              **{name: diagnose.cni0_down(p.dst.name, p.advice)
                 for name in [*p.cross_traces(p.dst), p.trace(p.dst, p.dst)]},
          },
          lambda p: ("the pods of one node are cut off", f"`{p.spec.command(f'node exec {p.dst.name} -- ip link')}`",
                     f"{BRIDGE_IF} on {p.dst.name} must be up"),
          lambda p: f"{BRIDGE_IF} was set down on {p.dst.name}", exercise=False),
)

def applies(f: Fault, spec: LabSpec) -> bool:
    """Whether the fault can be made on a lab of this spec (its dataplane, enough nodes)."""
    return len(spec.nodes) >= f.min_nodes and on_dataplane(f, spec)


def on_dataplane(f: Fault, spec: LabSpec) -> bool:
    if f.dataplane in ("flannel", "calico"):
        return spec.cni_plugin == f.dataplane
    return spec.dataplane == f.dataplane


def lab_dataplane(f: Fault) -> str:
    """A dataplane the fault can be made on, for a lab of its own: its mode, else the plugin's default."""
    default_modes = {"flannel": "flannel host-gw", "calico": f"calico {calico.DEFAULT_ENCAPSULATION}"}
    return default_modes.get(f.dataplane, f.dataplane)


# ---- Calico's faults (the rules that name them: verify/diagnose_calico.py) ----------------------------
def _bird_ctl(p: Pair, node: Node) -> str:
    """The node's BIRD control socket on the emulated lab (calico-node's is /var/run/calico/bird.ctl)."""
    from k8slab.labs.netns.names import StatePaths

    return str(StatePaths(p.spec.name).bird_dir / f"{node.name}.ctl")


def _mesh_restart(p: Pair) -> tuple[Command, ...]:
    """Every peer's session to dst restarted now, as a restarted calico-node's peers see it: a session that
    failed meanwhile would otherwise wait out BIRD's back-off (error wait time 5,60) before trying again."""
    return tuple(Command(n.name, ("birdc", "-s", _bird_ctl(p, n), "restart", calico.mesh_name(p.dst.ip)))
                 for n in p.spec.nodes if n.name != p.dst.name)


def _bird_start(p: Pair) -> tuple[Command, ...]:
    from k8slab.labs.netns.names import StatePaths

    base = StatePaths(p.spec.name).bird_dir / p.dst.name
    return (Command(p.dst.name, ("bird", "-c", f"{base}.conf", "-s", f"{base}.ctl", "-P", f"{base}.pid")),
            *_mesh_restart(p))


def _autodetect(address: str, back: str):
    """Rewrite dst's BIRD config as calico-node would with another detected node address, and reload it;
    the repair also restarts the sessions at once, as a restarted calico-node does."""
    def commands(p: Pair) -> tuple[Command, ...]:
        from k8slab.labs.netns.names import StatePaths

        conf = str(StatePaths(p.spec.name).bird_dir / f"{p.dst.name}.conf")
        old, new = (str(p.dst.ip), address) if back == "" else (address, str(p.dst.ip))
        edit = (Command(p.dst.name, ("sed", "-i", "-e", f"s/router id {old};/router id {new};/",
                                     "-e", f"s/source address {old};/source address {new};/", conf)),
                Command(p.dst.name, ("birdc", "-s", _bird_ctl(p, p.dst), "configure")))
        restart = Command(p.dst.name, ("birdc", "-s", _bird_ctl(p, p.dst), "restart", "all"))
        return (*edit, restart) if back == "" else (*edit, restart, *_mesh_restart(p))
    return commands


def _cali_veth(p: Pair) -> str:
    assert p.pod is not None, "this fault is made on a pod's veth"
    return calico.veth_name(p.pod.name)


def _vxlan_repair(p: Pair) -> tuple[Command, ...]:
    """What Felix puts back once vxlan.calico is up again: the peers' VTEPs (the kernel flushed even the
    permanent neighbours when the link went down) and dst's route to every peer's block."""
    up = Command(p.dst.name, ("ip", "link", "set", calico.VXLAN_IF, "up"))
    neighs = tuple(Command(p.dst.name, ("ip", "neigh", "replace", str(calico.tunnel_address(n.pod_subnet)), "lladdr",
                                        calico.vtep_mac(n.ip), "dev", calico.VXLAN_IF, "nud", "permanent"))
                   for n in p.spec.nodes if n.name != p.dst.name)
    routes = tuple(Command(p.dst.name, _route_argv(r)) for r in node_routes(p.spec, p.dst)
                   if r.route.dev == calico.VXLAN_IF)
    return (up, *neighs, *routes)


def _mesh_lost(p: Pair, cause: str, both_ways: bool) -> dict[str, str]:
    """A node (dst) out of the BGP mesh: every node's BGP check, the peers' routes to dst's block (and dst's
    to theirs when its own sessions are down too), and every cross-node trace with dst at one end."""
    found = {names.bgp_name(n): cause for n in p.spec.nodes}
    for n in p.spec.nodes:
        if n.name == p.dst.name:
            continue
        to_dst = next(r for r in node_routes(p.spec, n) if r.peer == p.dst.name)
        found[names.route_name(to_dst)] = cause
        if both_ways:
            found[names.route_name(next(r for r in node_routes(p.spec, p.dst) if r.peer == n.name))] = cause
    return {**found, **{name: cause for name in p.cross_traces(p.dst)}}


CALICO_FAULTS: tuple[Fault, ...] = (
    Fault("calico-bird-down", "BIRD stopped on one node", EASY,
          lambda p: (Command(p.dst.name, ("birdc", "-s", _bird_ctl(p, p.dst), "down")),), _bird_start,
          # dst keeps its routes (BIRD's `persist`); its peers withdraw what they learned from it
          lambda p: _mesh_lost(p, diagnose_calico.bird_down(p.dst.name), both_ways=False),
          lambda p: ("the nodes no longer agree on their routes", "ask each node's BIRD: `birdc show protocols`",
                     f"BIRD must run on {p.dst.name}"),
          lambda p: f"BIRD, calico-node's BGP daemon, was stopped on {p.dst.name}", exercise=False,
          dataplane="calico None"),
    Fault("calico-node-address-eth0", "calico-node's address autodetected on eth0", HARD,
          _autodetect(str(NAT_ADDRESS), ""), _autodetect(str(NAT_ADDRESS), "back"),
          lambda p: _mesh_lost(p, diagnose_calico.AUTODETECT_FIX, both_ways=True),
          lambda p: ("BGP sessions do not come up", f"`birdc show status` on {p.dst.name}: which router id?",
                     "calico-node must use the eth1 address: IP_AUTODETECTION_METHOD=interface=eth1"),
          lambda p: f"{p.dst.name}'s BIRD peers from {NAT_ADDRESS}, the address first-found autodetection picks",
          exercise=False, dataplane="calico None"),
    Fault("calico-proxy-arp-off", "proxy ARP off on a pod's cali veth", HARD,
          lambda p: (Command(p.dst.name, ("sysctl", "-q", "-w", f"net.ipv4.conf.{_cali_veth(p)}.proxy_arp=0")),
                     Command(p.pod.name, ("ip", "neigh", "flush", "dev", "eth0"), True)),
          lambda p: (Command(p.dst.name, ("sysctl", "-q", "-w", f"net.ipv4.conf.{_cali_veth(p)}.proxy_arp=1")),),
          lambda p: {
              names.calico_veth_name(p.dst): diagnose_calico.proxy_arp_off(p.dst.name, _cali_veth(p), p.pod.name),
              **{name: diagnose_calico.proxy_arp_off(p.dst.name, _cali_veth(p), p.pod.name)
                 for name in [*p.cross_traces(p.dst), p.trace(p.dst, p.dst)]},
          },
          lambda p: ("one pod reaches nothing beyond its own link", (f"what answers the pod's ARP for "
                     f"{calico.POD_GATEWAY}? `k8slab pod exec {p.pod.name} -- ip neigh`"),
                     f"net.ipv4.conf.{_cali_veth(p)}.proxy_arp must be 1 on {p.dst.name}"),
          lambda p: f"proxy ARP was switched off on pod {p.pod.name}'s veth {_cali_veth(p)}",
          exercise=False, dataplane="calico"),  # made on a pod: exercises pick node pairs only
    Fault("calico-pod-route-missing", "a pod's /32 route deleted", EASY,
          lambda p: (Command(p.dst.name, ("ip", "route", "del", f"{p.pod.ip}/32")),),
          lambda p: (Command(p.dst.name, ("ip", "route", "add", f"{p.pod.ip}/32", "dev", _cali_veth(p), "scope",
                                          "link")),),
          lambda p: {
              names.route_name(next(r for r in node_routes(p.spec, p.dst, pods=[(p.pod.name, p.pod.ip)])
                                     if r.pod)): f"the /32 route to pod {p.pod.name}",
              **{name: f"the /32 route to pod {p.pod.name}" for name in [*p.cross_traces(p.dst),
                                                                        p.trace(p.dst, p.dst)]},
          },
          lambda p: ("one pod is unreachable", f"`k8slab node exec {p.dst.name} -- ip route get {p.pod.ip}`",
                     f"{p.dst.name} needs `{p.pod.ip} dev {_cali_veth(p)} scope link`"),
          lambda p: f"the /32 route to pod {p.pod.name} ({p.pod.ip}) was deleted on {p.dst.name}",
          exercise=False, dataplane="calico"),  # made on a pod: exercises pick node pairs only
    Fault("calico-vxlan-down", "vxlan.calico down on one node", EASY,
          lambda p: (Command(p.dst.name, ("ip", "link", "set", calico.VXLAN_IF, "down")),),
          _vxlan_repair,
          lambda p: {
              f"{p.dst.name} has {calico.VXLAN_IF} with {calico.tunnel_address(p.dst.pod_subnet)}/32":
                  diagnose_calico.tunnel_down(p.dst.name, calico.VXLAN_IF),
              **{names.route_name(r): diagnose_calico.tunnel_down(p.dst.name, calico.VXLAN_IF)
                 for r in node_routes(p.spec, p.dst) if r.route.dev == calico.VXLAN_IF},
              **{name: diagnose_calico.tunnel_down(p.dst.name, calico.VXLAN_IF) for name in p.cross_traces(p.dst)},
          },
          lambda p: ("one node's pods reach no other node", f"`k8slab node exec {p.dst.name} -- ip link`",
                     f"{calico.VXLAN_IF} on {p.dst.name} must be up"),
          lambda p: f"{calico.VXLAN_IF} was set down on {p.dst.name}", exercise=False, dataplane="calico VXLAN"),
)


# ---- IP-in-IP's faults, one per dataplane that has it (the rules: verify/diagnose_ipip.py) ----------
# A host firewall on dst that drops protocol 4 arriving on eth1, as a security group allowing only TCP/UDP does:
# traffic to the node's own address passes INPUT before the tunnel unwraps it. `-p 4`: `-p ipip` is protocol 94.
PROTOCOL_4_DROP = ("INPUT", "-i", HOST_ONLY_IF, "-p", "4", "-j", "DROP")


def _tunnel_routes(p: Pair, dev: str) -> list[RouteExpectation]:
    return [r for r in node_routes(p.spec, p.dst) if r.route.dev == dev]


def _tunnel_down(dataplane: str, dev: str, cause: Callable[[Pair], str], fault_id: str, exercise: bool) -> Fault:
    def repair(p: Pair) -> tuple[Command, ...]:
        """The device up, then the routes through it that the kernel dropped (flannel and BIRD write them)."""
        return (Command(p.dst.name, ("ip", "link", "set", dev, "up")),
                *(Command(p.dst.name, _route_argv(r)) for r in _tunnel_routes(p, dev)))

    return Fault(
        fault_id, f"{dev} down on one node ({dataplane})", EASY,
        lambda p: (Command(p.dst.name, ("ip", "link", "set", dev, "down")),), repair,
        lambda p: {
            **{names.interface_name(e): cause(p) for e in node_interfaces(p.spec, p.dst, has_pods=True)
               if e.name == dev},
            **{names.route_name(r): cause(p) for r in _tunnel_routes(p, dev)},
            **{name: cause(p) for name in p.cross_traces(p.dst)},
        },
        lambda p: ("one node's pods reach no pod on another node",
                   f"`{p.spec.command(f'node exec {p.dst.name} -- ip link')}`",
                   f"{dev}, the IP-in-IP device, must be up on {p.dst.name}, with its routes"),
        lambda p: f"{dev} was set down on {p.dst.name}", exercise=exercise, dataplane=dataplane)


def _protocol_4_dropped(dataplane: str, dev: str, fault_id: str, exercise: bool) -> Fault:
    return Fault(
        fault_id, f"IP protocol 4 dropped by one node's firewall ({dataplane})", HARD,
        lambda p: (Command(p.dst.name, ("iptables", "-I", *PROTOCOL_4_DROP)),),
        lambda p: (Command(p.dst.name, ("iptables", "-D", *PROTOCOL_4_DROP)),),
        lambda p: {name: diagnose_ipip.protocol_4_dropped(p.dst.name) for name in p.cross_traces(p.dst)},
        lambda p: ("pods on one node reach no pod on another, yet the nodes reach each other",
                   (f"routes and {dev} look right: do the IP-in-IP packets arrive? "
                    f"`{p.spec.command(f'node exec {p.dst.name} -- tcpdump -ni {HOST_ONLY_IF} ip proto 4')}`"),
                   f"read {p.dst.name}'s firewall: `{p.spec.command(f'node exec {p.dst.name} -- iptables -S')}`"),
        lambda p: (f"a firewall rule on {p.dst.name} drops IP protocol 4 arriving on {HOST_ONLY_IF} "
                   f"(`iptables -I {' '.join(PROTOCOL_4_DROP)}`), as a security group that allows only TCP and UDP "
                   "does"),
        exercise=exercise, dataplane=dataplane)


IPIP_FAULTS: tuple[Fault, ...] = (
    # flannel's exercises: nothing verify's pods do brings the device up or lifts the rule
    _tunnel_down("flannel ipip", FLANNEL_IPIP_IF, lambda p: diagnose.flannel_tunnel_down(
        p.dst.name, FLANNEL_IPIP_IF, p.advice), "flannel-ipip-down", exercise=True),
    _protocol_4_dropped("flannel ipip", FLANNEL_IPIP_IF, "flannel-ipip-protocol-4-dropped", exercise=True),
    # Calico has no exercises yet (as its other faults)
    _tunnel_down("calico IPIP", calico.IPIP_IF, lambda p: diagnose_calico.tunnel_down(p.dst.name, calico.IPIP_IF),
                 "calico-ipip-down", exercise=False),
    _protocol_4_dropped("calico IPIP", calico.IPIP_IF, "calico-ipip-protocol-4-dropped", exercise=False),
)


def needs_ipip(f: Fault) -> bool:
    """Whether the fault's lab needs IP-in-IP tunnels (the kernel's ipip module): such a lab is refused at
    `up` on a kernel without it, so neither the fault suite nor an exercise can make the fault there."""
    plugin, mode = lab_dataplane(f).split()
    return mode == "ipip" if plugin == "flannel" else mode.startswith("IPIP")


FAULTS = FAULTS + CALICO_FAULTS + IPIP_FAULTS
BY_ID = {f.id: f for f in FAULTS}


def fault(fault_id: str) -> Fault:
    try:
        return BY_ID[fault_id]
    except KeyError:
        raise LabStateError(f"no fault {fault_id!r} in the catalogue; there are: {', '.join(BY_ID)}") from None
