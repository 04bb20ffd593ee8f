"""The articles' "curl between pods, and look at the wire": a client pod fetches a server pod's page with
wget while the lab captures on one node's interface, the capture is saved as a pcap the student can open
in Wireshark, and the step is judged from that very file (`tcpdump -nn -r`), not from a live tcpdump's
text, so what the student opens is what was checked.

Dataplane-neutral: where to listen and what the wire must show come from the spec. Across nodes the
capture is on the server node's eth1; flannel host-gw and Calico without encapsulation show the pods'
own addresses there, flannel vxlan and Calico VXLAN an outer UDP header (8472 / 4789) between the nodes'
eth1 addresses with the pods' addresses inside, IP-in-IP an outer protocol-4 header. On one node the
capture is where the frames cross: flannel's bridge, or the server pod's host-side veth where there is
no bridge (Calico). In every case the pods' addresses must be unchanged: no NAT between two pods.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from k8slab.errors import CommandFailedError
from k8slab.labs.base import Lab, Pod, Progress
from k8slab.labs.capture import PCAP_MAGIC, Capture
from k8slab.render.output_files import output_file
from k8slab.spec import calico
from k8slab.spec.facts import BRIDGE_IF, HOST_ONLY_IF, POD_IF, VXLAN_PORT
from k8slab.spec.model import LabSpec
from k8slab.teach.explain import Endpoint, expected_encapsulation
from k8slab.teach.walkthroughs.model import (
    DEFAULT_CAPTURE_DIR,
    Check,
    PodPart,
    Roles,
    Step,
    StepContext,
    StepResult,
    StepText,
)
from k8slab.teach.walkthroughs.tutorial import SLEEP, _ip_of, pinned

HTTP_PORT = 80
# An upper bound only: on a local lab the capture is stopped (SIGINT) once the fetch is over. Over SSH a
# signal cannot reach the remote tcpdump, so there it runs this long.
CAPTURE_SECONDS = 8
# Plain HTTP and every tunnel either dataplane may wrap it in, so a wrong encapsulation is seen and named
# rather than filtered away (the same net as the trace engine's capture).
BPF = ("tcp", "port", str(HTTP_PORT), "or", "udp", "port", str(VXLAN_PORT), "or", "udp", "port",
       str(calico.VXLAN_PORT), "or", "ip", "proto", "4")
SHOWN_LINES = 12


# ---------------------------------------------------------------- what the wire must show (pure)

@dataclass(frozen=True)
class Wire:
    """What a capture between two nodes must show: tunnel "" (the packet as the pod sent it), "vxlan" with
    its UDP port, or "ipip"; outer addresses are the nodes' eth1 ones."""

    tunnel: str
    port: int | None = None

    def describe(self) -> str:
        if self.tunnel == "vxlan":
            return f"VXLAN: an outer UDP {self.port} header between the nodes' {HOST_ONLY_IF} addresses"
        if self.tunnel == "ipip":
            return f"IP-in-IP: an outer IP header (protocol 4) between the nodes' {HOST_ONLY_IF} addresses"
        return "no tunnel: the pods' addresses are the outermost IP header"


def expected_wire(spec: LabSpec, client_node: str, server_node: str) -> Wire:
    if client_node == server_node:
        return Wire("")
    how = expected_encapsulation(spec, Endpoint(IPv4Address(0), client_node), Endpoint(IPv4Address(0), server_node))
    if how == "vxlan":
        return Wire("vxlan", calico.VXLAN_PORT if spec.calico is not None else VXLAN_PORT)
    return Wire(how)


def capture_point(spec: LabSpec, client_node: str, server_node: str) -> tuple[str, str | None]:
    """(node, interface) to listen on; interface None: the server pod's host-side veth (no bridge, Calico),
    known only once the pod runs (host_veth)."""
    if client_node != server_node:
        return server_node, HOST_ONLY_IF
    return server_node, (None if spec.calico is not None else BRIDGE_IF)


@dataclass(frozen=True)
class Header:
    src: IPv4Address
    dst: IPv4Address
    sport: int | None
    dport: int | None


@dataclass(frozen=True)
class Frame:
    headers: tuple[Header, ...]    # outermost first

    @property
    def inner(self) -> Header:
        return self.headers[-1]


_HEADER = re.compile(r"\bIP (\d+\.\d+\.\d+\.\d+)(?:\.(\d+))? > (\d+\.\d+\.\d+\.\d+)(?:\.(\d+))?:")


