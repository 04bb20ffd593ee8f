"""Same-node traffic at layer 2, as the articles show it: before one pod's packet reaches another pod of its
node, the sender resolves the peer's MAC by ARP across the bridge, and the bridge learns which of its veth
ports each pod's MAC sits behind (its forwarding database). The step reads those tables where they live,
in the two pods, on the node (`ip neigh`, `bridge fdb`), and checks every MAC against the one the pod's
own eth0 carries.

On flannel vxlan the node's flannel.1 has tables too, written by flanneld rather than learned
(pkg/backend/vxlan: AddARP sets a permanent neighbour, each peer's flannel.1 address -> that peer's
flannel.1 MAC; AddFDB a permanent self entry, that MAC -> the peer's public (eth1) address). The step shows
them and checks them against the MACs the peers' flannel.1 devices carry.

Calico has no bridge (pods are routed, their gateway answered by proxy ARP), so the step does not apply.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from k8slab.labs.base import Lab, Pod
from k8slab.spec.facts import BRIDGE_IF, HOST_ONLY_IF, POD_IF, VXLAN_IF
from k8slab.spec.model import LabSpec, Node
from k8slab.teach.walkthroughs.curl_capture import fetch, host_veth, mac_of
from k8slab.teach.walkthroughs.model import Check, PodPart, Roles, Step, StepContext, StepResult, StepText

_MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")
_LLADDR = re.compile(r"^(\d+\.\d+\.\d+\.\d+) .*\blladdr ([0-9a-f:]{17})\b", re.IGNORECASE)


def no_bridge(spec: LabSpec) -> str | None:
    if spec.calico is None:
        return None
    return (f"lab {spec.name!r} runs Calico, which has no bridge: every pod's veth is routed (a /32 route per pod), "
            "and the pod's gateway 169.254.1.1 is answered by proxy ARP on its cali veth, so there is no ARP between "
            f"pods and no forwarding database to show; `{spec.command('walkthrough calico')}` shows Calico's view")


# ---------------------------------------------------------------- the tables, parsed (pure)

def neigh_macs(text: str) -> dict[str, str]:
    """`ip neigh show` lines -> address: MAC (entries without a MAC, FAILED or INCOMPLETE, are left out)."""
    found = {}
    for line in text.splitlines():
        m = _LLADDR.search(line.strip())
        if m:
            found[m[1]] = m[2].lower()
    return found


def proc_arp_macs(text: str) -> dict[str, str]:
    """/proc/net/arp (IP, HW type, flags, HW address, mask, device) -> address: MAC, complete entries only."""
    found = {}
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 6 and cols[2] != "0x0":
            found[cols[0]] = cols[3].lower()
    return found


@dataclass(frozen=True)
class FdbEntry:
    mac: str
    dev: str
    words: tuple[str, ...]      # the rest: master cni0, dst 192.168.56.11, self, permanent...

    def value(self, key: str) -> str | None:
        w = self.words
        return next((w[i + 1] for i in range(len(w) - 1) if w[i] == key), None)

    @property
    def permanent(self) -> bool:
        return "permanent" in self.words


def fdb_entries(text: str, dev: str = "") -> list[FdbEntry]:
    """`bridge fdb show` lines -> entries; `show dev X` leaves the device out of each line, so it is given."""
    entries = []
    for line in text.splitlines():
        words = line.split()
        if not words or not _MAC.fullmatch(words[0]):
            continue
        rest = words[1:]
        if rest[:1] == ["dev"] and len(rest) > 1:
            entries.append(FdbEntry(words[0].lower(), rest[1], tuple(rest[2:])))
        else:
            entries.append(FdbEntry(words[0].lower(), dev, tuple(rest)))
    return entries


def learned_on(entries: list[FdbEntry], mac: str, port: str) -> bool:
    """The bridge learned mac on port: a dynamic entry (not one of the port's own permanent ones)."""
    return any(e.mac == mac and e.dev == port and e.value("master") == BRIDGE_IF and not e.permanent
               for e in entries)


def vtep_ok(neigh: Mapping[str, str], fdb: list[FdbEntry], peer: Node, mac: str) -> bool:
    """flanneld's pair for one peer: its flannel.1 address -> its VTEP MAC, that MAC -> its eth1 address."""
    return neigh.get(str(peer.pod_subnet.network_address)) == mac and any(
        e.mac == mac and e.dev == VXLAN_IF and e.value("dst") == str(peer.ip) and e.permanent for e in fdb)


# ---------------------------------------------------------------- the step

def layer2_text(number: int, title: str, client: PodPart, server: PodPart, spec: LabSpec, roles: Roles,
                pods: Mapping[str, Pod]) -> StepText:
    node = roles.node(server.on).name
    sip = str(pods[server.name].ip) if server.name in pods else f"<{server.name}'s address>"
    vxlan = spec.cni_backend == "vxlan"
    tutorial = [f"kubectl exec {client.name} -- wget -qO- http://{sip}/",
                f"kubectl exec {client.name} -- ip neigh show dev {POD_IF}",
                f"kubectl exec {server.name} -- cat /proc/net/arp   # the httpd image has no ip command",
                f"ip neigh show dev {BRIDGE_IF}   # on {node}", f"bridge fdb show br {BRIDGE_IF}   # on {node}"]
    if vxlan:
        tutorial += [f"ip neigh show dev {VXLAN_IF}   # on {node}", f"bridge fdb show dev {VXLAN_IF}   # on {node}"]
    emulated = [line.replace("kubectl exec", "k8slab pod exec") for line in tutorial[:3]]
    emulated += [f"k8slab node exec {node} -- {line.split('   #')[0]}" for line in tutorial[3:]]
    return StepText(
        number, title, f"{client.name} and {server.name} share {node}'s bridge {BRIDGE_IF}: each finds the other's "
        f"MAC by ARP, and {BRIDGE_IF} learns which veth port each MAC is behind, so it switches their frames "
        "without routing" + (f"; {VXLAN_IF}'s tables, written by flanneld, say where each peer node's pods are"
                             if vxlan else ""),
        tuple(tutorial), tuple(emulated),
        f"each pod's ARP entry for the other holds the other's {POD_IF} MAC; {BRIDGE_IF}'s forwarding database has "
        "each pod's MAC on that pod's veth" + (f"; {VXLAN_IF}: every peer's VTEP MAC for its {VXLAN_IF} address, "
                                               f"and that MAC -> the peer's {HOST_ONLY_IF} address" if vxlan else ""))


def run_layer2(ctx: StepContext, text: StepText, client_name: str, server_name: str) -> StepResult:
    lab, spec = ctx.lab, ctx.spec
    c, s = ctx.pods[client_name], ctx.pods[server_name]
    node = s.node
    ok, _ = fetch(lab, c, s)  # fresh traffic: ARP entries and learned fdb entries age out
    for pod in (c, s):  # the node's own table: it reaches its pods through cni0 as kubelet's probes do
        lab.node_run(node, ["ping", "-c", "1", "-W", "2", str(pod.ip)], timeout=10)
    macs = {p.name: mac_of(lab, p) for p in (c, s)}
    veths = {p.name: host_veth(lab, p) for p in (c, s)}
    in_client = f"   # in {c.name}"
    on_node = f"   # on {node}"
    reads = [(f"ip neigh show dev {POD_IF}{in_client}", lab.pod_run(c.name, ["ip", "neigh", "show", "dev", POD_IF])),
             (f"cat /proc/net/arp   # in {s.name}", lab.pod_run(s.name, ["cat", "/proc/net/arp"])),
             (f"ip neigh show dev {BRIDGE_IF}{on_node}", lab.node_run(node, ["ip", "neigh", "show", "dev", BRIDGE_IF])),
             (f"bridge fdb show br {BRIDGE_IF}{on_node}", lab.node_run(node, ["bridge", "fdb", "show", "br",
                                                                              BRIDGE_IF]))]
    client_neigh, server_arp = neigh_macs(reads[0][1].stdout), proc_arp_macs(reads[1][1].stdout)
    node_neigh, fdb = neigh_macs(reads[2][1].stdout), fdb_entries(reads[3][1].stdout)
    checks = [
        Check(ok, f"{c.name} fetched {s.name}'s page ({c.ip} -> {s.ip}), so both had to resolve each other"),
        Check(client_neigh.get(str(s.ip)) == macs[s.name],
              f"{c.name}'s ARP entry for {s.ip} is {s.name}'s {POD_IF} MAC {macs[s.name]} "
              f"(seen: {client_neigh.get(str(s.ip), 'none')})"),
        Check(server_arp.get(str(c.ip)) == macs[c.name],
              f"{s.name}'s ARP entry for {c.ip} is {c.name}'s {POD_IF} MAC {macs[c.name]} "
              f"(seen: {server_arp.get(str(c.ip), 'none')})"),
        Check(all(node_neigh.get(str(p.ip)) == macs[p.name] for p in (c, s)),
              f"{node}'s ARP entries on {BRIDGE_IF}: " + ", ".join(f"{p.ip} -> {macs[p.name]}" for p in (c, s))),
        *(Check(learned_on(fdb, macs[p.name], veths[p.name]),
                f"{BRIDGE_IF} learned {p.name}'s MAC {macs[p.name]} on its veth port {veths[p.name]}")
          for p in (c, s))]
    shown = [reads[0], reads[1], reads[2]]
    fdb_lines = [line for line in reads[3][1].stdout.splitlines()
                 if any(f" dev {v} " in f"{line} " for v in veths.values())]
    output = [f"{p.name} on {node}: {p.ip}, {POD_IF} MAC {macs[p.name]}, host veth {veths[p.name]}" for p in (c, s)]
    for command, r in shown:
        output += [f"$ {command}", (r.stdout or r.stderr).rstrip() or "(nothing)"]
    output += [f"$ bridge fdb show br {BRIDGE_IF} | grep -e {' -e '.join(veths.values())}{on_node}", *fdb_lines]
    why = [(f"{c.name} and {s.name} are on one subnet ({spec.node(node).pod_subnet}), so {c.name} sends to {s.ip} "
            f"directly: it broadcasts an ARP request on its {POD_IF}, the bridge floods it to every port, {s.name} "
            "answers with its MAC and notes the asker's (hence both ARP entries)."),
           (f"{BRIDGE_IF} learned each source MAC on the port it came in by (the entries without 'permanent'; the "
            "permanent ones are each port's own MAC), so later frames go out of one port only.")]
    ran = [f"wget -qO- http://{s.ip}/{in_client}",
           *(f"ping -c 1 -W 2 {p.ip}{on_node}   # the node reaching its pod, as kubelet's probes do" for p in (c, s)),
           *(command for command, _ in reads)]
    if spec.cni_backend == "vxlan":
        v_checks, v_out, v_ran = _flannel_vxlan(lab, spec, spec.node(node))
        checks += v_checks
        output += v_out
        ran += v_ran
        why.append(f"flanneld writes {VXLAN_IF}'s tables when it learns of a peer node: the peer's {VXLAN_IF} "
                   f"address resolves to its VTEP MAC (no ARP is ever sent on {VXLAN_IF}), and the VTEP MAC to the "
                   f"peer's {HOST_ONLY_IF} address the kernel sends the UDP datagram to.")
    return StepResult(text, ran, "\n".join(output), checks, why)


def _flannel_vxlan(lab: Lab, spec: LabSpec, node: Node) -> tuple[list[Check], list[str], list[str]]:
    neigh_r = lab.node_run(node.name, ["ip", "neigh", "show", "dev", VXLAN_IF])
    fdb_r = lab.node_run(node.name, ["bridge", "fdb", "show", "dev", VXLAN_IF])
    neigh, fdb = neigh_macs(neigh_r.stdout), fdb_entries(fdb_r.stdout, VXLAN_IF)
    checks = []
    for peer in (n for n in spec.nodes if n != node):
        mac = lab.node_run(peer.name, ["cat", f"/sys/class/net/{VXLAN_IF}/address"]).stdout.strip().lower()
        checks.append(Check(bool(mac) and vtep_ok(neigh, fdb, peer, mac),
                            f"{node.name}'s {VXLAN_IF}: {peer.pod_subnet.network_address} -> {mac or '?'} "
                            f"({peer.name}'s {VXLAN_IF} MAC), and {mac or '?'} -> {peer.ip} ({peer.name}'s "
                            f"{HOST_ONLY_IF}), both permanent"))
    output = [f"$ ip neigh show dev {VXLAN_IF}   # on {node.name}", neigh_r.stdout.rstrip() or "(nothing)",
              f"$ bridge fdb show dev {VXLAN_IF}   # on {node.name}", fdb_r.stdout.rstrip() or "(nothing)"]
    return checks, output, [f"ip neigh show dev {VXLAN_IF}   # on {node.name}",
                            f"bridge fdb show dev {VXLAN_IF}   # on {node.name}"]


def layer2_step(number: int, title: str, client: PodPart, server: PodPart,
                needs: Callable[[LabSpec, Roles], str | None]) -> Step:
    """Both pods on one node (the parts' nodes must be the same); skipped where there is no bridge."""
    def need(spec: LabSpec, roles: Roles) -> str | None:
        return needs(spec, roles) or no_bridge(spec)
    return Step(title, lambda spec, roles, pods: layer2_text(number, title, client, server, spec, roles, pods),
                lambda ctx, text: run_layer2(ctx, text, client.name, server.name), pods=(server, client), needs=need)
