"""The VirtualBox lab's host checks as pure functions: the Vagrant/VirtualBox compatibility matrix, host
platforms that cannot run the lab, hints for vagrant's known failures, box-download progress lines,
what `up` does to each recorded VM state, per-lab Vagrant state and the host kubeconfig."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from k8slab.errors import CommandFailedError
from k8slab.labs.vagrant import VagrantLab, dotfile_path, inventory_path, legacy_machines, up_plan
from k8slab.labs.vagrant_host import (
    VAGRANT_FOR_VIRTUALBOX,
    compatibility_problem,
    hint_for,
    platform_problem,
    progress_lines,
    vagrant_floor,
    virtualbox_version,
)
from k8slab.provision.kubeconfig import host_kubeconfig, write_private
from k8slab.spec.load import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]
SPEC = load_spec(ROOT / "lab.yaml")


def other_lab(name: str):
    data = yaml.safe_load((ROOT / "lab.yaml").read_text())
    data["name"] = name
    return parse_spec(yaml.safe_dump(data), source=f"/tmp/{name}.yaml")


# the compatibility matrix (Vagrant's CHANGELOG)

@pytest.mark.parametrize(("vagrant", "virtualbox", "ok"), [
    ((2, 3, 4), (7, 0, 20), True),     # Debian 12's vagrant with VirtualBox 7.0
    ((2, 3, 4), (7, 1, 4), False),     # ... refuses 7.1 as unsupported
    ((2, 4, 1), (7, 1, 0), False),     # hashicorp/vagrant#13501
    ((2, 4, 2), (7, 1, 0), True),
    ((2, 4, 8), (7, 2, 0), False),     # hashicorp/vagrant#13707
    ((2, 4, 9), (7, 2, 4), True),
    ((2, 4, 9), (6, 1, 50), False),    # VirtualBox 6.1 is out of support
])
def test_vagrant_floor_per_virtualbox(vagrant, virtualbox, ok):
    problem = compatibility_problem(vagrant, virtualbox)
    assert (problem is None) == ok, problem
    if not ok and virtualbox[:2] in VAGRANT_FOR_VIRTUALBOX:
        floor = ".".join(map(str, vagrant_floor(virtualbox)))
        assert f"install Vagrant {floor} or later" in problem


def test_a_virtualbox_newer_than_the_table_is_left_to_vagrant_unless_vagrant_is_older_than_the_table():
    assert compatibility_problem((2, 5, 0), (7, 3, 0)) is None
    assert "newest Vagrant" in compatibility_problem((2, 4, 2), (7, 3, 0))


def test_virtualbox_version_is_read_past_its_warnings():
    assert virtualbox_version("7.1.4r165100\n") == (7, 1, 4)
    warned = "WARNING: The vboxdrv kernel module is not loaded. Either there is no module\n7.2.4r170995\n"
    assert virtualbox_version(warned) == (7, 2, 4)
    assert virtualbox_version("WARNING: The vboxdrv kernel module is not loaded.") is None


# host platforms (simulated: platform.system, machine, release)

@pytest.mark.parametrize(("host", "refused", "says"), [
    (("Linux", "x86_64", "6.1.0-28-amd64"), False, ""),
    (("Darwin", "x86_64", "23.6.0"), False, ""),
    (("Windows", "AMD64", "10"), True, "WSL2"),
    (("Linux", "x86_64", "5.15.167.4-microsoft-standard-WSL2"), True, "emulated lab"),
    (("Darwin", "arm64", "24.1.0"), True, "Apple Silicon"),
])
def test_host_platforms(host, refused, says):
    problem = platform_problem(*host)
    assert (problem is not None) == refused
    assert says in (problem or "")


# hints for vagrant's own failures

@pytest.mark.parametrize(("output", "hint"), [
    (("Vagrant has detected that you have a version of VirtualBox installed\nthat is not supported by this version "
     "of Vagrant. Please install one of the supported versions listed below"), "2.4.9"),
    ("The vboxdrv kernel module is not loaded. Either there is no module available for the current kernel",
     "Secure Boot"),
    ("VBoxManage: error: VT-x is being used by another hypervisor (VERR_VMX_IN_VMX_ROOT_MODE)", "kvm_intel"),
    ("Timed out while waiting for the machine to boot. This means that Vagrant was unable", "did not boot in time"),
])
def test_hints_for_known_failures(output, hint):
    assert hint in hint_for(output)


def test_box_download_progress_is_shown_every_ten_percent():
    redraws = "".join(f"\r    controlplane: Progress: {p}% (Rate: 5M/s, Estimated time remaining: 0:01:00)"
                      for p in range(101))
    chunks = ["==> controlplane: Box 'debian/bookworm64' could not be found. Attempting to find and install...\n",
              "    controlplane: Downloading: https://vagrantcloud.com/debian/boxes/bookworm64\n",
              *[redraws[i:i + 37] for i in range(0, len(redraws), 37)], "\n==> controlplane: Booting VM...\n"]
    lines = list(progress_lines(chunks))
    shown = [line for line in lines if "Progress:" in line]
    assert [int(line.split("Progress: ")[1].split("%")[0]) // 10 for line in shown] == list(range(11))
    assert lines[0].startswith("==> controlplane: Box") and lines[-1] == "==> controlplane: Booting VM..."


# resume logic on recorded `vagrant status` states

@pytest.mark.parametrize(("states", "create", "boot", "fresh"), [
    ({"controlplane": "not_created", "node-1": "not_created", "node-2": "not_created"}, 3, 0, True),
    ({"controlplane": "poweroff", "node-1": "poweroff", "node-2": "poweroff"}, 0, 3, False),   # after a reboot
    ({"controlplane": "running", "node-1": "aborted", "node-2": "not_created"}, 1, 1, False),  # half made
    ({"controlplane": "running", "node-1": "running", "node-2": "running"}, 0, 0, False),      # healthy: provision
    ({"controlplane": "saved", "node-1": "running", "node-2": "running"}, 0, 1, False),
])
def test_up_boots_stopped_vms_and_keeps_what_exists(states, create, boot, fresh):
    plan = up_plan(states)
    assert (len(plan.create), len(plan.boot), plan.fresh) == (create, boot, fresh)
    assert len(plan.create) + len(plan.boot) + len(plan.running) == len(states)


def test_a_failed_up_of_an_existing_lab_destroys_nothing(monkeypatch):
    lab = VagrantLab(SPEC)
    calls = []
    monkeypatch.setattr("k8slab.labs.vagrant.legacy_machines", lambda spec: [])  # whatever this checkout holds
    monkeypatch.setattr(lab, "vm_states", lambda: {"controlplane": "poweroff", "node-1": "running",
                                                   "node-2": "running"})
    monkeypatch.setattr(lab, "_stream", lambda args, progress: (_ for _ in ()).throw(CommandFailedError("boom")))
    monkeypatch.setattr(lab, "_vagrant", lambda what, call: calls.append(what))
    with pytest.raises(CommandFailedError):
        lab.up()
    assert calls == []
    monkeypatch.setattr(lab, "vm_states", lambda: dict.fromkeys(("controlplane", "node-1", "node-2"), "not_created"))
    with pytest.raises(CommandFailedError):
        lab.up()
    assert calls == ["destroy"]  # a fresh lab that failed leaves nothing half made


# per-lab Vagrant state

def test_each_lab_has_its_own_vagrant_state_and_inventory():
    one, two = SPEC, other_lab("lab2")
    assert dotfile_path(one) != dotfile_path(two) and dotfile_path(two).name == "lab2"
    assert inventory_path(one) != inventory_path(two)
    env = VagrantLab(two).vagrant_env()
    assert env["VAGRANT_DOTFILE_PATH"] == str(dotfile_path(two)) and env["K8SLAB_SPEC"] == "/tmp/lab2.yaml"


def test_vms_from_before_per_lab_state_are_found_not_orphaned(tmp_path):
    vagrant_dir = tmp_path / ".vagrant"
    assert legacy_machines(SPEC, vagrant_dir) == []
    for node in SPEC.nodes[:2]:
        (vagrant_dir / "machines" / node.name / "virtualbox").mkdir(parents=True)
        (vagrant_dir / "machines" / node.name / "virtualbox" / "id").write_text("0f4c1e9a")
    (vagrant_dir / "machines" / SPEC.nodes[2].name / "virtualbox").mkdir(parents=True)  # never created: no id
    assert legacy_machines(SPEC, vagrant_dir) == [n.name for n in SPEC.nodes[:2]]
    (vagrant_dir / "labs" / SPEC.name).mkdir(parents=True)  # adopted (or the lab has its own state now)
    assert legacy_machines(SPEC, vagrant_dir) == []


# kubeconfig on the host

ADMIN_CONF = """apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://10.0.2.15:6443
  name: tutorial
