"""`--backend ssh --inventory FILE`: the commands that work on a running lab work on an existing cluster's
machines. The machines are real sshds (tests/unit/sshd_nodes.py), one network namespace per node; only
kubectl on the control plane is a stand-in answering as an empty cluster with Ready nodes would."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from spec_files import spec_copy
from sshd_nodes import stand_in_cluster

from k8slab.cli import main
from k8slab.spec.load import load_spec

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="sshd in network namespaces needs root")

# kubectl as a cluster with these nodes Ready and no pods would answer; anything else fails as kubectl does.
FAKE_KUBECTL = """#!/bin/sh
shift  # --kubeconfig=...
case "$*" in
  "get nodes -o json") cat "$(dirname "$0")/nodes.json" ;;
  "get pods -o json") echo '{"items": []}' ;;
  "get pods -o name") ;;
  *) echo "error: the stand-in kubectl does not know: $*" >&2; exit 1 ;;
esac
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(spec file, inventory file) of a lab whose nodes are sshds."""
    work = tmp_path_factory.mktemp("ssh-cli")
    spec_file = spec_copy(work / "lab.yaml", "s")
    spec = load_spec(spec_file)
    nodes = json.dumps({"items": [
        {"metadata": {"name": n.name}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        for n in spec.nodes]})
    with stand_in_cluster(spec, work, FAKE_KUBECTL, {"nodes.json": nodes}) as inventory:
        yield spec_file, inventory


def k8slab(capsys, *argv: str) -> tuple[int, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out + err


@pytest.mark.parametrize("where", ["before", "after"])
def test_node_exec_runs_on_the_inventorys_machine(capsys, cluster, where):
    spec_file, inventory = cluster
    cp = load_spec(spec_file).control_plane
    options = ["--spec", str(spec_file), "--backend", "ssh", "--inventory", str(inventory)]
    command = ["node", "exec", cp.name, "--", "ip", "-o", "-4", "addr", "show", "dev", "lo"]
    argv = [*options, *command] if where == "before" else [*command[:3], *options, *command[3:]]
    rc, out = k8slab(capsys, *argv)
    assert rc == 0, out
    assert f"inet {cp.ip}/32" in out  # the sshd namespace of the control plane holds its spec address


def test_status_and_pod_list_over_ssh(capsys, cluster, monkeypatch):
    spec_file, inventory = cluster
    spec = load_spec(spec_file)
    monkeypatch.setenv("K8SLAB_SPEC", str(spec_file))
    monkeypatch.setenv("K8SLAB_INVENTORY", str(inventory))  # implies --backend ssh
    rc, out = k8slab(capsys, "status")
    assert rc == 0, out
    assert f"lab '{spec.name}' (ssh)" in out
    for node in spec.nodes:
        assert any(line.split()[:1] == [node.name] and line.split()[-1] == "Ready" for line in out.splitlines()), out
    rc, out = k8slab(capsys, "pod", "list")
    assert (rc, out.strip()) == (0, f"No pods in lab '{spec.name}'.")


@pytest.mark.parametrize("command", [["verify"], ["walkthrough", "--no-pause", "--step", "1"],
                                     ["trace", "controlplane", "node-1", "--no-capture"]])
def test_verify_walkthrough_and_trace_run_on_the_ssh_lab(capsys, cluster, command):
    spec_file, inventory = cluster
    spec = load_spec(spec_file)
    rc, out = k8slab(capsys, "--spec", str(spec_file), *command, "--inventory", str(inventory))
    # No Kubernetes behind the stand-in kubectl and no network between the sshds: the commands cannot pass,
    # but they must have picked this lab and gone to its machines rather than look for another lab.
    if command[0] == "verify":
        assert f"verifying lab '{spec.name}' (ssh, {len(spec.nodes)} nodes)" in out
    elif command[0] == "walkthrough":
        assert f"on lab '{spec.name}' (ssh)" in out
    else:
        assert "traceroute" in out and rc in (1, 2), out
