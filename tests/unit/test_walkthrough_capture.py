"""The pods walkthrough's curl and layer-2 steps without a lab: what the wire must show for each dataplane,
how a `tcpdump -nn -r` text is judged (a NAT'd or wrongly wrapped fetch fails, with the reason), how the
ARP and fdb tables are read, what each step's text says and which labs skip which step, and why."""

from __future__ import annotations

from pathlib import Path

from k8slab.cli import main
from k8slab.labs.base import Pod
from k8slab.spec import calico
from k8slab.spec.facts import BRIDGE_IF, HOST_ONLY_IF, VXLAN_IF, VXLAN_PORT
from k8slab.spec.load import load_spec
from k8slab.teach.walkthroughs.curl_capture import (
    Wire,
    capture_point,
    expected_wire,
    judge_wire,
    parse_frames,
    pcap_path,
)
from k8slab.teach.walkthroughs.layer2 import fdb_entries, learned_on, neigh_macs, proc_arp_macs, vtep_ok
from k8slab.teach.walkthroughs.model import DEFAULT_CAPTURE_DIR, Roles
from k8slab.teach.walkthroughs.pods import PODS
from k8slab.teach.walkthroughs.runner import plan

ROOT = Path(__file__).resolve().parents[2]
SPEC = load_spec(ROOT / "lab.yaml")
W1, W2 = SPEC.workers[0], SPEC.workers[1]
CLIENT, SERVER = W2.pod_subnet.network_address + 2, W1.pod_subnet.network_address + 3


def tcp(src, dst, sport, dport, flags="S", stamp="12:00:00.000001 "):
    return f"{stamp}IP {src}.{sport} > {dst}.{dport}: Flags [{flags}], seq 1, win 64240, length 0"


def both_ways(src=CLIENT, dst=SERVER, prefix=("", "")):
    return "\n".join([prefix[0] + tcp(src, dst, 41512, 80), prefix[1] + tcp(dst, src, 80, 41512, "S.")])


def vxlan(outer_src, outer_dst, inner: str, port=VXLAN_PORT):
    head = f"12:00:00.000001 IP {outer_src}.47354 > {outer_dst}.{port}: OTV, flags [I] (0x08), overlay 0, instance 1"
    return f"{head}\n{inner}"


def test_the_wire_each_dataplane_puts_between_two_nodes():
    assert expected_wire(SPEC, W2.name, W1.name) == Wire("")
    assert expected_wire(SPEC.with_dataplane("flannel vxlan"), W2.name, W1.name) == Wire("vxlan", VXLAN_PORT)
    assert expected_wire(SPEC.with_dataplane("flannel ipip"), W2.name, W1.name) == Wire("ipip")
    assert expected_wire(SPEC.with_dataplane("calico VXLAN"), W2.name, W1.name) == Wire("vxlan", calico.VXLAN_PORT)
    # CrossSubnet: every node is on the host-only network, so nothing is wrapped; on one node nothing ever is
    assert expected_wire(SPEC.with_dataplane("calico VXLANCrossSubnet"), W2.name, W1.name) == Wire("")
    assert expected_wire(SPEC.with_dataplane("flannel vxlan"), W1.name, W1.name) == Wire("")


def test_where_the_fetch_is_captured():
    assert capture_point(SPEC, W2.name, W1.name) == (W1.name, HOST_ONLY_IF)
    assert capture_point(SPEC, W1.name, W1.name) == (W1.name, BRIDGE_IF)
    assert capture_point(SPEC.with_dataplane("calico IPIP"), W1.name, W1.name) == (W1.name, None)  # the pod's veth
    assert pcap_path(DEFAULT_CAPTURE_DIR, "pods", 3) == Path("k8slab-captures/pods-step3.pcap")


