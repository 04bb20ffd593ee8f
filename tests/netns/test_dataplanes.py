"""Every dataplane this kernel supports, end to end on the emulated lab at 3 and 5 nodes: up, every check
`k8slab verify` makes (interfaces, routes, BGP, pod addresses, node and pod traces), a cross-node `k8slab
trace` judged as expected, `k8slab diagram --trace` drawn, and the walkthrough written for the dataplane's CNI
plugin (flannel's tutorial, Calico's article) passing every step with the hops spec/expect.py computes.
IPIP is refused here (tests/netns/test_calico.py)."""

from __future__ import annotations

import re
from ipaddress import IPv4Address

import pytest

from k8slab.labs.capture import is_pcap
from k8slab.labs.netns import NetnsLab
from k8slab.spec.expect import hops_from_pod
from k8slab.spec.load import load_spec
from k8slab.teach.walkthroughs import for_lab
from k8slab.teach.walkthroughs.model import Roles
from k8slab.verify.run import run_checks

from .labtools import many_node_data, run_cli, unique_name, write_spec

DATAPLANES = {
    "flannel host-gw": {"plugin": "flannel", "backend": "host-gw"},
    "flannel vxlan": {"plugin": "flannel", "backend": "vxlan"},
    "calico None": {"plugin": "calico", "encapsulation": "None"},
    "calico VXLAN": {"plugin": "calico", "encapsulation": "VXLAN"},
    "calico VXLANCrossSubnet": {"plugin": "calico", "encapsulation": "VXLANCrossSubnet"},
}


@pytest.mark.parametrize("nodes", [3, 5])
@pytest.mark.parametrize("dataplane", sorted(DATAPLANES))
def test_dataplane_up_verify_trace_diagram(tmp_path, cli_labs, dataplane, nodes):
    data = many_node_data(nodes)
    data["cni"] = DATAPLANES[dataplane]
    spec_file = write_spec(tmp_path / "lab.yaml", data, unique_name("d"))
    spec = load_spec(spec_file)
    up = run_cli(spec_file, "up", "--backend", "netns")
    cli_labs(spec)
    assert up.returncode == 0, up.stderr
    assert spec.dataplane == dataplane
    lab = NetnsLab(spec)

    failed = [r.message for r in run_checks(lab) if not r.ok]
    assert failed == [], "\n".join(failed)

    a, b = spec.workers[0], spec.workers[-1]
    for name, node in (("src", b), ("dst", a)):
        started = run_cli(spec_file, "pod", "run", name, "--node", node.name)
        assert started.returncode == 0, started.stderr
    trace = run_cli(spec_file, "trace", "src", "dst")
    assert trace.returncode == 0, trace.stdout + trace.stderr
    assert "as expected" in trace.stdout and "NOT as" not in trace.stdout, trace.stdout
    drawn = run_cli(spec_file, "diagram", "--trace", "src", "dst", "-o", str(tmp_path / "lab.svg"))
    assert drawn.returncode == 0, drawn.stderr
    svg = (tmp_path / "lab.svg").read_text().replace("&#45;", "-")  # graphviz writes '-' as an entity
    assert f"{dataplane} on eth1" in svg and "hop 3" in svg

    walk = for_lab(spec)
    assert walk.name == ("calico" if spec.calico else "tutorial")
    # No NAME: the lab's plugin picks it. Its captures on eth1 are judged at 3 nodes; the wire between two nodes
    # is the same at 5, and a same-node capture waits its full 4 s for nothing, so the 5-node run skips them.
    caps = tmp_path / "captures"
    capture = ["--capture-dir", str(caps)] if nodes == 3 else ["--no-capture"]
    walked = run_cli(spec_file, "walkthrough", "--no-pause", *capture, timeout=600)
    out = walked.stdout + walked.stderr
    assert walked.returncode == 0, out
    assert f"runs {dataplane}: the {walk.name} walkthrough follows it" in out
    assert [f"✓ step {n}: matches the tutorial" in out for n in walk.numbers] == [True] * len(walk.steps), out
    assert "✗" not in out and "every step matches the tutorial" in out
    stated = list(stated_hops(spec, walk, walked.stdout))
    assert len(stated) == 2, walked.stdout  # pods on one node, pods across nodes
    for node, dst, said in stated:
        assert said == [h.address for h in hops_from_pod(spec, node, dst)], (node.name, dst, said)
    # Calico's step 5 offers its capture of the curl across nodes as a pcap (judged from that file)
    saved = sorted(p.name for p in caps.glob("*.pcap")) if caps.exists() else []
    assert saved == (["calico-step5.pcap"] if spec.calico and nodes == 3 else [])
    assert all(is_pcap(p) for p in caps.glob("*.pcap"))


IP = re.compile(r"\d+\.\d+\.\d+\.\d+(?![\d/])")  # an address, not a CIDR's


def stated_hops(spec, walk, out: str):
    """(the source pod's node, the traced address, the hop addresses 'the tutorial says:' states) for each step
    that traced from a pod: its `traceroute -n DST   # in pod SRC`, its source pod's node from the step's pods."""
    roles = Roles.of(spec)
    for section in out.split("━━ step ")[1:]:
        traced = re.search(r"\$ traceroute -n (\S+)   # in pod (\S+)", section)
        if not traced:
            continue
        number = int(section.split(" ", 1)[0])
        node = {p.name: roles.node(p.on) for p in walk.step(number).pods}[traced[2]]
        said = re.search(r"^the tutorial says: (.*)$", section, re.MULTILINE)[1]
        ordered = re.search(r"hops? in this order: ([^;]*)", said)
        hops = IP.findall(ordered[1]) if ordered else re.findall(r"^1 hop: (\S+),", said)  # the tutorial's step 3
        yield node, IPv4Address(traced[1]), [IPv4Address(a) for a in hops]