def parse_frames(text: str) -> list[Frame]:
    """`tcpdump -nn -r` output -> frames, each with its IP headers outermost first. IP-in-IP prints both on
    one line; a VXLAN payload comes on the next line, without a timestamp."""
    frames: list[Frame] = []
    for line in text.splitlines():
        found = tuple(Header(IPv4Address(m[1]), IPv4Address(m[3]), int(m[2]) if m[2] else None,
                             int(m[4]) if m[4] else None) for m in _HEADER.finditer(line))
        if not found:
            continue
        if frames and not line[:1].isdigit():
            frames[-1] = Frame(frames[-1].headers + found)
        else:
            frames.append(Frame(found))
    return frames


def judge_wire(frames: Sequence[Frame], client: IPv4Address, server: IPv4Address, wire: Wire,
               nodes: tuple[IPv4Address, IPv4Address], port: int = HTTP_PORT) -> list[Check]:
    """The verdict on a capture of client fetching server:port. nodes: the two nodes' eth1 addresses."""
    fetch = [f for f in frames if port in (f.inner.sport, f.inner.dport)]
    to = sum(1 for f in fetch if (f.inner.src, f.inner.dst, f.inner.dport) == (client, server, port))
    back = sum(1 for f in fetch if (f.inner.src, f.inner.dst, f.inner.sport) == (server, client, port))
    pair = {f"{client} > {server}", f"{server} > {client}"}
    others = sorted({f"{f.inner.src} > {f.inner.dst}" for f in fetch} - pair)
    checks = [Check(to > 0 and back > 0, f"the capture holds the fetch both ways: {to} packet(s) {client} > "
                                         f"{server}:{port}, {back} back"),
              Check(bool(fetch) and not others,
                    "every packet of the fetch carries the two pods' own addresses, unchanged (no NAT)"
                    + (f"; also seen: {', '.join(others)}" if others else ""))]
    if not fetch:
        return checks
    if wire.tunnel == "":
        wrapped = [f for f in fetch if len(f.headers) > 1]
        checks.append(Check(not wrapped, "not encapsulated: the pods' addresses are the outermost header"
                                         + (f" (yet {len(wrapped)} packet(s) came in a tunnel)" if wrapped else "")))
        return checks
    node_pair = set(nodes)

    def tunnelled(f: Frame) -> bool:
        if len(f.headers) < 2 or {f.headers[0].src, f.headers[0].dst} != node_pair:
            return False
        if wire.tunnel == "vxlan":
            return f.headers[0].dport == wire.port
        return f.headers[0].dport is None    # IP-in-IP: the outer header has no ports
    bad = [f for f in fetch if not tunnelled(f)]
    checks.append(Check(not bad, f"encapsulated: {wire.describe()} ({nodes[0]} and {nodes[1]}), the pods' "
                                 f"addresses inside" + (f"; {len(bad)} packet(s) were not" if bad else "")))
    return checks


# ---------------------------------------------------------------- on the lab

def host_veth(lab: Lab, pod: Pod) -> str:
    """The node-side end of the pod's eth0 veth: the node's link whose index is the pod's eth0 iflink."""
    r = lab.pod_run(pod.name, ["cat", f"/sys/class/net/{POD_IF}/iflink"])
    links = lab.node_run(pod.node, ["ip", "-o", "link", "show"])
    index = r.stdout.strip()
    for line in links.stdout.splitlines():
        number, _, rest = line.partition(": ")
        if number.strip() == index:
            return rest.split(":", 1)[0].split("@", 1)[0]
    raise CommandFailedError(f"no link on {pod.node} has index {index or '?'} (pod {pod.name}'s {POD_IF} iflink): "
                             f"{(r.stderr or links.stderr).strip()}")


def mac_of(lab: Lab, pod: Pod, iface: str = POD_IF) -> str:
    return lab.pod_run(pod.name, ["cat", f"/sys/class/net/{iface}/address"]).stdout.strip().lower()


@dataclass
class Fetched:
    page: str
    ok: bool                    # wget ended well with a page
    pcap: Path | None           # the file written, None without capture
    read_back: str = ""         # tcpdump -nn -r of it
    note: str = ""              # why there is no capture, when asked for one and none was made


class _NoCapture(Exception):
    pass


