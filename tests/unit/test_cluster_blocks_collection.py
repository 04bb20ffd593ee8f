"""On a lab with Kubernetes and Calico, k8slab's pytest plugin hands the suite (and a teacher's own checks) the
spec as the cluster decided it: each node's block from its BlockAffinity, adopted once, at collection, so the
acceptance suite's parametrized routes and interfaces name the cluster's blocks, not lab.yaml's order.

The machines are real sshds (tests/unit/sshd_nodes.py); kubectl on the control plane is a stand-in printing
BlockAffinities shaped as the crd.projectcalico.org/v1 CRD holds them (test_calico_cluster.affinity) and
logging every call, so the test also sees how often the cluster was asked."""

from __future__ import annotations

import os
import subprocess
import sys
from ipaddress import IPv4Network
from pathlib import Path

import pytest
import yaml
from spec_files import spec_copy
from sshd_nodes import stand_in_cluster
from test_calico_cluster import affinity, affinity_list

from k8slab.labs.calico_cluster import with_cluster_blocks
from k8slab.spec.expect import node_interfaces, node_routes
from k8slab.spec.load import load_spec
from k8slab.verify import names

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="sshd in network namespaces needs root")

# calico-node's hostname-seeded choice: nothing like lab.yaml's order (node i, block i)
CHOSEN = {"controlplane": "10.244.120.64/26", "node-1": "10.244.84.128/26", "node-2": "10.244.247.0/26"}

FAKE_KUBECTL = """#!/bin/sh
shift  # --kubeconfig=...
echo "$*" >> "$(dirname "$0")/calls.log"
case "$*" in
  "get nodes") echo "controlplane Ready" ;;
  "get blockaffinities.crd.projectcalico.org -o json") cat "$(dirname "$0")/affinities.json" ;;
  *) echo "error: the stand-in kubectl does not know: $*" >&2; exit 1 ;;
esac
"""

TEACHER_CHECKS = f"""
def test_my_blocks(spec):
    assert {{n.name: str(n.pod_subnet) for n in spec.nodes}} == {CHOSEN!r}
"""


@pytest.fixture(scope="module")
def calico_cluster(tmp_path_factory):
    """(spec file, inventory file, kubectl's call log) of a Calico lab whose nodes are sshds."""
    work = tmp_path_factory.mktemp("calico-blocks")
    spec_file = spec_copy(work / "lab.yaml", "cb")
    data = yaml.safe_load(spec_file.read_text())
    data["cni"] = {"plugin": "calico", "encapsulation": "VXLANCrossSubnet"}
    spec_file.write_text(yaml.safe_dump(data))
    spec = load_spec(spec_file)
    # the nodes' confirmed blocks, and what must not be adopted: a pending claim, a deleted affinity
    items = [affinity(n, c) for n, c in CHOSEN.items()]
    items += [affinity("node-1", "10.244.0.0/26", state="pending"),
              affinity("node-2", "10.244.0.64/26", deleted="true")]
    with stand_in_cluster(spec, work, FAKE_KUBECTL, {"affinities.json": affinity_list(items)}) as inventory:
        yield spec_file, inventory, work / "bin" / "calls.log"


def pytest_run(cwd: Path, spec_file: Path, inventory: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("K8SLAB_") and k != "CI"}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--k8slab-spec", str(spec_file),
                           "--k8slab-backend", "ssh", "--k8slab-inventory", str(inventory), *args],
                          check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_suite_is_parametrized_from_the_clusters_blocks(calico_cluster):
    spec_file, inventory, calls = calico_cluster
    calls.unlink(missing_ok=True)
    spec = load_spec(spec_file)
    assert {n.name: str(n.pod_subnet) for n in spec.nodes} != CHOSEN  # lab.yaml's order is another layout
    run = pytest_run(ROOT, spec_file, inventory, "--collect-only", "-q", "tests/acceptance/test_routes.py",
                     "tests/acceptance/test_interfaces.py")
    assert run.returncode == 0, run.stdout + run.stderr
    adopted = with_cluster_blocks(spec, {n: IPv4Network(c) for n, c in CHOSEN.items()})
    routes = [names.route_name(e) for n in adopted.nodes for e in node_routes(adopted, n, has_pods=True)]
    tunnels = [names.interface_name(e) for n in adopted.nodes for e in node_interfaces(adopted, n, has_pods=True)
               if e.name == "vxlan.calico"]
    assert len(routes) == 9 and len(tunnels) == 3
    for name in routes + tunnels:
        assert f"[{name}]" in run.stdout, (name, run.stdout)
    stale = [names.route_name(e) for n in spec.nodes for e in node_routes(spec, n, has_pods=True)]
    assert not any(f"[{name}]" in run.stdout for name in stale)
    # asked once, at collection (not per test, not per module)
    assert calls.read_text().splitlines().count("get blockaffinities.crd.projectcalico.org -o json") == 1


def test_a_teachers_own_checks_get_the_clusters_blocks(calico_cluster, tmp_path):
    spec_file, inventory, _ = calico_cluster
    (tmp_path / "test_my_checks.py").write_text(TEACHER_CHECKS)
    run = pytest_run(tmp_path, spec_file, inventory, "-q", "test_my_checks.py")
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout + run.stderr
