"""The roles' resume logic run for real by ansible-playbook, on recorded node states: kubeadm, kubectl and
crictl are stubs that log their arguments (and fail when told to), every path the tasks check lives in a
temporary folder. A fresh node, a half-finished init or join, an attempt that fails once or twice, a node
already done, and a worker whose predecessor is not registered: each gives exactly the kubeadm calls the
roles promise."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from k8slab.provision.ansible_vars import ansible_vars
from k8slab.spec.load import load_spec

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
SPEC = load_spec(ROOT / "lab.yaml")
CP, W1, W2 = SPEC.control_plane.name, SPEC.workers[0].name, SPEC.workers[1].name
# A stub logs "<tool> <args>" and fails the first $FAIL_<VERB> calls of that kubeadm verb (init, join).
STUB = """#!/bin/sh
echo "$(basename "$0") $*" >> "$STUB_LOG"
if [ "$(basename "$0")" = kubeadm ]; then
  var="FAIL_$(echo "$1" | tr a-z A-Z)"; eval "limit=\\${$var:-0}"
  count_file="$STUB_LOG.$1"; count=$(cat "$count_file" 2>/dev/null || echo 0); echo $((count + 1)) > "$count_file"
  if [ "$count" -lt "$limit" ]; then echo "kubeadm $1: simulated failure" >&2; exit 1; fi
fi
if [ "$(basename "$0") $1 $2" = "kubeadm token create" ]; then
  echo "kubeadm join 192.0.2.1:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:$HASH"
fi
if [ "$(basename "$0")" = kubectl ]; then
  case "$*" in *"get nodes"*) echo "$REGISTERED";; *taint*) echo "node/$4 untainted";; esac
fi
exit 0
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0 and os.environ.get("CI") != "true",
                                reason="the role tasks chown to root: run as root (CI does)")


@dataclass
class Node:
    """One simulated node: its own config folder and kubeadm's files under a temp dir."""

    root: Path

    @property
    def config_dir(self) -> Path:
        return self.root / "etc-k8slab"

    @property
    def apiserver_manifest(self) -> Path:
        return self.root / "kubernetes" / "manifests" / "kube-apiserver.yaml"

    @property
    def kubelet_conf(self) -> Path:
        return self.root / "kubernetes" / "kubelet.conf"

    def hostvars(self) -> dict[str, str]:
        return {"ansible_connection": "local", "ansible_python_interpreter": str(BIN / "python"),
                "k8slab_config_dir": str(self.config_dir), "k8slab_apiserver_manifest": str(self.apiserver_manifest),
                "k8slab_kubelet_kubeconfig": str(self.kubelet_conf)}


def first_play_cni_pull() -> dict:
    """The CNI image pull task of site.yml's first play, as it is written there."""
    first = yaml.safe_load((ROOT / "ansible" / "site.yml").read_text())[0]
    (task,) = [t for t in first["tasks"] if "flannel" in str(t.get("ansible.builtin.include_role"))]
    return task


