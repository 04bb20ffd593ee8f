"""ClusterIP services as kube-proxy's iptables mode writes them into the nat table, and read back.

Names and rule shapes follow kube-proxy's pkg/proxy/iptables/proxier.go (Kubernetes 1.31):
KUBE-SVC-<hash> = base32(sha256(servicePortName + protocol))[:16] and KUBE-SEP-<hash> = the same over
servicePortName + protocol + "ip:port", where servicePortName is "namespace/name[:portname]" and the
protocol lowercase; KUBE-SERVICES sends the ClusterIP:port to KUBE-SVC, which marks traffic from
outside the pod CIDR for masquerade (KUBE-MARK-MASQ) and picks an endpoint with `statistic --mode
random --probability 1/n` for the i-th of n remaining (the last one unconditionally); each KUBE-SEP
marks hairpin traffic and DNATs to its endpoint; KUBE-POSTROUTING masquerades what is marked 0x4000.
The chain names of kube-dns (KUBE-SVC-TCOU7JCQXEZGVUNU for dns/udp) come out the same as a real cluster's.

The same text is checked against the endpoints on both labs (`check`): on the emulated lab it is what
k8slab wrote, on the VirtualBox lab what the real kube-proxy wrote, read with `iptables-save -t nat`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

MASQ_MARK = "0x4000"
FIXED_CHAINS = ("KUBE-SERVICES", "KUBE-POSTROUTING", "KUBE-MARK-MASQ", "KUBE-NODEPORTS")
HOOKS = (("PREROUTING", "kubernetes service portals", "KUBE-SERVICES"),
         ("OUTPUT", "kubernetes service portals", "KUBE-SERVICES"),
         ("POSTROUTING", "kubernetes postrouting rules", "KUBE-POSTROUTING"))


@dataclass(frozen=True)
class ServicePort:
    port: int
    target_port: int
    protocol: str = "tcp"  # lowercase, as kube-proxy hashes it
    name: str = ""  # kubectl expose of one port leaves it unnamed


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    cluster_ip: IPv4Address
    ports: tuple[ServicePort, ...]
    endpoints: tuple[IPv4Address, ...]  # ready pod addresses, in a stable order

    def port_name(self, port: ServicePort) -> str:
        return f"{self.namespace}/{self.name}" + (f":{port.name}" if port.name else "")


def _hash(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def svc_chain(svc: Service, port: ServicePort) -> str:
    return "KUBE-SVC-" + _hash(svc.port_name(port) + port.protocol)


def sep_chain(svc: Service, port: ServicePort, endpoint: IPv4Address) -> str:
    return "KUBE-SEP-" + _hash(svc.port_name(port) + port.protocol + f"{endpoint}:{port.target_port}")


def probability(remaining: int) -> str:
    """kube-proxy's probability(n): the i-th of n endpoints is taken with 1/(n-i), so each gets 1/n overall."""
    return f"{1.0 / remaining:0.10f}"


def rules(services: Sequence[Service], cluster_cidr: IPv4Network) -> tuple[list[str], list[str]]:
    """(chains, rules) of the nat table for these services, in iptables-restore syntax."""
    chains = list(FIXED_CHAINS)
    out = [f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}",
           f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
           f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}",
           ('-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" '
            "-j MASQUERADE --random-fully")]
    for svc in sorted(services, key=lambda s: (s.namespace, s.name)):
        for port in svc.ports:
            name, chain, proto = svc.port_name(port), svc_chain(svc, port), port.protocol
            if not svc.endpoints:
                continue  # kube-proxy REJECTs these in the filter table; nothing to DNAT to
            chains.append(chain)
            out.append(f'-A KUBE-SERVICES -d {svc.cluster_ip}/32 -p {proto} -m comment --comment '
                       f'"{name} cluster IP" -m {proto} --dport {port.port} -j {chain}')
            out.append(f'-A {chain} ! -s {cluster_cidr} -d {svc.cluster_ip}/32 -p {proto} -m comment --comment '
                       f'"{name} cluster IP" -m {proto} --dport {port.port} -j KUBE-MARK-MASQ')
            n = len(svc.endpoints)
            for i, ep in enumerate(svc.endpoints):
                sep = sep_chain(svc, port, ep)
                chains.append(sep)
                stat = f" -m statistic --mode random --probability {probability(n - i)}" if i < n - 1 else ""
                out.append(f'-A {chain} -m comment --comment "{name} -> {ep}:{port.target_port}"{stat} -j {sep}')
                out.append(f'-A {sep} -s {ep}/32 -m comment --comment "{name}" -j KUBE-MARK-MASQ')
                out.append(f'-A {sep} -p {proto} -m comment --comment "{name}" -m {proto} '
                           f"-j DNAT --to-destination {ep}:{port.target_port}")
    out.append('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last '
               'rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')
    return chains, out


