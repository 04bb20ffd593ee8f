"""The extra variables the Ansible roles read: every lab fact, computed once from the LabSpec.

The roles never hard-code an address, a name or a CIDR; they look their node up in `lab_nodes` by
inventory_hostname. The result is plain JSON (strings, ints, lists, dicts) because ansible-runner
passes it as extravars, and the unit tests render the role templates with it directly.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import yaml

from k8slab.errors import LabSpecError
from k8slab.paths import PROJECT_ROOT
from k8slab.spec.facts import BRIDGE_IF, HOST_ONLY_IF, NAT_ADDRESS, NAT_IF, VXLAN_IF
from k8slab.spec.model import LabSpec, Node


@dataclass(frozen=True)
class KubernetesRelease:
    """What one minor release of pkgs.k8s.io needs pinned next to it, each value from its upstream source."""

    package_version: str  # apt version of kubelet/kubeadm/kubectl (Debian revision globbed), installed and held
    pause_image: str  # the sandbox image this kubeadm expects; containerd must use the same one
    kubeadm_api: str  # the kubeadm config API the templates are written for
    containerd_version: str  # a containerd release containerd's own Kubernetes support matrix lists for it
    runc_version: str  # the runc that containerd release is tested with (its script/setup/runc-version)
    end_of_life: str  # the minor's end of life (kubernetes.io/releases); README lists it


# Only minors inside upstream support on the day the table was written (2026-11-23), and only those
# for which containerd's RELEASES.md ("Kubernetes Support", containerd v2.3.4) names a containerd:
#   1.36: patch 1.36.4 (kubernetes.io/releases/1.36, 2026-08-11), end of life 2027-06-28; the Debian revision
#         is globbed (pkgs.k8s.io rebuilt 1.36.2 as 1.36.2-2.1, kubernetes/release#4156);
#         containerd 2.3.0+ or 2.2.0+ -> 2.3.4 (2.3 is an LTS branch to 2028-04-30), runc v1.4.3.
# Not here: 1.35 (matrix: 2.2.0+/2.1.5+/1.7.28+, all past or near their own end of life; EOL 2027-02-28),
# 1.37 (released 2026-08-26, not yet in containerd's matrix), 1.34 and older (end of life).
# Debian's containerd (bookworm 1.6.20, trixie 1.7.24) is below every floor above: the containerd role
# installs containerd's static release instead. pause 3.10.2 is containerd 2.3's default sandbox image.
KUBERNETES_RELEASES: dict[str, KubernetesRelease] = {
    "1.36": KubernetesRelease("1.36.4-*", "registry.k8s.io/pause:3.10.2", "kubeadm.k8s.io/v1beta4",
                              containerd_version="2.3.4", runc_version="1.4.3", end_of_life="2027-06-28"),
}


# Paths and ports every role shares, named once (ansible/group_vars/all.yml); Python reads them from there.
GROUP_VARS = PROJECT_ROOT / "ansible" / "group_vars" / "all.yml"


@functools.cache
def group_var(name: str) -> Any:
    """A plain value of group_vars/all.yml (the API server port, kubeadm's paths)."""
    return yaml.safe_load(GROUP_VARS.read_text())[name]


def kubernetes_release(spec: LabSpec) -> KubernetesRelease:
    try:
        return KUBERNETES_RELEASES[spec.k8s_version]
    except KeyError:
        known = ", ".join(f'"{v}"' for v in KUBERNETES_RELEASES)
        problem = (f"kubernetes.version: k8slab has no pinned packages and pause image for {spec.k8s_version!r}; "
                   f"use one of {known}, or add the release to KUBERNETES_RELEASES in src/k8slab/ansible_vars.py")
        raise LabSpecError(spec.source, [problem]) from None


def node_vars(node: Node) -> dict[str, Any]:
    return {
        "name": node.name,
        "role": node.role,
        "ip": str(node.ip),
        "index": node.index,
        "pod_subnet": str(node.pod_subnet),
        "pod_gateway": str(node.pod_gateway),
    }


def ansible_vars(spec: LabSpec) -> dict[str, Any]:
    """Extravars for ansible/site.yml. Raises LabSpecError before anything runs if a fact is missing."""
    release = kubernetes_release(spec)
    control_plane = spec.control_plane
    return {
        "k8slab_name": spec.name,
        "k8slab_nodes": [node_vars(n) for n in spec.nodes],
        # Workers join one at a time in this order: the controller hands out pod /24s in
        # registration order, so this order is what makes the spec's pod subnets the real ones.
        "k8slab_workers": [n.name for n in spec.workers],
        "k8slab_control_plane": control_plane.name,
        "k8slab_control_plane_ip": str(control_plane.ip),
        "k8slab_host_only": str(spec.host_only),
        "k8slab_host_only_prefix": spec.host_only.prefixlen,
        "k8slab_host_only_if": HOST_ONLY_IF,
        "k8slab_nat_if": NAT_IF,
        "k8slab_nat_address": str(NAT_ADDRESS),
        "k8slab_pod_cidr": str(spec.pod_cidr),
        "k8slab_service_cidr": str(spec.service_cidr),
        "k8slab_kubernetes_minor": spec.k8s_version,
        "k8slab_package_version": release.package_version,
        # kubeadm's own default ("stable-1") looks the version up online; pin it to the packages.
        "k8slab_kubernetes_version": "v" + release.package_version.split("-")[0],
        "k8slab_pause_image": release.pause_image,
        "k8slab_kubeadm_api": release.kubeadm_api,
        "k8slab_containerd_version": release.containerd_version,
        "k8slab_runc_version": release.runc_version,
        "k8slab_cni_plugin": spec.cni_plugin,
        "k8slab_cni_backend": spec.cni_backend,
        # Calico's IPPool, in Calico's vocabulary (None on a flannel lab)
        "k8slab_calico_encapsulation": spec.calico.encapsulation if spec.calico else None,
        "k8slab_calico_block_size": spec.calico.block_size if spec.calico else None,
        "k8slab_cni_iface": spec.cni_interface,
        "k8slab_bridge_if": BRIDGE_IF,
        "k8slab_vxlan_if": VXLAN_IF,
    }
