"""The SSH/Vagrant backend: SshLab against real sshd servers (one network namespace per node, each
holding that node's spec address), Ansible over real SSH with the rendered inventory, and what the
Vagrant lab says when it cannot run and what it would build. No VirtualBox here, so no VM is made."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from sshd_nodes import missing_tools, sshd_nodes

from k8slab.errors import CommandFailedError, LabStateError, UsageError
from k8slab.labs.base import Container, PodState, default_containers
from k8slab.labs.ssh import (
    IMAGE_TAGS,
    KEEP_ALIVE,
    SshLab,
    kubectl_run_args,
    parse_node_readiness,
    parse_pod_states,
    parse_pods,
)
from k8slab.labs.vagrant import VagrantLab, _availability, machine_readable_error
from k8slab.labs.vagrant_host import hint_for, vagrant_version
from k8slab.provision.inventory import write_inventory
from k8slab.provision.runner import check, run_playbook
from k8slab.spec.load import load_spec

ROOT = Path(__file__).resolve().parents[2]
SPEC = load_spec(ROOT / "lab.yaml").renamed("h2-ssh")
DATA = Path(__file__).parent / "data"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="sshd in network namespaces needs root")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    missing = missing_tools()
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (make setup installs openssh-server, netcat-openbsd)")
    with sshd_nodes(SPEC, tmp_path_factory.mktemp("sshd")) as endpoints:
        yield endpoints


@pytest.fixture
def lab(nodes):
    lab = SshLab(SPEC, nodes)
    yield lab
    lab.close()


@needs_root
def test_node_run_reaches_each_node_by_name(lab):
    for node in SPEC.nodes:
        result = lab.node_run(node.name, ["ip", "-o", "-4", "addr", "show", "dev", "lo"])
        assert result.ok, result.stderr
        # the sshd for this node is the one whose namespace holds this node's address, and no other's
        assert f"inet {node.ip}/32" in result.stdout
        assert all(f"inet {other.ip}/" not in result.stdout for other in SPEC.nodes if other != node)


@needs_root
def test_node_run_keeps_exit_status_stderr_and_times_out(lab):
    node = SPEC.workers[0].name
    failed = lab.node_run(node, ["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (failed.rc, failed.stdout, failed.stderr, failed.ok) == (7, "out\n", "err\n", False)
    quoted = lab.node_run(node, ["printf", "%s|", "a b", "c'd"])
    assert quoted.stdout == "a b|c'd|"
    slow = lab.node_run(node, ["sleep", "10"], timeout=1)
    assert slow.rc == 124 and "timed out after 1s" in slow.stderr


@needs_root
def test_testinfra_host_runs_on_the_node(lab):
    for node in SPEC.nodes:
        host = lab.testinfra_host(node.name)
        assert str(node.ip) in host.interface("lo").addresses
        assert host.run("id -u").stdout.strip() == "0"


@needs_root
def test_unknown_node_lists_the_lab_nodes(lab):
    with pytest.raises(UsageError) as err:
        lab.node_run("node-9", ["true"])
    assert all(n.name in str(err.value) for n in SPEC.nodes)


@needs_root
def test_ansible_reaches_every_node_through_the_rendered_inventory(nodes, tmp_path):
    inventory = write_inventory(SPEC, nodes, tmp_path / "hosts.yml")
    play = tmp_path / "site.yml"
    play.write_text(yaml.safe_dump([{"hosts": "k8s_nodes", "gather_facts": False, "tasks": [
        {"name": "read the node address", "ansible.builtin.command": "ip -o -4 addr show dev lo",
         "register": "lo", "changed_when": False},
        {"name": "it is this node's eth1 address in the spec", "ansible.builtin.assert": {
            "that": ["('inet ' ~ node_ip[inventory_hostname] ~ '/32') in lo.stdout"]}},
    ]}]))
    lines: list[str] = []
    hosts = [n.name for n in SPEC.nodes]
    # the "nodes" are this machine: use its system python, whatever interpreter discovery would pick
    extravars = {"node_ip": {n.name: str(n.ip) for n in SPEC.nodes}, "ansible_python_interpreter": "/usr/bin/python3"}
    result = run_playbook(inventory, extravars, hosts, playbook=play,
                          progress=lines.append, run_dir=tmp_path / "runner")
    check(result, inventory, hosts, "k8slab provision")
    assert sorted(lines) == sorted(f"{h}  {t}  ok" for h in hosts for t in
                                   ("read the node address", "it is this node's eth1 address in the spec"))


@needs_root
def test_ssh_lab_from_an_inventory_file_round_trips(nodes, tmp_path):
    inventory = write_inventory(SPEC, nodes, tmp_path / "hosts.yml")
    lab = SshLab.from_inventory(SPEC, inventory)
    try:
        assert lab.endpoints() == nodes
        node = SPEC.control_plane
        assert f"inet {node.ip}/32" in lab.node_run(node.name, ["ip", "-o", "-4", "addr", "show", "dev", "lo"]).stdout
        assert [line.split()[0] for line in lab.plan().splitlines()[1:]] == [n.name for n in SPEC.nodes]
    finally:
        lab.close()


def test_inventory_missing_a_node_is_refused(tmp_path):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"[control_plane]\n{SPEC.control_plane.name} ansible_host=cp.example\n")
    with pytest.raises(LabStateError) as err:
        SshLab.from_inventory(SPEC, inventory)
    assert all(n.name in str(err.value) for n in SPEC.workers)
    with pytest.raises(LabStateError, match="not found"):
        SshLab.from_inventory(SPEC, tmp_path / "nope.yml")


# pods through kubectl: what is sent and how the answers are read

def test_pod_images_follow_the_tutorial():
    assert default_containers("httpd") == (Container("httpd", "httpd"),)
    assert default_containers("httpd-2")[0].image == "httpd"
    assert default_containers("w-nginx")[0].image == "nginx"
    assert default_containers("client") == (Container("client", "busybox"),)
    assert default_containers("httpdx")[0].image == "busybox"
    assert default_containers("w-busybox-2")[0].image == "busybox"


def _overrides(args: list[str]) -> dict:
    return json.loads(next(a for a in args if a.startswith("--overrides=")).split("=", 1)[1])


def test_kubectl_run_pins_the_pod_to_the_node():
    node = SPEC.workers[-1].name
    args = kubectl_run_args("client", node)
    assert args[:2] == ["run", "client"] and f"--image={IMAGE_TAGS['busybox']}" in args
    assert _overrides(args) == {"apiVersion": "v1", "spec": {
        "nodeSelector": {"kubernetes.io/hostname": node},
        "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [{"name": "client", "image": IMAGE_TAGS["busybox"], "command": KEEP_ALIVE}]}}


def test_a_pod_on_the_control_plane_tolerates_kubeadms_taint():
    # What kubeadm puts on a control plane it was not told to leave untainted (`kubectl get nodes` of a lab).
    taint = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
    spec = _overrides(kubectl_run_args("client", SPEC.control_plane.name))["spec"]
    assert any(t["key"] == taint["key"] and t["effect"] == taint["effect"] and t["operator"] == "Exists"
               for t in spec["tolerations"])


def test_kubectl_run_renders_every_container_of_the_pod():
    node = SPEC.workers[0].name
    containers = (Container("web", "nginx"), Container("sidecar", "busybox"),
                  Container("probe", "curlimages/curl:8.8.0", ("sleep", "3600")))
    args = kubectl_run_args("web", node, containers)
    spec = _overrides(args)["spec"]
    assert "--restart=Never" in args  # a container given a command runs once, as on the emulated lab
    assert "--restart=Always" in kubectl_run_args("web", node, containers[:2])  # servers and shells come back
    assert spec["nodeSelector"] == {"kubernetes.io/hostname": node}
    assert spec["containers"] == [
        {"name": "web", "image": IMAGE_TAGS["nginx"]},  # a server keeps its image's own command
        {"name": "sidecar", "image": IMAGE_TAGS["busybox"], "command": KEEP_ALIVE},
        {"name": "probe", "image": "curlimages/curl:8.8.0", "command": ["sleep", "3600"]},
    ]


def test_pod_states_read_like_kubectl_get_pods():
    data = json.loads((DATA / "kubectl-get-pods-containers.json").read_text())
    states = parse_pod_states(json.dumps(data))
    restarts = {item["metadata"]["name"]: sum(c["restartCount"] for c in item["status"]["containerStatuses"])
                for item in data["items"]}
    assert restarts["half"] > 0  # the sample holds a restarted container: RESTARTS is read, not defaulted
    assert states == {"web": PodState(2, 2, "Running", restarts["web"]),
                      "half": PodState(1, 2, "CrashLoopBackOff", restarts["half"]),
                      "pulling": PodState(0, 1, "ContainerCreating", restarts["pulling"]),
                      "done": PodState(0, 1, "Completed", restarts["done"])}


def test_pods_and_readiness_from_kubectl_json():
    pods = json.loads((DATA / "kubectl-get-pods.json").read_text())
    parsed = parse_pods(json.dumps(pods))
    expected = [(p["metadata"]["name"], p["spec"]["nodeName"], p["status"]["podIP"]) for p in pods["items"]
                if p["spec"].get("nodeName") and p["status"].get("podIP")]
    assert [(p.name, p.node, str(p.ip)) for p in parsed] == expected
    assert len(parsed) < len(pods["items"])  # the sample holds a pending pod, which has no address yet

    nodes = json.loads((DATA / "kubectl-get-nodes.json").read_text())
    readiness = parse_node_readiness(json.dumps(nodes))
    for item in nodes["items"]:
        ready = next(c["status"] for c in item["status"]["conditions"] if c["type"] == "Ready")
        assert readiness[item["metadata"]["name"]] == ("Ready" if ready == "True" else "NotReady")
    assert set(readiness.values()) == {"Ready", "NotReady"}


# the Vagrant lab on a machine without VirtualBox

def test_vagrant_missing_says_what_to_install(tmp_path):
    reason = _availability(str(tmp_path))[1]
    assert reason and "vagrant not found" in reason and "Vagrant 2.4.9" in reason


def test_virtualbox_missing_says_what_to_install(tmp_path):
    vagrant = Path("/usr/bin/vagrant")
    if not vagrant.exists():
        pytest.skip("Debian's vagrant package is not installed (make setup installs it)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "vagrant").symlink_to(vagrant)
    # vagrant's Ruby needs the system PATH for nothing but itself; VBoxManage is absent from both
    provider, reason = _availability(f"{bin_dir}:/usr/bin:/bin")
    assert provider is None
    assert "VBoxManage not found" in reason and "VirtualBox 7.1 or 7.2" in reason and "vagrant-libvirt" in reason


def test_vagrant_version_parsing_and_hints():
    assert vagrant_version("Vagrant 2.3.4\n") == (2, 3, 4)
    assert vagrant_version("nothing") is None
    stderr = "The IP address configured for the host-only network is not within the allowed ranges."
    assert "/etc/vbox/networks.conf" in hint_for(stderr)
    assert hint_for("something else") == ""


def test_plan_lists_every_vm_from_the_spec():
    plan = VagrantLab(SPEC).plan()
    assert f"{SPEC.box_name} {SPEC.box_version}" in plan
    for node in SPEC.nodes:
        line = next(line for line in plan.splitlines() if line.split()[:1] == [node.name])
        assert f"eth1 {node.ip} " in line and f"pods {node.pod_subnet}" in line
        assert f"{node.cpus} CPU {node.memory} MB" in line and f"k8slab-{SPEC.name}-{node.name}" in line


def test_client_pod_command_stays_up_and_exits_on_sigterm():
    # what kubectl delete sends to the pod's PID 1; busybox's sh runs this the same as dash here
    proc = subprocess.Popen(KEEP_ALIVE)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.5)
        proc.terminate()
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()


def test_vagrant_failure_shows_vagrants_own_reason(tmp_path, monkeypatch):
    if shutil.which("vagrant") is None:
        pytest.skip("Debian's vagrant package is not installed (make setup installs it)")
    if shutil.which("VBoxManage"):
        pytest.skip("VirtualBox is installed: `vagrant status` succeeds here")
    # a real failing vagrant call: no VirtualBox; its reason comes on stdout in --machine-readable mode
    monkeypatch.setenv("VAGRANT_DOTFILE_PATH", str(tmp_path / "dotvagrant"))
    with pytest.raises(CommandFailedError) as err:
        VagrantLab(SPEC).vm_states()
    message = str(err.value)
    assert message.startswith("`vagrant status` failed")
    assert "VBoxManage" in message and "%!(VAGRANT_COMMA)" not in message


def test_machine_readable_error_is_unescaped():
    out = "1700000000,,ui,error,ignored\n1700000000,,error-exit,Vagrant::Errors::X,one%!(VAGRANT_COMMA) two\\nthree\n"
    assert machine_readable_error(out) == "one, two\nthree"
    assert machine_readable_error("1700000000,node-1,state,running\n") == ""


def test_virtualbox_lab_refuses_the_calico_articles_192_168_16_unless_networks_conf_allows_it(tmp_path):
    """The Calico article's 192.168.16.0/24: refused by `up` on the VirtualBox lab as VirtualBox would
    ("not within the allowed ranges"), allowed once /etc/vbox/networks.conf lists it."""
    from k8slab.spec.load import parse_spec

    data = yaml.safe_load((Path(__file__).resolve().parents[2] / "lab.yaml").read_text())
    data["network"]["host_only"] = "192.168.16.0/24"
    for i, n in enumerate(data["nodes"]):
        n["ip"] = f"192.168.16.{10 + i}"
    lab = VagrantLab(parse_spec(yaml.safe_dump(data)))
    conf = tmp_path / "networks.conf"
    with pytest.raises(UsageError, match="outside 192.168.56.0/21"):
        lab.check_host_only(conf)
    conf.write_text("# VirtualBox manual ch06 example\n* 10.0.0.0/8 192.168.0.0/16\n* 2001::/64\n")
    lab.check_host_only(conf)  # allowed: no error
    conf.write_text("* 10.0.0.0/8\n")
    with pytest.raises(UsageError, match=r"networks.conf allows \(10.0.0.0/8\)"):
        lab.check_host_only(conf)
