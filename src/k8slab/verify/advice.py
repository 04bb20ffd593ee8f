"""Fixes worded for the lab in use: on the emulated lab, the exact `k8slab node exec` repair (or `recreate`);
on VirtualBox VMs (and an existing cluster over SSH), the commands on the node and the flannel, kubelet and
Vagrant fixes. The causes in verify/diagnose.py name the fault; an Advice words what to do about it."""

from __future__ import annotations

from dataclasses import dataclass

from k8slab.spec.model import LabSpec


@dataclass(frozen=True)
class Advice:
    emulated: bool = False
    spec: LabSpec | None = None  # for `--spec FILE` in the commands it shows

    @staticmethod
    def for_lab(backend: str, spec: LabSpec) -> Advice:
        return Advice(emulated=backend == "netns", spec=spec)

    def _k8slab(self, rest: str) -> str:
        return self.spec.command(rest) if self.spec is not None else f"k8slab {rest}"

    def on_node(self, node: str, *argv: str) -> str:
        """A command to run on a node, as the student runs it on this lab."""
        cmd = " ".join(argv)
        if self.emulated:
            return f"`{self._k8slab(f'node exec {node} -- {cmd}')}`"
        return f"`sudo {cmd}` on {node} (`vagrant ssh {node}`)"

    def rebuild(self, node: str) -> str:
        """Start a node over when its setup is wrong beyond one command."""
        if self.emulated:
            return f"`{self._k8slab('recreate --yes')}` rebuilds the lab"
        return f"`vagrant destroy -f {node} && vagrant up {node}` rebuilds the VM"

    def flannel_restart(self, node: str) -> str:
        """flannel writes the host-gw routes on the VirtualBox lab; the emulated lab wrote them once, at up."""
        if self.emulated:
            return f"the emulated lab wrote it at `up`; {self.rebuild(node)}"
        return f"restart kube-flannel on {node} (`kubectl -n kube-flannel delete pod -l app=flannel --field-selector " \
               f"spec.nodeName={node}`)"

    def persist(self) -> str:
        return "" if self.emulated else " (and in /etc/sysctl.d so it survives a reboot)"


VIRTUALBOX = Advice()
