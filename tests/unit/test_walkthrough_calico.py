"""The Calico walkthrough from the spec alone: its plan on smaller labs, its pods, what each step says it
will show (hops and routes as spec/expect.py and spec/expect_calico.py compute them, per encapsulation),
and which walkthrough `k8slab walkthrough` runs on a lab: the one for its CNI plugin by default, and a
refusal naming it when one written for another plugin is asked for."""

from __future__ import annotations

import re
from ipaddress import IPv4Address
from pathlib import Path

import pytest
import yaml

from k8slab.errors import LabStateError, UsageError
from k8slab.labs.base import Pod
from k8slab.spec import calico, expect_calico
from k8slab.spec.expect import hops_from_pod
from k8slab.spec.load import load_spec, parse_spec
from k8slab.teach.walkthroughs import WALKTHROUGHS, choose, for_lab
from k8slab.teach.walkthroughs.calico import CALICO, FAR, NEAR, SERVER
from k8slab.teach.walkthroughs.model import Roles, pods_of
from k8slab.teach.walkthroughs.pods import PODS
from k8slab.teach.walkthroughs.runner import plan
from k8slab.teach.walkthroughs.tutorial import TUTORIAL

ROOT = Path(__file__).resolve().parents[2]
MODES = calico.ENCAPSULATIONS
IP = re.compile(r"\d+\.\d+\.\d+\.\d+(?![\d/])")


def calico_spec(mode: str = "None", workers: int = 2):
    data = yaml.safe_load((ROOT / "lab.yaml").read_text())
    data["nodes"] = data["nodes"][:1 + workers]
    data["cni"] = {"plugin": "calico", "encapsulation": mode}
    return parse_spec(yaml.safe_dump(data))


def running(spec) -> dict[str, Pod]:
    """The walkthrough's pods as the lab hands them out: the server first on node-1, then its neighbour."""
    r = Roles.of(spec)
    first = calico.first_pod_ordinal(spec.calico)
    n1, n2 = r.dst_worker, r.src_worker
    return {NEAR: Pod(NEAR, n1.name, n1.pod_subnet.network_address + first),
            SERVER: Pod(SERVER, n1.name, n1.pod_subnet.network_address + first + 1),
            FAR: Pod(FAR, n2.name, n2.pod_subnet.network_address + first)}


def said_hops(expected: str) -> list[IPv4Address]:
    """The addresses of 'N hops in this order: ...', in order (what the dataplane test reads too)."""
    m = re.search(r"(\d+) hops? in this order: ([^;]*)", expected)
    assert m, expected
    found = [IPv4Address(a) for a in IP.findall(m[2])]
    assert len(found) == int(m[1]), expected
    return found


def test_the_full_lab_runs_every_step_and_smaller_labs_say_why_not():
    assert plan(calico_spec(), CALICO, CALICO.numbers) == (list(CALICO.numbers), [])
    run, skipped = plan(calico_spec(workers=1), CALICO, CALICO.numbers)
    assert run == [1, 2, 4] and [s.number for s in skipped] == [3, 5]
    assert all("two workers" in s.why and "has 1" in s.why for s in skipped)
    lone = calico_spec(workers=0)
    run, skipped = plan(lone, CALICO, CALICO.numbers)
    assert run == [] and all("worker" in s.why and f"lab {lone.name!r}" in s.why for s in skipped)


def test_its_pods_are_its_own_and_step_4_is_the_pods_walkthroughs():
    assert pods_of(CALICO, CALICO.numbers) == {NEAR, SERVER, FAR, *pods_of(PODS, [1])}
    assert not pods_of(CALICO, [1, 2, 3]) & pods_of(TUTORIAL, TUTORIAL.numbers)  # a student's tutorial pods stay
    spec = calico_spec()
    mine, theirs = CALICO.step(4).text(spec, Roles.of(spec), {}), PODS.step(1).text(spec, Roles.of(spec), {})
    assert mine.number == 4 and theirs.number == 1 and (mine.title, mine.tutorial) == (theirs.title, theirs.tutorial)
    assert CALICO.step(4).run is PODS.step(1).run and CALICO.step(4).needs is PODS.step(1).needs


@pytest.mark.parametrize("mode", MODES)
def test_the_hops_each_trace_step_announces_are_the_expectations(mode):
    spec = calico_spec(mode)
    r, pods = Roles.of(spec), running(spec)
    same = CALICO.step(2).text(spec, r, pods).expected
    assert said_hops(same) == [h.address for h in hops_from_pod(spec, r.dst_worker, pods[SERVER].ip)]
    assert said_hops(same)[-1] == pods[SERVER].ip and len(said_hops(same)) == 2  # routed: the node is a hop
    across = CALICO.step(3).text(spec, r, pods).expected
    assert said_hops(across) == [h.address for h in hops_from_pod(spec, r.src_worker, pods[SERVER].ip)]
    assert across.endswith(f"{r.src_worker.name} routes {expect_calico.route_to(spec, r.src_worker, r.dst_worker)}")


