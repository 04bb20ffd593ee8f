"""Every dataplane this kernel supports, end to end on the emulated lab at 3 and 5 nodes: up, every check
`k8slab verify` makes (interfaces, routes, BGP, pod addresses, node and pod traces), a cross-node `k8slab
trace` judged as expected, and `k8slab diagram --trace` drawn. IPIP is refused here (tests/netns/test_calico.py)."""

from __future__ import annotations

import pytest

from k8slab.labs.netns import NetnsLab
from k8slab.spec.load import load_spec
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
