"""The VirtualBox lab: Vagrant makes one VM per node from the Vagrantfile (which reads the same lab.yaml),
then Ansible provisions all of them at once. Nodes and pods are then reached like any SSH lab."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from k8slab.errors import CommandFailedError, LabStateError, ToolMissingError
from k8slab.labs.base import Progress, node_row, quiet
from k8slab.labs.ssh import SshLab
from k8slab.provision.inventory import INVENTORY_FILE, PROJECT_ROOT, SshEndpoint, parse_ssh_config, write_inventory
from k8slab.spec.model import VBOX_HOST_ONLY_RANGE, LabSpec

VAGRANTFILE = PROJECT_ROOT / "Vagrantfile"
MIN_VAGRANT = (2, 3)
INSTALL_VAGRANT = "install Vagrant 2.3 or later (https://developer.hashicorp.com/vagrant/install)"
INSTALL_VIRTUALBOX = ("install VirtualBox 7 (https://www.virtualbox.org/wiki/Downloads); on Linux, libvirt/KVM "
                      "with the vagrant-libvirt plugin (`vagrant plugin install vagrant-libvirt`) works too")
# Known vagrant failures and what to do about them, matched against vagrant's own stderr.
HINTS = (
    ("not within the allowed ranges",
     (f"VirtualBox refuses this host-only address: keep network.host_only inside {VBOX_HOST_ONLY_RANGE} in lab.yaml "
     "or allow your range in /etc/vbox/networks.conf")),
    ("could not be found", ("the box could not be downloaded: check the internet connection, or add it by hand "
     "with `vagrant box add`")),
    ("VT-x is not available", ("enable hardware virtualization (VT-x/AMD-V) in the firmware, and make sure no "
     "other hypervisor (Hyper-V, KVM) holds it")),
)

T = TypeVar("T")


def vagrant_version(text: str) -> tuple[int, ...] | None:
    """(2, 3, 4) from `vagrant --version` output ("Vagrant 2.3.4")."""
    match = re.search(r"Vagrant (\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(g) for g in match.groups() if g is not None) if match else None


@functools.lru_cache(maxsize=8)
def _availability(path: str) -> tuple[str | None, str | None]:
    """(provider, None) when a lab can be made with this PATH, else (None, what is missing)."""
    exe = shutil.which("vagrant", path=path)
    if exe is None:
        return None, f"vagrant not found on PATH; {INSTALL_VAGRANT}"
    proc = subprocess.run([exe, "--version"], check=False, capture_output=True, text=True, timeout=60)
    version = vagrant_version(proc.stdout)
    if version is None or version[:2] < MIN_VAGRANT:
        return None, f"{proc.stdout.strip() or 'vagrant --version failed'} is too old; {INSTALL_VAGRANT}"
    if shutil.which("VBoxManage", path=path):
        return "virtualbox", None
    if shutil.which("virsh", path=path):
        plugins = subprocess.run([exe, "plugin", "list"], check=False, capture_output=True, text=True, timeout=60).stdout
        if "vagrant-libvirt" in plugins:
            return "libvirt", None
    return None, f"VirtualBox is not installed (VBoxManage not found on PATH); {INSTALL_VIRTUALBOX}"


def machine_readable_error(stdout: str) -> str:
    """The message of an `error-exit` line of `vagrant --machine-readable` output ("" if none):
    in that mode vagrant reports failures on stdout, not stderr."""
    for line in stdout.splitlines():
        fields = line.split(",", 4)
        if len(fields) == 5 and fields[2] == "error-exit":
            return fields[4].replace("%!(VAGRANT_COMMA)", ",").replace("\\n", "\n").strip()
    return ""


def hint_for(stderr: str) -> str:
    return "; ".join(hint for needle, hint in HINTS if needle in stderr)


class VagrantLab(SshLab):
    backend = "vagrant"

    def __init__(self, spec: LabSpec):
        super().__init__(spec, None, inventory=INVENTORY_FILE)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return _availability(os.environ.get("PATH", ""))[1]

    @property
    def provider(self) -> str:
        return _availability(os.environ.get("PATH", ""))[0] or "virtualbox"

    # running vagrant
    def vagrant_env(self) -> dict[str, str]:
        """The environment every vagrant call gets: the project's Vagrantfile reading this lab's spec."""
        return {**os.environ, "VAGRANT_CWD": str(PROJECT_ROOT), "K8SLAB_SPEC": str(Path(self.spec.source).resolve()),
                "VAGRANT_DEFAULT_PROVIDER": self.provider}

    def _vagrant(self, what: str, call: Callable[[object], T]) -> T:
        """Run call(python-vagrant handle); on failure raise with vagrant's own stderr (python-vagrant hides it)."""
        import vagrant

        if not VAGRANTFILE.exists():
            raise ToolMissingError(f"{VAGRANTFILE} is missing; run k8slab from its project folder")
        with tempfile.NamedTemporaryFile("w+", prefix="k8slab-vagrant-", suffix=".stderr") as err:
            handle = vagrant.Vagrant(root=str(PROJECT_ROOT), env=self.vagrant_env(),
                                     err_cm=vagrant.make_file_cm(err.name, "w"))
            try:
                return call(handle)
            except subprocess.CalledProcessError as exc:
                stderr = Path(err.name).read_text().strip() or machine_readable_error(
                    exc.output.decode(errors="replace") if isinstance(exc.output, bytes) else exc.output or "")
                tail = "\n    ".join(stderr.splitlines()[-15:]) or "(no output on stderr)"
                hint = hint_for(stderr)
                raise CommandFailedError(f"`vagrant {what}` failed (exit {exc.returncode}):\n    {tail}"
                                         + (f"\n  hint: {hint}" if hint else "")) from None

    def _stream(self, what: str, lines: Callable[[object], Iterable[str]], progress: Progress) -> None:
        def consume(handle) -> None:
            for line in lines(handle):
                if line.strip():
                    progress(line.rstrip())

        self._vagrant(what, consume)

    def vm_states(self) -> dict[str, str]:
        """node name -> Vagrant's state (running, poweroff, not_created...)."""
        return {s.name: s.state for s in self._vagrant("status", lambda v: v.status())}

    # connection details come from vagrant itself
    def endpoints(self) -> dict[str, SshEndpoint]:
        if self._endpoints is None:
            self._endpoints = parse_ssh_config(self._vagrant("ssh-config", lambda v: v.ssh_config()))
        return self._endpoints

    def unreachable_hint(self, node: str) -> str:
        return f"is the VM running? `vagrant status {node}` (or `k8slab status`)"

    # lifecycle
    def is_up(self) -> bool:
        states = self.vm_states()
        return all(states.get(n.name) == "running" for n in self.spec.nodes)

    def has_leftovers(self) -> bool:
        return any(state != "not_created" for state in self.vm_states().values())

    def up(self, progress: Progress = quiet) -> None:
        from k8slab.provision.runner import provision

        states = self.vm_states()
        present = {name: state for name, state in states.items() if state != "not_created"}
        if present:
            listing = ", ".join(f"{name} ({state})" for name, state in present.items())
            c = self.spec.command
            raise LabStateError(f"VMs of lab {self.spec.name!r} already exist: {listing}. Use `{c('provision')}` "
                                f"to (re)run the roles on them, or `{c('destroy')}` / `{c('recreate')}`")
        names = ", ".join(n.name for n in self.spec.nodes)
        progress(f"vagrant up --no-provision --provider={self.provider}: {names} from {self.spec.box_name} "
                 f"{self.spec.box_version}")
        try:
            self._stream("up", lambda v: v.up(no_provision=True, provider=self.provider, stream_output=True),
                         progress)
        except (CommandFailedError, KeyboardInterrupt):
            progress("vagrant up did not finish; removing the VMs it made")
            self._vagrant("destroy", lambda v: v.destroy())
            raise
        self._endpoints = None
        path = write_inventory(self.spec, self.endpoints())
        progress(f"inventory written: {path.relative_to(PROJECT_ROOT)}")
        provision(self.spec, path, progress, next_step="k8slab provision")

    def provision(self, progress: Progress = quiet) -> None:
        """Run the roles again on the running VMs (after a failure, or after editing a role)."""
        from k8slab.provision.runner import provision

        if not self.is_up():
            raise LabStateError(f"the VMs of lab {self.spec.name!r} are not all running "
                                f"({self._states_text()}); start them with `k8slab up`")
        path = write_inventory(self.spec, self.endpoints())
        provision(self.spec, path, progress, next_step="k8slab provision")

    def destroy(self, progress: Progress = quiet) -> None:
        progress("vagrant destroy -f")
        self.close()
        self._vagrant("destroy", lambda v: v.destroy())
        INVENTORY_FILE.unlink(missing_ok=True)
        self._endpoints = None

    def _states_text(self) -> str:
        return ", ".join(f"{name}: {state}" for name, state in self.vm_states().items())

    def plan(self) -> str:
        s = self.spec
        lines = [(f"VirtualBox lab {s.name!r} from {s.source}: {len(s.nodes)} VMs from box {s.box_name} "
                 f"{s.box_version} (provider {self.provider}), host-only network {s.host_only} "
                 f"(host {s.host_ip})")]
        for n in s.nodes:
            lines.append(f"  {n.name:<14} {n.role:<13} eth0 NAT, eth1 {n.ip!s:<15} {n.cpus} CPU {n.memory} MB  "
                         f"pods {n.pod_subnet}  VM k8slab-{s.name}-{n.name}")
        lines.append(f"then Ansible (ansible/site.yml) on all VMs at once: containerd, kubeadm {s.k8s_version}, "
                     f"flannel {s.cni_backend} on {s.cni_interface}; pod CIDR {s.pod_cidr}, "
                     f"service CIDR {s.service_cidr}")
        return "\n".join(lines)

    def status(self) -> list[dict[str, str]]:
        states = self.vm_states()
        ready = self.node_readiness() if any(state == "running" for state in states.values()) else {}
        return [{**node_row(n), "vm": states.get(n.name, "unknown"), "kubernetes": ready.get(n.name, "-")}
                for n in self.spec.nodes]

    def ssh_argv(self, node: str) -> list[str]:
        """`vagrant ssh NODE` for this lab (exec'd by `k8slab ssh`)."""
        self.spec.node(node)
        exe = shutil.which("vagrant")
        if exe is None:
            raise ToolMissingError(f"vagrant not found on PATH; {INSTALL_VAGRANT}")
        return [exe, "ssh", node]