def test_a_plain_fetch_passes_and_a_natted_one_fails():
    nodes = (W2.ip, W1.ip)
    checks = judge_wire(parse_frames(both_ways()), CLIENT, SERVER, Wire(""), nodes)
    assert all(c.ok for c in checks) and len(checks) == 3
    assert "1 packet(s)" in checks[0].text and f"{CLIENT} > {SERVER}:80" in checks[0].text
    natted = both_ways(src=W2.ip)  # the node's address instead of the pod's: masqueraded
    checks = judge_wire(parse_frames(natted), CLIENT, SERVER, Wire(""), nodes)
    assert not checks[0].ok and not checks[1].ok and "also seen: " in checks[1].text
    assert f"{W2.ip} > {SERVER}" in checks[1].text and f"{SERVER} > {W2.ip}" in checks[1].text
    assert not any(c.ok for c in judge_wire([], CLIENT, SERVER, Wire(""), nodes)[:2])


def test_a_vxlan_fetch_is_judged_by_its_outer_and_inner_headers():
    nodes = (W2.ip, W1.ip)
    wire = Wire("vxlan", VXLAN_PORT)
    text = "\n".join([vxlan(W2.ip, W1.ip, tcp(CLIENT, SERVER, 41512, 80, stamp="")),
                      vxlan(W1.ip, W2.ip, tcp(SERVER, CLIENT, 80, 41512, "S.", stamp=""))])
    frames = parse_frames(text)
    assert [len(f.headers) for f in frames] == [2, 2] and frames[0].inner.dst == SERVER
    assert all(c.ok for c in judge_wire(frames, CLIENT, SERVER, wire, nodes))
    # the same fetch unwrapped, or wrapped on Calico's port where flannel's is expected, fails the last check
    plain = judge_wire(parse_frames(both_ways()), CLIENT, SERVER, wire, nodes)
    assert [c.ok for c in plain] == [True, True, False] and "2 packet(s) were not" in plain[2].text
    other_port = text.replace(f".{VXLAN_PORT}:", f".{calico.VXLAN_PORT}:")
    assert not judge_wire(parse_frames(other_port), CLIENT, SERVER, wire, nodes)[2].ok
    # and a wrapped fetch where none is expected
    assert not judge_wire(frames, CLIENT, SERVER, Wire(""), nodes)[2].ok


def test_ip_in_ip_prints_both_headers_on_one_line():
    line = f"12:00:00.000001 IP {W2.ip} > {W1.ip}: {tcp(CLIENT, SERVER, 41512, 80, stamp='')}"
    back = f"12:00:00.000002 IP {W1.ip} > {W2.ip}: {tcp(SERVER, CLIENT, 80, 41512, 'S.', stamp='')}"
    frames = parse_frames(f"{line}\n{back}")
    assert [len(f.headers) for f in frames] == [2, 2] and frames[0].headers[0].dport is None
    assert all(c.ok for c in judge_wire(frames, CLIENT, SERVER, Wire("ipip"), (W2.ip, W1.ip)))


def test_arp_and_fdb_tables_are_read_as_iproute2_and_the_kernel_print_them():
    mac_c, mac_s = "ae:da:29:95:35:c3", "52:08:52:67:aa:36"
    neigh = f"{W1.pod_gateway} lladdr 6e:e1:40:5c:6e:59 DELAY\n{SERVER} lladdr {mac_s} REACHABLE\n10.9.9.9  FAILED"
    assert neigh_macs(neigh) == {str(W1.pod_gateway): "6e:e1:40:5c:6e:59", str(SERVER): mac_s}
    arp = ("IP address       HW type     Flags       HW address            Mask     Device\n"
           f"{CLIENT}       0x1         0x2         {mac_c.upper()}     *        eth0\n"
           "10.9.9.9         0x1         0x0         00:00:00:00:00:00     *        eth0")
    assert proc_arp_macs(arp) == {str(CLIENT): mac_c}
    fdb = fdb_entries(f"{mac_s} dev vetha master cni0 \n2a:48:48:fe:94:d1 dev vetha master cni0 permanent\n"
                      "33:33:00:00:00:01 dev vetha self permanent")
    assert learned_on(fdb, mac_s, "vetha") and not learned_on(fdb, mac_s, "vethb")
    assert not learned_on(fdb, "2a:48:48:fe:94:d1", "vetha")  # the port's own MAC is not a learned pod MAC
    peer, mac = SPEC.control_plane, "0e:f1:c0:a8:38:0a"
    vneigh = neigh_macs(f"{peer.pod_subnet.network_address} lladdr {mac} PERMANENT")
    assert vtep_ok(vneigh, fdb_entries(f"{mac} dst {peer.ip} self permanent", VXLAN_IF), peer, mac)
    assert not vtep_ok(vneigh, fdb_entries(f"{mac} dst {W1.ip} self permanent", VXLAN_IF), peer, mac)


