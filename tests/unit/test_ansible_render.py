"""The role templates, rendered with plain Jinja2 from ansible_vars(spec) the way Ansible would
(extravars over group_vars over role defaults), for the tutorial's lab and for a 5-node lab with
other CIDRs. Every expected value is computed from the spec."""

from __future__ import annotations

import json
import tomllib
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from jinja2.nativetypes import NativeEnvironment

from k8slab.errors import LabSpecError
from k8slab.provision.ansible_vars import KUBERNETES_RELEASES, ansible_vars
from k8slab.spec.load import load_spec, parse_spec
from k8slab.spec.model import LabSpec

ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "roles"
GROUP_VARS = ROOT / "ansible" / "group_vars" / "all.yml"
# Stand-ins for what the control plane's `kubeadm token create` returns at run time.
JOIN = {"token": "abcdef.0123456789abcdef", "ca_cert_hash": "sha256:" + "ab" * 32}


def five_node_spec(backend: str = "host-gw") -> LabSpec:
    """Another lab: 5 nodes, another host-only network, pod CIDR 10.100.0.0/16. That pod CIDR overlaps
    the default service CIDR 10.96.0.0/12, so the service CIDR moves too (spec.py refuses overlaps)."""
    data = yaml.safe_load((ROOT / "lab.yaml").read_text())
    host_only = IPv4Network("192.168.58.0/24")
    data["name"] = "five"
    data["network"]["host_only"] = str(host_only)
    data["kubernetes"]["pod_cidr"] = "10.100.0.0/16"
    data["kubernetes"]["service_cidr"] = "10.32.0.0/16"
    data["cni"]["backend"] = backend
    first = data["nodes"][0]
    data["nodes"] = [{**first, "name": "cp", "ip": str(host_only.network_address + 20)}] + [
        {"name": f"w{i}", "role": "worker", "ip": str(host_only.network_address + 20 + i), "cpus": 1,
         "memory": 1024} for i in range(1, 5)]
    return parse_spec(yaml.safe_dump(data), source="five-node.yaml")


SPECS = {"default": lambda: load_spec(ROOT / "lab.yaml"), "five-node": five_node_spec}


@pytest.fixture(params=sorted(SPECS), ids=sorted(SPECS))
def spec(request) -> LabSpec:
    return SPECS[request.param]()


def resolve(variables: dict[str, Any]) -> dict[str, Any]:
    """Evaluate the Jinja expressions in variable values against each other, like Ansible's lazy
    templating (a value that is one expression keeps its type: lab_node stays a dict)."""
    env = NativeEnvironment(undefined=jinja2.StrictUndefined)
    resolved = dict(variables)
    for _ in range(10):
        pending = {k: v for k, v in resolved.items() if isinstance(v, str) and "{{" in v}
        if not pending:
            return resolved
        for key, value in pending.items():
            try:
                resolved[key] = env.from_string(value).render(resolved)
            except jinja2.UndefinedError:
                continue  # depends on a value not resolved yet; next round
    raise AssertionError(f"variables do not resolve: {sorted(pending)}")


def context(spec: LabSpec, host: str, **extra: Any) -> dict[str, Any]:
    variables: dict[str, Any] = {}
    for defaults in sorted(ROLES.glob("*/defaults/main.yml")):
        variables.update(yaml.safe_load(defaults.read_text()) or {})
    variables.update(yaml.safe_load(GROUP_VARS.read_text()))
    variables.update(ansible_vars(spec))
    # Facts the role defaults read (containerd's release assets are named by architecture).
    variables.update(inventory_hostname=host, ansible_facts={"architecture": "x86_64"})
    variables.update(extra)
    return resolve(variables)


def render(role: str, template: str, spec: LabSpec, host: str, **extra: Any) -> str:
    # Ansible's template module defaults: trim_blocks on, lstrip_blocks off.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLES / role / "templates"),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, keep_trailing_newline=True)
    return env.get_template(template).render(context(spec, host, **extra))


def docs(text: str) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all(text) if d}


def kubelet_extra_args(registration: dict[str, Any]) -> dict[str, str]:
    # v1beta4 turned kubeletExtraArgs from a map into a list of {name, value}.
    return {arg["name"]: arg["value"] for arg in registration["kubeletExtraArgs"]}


