"""`k8slab walkthrough pods` steps 3-5 through the CLI, on a flannel host-gw and a flannel vxlan lab: each
step matches; the pcap a curl step offers is in --capture-dir and `tcpdump -nn -r` shows the addresses of
the very pods that ran (read from the lab afterwards: --keep leaves them), bare or wrapped between the
nodes' eth1 addresses as the backend does; the layer-2 step shows the pods' real eth0 MACs in the ARP
tables and on their real veth ports in cni0's fdb, and on vxlan every peer's real flannel.1 MAC."""

from __future__ import annotations

import re
import subprocess

import pytest

from k8slab.labs.capture import is_pcap
from k8slab.labs.netns import NetnsLab
from k8slab.spec.facts import VXLAN_PORT

from .labtools import run_cli, spec_data, spec_from, unique_name, write_spec


@pytest.fixture(scope="module", params=["host-gw", "vxlan"])
def lab(request, tmp_path_factory):
    """One lab per backend for the module's tests, up through the CLI, destroyed at the end whatever happened."""
    data = spec_data()
    data["cni"]["backend"] = request.param
    name = unique_name("wc")
    folder = tmp_path_factory.mktemp(name)
    path = write_spec(folder / "lab.yaml", data, name)
    made = NetnsLab(spec_from(data, name))
    try:
        done = run_cli(path, "up", "--backend", "netns")
        assert done.returncode == 0, done.stderr
        yield path, made, folder / "captures"
    finally:
        made.destroy()


def step(lab, number: int) -> str:
    path, _, captures = lab
    done = run_cli(path, "walkthrough", "pods", "--step", str(number), "--no-pause", "--keep",
                   "--capture-dir", str(captures))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"✓ step {number}: matches the tutorial" in done.stdout
    return done.stdout


def read_pcap(path) -> str:
    proc = subprocess.run(["tcpdump", "-nn", "-r", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def kept(made: NetnsLab):
    pods = {p.name: p for p in made.pods()}
    return pods["busybox"], pods["httpd"]


LINES = re.MULTILINE


def fetch_lines(text: str, src, dst) -> list[str]:
    return re.findall(rf"^(.*)IP {re.escape(str(src))}\.(\d+) > {re.escape(str(dst))}\.(\d+):", text, LINES)


def test_curl_on_one_node_is_captured_on_the_bridge_with_the_pods_addresses(lab):
    _, made, captures = lab
    out = step(lab, 3)
    busybox, httpd = kept(made)
    w1 = made.spec.workers[0].name
    assert busybox.node == httpd.node == w1
    pcap = captures / "pods-step3.pcap"
    assert is_pcap(pcap) and f"saved the capture as {pcap}" in out
    text = read_pcap(pcap)
    to, back = fetch_lines(text, busybox.ip, httpd.ip), fetch_lines(text, httpd.ip, busybox.ip)
    assert to and back and {d for _, _, d in to} == {"80"} and {s for _, s, _ in back} == {"80"}
    # each the outermost header (a timestamp before it), and nothing else on the wire: bridged, not tunnelled
    assert all(prefix.strip() for prefix, _, _ in to + back) and len(text.splitlines()) == len(to) + len(back)


def test_curl_across_nodes_keeps_the_pods_addresses_inside_or_outside_the_tunnel(lab):
    _, made, captures = lab
    step(lab, 5)
    busybox, httpd = kept(made)
    w1, w2 = made.spec.workers[0], made.spec.workers[1]
    assert (httpd.node, busybox.node) == (w1.name, w2.name)
    text = read_pcap(captures / "pods-step5.pcap")
    lines = text.splitlines()
    to, back = fetch_lines(text, busybox.ip, httpd.ip), fetch_lines(text, httpd.ip, busybox.ip)
    assert to and back
    if made.spec.cni_backend == "host-gw":
        assert all(prefix.strip() for prefix, _, _ in to + back) and str(VXLAN_PORT) not in text
        return
    # vxlan: every inner line follows an outer UDP 8472 line between the two nodes' eth1 addresses
    outer = re.compile(rf"IP ({re.escape(str(w1.ip))}|{re.escape(str(w2.ip))})\.\d+ > "
                       rf"({re.escape(str(w1.ip))}|{re.escape(str(w2.ip))})\.{VXLAN_PORT}: OTV")
    inner = [i for i, line in enumerate(lines) if re.match(rf"IP ({busybox.ip}|{httpd.ip})\.\d+ > ", line)]
    assert len(inner) == len(to) + len(back)
    assert all(outer.search(lines[i - 1]) for i in inner), text
    assert all(m.group(1) != m.group(2) for m in map(outer.search, (lines[i - 1] for i in inner)) if m)


def host_veth(made: NetnsLab, pod) -> str:
    link = made.pod_run(pod.name, ["ip", "-o", "link", "show", "eth0"]).stdout
    index = re.search(r"eth0@if(\d+)", link).group(1)
    node_links = made.node_run(pod.node, ["ip", "-o", "link", "show"]).stdout
    return re.search(rf"^{index}: ([^:@]+)", node_links, LINES).group(1)


def test_layer2_tables_hold_the_pods_real_macs_on_their_real_ports(lab):
    _, made, _ = lab
    out = step(lab, 4)
    busybox, httpd = kept(made)
    mac = {p.name: made.pod_run(p.name, ["cat", "/sys/class/net/eth0/address"]).stdout.strip()
           for p in (busybox, httpd)}
    assert re.search(rf"^  \| {httpd.ip} .*lladdr {mac['httpd']}", out, LINES)          # busybox's ip neigh
    assert re.search(rf"^  \| {busybox.ip} +0x1 +0x2 +{mac['busybox']}", out, LINES)    # httpd's /proc/net/arp
    for pod in (busybox, httpd):
        assert re.search(rf"^  \| {pod.ip} lladdr {mac[pod.name]}", out, LINES)         # the node's ip neigh on cni0
        # learned, so no "permanent" after it (the port's own MAC is permanent)
        assert re.search(rf"^  \| {mac[pod.name]} dev {host_veth(made, pod)} master cni0 *$", out, LINES)
    if made.spec.cni_backend != "vxlan":
        assert "flannel.1" not in out
        return
    node = made.spec.node(httpd.node)
    for peer in (n for n in made.spec.nodes if n != node):
        vtep = made.node_run(peer.name, ["cat", "/sys/class/net/flannel.1/address"]).stdout.strip()
        assert f"| {peer.pod_subnet.network_address} lladdr {vtep} PERMANENT" in out
        assert f"| {vtep} dst {peer.ip} self permanent" in out
