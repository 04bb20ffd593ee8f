"""ansible/site.yml applied to a Debian 12 chroot playing the spec's control plane, with exactly the
tasks tagged `online` (internet) and `systemd` (a running systemd or kernel) skipped; the result is
checked with testinfra's chroot backend, and a second run must change nothing.

The playbook runs in a throwaway network namespace (unshare --net) that has an `eth1` carrying the
node's lab.yaml address, so the roles' interface checks and facts see what a lab VM would. That
namespace has no way out: the Debian packages the containerd role installs are downloaded into the
rootfs's apt cache beforehand (in the host's namespace), and the role installs them from there.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import testinfra
import yaml

from k8slab.provision.ansible_vars import ansible_vars
from k8slab.spec.facts import HOST_ONLY_IF
from k8slab.spec.load import load_spec
from k8slab.spec.model import LabSpec

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
PLAYBOOK = ROOT / "ansible" / "site.yml"
SKIPPED_TAGS = "online,systemd"
SWAP_LINE = "/swapfile none swap sw 0 0"


def chroot_run(root: Path, script: str, *, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """A shell script inside the rootfs, with /proc mounted in a private mount namespace."""
    wrapper = 'mount -t proc proc "$1/proc" && exec chroot "$1" /bin/sh -ec "$2"'
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-ec", wrapper, "sh",
                           str(root), script], capture_output=True, text=True, timeout=timeout, check=False)


@dataclass(frozen=True)
class Run:
    rc: int
    output: str

    def recap(self, host: str) -> dict[str, int]:
        m = re.search(rf"^{re.escape(host)}\s*:\s*(.*)$", self.output, re.MULTILINE)
        assert m, f"no PLAY RECAP line for {host}:\n{self.output[-4000:]}"
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}


def write_inventory(path: Path, spec: LabSpec, rootfs: Path) -> None:
    cp = spec.control_plane
    # The chroot is reached as root already; there is no sudo in it to become root with.
    host = {"ansible_connection": "community.general.chroot", "ansible_host": str(rootfs), "ansible_become": False}
    path.write_text(yaml.safe_dump({"all": {"children": {"k8s_nodes": {"children": {
        "control_plane": {"hosts": {cp.name: host}}, "workers": {"hosts": {}}}}}}}))


def run_playbook(workdir: Path, spec: LabSpec, rootfs: Path, *, eth1: str | None = "", tags: str | None = None) -> Run:
    """ansible-playbook in a fresh network namespace (and private mount namespace) of its own, whose
    eth1 has address `eth1` (by default the control plane's from the spec; None: no eth1 at all)."""
    extravars = workdir / "extravars.json"
    extravars.write_text(json.dumps(ansible_vars(spec)))
    inventory = workdir / "hosts.yml"
    write_inventory(inventory, spec, rootfs)
    address = spec.control_plane.ip if eth1 == "" else eth1
    # A veth pair, both ends inside the namespace (the dummy module is not loadable everywhere).
    link = (f"ip link add {HOST_ONLY_IF} type veth peer name {HOST_ONLY_IF}-peer && ip addr add "
            f"{address}/{spec.host_only.prefixlen} dev {HOST_ONLY_IF} && ip link set {HOST_ONLY_IF}-peer up && "
            f"ip link set {HOST_ONLY_IF} up && ") if address else ""
    # sysfs mounted from inside the new namespace shows its links (/sys/class/net feeds the network facts).
    setup = (f'ip link set lo up && {link}mount -t proc proc "$1/proc" && mount -t sysfs sysfs "$1/sys" '
             '&& shift && exec "$@"')
    argv = [str(BIN / "ansible-playbook"), "-i", str(inventory), "-e", f"@{extravars}", str(PLAYBOOK)]
    argv += ["--tags", tags] if tags else ["--skip-tags", SKIPPED_TAGS]
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible" / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_FORCE_COLOR": "0", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(["unshare", "--net", "--mount", "--propagation", "private", "sh", "-ec", setup, "sh",
                             str(rootfs), *argv], capture_output=True, text=True, env=env, timeout=600, check=False)
    return Run(result.returncode, result.stdout + result.stderr)


@dataclass(frozen=True)
class Provisioned:
    spec: LabSpec
    rootfs: Path
    first: Run
    second: Run
    host: testinfra.host.Host


@pytest.fixture(scope="module")
def spec() -> LabSpec:
    return load_spec(ROOT / "lab.yaml")


@pytest.fixture(scope="module")
def provisioned(debian_rootfs: Path, spec: LabSpec, tmp_path_factory) -> Provisioned:
    workdir = tmp_path_factory.mktemp("roles-chroot")
    # A swap line like the box's, for the common role to disable; and what the role installs, fetched
    # into apt's cache while the network is reachable (the playbook's namespace has none).
    (debian_rootfs / "etc" / "fstab").write_text(f"# <file system> <mount point> <type> <options> <dump> <pass>\n"
                                                  f"{SWAP_LINE}\n")
    kubernetes_defaults = yaml.safe_load((ROOT / "roles" / "kubernetes" / "defaults" / "main.yml").read_text())
    common_defaults = yaml.safe_load((ROOT / "roles" / "common" / "defaults" / "main.yml").read_text())
    packages = " ".join(kubernetes_defaults["kubernetes_host_packages"] + common_defaults["common_tutorial_packages"])
    fetched = chroot_run(debian_rootfs, f"apt-get update -qq && apt-get install -y -qq --download-only {packages}")
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    first = run_playbook(workdir, spec, debian_rootfs)
    assert first.rc == 0, f"first run failed:\n{first.output[-6000:]}"
    second = run_playbook(workdir, spec, debian_rootfs)
    assert second.rc == 0, f"second run failed:\n{second.output[-6000:]}"
    return Provisioned(spec, debian_rootfs, first, second, testinfra.get_host(str(debian_rootfs), connection="chroot"))


def test_first_run_changes_the_node(provisioned):
    recap = provisioned.first.recap(provisioned.spec.control_plane.name)
    assert recap["failed"] == 0 and recap["changed"] > 0


def test_second_run_changes_nothing(provisioned):
    recap = provisioned.second.recap(provisioned.spec.control_plane.name)
    assert recap["failed"] == 0
    changed = re.findall(r"^changed: \[.*$|^TASK \[.*$", provisioned.second.output, re.MULTILINE)
    assert recap["changed"] == 0, "changed on the second run:\n" + "\n".join(
        t for i, t in enumerate(changed) if i + 1 < len(changed) and changed[i + 1].startswith("changed"))


def test_kubeadms_host_tools_installed_from_debian(provisioned):
    for package in ("conntrack", "socat"):
        assert provisioned.host.package(package).is_installed


def test_containerd_unit_installed(provisioned):
    # containerd and runc come from their GitHub releases (tagged online, skipped here); the unit that
    # runs the unpacked release is the role's own.
    unit = provisioned.host.file("/etc/systemd/system/containerd.service")
    assert unit.mode == 0o644 and unit.contains("^ExecStart=/usr/local/bin/containerd$")
    assert not provisioned.host.file("/usr/local/bin/containerd").exists


def test_the_tutorials_tools_are_on_the_node(provisioned):
    # Step 2 of the tutorial runs `traceroute -n <node>` on the control plane itself.
    for command in ("traceroute", "tcpdump", "ping", "ip"):
        assert provisioned.host.exists(command), f"{command} missing on the node"


def test_containerd_config(provisioned):
    config = tomllib.loads(provisioned.host.file("/etc/containerd/config.toml").content_string)
    pause = ansible_vars(provisioned.spec)["k8slab_pause_image"]
    assert config["version"] == 3
    assert config["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == pause
    runc = config["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["runc"]
    assert runc["options"]["SystemdCgroup"] is True


def test_kernel_modules_and_sysctls_persisted(provisioned):
    modules = provisioned.host.file("/etc/modules-load.d/k8slab.conf").content_string.split()
    assert {"overlay", "br_netfilter"} <= set(modules)
    sysctls = provisioned.host.file("/etc/sysctl.d/99-k8slab.conf")
    for key in ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"):
        assert sysctls.contains(rf"^{re.escape(key)} = 1$")


def test_swap_disabled_in_fstab(provisioned):
    lines = provisioned.host.file("/etc/fstab").content_string.splitlines()
    assert SWAP_LINE not in lines
    assert any(line.startswith("# ") and SWAP_LINE in line for line in lines)


def test_hosts_lists_every_node_by_its_eth1_address(provisioned):
    entries = [line.split() for line in provisioned.host.file("/etc/hosts").content_string.splitlines()
               if line and not line.startswith("#")]
    for node in provisioned.spec.nodes:
        assert [str(node.ip), node.name] in entries


def test_kubelet_node_ip(provisioned):
    cp = provisioned.spec.control_plane
    kubelet = provisioned.host.file("/etc/default/kubelet")
    assert kubelet.contains(rf"^KUBELET_EXTRA_ARGS=--node-ip={re.escape(str(cp.ip))}$")


def test_control_plane_configs_rendered_root_only(provisioned):
    spec = provisioned.spec
    init = provisioned.host.file("/etc/k8slab/kubeadm-init.yaml")
    assert init.mode == 0o600 and init.user == "root"
    docs = {d["kind"]: d for d in yaml.safe_load_all(init.content_string)}
    assert docs["InitConfiguration"]["localAPIEndpoint"]["advertiseAddress"] == str(spec.control_plane.ip)
    assert docs["ClusterConfiguration"]["networking"]["podSubnet"] == str(spec.pod_cidr)
    manifest = provisioned.host.file("/etc/k8slab/kube-flannel.yml")
    assert manifest.contains(f"--iface={spec.cni_interface}")


def test_online_and_systemd_tasks_were_skipped(provisioned):
    # Nothing from pkgs.k8s.io was fetched or installed in the chroot, and kubeadm never ran.
    assert not provisioned.host.file("/etc/apt/sources.list.d/kubernetes.list").exists
    assert not provisioned.host.package("kubeadm").is_installed
    assert not provisioned.host.file("/etc/kubernetes/admin.conf").exists
    assert not provisioned.host.file("/etc/k8slab/kubeadm-init.done").exists


def test_a_node_without_eth1_is_refused_naming_the_pitfall(debian_rootfs, spec, tmp_path):
    run = run_playbook(tmp_path, spec, debian_rootfs, eth1=None, tags="preflight")
    assert run.rc != 0
    assert f"has no {HOST_ONLY_IF}" in run.output and "enp0s8" in run.output


def test_eth1_with_another_address_is_refused(debian_rootfs, spec, tmp_path):
    cp = spec.control_plane
    other = next(ip for ip in spec.host_only.hosts() if ip not in {n.ip for n in spec.nodes} and ip != spec.host_ip)
    moved = replace(spec, nodes=tuple(replace(n, ip=other) if n.name == cp.name else n for n in spec.nodes))
    # eth1 keeps the spec's address; the extravars claim another one.
    run = run_playbook(tmp_path, moved, debian_rootfs, eth1=str(cp.ip), tags="preflight")
    assert run.rc != 0
    assert f"not {other} as lab.yaml says" in " ".join(run.output.split())


def test_calico_role_renders_its_installation_and_a_second_run_changes_nothing(provisioned, tmp_path):
    """The same node with lab.yaml's cni: switched to Calico: the calico role renders the operator's
    Installation from the spec (its apply and wait need the cluster: tagged online), idempotently."""
    spec = provisioned.spec.with_dataplane("calico VXLANCrossSubnet")
    first = run_playbook(tmp_path, spec, provisioned.rootfs)
    assert first.rc == 0, f"calico run failed:\n{first.output[-6000:]}"
    assert "TASK [calico : Render Calico's Installation]" in first.output
    second = run_playbook(tmp_path, spec, provisioned.rootfs)
    assert second.rc == 0 and second.recap(spec.control_plane.name)["changed"] == 0, second.output[-4000:]
    rendered = provisioned.host.file("/etc/k8slab/calico-installation.yaml")
    assert rendered.mode == 0o600 and rendered.user == "root"
    network = yaml.safe_load(rendered.content_string)["spec"]["calicoNetwork"]
    (pool,) = network["ipPools"]
    assert (pool["cidr"], pool["blockSize"], pool["encapsulation"]) == (
        str(spec.pod_cidr), spec.calico.block_size, spec.calico.encapsulation)
    assert network["nodeAddressAutodetectionV4"] == {"interface": HOST_ONLY_IF}