def test_extravars_are_json_and_describe_every_node(spec):
    extravars = ansible_vars(spec)
    assert json.loads(json.dumps(extravars)) == extravars
    assert [(n["name"], n["role"], n["ip"], n["pod_subnet"], n["pod_gateway"]) for n in extravars["k8slab_nodes"]] == [
        (n.name, n.role, str(n.ip), str(n.pod_subnet), str(n.pod_gateway)) for n in spec.nodes]
    assert extravars["k8slab_workers"] == [n.name for n in spec.workers]
    assert extravars["k8slab_pod_cidr"] == str(spec.pod_cidr)
    assert extravars["k8slab_service_cidr"] == str(spec.service_cidr)
    assert extravars["k8slab_cni_backend"] == spec.cni_backend
    assert extravars["k8slab_package_version"].startswith(spec.k8s_version + ".")
    assert extravars["k8slab_kubernetes_version"] == "v" + extravars["k8slab_package_version"].split("-")[0]


# containerd's RELEASES.md "Kubernetes Support" matrix (v2.3.4): the lowest containerd per Kubernetes minor, by
# branch. A pinned containerd must be on a listed branch at or above that branch's floor.
CONTAINERD_MATRIX = {"1.35": ("2.2.0", "2.1.5", "1.7.28"), "1.36": ("2.3.0", "2.2.0")}


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


@pytest.mark.parametrize("minor", sorted(KUBERNETES_RELEASES))
def test_each_supported_minor_pins_a_containerd_its_matrix_lists(minor):
    release = KUBERNETES_RELEASES[minor]
    pinned = version_tuple(release.containerd_version)
    floors = [version_tuple(f) for f in CONTAINERD_MATRIX[minor]]
    assert any(pinned[:2] == floor[:2] and pinned >= floor for floor in floors), (minor, release)
    assert release.package_version.startswith(minor + ".") and release.kubeadm_api == "kubeadm.k8s.io/v1beta4"
    # Inside upstream support on the day the table was written.
    assert release.end_of_life > "2026-11-23"


def minor_spec(minor: str) -> LabSpec:
    data = yaml.safe_load((ROOT / "lab.yaml").read_text())
    data["kubernetes"]["version"] = minor
    return parse_spec(yaml.safe_dump(data), source=f"lab-{minor}.yaml")