contexts:
- context: {cluster: tutorial, user: kubernetes-admin}
  name: kubernetes-admin@tutorial
current-context: kubernetes-admin@tutorial
kind: Config
users:
- name: kubernetes-admin
  user: {client-certificate-data: Q0VSVA==, client-key-data: S0VZ}
"""


def test_python_reads_kubeadms_paths_where_the_roles_name_them():
    from k8slab.labs.ssh import ADMIN_KUBECONFIG
    from k8slab.provision.ansible_vars import group_var

    group_vars = yaml.safe_load((ROOT / "ansible" / "group_vars" / "all.yml").read_text())
    assert ADMIN_KUBECONFIG == group_vars["k8slab_admin_kubeconfig"]
    assert group_var("k8slab_apiserver_port") == group_vars["k8slab_apiserver_port"]


def test_host_kubeconfig_points_at_the_control_planes_eth1(tmp_path):
    for spec in (SPEC, other_lab("lab2")):
        config = yaml.safe_load(host_kubeconfig(ADMIN_CONF, spec))
        port = yaml.safe_load((ROOT / "ansible" / "group_vars" / "all.yml").read_text())["k8slab_apiserver_port"]
        assert [c["cluster"]["server"] for c in config["clusters"]] == [f"https://{spec.control_plane.ip}:{port}"]
        assert config["users"] == yaml.safe_load(ADMIN_CONF)["users"]
    path = write_private(tmp_path / "build" / "tutorial.kubeconfig", host_kubeconfig(ADMIN_CONF, SPEC))
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(CommandFailedError):
        host_kubeconfig("not: [a kubeconfig", SPEC)


def test_windows_is_refused_at_start(monkeypatch, capsys):
    from k8slab.cli import main

    monkeypatch.setattr("sys.platform", "win32")
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("k8slab: error: k8slab does not run on Windows itself") and "WSL2" in err
