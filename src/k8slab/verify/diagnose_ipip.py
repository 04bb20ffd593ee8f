"""IP-in-IP's classic faults (flannel's ipip backend, Calico's IPIP pools), named from what the nodes show.

IPIP carries pod packets between nodes as IP protocol 4: neither TCP nor UDP. The classic fault is a firewall
that lets TCP, UDP and ICMP through and so looks open, yet drops protocol 4: a cloud security group or a host
firewall with a default-deny INPUT. The routes and the tunnel device are fine; the cross-node traces stop at
the tunnel hop. The nodes' own firewall is read (`iptables -S`, read-only) and evaluated for a protocol 4
packet from the peer's eth1 address; a firewall between the nodes (a security group) cannot be read from
them, so without a rule to name the cause is said as a suspicion with how to confirm it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from k8slab.spec import calico
from k8slab.spec.facts import FLANNEL_IPIP_IF, HOST_ONLY_IF
from k8slab.spec.model import LabSpec, Node
from k8slab.verify.facts import NodeFacts

FIREWALL_ARGV = ("iptables", "-S")  # the filter table's policies and rules, as iptables-save writes them
# How `iptables -S` shows protocol 4: by the name the node's /etc/protocols gives it (Debian's netbase:
# ipencap; IANA's keyword, iana-etc: ipv4), else by number. NOT `ipip`: that name is protocol 94.
PROTOCOL_4 = frozenset({"4", "ipencap", "ip-encap", "ipv4"})
DROPPING = ("DROP", "REJECT")


def tunnel(spec: LabSpec) -> str | None:
    """The IP-in-IP device of the lab's dataplane (flannel.ipip, Calico's tunl0), None if it has none."""
    if spec.calico is not None:
        return calico.IPIP_IF if spec.calico.tunnel == calico.IPIP_IF else None
    return FLANNEL_IPIP_IF if spec.cni_backend == "ipip" else None


def encapsulates(spec: LabSpec, a: Node, b: Node) -> bool:
    """Whether pod traffic between nodes a and b travels as IP protocol 4."""
    if a.name == b.name or tunnel(spec) is None:
        return False
    return spec.calico is None or spec.calico.encapsulates(a.ip, b.ip, spec.host_only)


@dataclass(frozen=True)
class Rule:
    chain: str
    text: str                 # as `iptables -S` printed it
    matches: dict[str, str]   # option -> value, for the options this evaluator understands
    target: str | None
    understood: bool          # False: a match we cannot evaluate (-m ..., negations): passed over


_KNOWN = {"-p", "-i", "-o", "-s", "-d"}


def parse_rules(lines: Sequence[str]) -> tuple[dict[str, str], list[Rule]]:
    """`iptables -S` -> (chain -> policy, rules in order)."""
    policies: dict[str, str] = {}
    rules: list[Rule] = []
    for line in lines:
        words = line.split()
        if len(words) >= 3 and words[0] == "-P":
            policies[words[1]] = words[2]
        if len(words) < 2 or words[0] != "-A":
            continue
        matches: dict[str, str] = {}
        target = None
        understood = True
        i = 2
        while i < len(words):
            word = words[i]
            if word in ("-j", "-g") and i + 1 < len(words):
                target = words[i + 1]
                break
            if word in _KNOWN and i + 1 < len(words):
                matches[word] = words[i + 1]
                # the node's output is data: an address that is not one is passed over, never a traceback
                understood = understood and (word not in ("-s", "-d") or _network(words[i + 1]) is not None)
                i += 2
                continue
            understood = False  # -m, !, --dport...: not a match we evaluate
            i += 1
        rules.append(Rule(words[1], line.strip(), matches, target, understood))
    return policies, rules


def _network(value: str) -> IPv4Network | None:
    try:
        return IPv4Network(value, strict=False)
    except ValueError:
        return None


def _holds(value: str | None, address: IPv4Address) -> bool:
    return value is None or address in IPv4Network(value, strict=False)


def _matches(rule: Rule, src: IPv4Address, dst: IPv4Address, dev_in: str | None, dev_out: str | None) -> bool:
    m = rule.matches
    proto = m.get("-p")
    return (rule.understood and (proto is None or proto.lower() in PROTOCOL_4 | {"all"})
            and _holds(m.get("-s"), src) and _holds(m.get("-d"), dst)
            and _on(m.get("-i"), dev_in) and _on(m.get("-o"), dev_out))


def _on(pattern: str | None, dev: str | None) -> bool:
    """iptables' -i/-o: a name, or a prefix ending in '+' (`-i eth+` is every eth device)."""
    if pattern is None:
        return True
    if dev is None:
        return False
    return dev.startswith(pattern[:-1]) if pattern.endswith("+") else dev == pattern