def fetch(lab: Lab, client: Pod, server: Pod) -> tuple[bool, str]:
    r = lab.pod_run(client.name, ["wget", "-qO-", "-T", "10", f"http://{server.ip}/"], timeout=30)
    return r.ok and bool(r.stdout.strip()), (r.stdout if r.ok else r.stderr).strip()


def fetch_with_capture(lab: Lab, client: Pod, server: Pod, node: str, iface: str, pcap: Path | None,
                       progress: Progress) -> Fetched:
    """client fetches server's page while node's iface is captured into pcap (None: no capture)."""
    if pcap is None:
        ok, page = fetch(lab, client, server)
        return Fetched(page, ok, None)
    argv = lab.node_stream_argv(node, Capture(iface, seconds=CAPTURE_SECONDS, bpf=BPF).tcpdump())
    local = lab.node_argv(node) is not None
    progress(f"capturing on {node}'s {iface} into {pcap} while {client.name} fetches http://{server.ip}/")
    got: dict[str, object] = {}
    try:
        with output_file(pcap, "capture") as f:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.PIPE, text=True)
            said = _listening(proc)
            try:
                got["ok"], got["page"] = fetch(lab, client, server)
                time.sleep(0.5)   # the last ACKs and FINs of the connection
                if local:
                    proc.send_signal(signal.SIGINT)   # timeout(1) passes it to tcpdump, which flushes and exits
                rc = proc.wait(CAPTURE_SECONDS + 15)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            f.flush()
            f.seek(0)
            if rc not in (0, 124) or f.read(4) not in PCAP_MAGIC:
                raise _NoCapture(" ".join(said).strip() or f"tcpdump exit {rc}")
    except _NoCapture as exc:
        if "ok" not in got:  # tcpdump never listened: the fetch is still the student's to see
            got["ok"], got["page"] = fetch(lab, client, server)
        return Fetched(str(got["page"]), bool(got["ok"]), None, note=f"the capture failed: {exc}")
    return Fetched(str(got["page"]), bool(got["ok"]), pcap, read_back(pcap))


def _listening(proc: subprocess.Popen) -> list[str]:
    """Wait until tcpdump says it listens (the fetch must not start before), then keep draining its stderr."""
    said: list[str] = []
    ready = threading.Event()

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            said.append(line.strip())
            if "listening on" in line:
                ready.set()
        ready.set()
    threading.Thread(target=drain, daemon=True).start()
    if not ready.wait(15) or proc.poll() not in (None, 0):
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        raise _NoCapture(" ".join(said) or "tcpdump did not start listening")
    return said


def read_back(pcap: Path) -> str:
    if shutil.which("tcpdump") is None:
        return ""
    r = subprocess.run(["tcpdump", "-nn", "-r", str(pcap)], capture_output=True, text=True, timeout=30, check=False)
    return r.stdout


# ---------------------------------------------------------------- the step

def pcap_path(directory: Path, walkthrough: str, number: int) -> Path:
    return directory / f"{walkthrough}-step{number}.pcap"


def curl_text(walkthrough: str, number: int, title: str, client: PodPart, server: PodPart,
              spec: LabSpec, roles: Roles, pods: Mapping[str, Pod]) -> StepText:
    c_node, s_node = roles.node(client.on).name, roles.node(server.on).name
    node, iface = capture_point(spec, c_node, s_node)
    shown_if = iface or f"<{server.name}'s host veth>"
    wire = expected_wire(spec, c_node, s_node)
    ip = _ip_of(pods, server.name, roles.node(server.on))
    pcap = pcap_path(DEFAULT_CAPTURE_DIR, walkthrough, number)
    bpf = " ".join(BPF)
    where = (f"the frames cross {node}'s {'bridge ' + BRIDGE_IF if iface else 'veths'} and never leave the node"
             if c_node == s_node else f"the packets cross {HOST_ONLY_IF} from {c_node} to {s_node}: {wire.describe()}")
    return StepText(
        number, title, f"{client.name} on {c_node} fetches {server.name}'s page on {s_node} (the articles' curl); "
        f"{where}; the pods' addresses are unchanged end to end",
        (pinned(server.name, server.image, s_node), pinned(client.name, client.image, c_node, SLEEP),
         f"tcpdump -i {shown_if} -nn -w {pcap.name} '{bpf}'   # on {node}",
         f"kubectl exec {client.name} -- wget -qO- http://{ip}/", f"tcpdump -nn -r {pcap.name}"),
        (f"k8slab pod run {server.name} --node {s_node}", f"k8slab pod run {client.name} --node {c_node}",
         f"k8slab capture --node {node} --iface {shown_if} -o {pcap} --filter '{bpf}'",
         f"k8slab pod exec {client.name} -- wget -qO- http://{ip}/", f"tcpdump -nn -r {pcap}"),
        f"{server.name}'s page; on {node}'s {shown_if}: {client.name} > {server.name}:{HTTP_PORT} and back with the "
        f"pods' own addresses ({wire.describe()})")


