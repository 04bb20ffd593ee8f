"""The Vagrantfile, run by the real Vagrant: `vagrant validate --ignore-provider` passes for the default
and a 5-node spec, Vagrant's own evaluation of it carries every value from the spec, and the file
itself holds none of them. No provider is needed, so this runs without VirtualBox."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from k8slab.spec.facts import VBOX_HOST_ONLY_RANGE
from k8slab.spec.load import load_spec
from k8slab.spec.model import LabSpec

ROOT = Path(__file__).resolve().parents[2]
VAGRANTFILE = ROOT / "Vagrantfile"
PROBE = Path(__file__).parent / "data" / "vagrantfile_probe.rb"

pytestmark = pytest.mark.skipif(shutil.which("vagrant") is None,
                                reason="vagrant is not installed (make setup installs Debian's vagrant package)")


def five_node_spec(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "lab.yaml").read_text())
    net = ipaddress.ip_network(data["network"]["host_only"])
    data["name"] = "h2-five"
    # 10.100.0.0/16 overlaps the default service CIDR 10.96.0.0/12, so the services move too
    data["kubernetes"].update(pod_cidr="10.100.0.0/16", service_cidr="10.32.0.0/16")
    workers = [{"name": f"worker-{i}", "role": "worker", "ip": str(net.network_address + 20 + i), "cpus": 1,
                "memory": 1024 + 128 * i} for i in range(1, 5)]
    data["nodes"] = data["nodes"][:1] + workers
    path = tmp_path / "five.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def wide_network_spec(tmp_path: Path) -> Path:
    """The whole range VirtualBox allows as one host-only network, nodes in different /24s of it: the
    nodes share one L2 segment only if eth1 gets the spec's netmask, not Vagrant's default /24."""
    data = yaml.safe_load((ROOT / "lab.yaml").read_text())
    wide = VBOX_HOST_ONLY_RANGE
    data["name"] = "h2-wide"
    data["network"]["host_only"] = str(wide)
    for i, node in enumerate(data["nodes"]):
        node["ip"] = str(wide.network_address + 10 + 256 * i)
    path = tmp_path / "wide.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


SPECS = {"default": lambda tmp: ROOT / "lab.yaml", "five": five_node_spec, "wide": wide_network_spec}


@pytest.fixture(params=list(SPECS))
def spec_file(request, tmp_path) -> Path:
    return SPECS[request.param](tmp_path)


def vagrant_env(spec_file: Path, tmp_path: Path) -> dict[str, str]:
    # VAGRANT_DOTFILE_PATH keeps vagrant's machine state of the tests out of the checkout's .vagrant/
    return {**os.environ, "K8SLAB_SPEC": str(spec_file), "VAGRANT_CWD": str(ROOT),
            "VAGRANT_DOTFILE_PATH": str(tmp_path / "dotvagrant"), "VAGRANT_CHECKPOINT_DISABLE": "1"}


def test_vagrant_validate_passes_and_names_the_spec_nodes(spec_file, tmp_path):
    spec = load_spec(spec_file)
    proc = subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=tmp_path,
                          env=vagrant_env(spec_file, tmp_path),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Vagrantfile validated successfully" in proc.stdout
    machines = re.findall(r"^==> (\S+): Ignoring provider config", proc.stdout, re.MULTILINE)
    assert machines == [n.name for n in spec.nodes]


def evaluated(spec_file: Path, tmp_path: Path) -> list[dict]:
    proc = subprocess.run(["ruby", str(PROBE), str(ROOT)], cwd=tmp_path, env=vagrant_env(spec_file, tmp_path),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_vagrant_builds_one_vm_per_node_with_the_spec_values(spec_file, tmp_path):
    spec: LabSpec = load_spec(spec_file)
    machines = evaluated(spec_file, tmp_path)
    assert [m["name"] for m in machines] == [n.name for n in spec.nodes]
    for node, vm in zip(spec.nodes, machines):
        assert vm["hostname"] == node.name
        assert (vm["box"], vm["box_version"]) == (spec.box_name, spec.box_version)
        assert vm["private_networks"] == [str(node.ip)]  # eth1; eth0 stays VirtualBox NAT
        assert vm["netmasks"] == [str(spec.host_only.netmask)]
        assert vm["provisioners"] == []  # Ansible runs once for all nodes, from Python
        assert vm["synced_folders"] == {"/vagrant": "disabled"}
        vb = vm["virtualbox"]
        assert vb["name"] == f"k8slab-{spec.name}-{node.name}" and vb["linked_clone"] is True
        assert ["pre-boot", ["--cpus", node.cpus]] in vb["customize"]
        assert ["pre-boot", ["--memory", str(node.memory)]] in vb["customize"]
        assert set(vm["providers"]) == {"virtualbox", "libvirt"}


def test_vagrantfile_repeats_no_lab_value():
    text = VAGRANTFILE.read_text()
    assert not re.search(r"\b\d{1,3}(\.\d{1,3}){3}\b", text), "an IP address literal in the Vagrantfile"
    data = yaml.safe_load((ROOT / "lab.yaml").read_text())
    values = [data["name"], data["box"]["name"], data["box"]["version"]]
    values += [n["name"] for n in data["nodes"]] + [str(n[k]) for n in data["nodes"] for k in ("memory",)]
    for value in values:
        assert value not in text, f"{value!r} from lab.yaml is written in the Vagrantfile"


def test_missing_spec_file_fails_short_and_clear(tmp_path):
    missing = tmp_path / "no-such-lab.yaml"
    proc = subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=tmp_path,
                          env=vagrant_env(missing, tmp_path), capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode != 0
    output = (proc.stdout + proc.stderr).strip()
    assert str(missing) in output and "K8SLAB_SPEC" in output
    assert len(output.splitlines()) <= 3, output  # a message, not a Ruby backtrace


def test_vms_get_time_to_boot_on_a_laptop():
    # Vagrant's default boot_timeout (300 s) is short for three VMs booting at once on a laptop.
    match = re.search(r"config\.vm\.boot_timeout = (\d+)", VAGRANTFILE.read_text())
    assert match and int(match[1]) >= 600