def verdict(lines: Sequence[str], chain: str, src: IPv4Address, dst: IPv4Address,
            dev_in: str | None = None, dev_out: str | None = None) -> str | None:
    """What drops a protocol 4 packet from src to dst in chain (INPUT: arriving on dev_in; OUTPUT: leaving by
    dev_out): the first rule that matches it, when it drops, else the chain's DROP policy; None when it passes.
    Rules the evaluator does not understand (other matches, jumps to other chains) are passed over: it names
    the firewalls of this fault, it does not replace iptables."""
    policies, rules = parse_rules(lines)
    for rule in rules:
        if rule.chain != chain or not _matches(rule, src, dst, dev_in, dev_out):
            continue
        if rule.target in DROPPING:
            return f"`{rule.text}`"
        if rule.target == "ACCEPT":
            return None
    if policies.get(chain) in DROPPING:
        return f"{chain}'s policy DROP (`-P {chain} DROP`), with no rule before it accepting protocol 4"
    return None


def dropped(node: str, what: str, peer: str, chain: str) -> str:
    """The cause, worded for the lab and for the cloud case it teaches."""
    way = "from" if chain == "INPUT" else "to"
    fix = (f"delete it: `iptables {what.strip('`').replace('-A ', '-D ', 1)}` on {node}" if what.startswith("`-A ")
           else f"accept it before: `iptables -I {chain} -p 4 -j ACCEPT` on {node}")
    return (f"{protocol_4_dropped(node)} {way} {peer}: {what} in its {chain} chain. The routes and the tunnel are "
            f"fine and TCP, UDP and ICMP pass (BGP, traceroute between the nodes), yet every IP-in-IP packet is "
            f"lost; {fix}. On cloud VMs the same is a security group or firewall that allows TCP/UDP only: allow "
            "IP protocol 4 between the nodes (in iptables `-p 4`, not `-p ipip`, which is protocol 94), or use "
            "VXLAN where protocol 4 cannot pass (Azure)")


def protocol_4_dropped(node: str) -> str:
    """The words every protocol 4 diagnosis starts with (what the fault catalogue expects)."""
    return f"{node}'s firewall drops IP protocol 4 (IP-in-IP)"


def firewall_causes(spec: LabSpec, a: Node, b: Node, facts: Mapping[str, NodeFacts]) -> list[str]:
    """Every rule on either end that drops the IP-in-IP packets between a and b, either way."""
    if not encapsulates(spec, a, b):
        return []
    reasons = []
    for here, there in ((a, b), (b, a)):
        nf = facts.get(here.name)
        if nf is None or nf.firewall is None:
            continue
        for chain, src, dst, dev_in, dev_out in (("INPUT", there.ip, here.ip, HOST_ONLY_IF, None),
                                                 ("OUTPUT", here.ip, there.ip, None, HOST_ONLY_IF)):
            what = verdict(nf.firewall, chain, src, dst, dev_in, dev_out)
            if what:
                reasons.append(dropped(here.name, what, there.name, chain))
    return reasons


def suspected(spec: LabSpec, a: Node, b: Node) -> str:
    """No node shows a fault and the trace stops at the tunnel hop: what to suspect, and how to confirm it."""
    dev = tunnel(spec)
    return (f"the trace stops where the packet enters the IP-in-IP tunnel ({dev}), yet the routes via {dev} are "
            f"there and {dev} is up on both nodes: IP protocol 4 is probably dropped between {a.name} and {b.name} "
            "(a firewall or security group allowing TCP/UDP only). Confirm with `tcpdump -ni eth1 ip proto 4` on "
            f"both nodes (sent by one, never received by the other) and `iptables -S` on each")