def run(tmp_path: Path, node: str, *, registered: list[str], fail: dict[str, int] | None = None,
        prepare=None, joined: tuple[str, ...] = ()) -> tuple[int, list[str], str, Node]:
    """The control plane's init tasks (node = CP) or a worker's image and join tasks, on a fresh
    simulated node that `prepare` may put in a recorded state first."""
    sim = Node(tmp_path / node)  # node "token": the control plane's join-token tasks, all hosts in the run
    sim.root.mkdir(parents=True)
    if prepare:
        prepare(sim)
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    for tool in ("kubeadm", "kubectl", "crictl"):
        (stubs / tool).write_text(STUB)
        (stubs / tool).chmod(0o755)
    nodes = {name: sim if name == node else Node(tmp_path / f"other-{name}") for name in (CP, W1, W2)}
    for name in joined:  # workers that finished kubeadm join in an earlier run
        nodes[name].config_dir.mkdir(parents=True, exist_ok=True)
        (nodes[name].config_dir / "kubeadm-join.done").write_text("done\n")
    hosts = {name: n.hostvars() for name, n in nodes.items()}
    inventory = {"all": {"children": {"k8s_nodes": {"children": {
        "control_plane": {"hosts": {CP: hosts[CP]}}, "workers": {"hosts": {W1: hosts[W1], W2: hosts[W2]}}}}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    group_vars = yaml.safe_load((ROOT / "ansible" / "group_vars" / "all.yml").read_text())
    shared = {k: v for k, v in group_vars.items() if k not in hosts[CP]}  # per-node paths stay in the inventory
    (tmp_path / "extravars.json").write_text(json.dumps({**shared, **ansible_vars(SPEC)}))
    if node == "token":  # the control plane deciding which workers join, after every node's first play
        plays = [{"name": "stamps", "hosts": "k8s_nodes", "gather_facts": False, "tasks": [
                     {"ansible.builtin.include_role": {"name": "kubernetes", "tasks_from": "images.yml"}}]},
                 {"name": "token", "hosts": CP, "gather_facts": False, "tasks": [
                     {"ansible.builtin.include_role": {"name": "control_plane", "tasks_from": "join-token.yml"}}]}]
    elif node == CP:
        plays = [{"name": "init", "hosts": CP, "gather_facts": False, "tasks": [
            {"ansible.builtin.include_role": {"name": "control_plane", "tasks_from": "init.yml"}}]}]
    else:
        plays = [{"name": "token", "hosts": CP, "gather_facts": False, "tasks": [
                     {"ansible.builtin.set_fact": {"control_plane_join": {
                         "token": "abcdef.0123456789abcdef", "ca_cert_hash": "sha256:" + "ab" * 32}}}]},
                 {"name": "join", "hosts": node, "gather_facts": False, "tasks": [
                     {"ansible.builtin.include_role": {"name": "kubernetes", "tasks_from": "images.yml"}},
                     first_play_cni_pull(),
                     {"ansible.builtin.include_role": {"name": "worker", "tasks_from": "join.yml"}}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(plays, sort_keys=False))
    log = tmp_path / "calls.log"
    env = {**os.environ, "PATH": f"{stubs}{os.pathsep}{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "STUB_LOG": str(log), "HASH": "ab" * 32, "REGISTERED": " ".join(registered),
           "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0",
           **{f"FAIL_{verb.upper()}": str(times) for verb, times in (fail or {}).items()}}
    result = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"), "-e",
                             f"@{tmp_path / 'extravars.json'}", str(tmp_path / "play.yml")],
                            capture_output=True, text=True, env=env, timeout=300, check=False)
    calls = log.read_text().splitlines() if log.exists() else []
    return result.returncode, calls, result.stdout + result.stderr, sim


def kubeadm(calls: list[str]) -> list[str]:
    """The kubeadm verbs called, in order ('init', 'reset', 'join', 'config')."""
    return [c.split()[1] for c in calls if c.startswith("kubeadm ")]


# the control plane

def test_fresh_control_plane_inits_once_and_stamps(tmp_path):
    rc, calls, out, sim = run(tmp_path, CP, registered=[CP])
    assert rc == 0, out
    assert kubeadm(calls) == ["init"]
    assert "--skip-token-print" in next(c for c in calls if c.startswith("kubeadm init"))
    assert (sim.config_dir / "kubeadm-init.done").exists()


def test_half_finished_init_is_reset_then_done(tmp_path):
    def half_init(sim: Node) -> None:  # kubeadm died after its control-plane phase: manifests, no stamp
        sim.apiserver_manifest.parent.mkdir(parents=True)
        sim.apiserver_manifest.write_text("kind: Pod\n")

    rc, calls, out, sim = run(tmp_path, CP, registered=[CP], prepare=half_init)
    assert rc == 0, out
    assert kubeadm(calls) == ["reset", "init"]
    assert (sim.config_dir / "kubeadm-init.done").exists()


def test_init_failing_once_is_reset_and_retried(tmp_path):
    rc, calls, out, sim = run(tmp_path, CP, registered=[CP], fail={"init": 1})
    assert rc == 0, out
    assert kubeadm(calls) == ["init", "reset", "init"]
    assert (sim.config_dir / "kubeadm-init.done").exists()


def test_init_failing_twice_fails_the_run_without_a_stamp(tmp_path):
    rc, calls, out, sim = run(tmp_path, CP, registered=[CP], fail={"init": 2})
    assert rc != 0 and "simulated failure" in out
    assert kubeadm(calls) == ["init", "reset", "init"]
    assert not (sim.config_dir / "kubeadm-init.done").exists()


def test_initialised_control_plane_is_left_alone(tmp_path):
    def done(sim: Node) -> None:
        sim.config_dir.mkdir(parents=True)
        (sim.config_dir / "kubeadm-init.done").write_text("done\n")

    rc, calls, out, _ = run(tmp_path, CP, registered=[CP], prepare=done)
    assert rc == 0, out
    assert kubeadm(calls) == []


# the workers

def test_fresh_worker_pulls_its_images_joins_and_removes_the_token_file(tmp_path):
    rc, calls, out, sim = run(tmp_path, W1, registered=[CP])
    assert rc == 0, out
    assert kubeadm(calls) == ["join"]
    pulls = [c for c in calls if c.startswith("crictl ") and " pull " in c]
    flannel = yaml.safe_load((ROOT / "roles" / "flannel" / "defaults" / "main.yml").read_text())
    assert len(pulls) == 4 and any("kube-proxy" in c for c in pulls)
    assert any(f"flannel:{flannel['flannel_version']}" in c for c in pulls)
    assert any(f"flannel-cni-plugin:{flannel['flannel_cni_plugin_version']}" in c for c in pulls)
    assert (sim.config_dir / "kubeadm-join.done").exists()
    assert not (sim.config_dir / "kubeadm-join.yaml").exists()
    assert "abcdef.0123456789abcdef" not in out  # no_log kept the token out of the output


def test_half_finished_join_is_reset_then_done(tmp_path):
    def half_join(sim: Node) -> None:  # kubeadm join died after kubelet-start: kubelet.conf, no stamp
        sim.kubelet_conf.parent.mkdir(parents=True)
        sim.kubelet_conf.write_text("kind: Config\n")

    rc, calls, out, _ = run(tmp_path, W1, registered=[CP], prepare=half_join)
    assert rc == 0, out
    assert kubeadm(calls) == ["reset", "join"]


def test_join_failing_once_is_reset_and_retried(tmp_path):
    rc, calls, out, sim = run(tmp_path, W1, registered=[CP], fail={"join": 1})
    assert rc == 0, out
    assert kubeadm(calls) == ["join", "reset", "join"]
    assert (sim.config_dir / "kubeadm-join.done").exists()


def test_joined_worker_is_left_alone(tmp_path):
    def done(sim: Node) -> None:
        sim.config_dir.mkdir(parents=True)
        (sim.config_dir / "kubeadm-join.done").write_text("done\n")

    rc, calls, out, _ = run(tmp_path, W1, registered=[CP, W1], prepare=done)
    assert rc == 0, out
    assert kubeadm(calls) == [] and not any(c.startswith("crictl ") for c in calls)


def test_a_worker_never_joins_before_the_ones_before_it(tmp_path):
    rc, calls, out, sim = run(tmp_path, W2, registered=[CP])  # node-1 is not in the cluster
    assert rc != 0
    assert f"{W2} must join after {W1}" in out
    assert "join" not in kubeadm(calls)
    assert not (sim.config_dir / "kubeadm-join.done").exists()


# the control plane's join token

def test_a_recreated_worker_whose_node_object_exists_gets_a_token(tmp_path):
    # node-1's VM was destroyed and made again: no stamp on it, but its old Node object is still registered.
    rc, calls, out, _ = run(tmp_path, "token", registered=[CP, W1, W2], joined=(W2,))
    assert rc == 0, out
    assert f"kubectl --kubeconfig /etc/kubernetes/admin.conf delete node {W1}" in calls
    assert not any(f"delete node {W2}" in c for c in calls)
    assert any(c.startswith("kubeadm token create") for c in calls)
    assert "abcdef.0123456789abcdef" not in out  # the join command's token stays out of the output


def test_no_token_when_every_worker_has_joined(tmp_path):
    rc, calls, out, _ = run(tmp_path, "token", registered=[CP, W1, W2], joined=(W1, W2))
    assert rc == 0, out
    assert not any("token create" in c or "delete node" in c for c in calls)
