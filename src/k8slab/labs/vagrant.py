"""The VirtualBox lab: Vagrant makes one VM per node from the Vagrantfile (which reads the same lab.yaml),
then Ansible provisions all of them at once. Nodes and pods are then reached like any SSH lab."""

from __future__ import annotations

import collections
import functools
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from k8slab.errors import CommandFailedError, LabStateError, ToolMissingError, UsageError
from k8slab.labs.base import Progress, node_row, quiet
from k8slab.labs.ssh import SshLab
from k8slab.labs.vagrant_host import (
    INSTALL_VAGRANT,
    INSTALL_VIRTUALBOX,
    MIN_VAGRANT,
    SECURE_BOOT,
    VBOX_NETWORKS_CONF,
    compatibility_problem,
    hint_for,
    host_only_refusal,
    platform_problem,
    progress_lines,
    vagrant_version,
    virtualbox_version,
)
from k8slab.provision.inventory import INVENTORY_FILE, PROJECT_ROOT, SshEndpoint, parse_ssh_config, write_inventory
from k8slab.spec.model import LabSpec

VAGRANTFILE = PROJECT_ROOT / "Vagrantfile"
VAGRANTFILE_MISSING = f"{VAGRANTFILE} is missing; run k8slab from its project folder"
VAGRANT_MISSING = f"vagrant not found on PATH; {INSTALL_VAGRANT}"
# Vagrant keeps each lab's machines apart (VAGRANT_DOTFILE_PATH): two specs never share a VM, and
# `destroy --spec lab2.yaml` cannot touch lab 1. VirtualBox's VM names carry the lab name too (Vagrantfile).
VAGRANT_STATE_DIR = PROJECT_ROOT / ".vagrant" / "labs"


T = TypeVar("T")


def dotfile_path(spec: LabSpec) -> Path:
    return VAGRANT_STATE_DIR / spec.name


def legacy_machines(spec: LabSpec, vagrant_dir: Path = PROJECT_ROOT / ".vagrant") -> list[str]:
    """Nodes of this lab with a VM in the shared .vagrant/machines of k8slab before per-lab state, when
    the lab has no state of its own yet: those VMs would be invisible to k8slab and collide by name."""
    if (vagrant_dir / "labs" / spec.name).exists():
        return []
    machines = vagrant_dir / "machines"
    return [n.name for n in spec.nodes if any((machines / n.name).glob("*/id"))]


def inventory_path(spec: LabSpec) -> Path:
    """The lab's own Ansible inventory (inventory/hosts-<lab name>.yml)."""
    return INVENTORY_FILE.with_name(f"hosts-{spec.name}.yml")


def _run(argv: list[str]) -> str:
    proc = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
    return proc.stdout + proc.stderr


@functools.lru_cache(maxsize=8)
def _availability(path: str, host: tuple[str, str, str] | None = None) -> tuple[str | None, str | None]:
    """(provider, None) when a lab can be made with this PATH on this host, else (None, what is missing)."""
    problem = platform_problem(*(host or (platform.system(), platform.machine(), platform.release())))
    if problem:
        return None, problem
    exe = shutil.which("vagrant", path=path)
    if exe is None:
        return None, VAGRANT_MISSING
    out = _run([exe, "--version"])
    version = vagrant_version(out)
    if version is None or version[:2] < MIN_VAGRANT:
        return None, f"{out.strip() or 'vagrant --version failed'} is too old; {INSTALL_VAGRANT}"
    vboxmanage = shutil.which("VBoxManage", path=path)
    if vboxmanage:
        out = _run([vboxmanage, "--version"])
        virtualbox = virtualbox_version(out)
        if virtualbox is None:
            return None, (f"`VBoxManage --version` gave no version ({out.strip()[:300]})"
                          + (f"; {SECURE_BOOT}" if "vboxdrv" in out else ""))
        problem = compatibility_problem(version, virtualbox)
        return (None, problem) if problem else ("virtualbox", None)
    if shutil.which("virsh", path=path) and "vagrant-libvirt" in _run([exe, "plugin", "list"]):
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