def run_curl(ctx: StepContext, text: StepText, walkthrough: str, client: str, server: str) -> StepResult:
    lab, spec = ctx.lab, ctx.spec
    c, s = ctx.pods[client], ctx.pods[server]
    node, iface = capture_point(spec, c.node, s.node)
    iface = iface or host_veth(lab, s)
    wire = expected_wire(spec, c.node, s.node)
    pcap = pcap_path(ctx.capture_dir, walkthrough, text.number) if ctx.capture else None
    got = fetch_with_capture(lab, c, s, node, iface, pcap, ctx.progress)
    ran = [f"k8slab pod exec {client} -- wget -qO- http://{s.ip}/"]
    output = [f"$ wget -qO- http://{s.ip}/   # in {client} on {c.node}", got.page or "(no page)"]
    checks = [Check(got.ok, f"{client} got {server}'s page from http://{s.ip}/")]
    why = []
    if pcap is None:
        why.append("no capture (--no-capture): run again without it to see and keep the packets")
    elif got.pcap is None:
        checks.append(Check(False, f"a capture on {node}'s {iface}: {got.note}"))
    else:
        ran[:0] = [f"k8slab capture --node {node} --iface {iface} -o {got.pcap} --filter '{' '.join(BPF)}'"]
        ran.append(f"tcpdump -nn -r {got.pcap}")
        lines = got.read_back.splitlines()
        output += [f"$ tcpdump -nn -r {got.pcap}   # captured on {node}'s {iface}", *lines[:SHOWN_LINES]]
        if len(lines) > SHOWN_LINES:
            output.append(f"... {len(lines) - SHOWN_LINES} more line(s) in the file")
        if shutil.which("tcpdump") is None:
            checks.append(Check(False, f"tcpdump is not installed on this machine to read {got.pcap}: install it"))
        else:
            nodes = (spec.node(c.node).ip, spec.node(s.node).ip)
            checks += judge_wire(parse_frames(got.read_back), c.ip, s.ip, wire, nodes)
        why.append(f"saved the capture as {got.pcap}: open it in Wireshark or with `tcpdump -nn -r {got.pcap}`")
    why.append(_why(spec, c, s, node, iface, wire))
    return StepResult(text, ran, "\n".join(output), checks, why)


def _why(spec: LabSpec, c: Pod, s: Pod, node: str, iface: str, wire: Wire) -> str:
    if c.node == s.node:
        how = (f"the bridge {BRIDGE_IF} switches the frame from {c.name}'s veth to {s.name}'s by MAC"
               if iface == BRIDGE_IF else f"{node} routes it to {s.name}'s veth {iface} by its /32 route")
        return f"{c.name} and {s.name} share {node}: {how}; nothing reaches {HOST_ONLY_IF}, nothing is rewritten"
    if wire.tunnel:
        return (f"{c.node} routes {s.ip} into its tunnel device, which wraps the packet ({wire.describe()}); "
                f"{s.node} unwraps it and hands {s.name} the packet as {c.name} sent it")
    return (f"{c.node} routes {s.ip} via {s.node}'s {HOST_ONLY_IF} ({spec.dataplane}): only the next hop's MAC "
            "changes, the IP header is the one the pod wrote")


def curl_step(walkthrough: str, number: int, title: str, client: PodPart, server: PodPart,
              needs: Callable[[LabSpec, Roles], str | None]) -> Step:
    """A walkthrough step: client (busybox) fetches server's (httpd) page, captured and judged as above.
    The runner starts both pods on their parts' nodes before the step runs."""
    return Step(title, lambda spec, roles, pods: curl_text(walkthrough, number, title, client, server, spec, roles,
                                                           pods),
                lambda ctx, text: run_curl(ctx, text, walkthrough, client.name, server.name),
                pods=(server, client), needs=needs)