def restore_input(services: Sequence[Service], cluster_cidr: IPv4Network, saved: str) -> str:
    """iptables-restore --noflush input that makes the nat table's KUBE-* chains exactly these services':
    declared chains are flushed and refilled, chains of services gone are deleted, and the hooks from the
    built-in chains are added once (saved: the table as `iptables-save -t nat` shows it now)."""
    chains, body = rules(services, cluster_cidr)
    existing = set(re.findall(r"^:(KUBE-\S+)", saved, re.MULTILINE))
    lines = ["*nat", *(f":{c} - [0:0]" for c in chains)]
    for hook, comment, target in HOOKS:
        if not re.search(rf"^-A {hook} .*-j {target}$", saved, re.MULTILINE):
            lines.append(f'-A {hook} -m comment --comment "{comment}" -j {target}')
    lines += body
    stale = sorted(c for c in existing - set(chains) if c.startswith(("KUBE-SVC-", "KUBE-SEP-")))
    lines += [f":{c} - [0:0]" for c in stale] + [f"-X {c}" for c in stale]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


# ---- reading the table back (either lab)

@dataclass(frozen=True)
class Rule:
    chain: str
    args: tuple[str, ...]

    def opt(self, flag: str) -> str | None:
        return self.args[self.args.index(flag) + 1] if flag in self.args else None

    @property
    def target(self) -> str | None:
        return self.opt("-j")


def parse_rules(saved: str) -> list[Rule]:
    """The -A lines of `iptables-save -t nat` output."""
    found = []
    for line in saved.splitlines():
        if line.startswith("-A "):
            args = shlex.split(line)
            found.append(Rule(args[1], tuple(args[2:])))
    return found


def check(saved: str, services: Iterable[Service]) -> list[str]:
    """What in this nat table does not send each service's ClusterIP:port to every endpoint with the
    right odds ([] when it all does)."""
    table = parse_rules(saved)
    problems = []
    for svc in services:
        for port in svc.ports:
            where = f"{svc.port_name(port)} ({svc.cluster_ip}:{port.port}/{port.protocol})"
            entry = [r for r in table if r.chain == "KUBE-SERVICES" and r.opt("-d") == f"{svc.cluster_ip}/32"
                     and r.opt("--dport") == str(port.port) and r.opt("-p") == port.protocol]
            if not svc.endpoints:
                continue
            if len(entry) != 1 or not (entry[0].target or "").startswith("KUBE-SVC-"):
                problems.append(f"{where}: KUBE-SERVICES has {len(entry)} rules for it, "
                                "not one jump to a KUBE-SVC chain")
                continue
            chain = entry[0].target
            picks = [r for r in table if r.chain == chain and (r.target or "").startswith("KUBE-SEP-")]
            dnat = {}
            for pick in picks:
                to = [r.opt("--to-destination") for r in table if r.chain == pick.target and r.target == "DNAT"]
                dnat[pick.target] = to[0] if len(to) == 1 else None
            wanted = {f"{ep}:{port.target_port}" for ep in svc.endpoints}
            got = [dnat[p.target] for p in picks]
            if sorted(got, key=str) != sorted(wanted):
                problems.append(f"{where}: {chain} reaches {', '.join(map(str, got)) or 'nothing'}, "
                                f"not the endpoints {', '.join(sorted(wanted))}")
                continue
            n = len(picks)
            for i, pick in enumerate(picks):
                p = pick.opt("--probability")
                expected = 1.0 / (n - i)
                if (i < n - 1 and (p is None or abs(float(p) - expected) > 1e-6)) or (i == n - 1 and p is not None):
                    problems.append(f"{where}: endpoint {i + 1} of {n} is picked with probability {p or 1}, "
                                    f"not {expected:.4f}; the endpoints would not be equally likely")
    return problems