@pytest.mark.parametrize("mode", MODES)
def test_step_3_names_who_wrote_the_route_and_what_the_wire_carries(mode):
    spec = calico_spec(mode)
    r = Roles.of(spec)
    text = CALICO.step(3).text(spec, r, running(spec))
    shown = text.demonstrates
    bgp = not mode.startswith("VXLAN")
    assert ("proto bird" in shown) == bgp and ("Felix" in shown) == (not bgp)
    assert any("calicoctl node status" in c for c in text.tutorial) == bgp
    assert any("birdc" in c and "show protocols" in c for c in text.emulated) == bgp
    if mode == "None" or mode.endswith("CrossSubnet"):  # the tutorial's nodes share one subnet: no tunnel
        assert "unchanged" in shown and "UDP" not in shown and "protocol 4" not in shown
        assert ("does not encapsulate" in shown) == mode.endswith("CrossSubnet")
    elif mode == "VXLAN":
        assert f"into {calico.VXLAN_IF}" in shown and f"UDP port {calico.VXLAN_PORT}" in shown
    else:
        assert f"into {calico.IPIP_IF}" in shown and "protocol 4" in shown


@pytest.mark.parametrize("mode", MODES)
def test_step_5_captures_the_curl_across_nodes_on_eth1_as_the_pool_carries_it(mode):
    spec = calico_spec(mode)
    r, pods = Roles.of(spec), running(spec)
    text = CALICO.step(5).text(spec, r, pods)
    assert text.number == 5 and any("-o k8slab-captures/calico-step5.pcap" in c for c in text.emulated)
    assert f"k8slab capture --node {r.dst_worker.name} --iface eth1" in " ".join(text.emulated)
    assert f"wget -qO- http://{pods[SERVER].ip}/" in text.tutorial[3]
    tunnel = {"VXLAN": f"UDP {calico.VXLAN_PORT}", "IPIP": "protocol 4"}.get(mode, "no tunnel")
    assert tunnel in text.expected
    assert CALICO.step(5).pods and {p.name for p in CALICO.step(5).pods} == {FAR, SERVER}


def test_step_1_says_what_a_calico_pod_holds():
    spec = calico_spec()
    r, pods = Roles.of(spec), running(spec)
    text = CALICO.step(1).text(spec, r, pods)
    veth, ip = calico.veth_name(NEAR), pods[NEAR].ip
    assert f"{ip}/32" in text.expected and f"via {calico.POD_GATEWAY}" in text.expected
    assert calico.HOST_VETH_MAC in text.expected and f"{ip} dev {veth} scope link" in text.expected
    assert f"k8slab node exec {r.dst_worker.name} -- cat /proc/sys/net/ipv4/conf/{veth}/proxy_arp" in text.emulated
    before = CALICO.step(1).text(spec, r, {})  # before the pod runs: its block, not a made-up address
    assert f"<{NEAR}'s address in {r.dst_worker.name}'s block {r.dst_worker.pod_subnet}>" in before.expected


def test_without_a_name_the_labs_cni_plugin_picks_the_walkthrough():
    flannel = load_spec(ROOT / "lab.yaml")
    cmd = flannel.command
    assert for_lab(flannel) is TUTORIAL and for_lab(calico_spec()) is CALICO
    walk, why = choose(flannel, None, cmd)
    assert walk is TUTORIAL and f"runs {flannel.dataplane}: the tutorial walkthrough follows it" in why
    walk, why = choose(calico_spec("VXLAN"), None, cmd)
    assert walk is CALICO and "runs calico VXLAN: the calico walkthrough follows it" in why
    assert choose(calico_spec(), "pods", cmd) == (PODS, None) and choose(flannel, "pods", cmd) == (PODS, None)


@pytest.mark.parametrize(("spec_of", "asked", "named"), [
    (lambda: calico_spec(), "tutorial", "calico"),
    (lambda: load_spec(ROOT / "lab.yaml"), "calico", "tutorial"),
    (lambda: load_spec(ROOT / "lab.yaml").with_dataplane("flannel vxlan"), "calico", "tutorial"),
])
def test_a_walkthrough_for_another_cni_plugin_is_refused_naming_the_one_to_run(spec_of, asked, named):
    spec = spec_of()
    with pytest.raises(LabStateError) as err:
        choose(spec, asked, lambda rest: f"k8slab --backend netns {rest}")
    said = str(err.value)
    assert f"the {asked} walkthrough follows {WALKTHROUGHS[asked].plugins[0]} labs" in said
    assert f"runs {spec.dataplane}" in said and f"`k8slab --backend netns walkthrough {named}` follows this lab" in said


def test_an_unknown_walkthrough_is_a_usage_error_naming_them_all():
    with pytest.raises(UsageError, match="there are: tutorial, calico, pods"):
        choose(calico_spec(), "cilium", str)