def test_the_steps_texts_name_this_labs_nodes_pods_and_wire():
    roles = Roles.of(SPEC)
    pods = {"httpd": Pod("httpd", W1.name, SERVER), "busybox": Pod("busybox", W2.name, CLIENT)}
    cross = PODS.step(5).text(SPEC, roles, pods)
    assert cross.number == 5 and f"http://{SERVER}/" in cross.tutorial[3]
    assert f"--iface {HOST_ONLY_IF}" in cross.emulated[2]
    assert f"-o {DEFAULT_CAPTURE_DIR}/pods-step5.pcap" in cross.emulated[2] and "no tunnel" in cross.expected
    vx = PODS.step(5).text(SPEC.with_dataplane("flannel vxlan"), roles, pods)
    assert f"UDP {VXLAN_PORT}" in vx.demonstrates
    near = PODS.step(3).text(SPEC, roles, {})
    assert f"<httpd's address in {W1.pod_subnet}>" in near.tutorial[3] and f"--iface {BRIDGE_IF}" in near.emulated[2]
    l2 = PODS.step(4).text(SPEC, roles, pods)
    assert f"bridge fdb show br {BRIDGE_IF}" in l2.emulated[-1] and VXLAN_IF not in " ".join(l2.emulated)
    l2vx = PODS.step(4).text(SPEC.with_dataplane("flannel vxlan"), roles, pods)
    assert l2vx.emulated[-1] == f"k8slab node exec {W1.name} -- bridge fdb show dev {VXLAN_IF}"


def test_which_labs_skip_which_step_and_why():
    one_worker = type(SPEC)(**{**SPEC.__dict__, "nodes": SPEC.nodes[:2]})
    run, skipped = plan(one_worker, PODS, PODS.numbers)
    assert run == [1, 2, 3, 4] and [s.number for s in skipped] == [5] and "needs two workers" in skipped[0].why
    cal = SPEC.with_dataplane("calico VXLAN")
    run, skipped = plan(cal, PODS, PODS.numbers)
    assert run == [1, 2, 3, 5] and [s.number for s in skipped] == [4]
    assert "no bridge" in skipped[0].why and "proxy ARP" in skipped[0].why and "walkthrough calico" in skipped[0].why
    assert plan(SPEC.with_dataplane("flannel vxlan"), PODS, PODS.numbers) == ([1, 2, 3, 4, 5], [])


def test_a_capture_folder_that_cannot_be_made_is_refused_before_the_lab_is_touched(capsys, spec_file, tmp_path,
                                                                                   monkeypatch):
    def refuse(*_a, **_k):
        raise AssertionError("the walkthrough went on to the lab although --capture-dir was bad")
    monkeypatch.setattr("k8slab.cli.tutorial_cmds.running_lab", refuse)
    a_file = tmp_path / "plain-file"
    a_file.write_text("")
    rc = main(["--spec", str(spec_file), "walkthrough", "pods", "--capture-dir", str(a_file / "caps")])
    err = capsys.readouterr().err
    assert rc == 2 and f"cannot save the walkthrough's captures in '{a_file / 'caps'}'" in err
    assert f"{a_file} is not a directory" in err and "--capture-dir DIR" in err