@dataclass(frozen=True)
class UpPlan:
    """What `up` does to a lab's VMs, from their Vagrant states."""

    create: tuple[str, ...]
    boot: tuple[str, ...]
    running: tuple[str, ...]

    @property
    def fresh(self) -> bool:
        return not self.boot and not self.running

    def describe(self) -> str:
        parts = [f"{verb} {', '.join(names)}" for verb, names in
                 (("creating", self.create), ("booting", self.boot), ("already running", self.running)) if names]
        return "; ".join(parts)


def up_plan(states: dict[str, str]) -> UpPlan:
    """Sort the nodes by what `vagrant up` will do to them (a state it does not name: boot it)."""
    def having(test: Callable[[str], bool]) -> tuple[str, ...]:
        return tuple(name for name, state in states.items() if test(state))

    return UpPlan(create=having(lambda s: s == "not_created"), running=having(lambda s: s == "running"),
                  boot=having(lambda s: s not in ("not_created", "running")))


class VagrantLab(SshLab):
    backend = "vagrant"
    needs_inventory = False  # its inventory is made from `vagrant ssh-config`

    def __init__(self, spec: LabSpec):
        super().__init__(spec, None, inventory=inventory_path(spec))

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
                "VAGRANT_DEFAULT_PROVIDER": self.provider, "VAGRANT_DOTFILE_PATH": str(dotfile_path(self.spec))}

    def _vagrant(self, what: str, call: Callable[[object], T]) -> T:
        """Run call(python-vagrant handle); on failure raise with vagrant's own stderr (python-vagrant hides it)."""
        import vagrant

        if not VAGRANTFILE.exists():
            raise ToolMissingError(VAGRANTFILE_MISSING)
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

    def _stream(self, args: list[str], progress: Progress) -> None:
        """`vagrant ARGS` with its output shown as it comes, box-download redraws included (python-vagrant
        reads whole lines, so a download's '\r' progress stayed invisible for minutes)."""
        exe = shutil.which("vagrant")
        if exe is None:
            raise ToolMissingError(VAGRANT_MISSING)
        if not VAGRANTFILE.exists():
            raise ToolMissingError(VAGRANTFILE_MISSING)
        tail: collections.deque[str] = collections.deque(maxlen=15)
        with subprocess.Popen([exe, *args], cwd=PROJECT_ROOT, env=self.vagrant_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1) as proc:
            assert proc.stdout is not None
            try:
                for line in progress_lines(iter(lambda: proc.stdout.read(256), "")):
                    tail.append(line)
                    progress(line)
            except BaseException:
                proc.terminate()
                raise
            rc = proc.wait()
        if rc != 0:
            output = "\n".join(tail)
            hint = hint_for(output)
            raise CommandFailedError(f"`vagrant {' '.join(args)}` failed (exit {rc}):\n    "
                                     + "\n    ".join(tail) + (f"\n  hint: {hint}" if hint else ""))

    def vm_states(self) -> dict[str, str]:
        """node name -> Vagrant's state (running, poweroff, not_created...)."""
        return {s.name: s.state for s in self._vagrant("status", lambda v: v.status())}

    # connection details come from vagrant itself
    def endpoints(self) -> dict[str, SshEndpoint]:
        if self._endpoints is None:
            self._endpoints = parse_ssh_config(self._vagrant("ssh-config", lambda v: v.ssh_config()))
        return self._endpoints

    def unreachable_hint(self, node: str) -> str:
        return (f"is the VM running? `{self.command('status')}`; `{self.command('up')}` boots stopped VMs "
                "and provisions them")

    # lifecycle
    def is_up(self) -> bool:
        states = self.vm_states()
        return all(states.get(n.name) == "running" for n in self.spec.nodes)

    def has_leftovers(self) -> bool:
        return any(state != "not_created" for state in self.vm_states().values())

    def up(self, progress: Progress = quiet) -> None:
        """Make the missing VMs, boot the stopped ones, then provision them all; on a running, healthy lab
        this only re-runs the roles, which change nothing. Resumes whatever an earlier `up` left."""
        self.check_host_only()
        legacy = legacy_machines(self.spec)
        if legacy:
            state = dotfile_path(self.spec)
            raise LabStateError(
                f"VMs of {', '.join(legacy)} were made before k8slab kept each lab's Vagrant state apart "
                f"(.vagrant/machines). Adopt them for lab {self.spec.name!r}: `mkdir -p {state} && mv "
                f".vagrant/machines {state}/machines` (from the project folder), or remove them with "
                "`vagrant destroy -f` first")
        plan = up_plan(self.vm_states())
        names = ", ".join(n.name for n in self.spec.nodes)
        progress(f"{plan.describe()}; vagrant up --no-provision --provider={self.provider}: {names} from "
                 f"{self.spec.box_name} {self.spec.box_version}")
        try:
            self._stream(["up", "--no-provision", f"--provider={self.provider}"], progress)
        except (CommandFailedError, KeyboardInterrupt):
            if plan.fresh:  # nothing of this lab existed before: leave nothing half made
                progress("vagrant up did not finish; removing the VMs it made")
                self._vagrant("destroy", lambda v: v.destroy())
            raise
        self.provision(progress)

    def check_host_only(self, conf: Path = Path(VBOX_NETWORKS_CONF)) -> None:
        """Refuse, before any VM is made, a host-only network VirtualBox would refuse halfway through `vagrant up`."""
        try:
            text: str | None = conf.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            text = None
        except OSError as err:
            raise LabStateError(f"cannot read {conf}: {err.strerror}") from None
        problem = host_only_refusal(self.spec.host_only, text)
        if problem:
            raise UsageError(f"{self.spec.source} cannot be brought up as the VirtualBox lab:\n  - {problem}")

    def provision(self, progress: Progress = quiet) -> None:
        """Run the roles again on the running VMs (after a failure, or after editing a role)."""
        from k8slab.provision.runner import provision

        if not self.is_up():
            raise LabStateError(f"the VMs of lab {self.spec.name!r} are not all running "
                                f"({self._states_text()}); `{self.command('up')}` boots them and provisions")
        self._endpoints = None
        path = write_inventory(self.spec, self.endpoints(), self.inventory)
        progress(f"inventory written: {path.relative_to(PROJECT_ROOT)}")
        provision(self.spec, path, progress, next_step=self.command("up"))

    def halt(self, progress: Progress = quiet) -> None:
        """Stop the VMs (kept on disk); `up` boots them again."""
        progress("vagrant halt")
        self.close()
        self._stream(["halt"], progress)

    def destroy(self, progress: Progress = quiet) -> None:
        progress("vagrant destroy -f")
        self.close()
        self._vagrant("destroy", lambda v: v.destroy())
        if self.inventory is not None:
            self.inventory.unlink(missing_ok=True)
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
                     f"{s.dataplane} on {s.cni_interface}; pod CIDR {s.pod_cidr}, "
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
            raise ToolMissingError(VAGRANT_MISSING)
        return [exe, "ssh", node]

    def admin_kubeconfig(self) -> str:
        """The control plane's /etc/kubernetes/admin.conf, as kubeadm wrote it."""
        from k8slab.labs.ssh import ADMIN_KUBECONFIG

        result = self.node_run(self.spec.control_plane.name, ["cat", ADMIN_KUBECONFIG], timeout=30)
        if not result.ok:
            raise CommandFailedError(f"could not read {ADMIN_KUBECONFIG} on {self.spec.control_plane.name}: "
                                     f"{result.stderr.strip() or result.stdout.strip()}; is the lab provisioned? "
                                     f"`{self.command('up')}`")
        return result.stdout