@pytest.mark.parametrize("minor", sorted(KUBERNETES_RELEASES))
def test_every_supported_minor_renders(minor):
    spec = minor_spec(minor)
    release = KUBERNETES_RELEASES[minor]
    init = docs(render("control_plane", "kubeadm-init.yaml.j2", spec, spec.control_plane.name))
    assert init["ClusterConfiguration"]["kubernetesVersion"] == "v" + release.package_version.split("-")[0]
    config = tomllib.loads(render("containerd", "config.toml.j2", spec, spec.control_plane.name))
    assert config["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == release.pause_image
    defaults = context(spec, spec.control_plane.name, ansible_facts={"architecture": "x86_64"})
    assert defaults["containerd_release_url"] == (
        f"https://github.com/containerd/containerd/releases/download/v{release.containerd_version}/"
        f"containerd-{release.containerd_version}-linux-amd64.tar.gz")
    assert defaults["containerd_runc_url"].endswith(f"/v{release.runc_version}/runc.amd64")
    line = render("kubernetes", "kubernetes.list.j2", spec, spec.control_plane.name).splitlines()[-1]
    assert f"/core:/stable:/v{minor}/deb/ /" in line


def test_a_kubernetes_version_without_pins_is_refused_before_anything_runs():
    data = yaml.safe_load((ROOT / "lab.yaml").read_text())
    data["kubernetes"]["version"] = "1.19"
    spec = parse_spec(yaml.safe_dump(data))
    with pytest.raises(LabSpecError) as err:
        ansible_vars(spec)
    assert "kubernetes.version" in str(err.value)
    assert all(f'"{minor}"' in str(err.value) for minor in KUBERNETES_RELEASES)


def test_group_vars_find_each_node_by_inventory_hostname(spec):
    for node in spec.nodes:
        lab_node = context(spec, node.name)["k8slab_node"]
        assert lab_node["ip"] == str(node.ip) and lab_node["pod_subnet"] == str(node.pod_subnet)


def test_kubeadm_init_config(spec):
    cp = spec.control_plane
    rendered = docs(render("control_plane", "kubeadm-init.yaml.j2", spec, cp.name))
    init, cluster = rendered["InitConfiguration"], rendered["ClusterConfiguration"]
    assert init["apiVersion"] == cluster["apiVersion"] == KUBERNETES_RELEASES[spec.k8s_version].kubeadm_api
    assert init["localAPIEndpoint"]["advertiseAddress"] == str(cp.ip)
    assert init["nodeRegistration"]["name"] == cp.name
    assert kubelet_extra_args(init["nodeRegistration"]) == {"node-ip": str(cp.ip)}
    assert cluster["networking"] == {"podSubnet": str(spec.pod_cidr), "serviceSubnet": str(spec.service_cidr)}
    assert cluster["controlPlaneEndpoint"] == f"{cp.ip}:{init['localAPIEndpoint']['bindPort']}"
    assert cluster["kubernetesVersion"].startswith(f"v{spec.k8s_version}.")
    assert rendered["KubeletConfiguration"]["cgroupDriver"] == "systemd"
    # Schedulable: no NoSchedule taint on the tutorial's control plane (verify starts pods on every node).
    assert init["nodeRegistration"]["taints"] == []
    # kubeadm's own bootstrap token is short-lived (and revoked after the joins, see site.yml).
    (token,) = init["bootstrapTokens"]
    assert set(token) == {"ttl", "description"} and token["ttl"].endswith("m")


def test_kubeadm_join_config_per_worker(spec):
    cp = spec.control_plane
    for worker in spec.workers:
        join = docs(render("worker", "kubeadm-join.yaml.j2", spec, worker.name, worker_join=JOIN))["JoinConfiguration"]
        assert join["apiVersion"] == KUBERNETES_RELEASES[spec.k8s_version].kubeadm_api
        token = join["discovery"]["bootstrapToken"]
        assert token["apiServerEndpoint"].split(":")[0] == str(cp.ip)
        assert token["token"] == JOIN["token"] and token["caCertHashes"] == [JOIN["ca_cert_hash"]]
        assert join["nodeRegistration"]["name"] == worker.name
        assert kubelet_extra_args(join["nodeRegistration"]) == {"node-ip": str(worker.ip)}


def test_kubelet_node_ip_on_every_node(spec):
    for node in spec.nodes:
        env = render("kubernetes", "kubelet.env.j2", spec, node.name)
        assert f"KUBELET_EXTRA_ARGS=--node-ip={node.ip}\n" in env


def test_flannel_manifest(spec):
    manifest = render("flannel", "kube-flannel.yml.j2", spec, spec.control_plane.name)
    objects = docs(manifest)
    net_conf = json.loads(objects["ConfigMap"]["data"]["net-conf.json"])
    assert net_conf["Network"] == str(spec.pod_cidr)
    assert net_conf["Backend"] == {"Type": spec.cni_backend}
    # The pods' default route must be cni0 (the tutorial's first hop): flannel's delegate makes the bridge the gateway.
    cni_conf = json.loads(objects["ConfigMap"]["data"]["cni-conf.json"])
    flannel_plugin = cni_conf["plugins"][0]
    assert flannel_plugin["type"] == "flannel" and flannel_plugin["delegate"]["isDefaultGateway"] is True, cni_conf
    pod = objects["DaemonSet"]["spec"]["template"]["spec"]
    (flanneld,) = pod["containers"]
    assert f"--iface={spec.cni_interface}" in flanneld["args"]
    assert "--kube-subnet-mgr" in flanneld["args"]
    defaults = yaml.safe_load((ROLES / "flannel" / "defaults" / "main.yml").read_text())
    images = {c["image"] for c in pod["containers"] + pod["initContainers"]}
    assert images == {f"ghcr.io/flannel-io/flannel:{defaults['flannel_version']}",
                      f"ghcr.io/flannel-io/flannel-cni-plugin:{defaults['flannel_cni_plugin_version']}"}
    assert {o["metadata"].get("namespace") for o in objects.values() if o["kind"] != "Namespace"} <= {
        objects["Namespace"]["metadata"]["name"], None}


def test_flannel_vxlan_backend():
    spec = five_node_spec(backend="vxlan")
    objects = docs(render("flannel", "kube-flannel.yml.j2", spec, spec.control_plane.name))
    net_conf = json.loads(objects["ConfigMap"]["data"]["net-conf.json"])
    assert net_conf["Backend"]["Type"] == "vxlan"
    assert net_conf["Network"] == str(spec.pod_cidr)


def test_hosts_block_lists_every_node(spec):
    block = render("common", "hosts.j2", spec, spec.nodes[-1].name)
    assert [line.split() for line in block.splitlines()] == [[str(n.ip), n.name] for n in spec.nodes]


def test_containerd_config(spec):
    config = tomllib.loads(render("containerd", "config.toml.j2", spec, spec.control_plane.name))
    assert config["version"] == 3  # containerd 2.x plugin names
    plugins = config["plugins"]
    pinned = plugins["io.containerd.cri.v1.images"]["pinned_images"]
    assert pinned["sandbox"] == ansible_vars(spec)["k8slab_pause_image"]
    runtime = plugins["io.containerd.cri.v1.runtime"]
    assert runtime["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    assert runtime["cni"]["bin_dirs"] == ["/opt/cni/bin"]


def test_containerd_unit_runs_the_unpacked_release(spec):
    unit = render("containerd", "containerd.service.j2", spec, spec.control_plane.name)
    assert "ExecStart=/usr/local/bin/containerd\n" in unit and "Delegate=yes\n" in unit


def test_kernel_settings(spec):
    sysctls = render("common", "sysctl.conf.j2", spec, spec.control_plane.name)
    settings = dict(line.split(" = ") for line in sysctls.splitlines() if line and not line.startswith("#"))
    assert settings == {"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1",
                        "net.bridge.bridge-nf-call-ip6tables": "1"}
    modules = render("common", "modules-load.conf.j2", spec, spec.control_plane.name)
    assert [m for m in modules.splitlines() if not m.startswith("#")] == ["overlay", "br_netfilter"]


def test_apt_source_is_the_specs_minor_release(spec):
    line = render("kubernetes", "kubernetes.list.j2", spec, spec.control_plane.name).splitlines()[-1]
    assert line.startswith("deb [signed-by=/etc/apt/keyrings/")
    assert f"https://pkgs.k8s.io/core:/stable:/v{spec.k8s_version}/deb/ /" in line


def test_every_template_renders_with_plain_jinja2(spec):
    # A template using an Ansible-only filter would fail here ("no filter named ...").
    templates = sorted(ROLES.glob("*/templates/*.j2"))
    assert len(templates) >= 10
    for path in templates:
        for node in spec.nodes:
            assert render(path.parts[-3], path.name, spec, node.name, worker_join=JOIN).strip()


def test_flannel_ipip_backend():
    spec = five_node_spec(backend="ipip")
    objects = docs(render("flannel", "kube-flannel.yml.j2", spec, spec.control_plane.name))
    net_conf = json.loads(objects["ConfigMap"]["data"]["net-conf.json"])
    assert net_conf["Backend"] == {"Type": "ipip"} and net_conf["Network"] == str(spec.pod_cidr)


@pytest.mark.parametrize("encapsulation", ["None", "IPIP", "VXLAN", "IPIPCrossSubnet", "VXLANCrossSubnet"])
def test_calico_installation(encapsulation):
    data = yaml.safe_load((ROOT / "lab.yaml").read_text())
    data["cni"] = {"plugin": "calico", "encapsulation": encapsulation, "block_size": 27}
    spec = parse_spec(yaml.safe_dump(data))
    (installation,) = yaml.safe_load_all(render("calico", "calico-installation.yaml.j2", spec, spec.control_plane.name))
    assert (installation["apiVersion"], installation["kind"]) == ("operator.tigera.io/v1", "Installation")
    network = installation["spec"]["calicoNetwork"]
    (pool,) = network["ipPools"]
    assert (pool["cidr"], pool["blockSize"], pool["encapsulation"]) == (str(spec.pod_cidr), 27, encapsulation)
    # first-found would pick the NAT address every VM shares; pinned to the host-only NIC
    assert network["nodeAddressAutodetectionV4"] == {"interface": spec.cni_interface}
    assert network["bgp"] == ("Enabled" if spec.calico.uses_bgp else "Disabled")
    defaults = yaml.safe_load((ROLES / "calico" / "defaults" / "main.yml").read_text())
    assert defaults["calico_version"].startswith("v3.")
