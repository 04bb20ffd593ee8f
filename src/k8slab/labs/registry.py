"""Which labs there are: the backends by name, and the one survey of a spec's labs that up, destroy,
status, every command working on the running lab and the acceptance suite all ask."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from k8slab.errors import LabStateError, ToolMissingError, UsageError
from k8slab.labs.base import Lab
from k8slab.spec.model import LabSpec


def _vagrant() -> type[Lab]:
    from k8slab.labs.vagrant import VagrantLab  # imported when asked for: python-vagrant, paramiko

    return VagrantLab


def _netns() -> type[Lab]:
    from k8slab.labs.netns import NetnsLab  # pyroute2

    return NetnsLab


def _ssh() -> type[Lab]:
    from k8slab.labs.ssh import SshLab

    return SshLab


_CLASSES: dict[str, Callable[[], type[Lab]]] = {"vagrant": _vagrant, "netns": _netns, "ssh": _ssh}
BACKENDS = tuple(_CLASSES)
# What `up` and the survey try when no backend is named, in this order; ssh needs an inventory.
AUTO_BACKENDS = ("vagrant", "netns")
ENV = {"spec": "K8SLAB_SPEC", "backend": "K8SLAB_BACKEND", "inventory": "K8SLAB_INVENTORY"}


def lab_class(backend: str) -> type[Lab]:
    if backend not in _CLASSES:
        raise UsageError(f"unknown backend {backend!r}; use one of: {', '.join(BACKENDS)}")
    return _CLASSES[backend]()


def open_lab(spec: LabSpec, backend: str, inventory: Path | None = None) -> Lab:
    return lab_class(backend).open(spec, inventory)


@dataclass(frozen=True)
class Selection:
    """Which lab a command or a test session means: the spec file, and the backend and inventory when the
    user named them (an option wins over K8SLAB_SPEC / K8SLAB_BACKEND / K8SLAB_INVENTORY)."""

    spec: Path = Path("lab.yaml")
    backend: str | None = None
    inventory: Path | None = None

    @classmethod
    def resolve(cls, spec: str | Path | None = None, backend: str | None = None, inventory: str | Path | None = None,
                env: Mapping[str, str] = os.environ) -> Selection:
        spec = spec or env.get(ENV["spec"]) or "lab.yaml"
        backend = backend or env.get(ENV["backend"]) or None
        inventory = inventory or env.get(ENV["inventory"]) or None
        if backend is not None and backend not in BACKENDS:
            raise UsageError(f"unknown backend {backend!r} (from {ENV['backend']}); use one of: {', '.join(BACKENDS)}")
        if inventory is not None and backend is None:
            backend = "ssh"  # an inventory means an existing cluster
        if inventory is not None and backend != "ssh":
            raise UsageError(f"--inventory names the machines of an existing cluster and goes with --backend ssh, "
                             f"not --backend {backend}")
        if backend == "ssh" and inventory is None:
            raise UsageError(f"--backend ssh needs --inventory FILE ({ENV['inventory']}): the Ansible inventory "
                             "of the cluster's machines")
        return cls(Path(spec), backend, Path(inventory) if inventory else None)


@dataclass(frozen=True)
class Found:
    """One backend's lab of the spec, as the survey saw it."""

    backend: str
    lab: Lab | None  # None: this machine cannot use the backend (problem says why)
    up: bool
    leftovers: bool = False
    problem: str | None = None

    @property
    def present(self) -> bool:
        return self.up or self.leftovers


def survey(spec: LabSpec, backend: str | None = None, inventory: Path | None = None,
           teardown: bool = False) -> list[Found]:
    """The labs of this spec: the named backend's (always listed, present or not), else every automatic
    backend's lab that exists. A backend that cannot run here still shows a lab whose state is local
    files, so the user hears why it cannot be used rather than that there is none."""
    found = []
    for name in [backend] if backend else AUTO_BACKENDS:
        cls = lab_class(name)
        problem = cls.teardown_unavailable_reason() if teardown else cls.unavailable_reason()
        if problem is None:
            lab = cls.open(spec, inventory)
            # Machines an inventory names are the lab as they are; whether Kubernetes answers there is
            # for the checks to say (and asking would cost an SSH round trip per command).
            up = cls.needs_inventory or lab.is_up()
            entry = Found(name, lab, up, not up and lab.has_leftovers())
        elif cls.state_is_local:
            lab = cls(spec)
            entry = Found(name, None, lab.is_up(), lab.has_leftovers(), problem)
        else:
            entry = Found(name, None, False, problem=problem)
        if backend or entry.present:
            found.append(entry)
    return found


def unusable_error(spec: LabSpec, found: Found) -> ToolMissingError:
    if found.present:
        return ToolMissingError(f"lab {spec.name!r} ({found.backend}) exists, but cannot be used from here: "
                                f"{found.problem}")
    return ToolMissingError(f"the {found.backend} backend cannot run here: {found.problem}")


def start_hint(spec: LabSpec, backend: str | None = None) -> str:
    """The command that brings this spec's lab up (`make lab` too for the default lab.yaml)."""
    command = f"`{spec.command('up', backend=backend)}`"
    return command if spec.source != "lab.yaml" or backend else f"`make lab` or {command}"


def running_lab(spec: LabSpec, backend: str | None = None, inventory: Path | None = None) -> Lab:
    """The lab of this spec that is up (the one asked for, else whichever is up)."""
    found = survey(spec, backend, inventory)
    for f in found:
        if f.lab is not None and f.up:
            return f.lab
    for f in found:
        if f.lab is None and (f.present or backend):
            raise unusable_error(spec, f)
    which = f"{backend} " if backend else ""
    raise LabStateError(f"no {which}lab {spec.name!r} is up (spec {spec.source}); start one with "
                        f"{start_hint(spec, backend)}")


def backend_for_up(spec: LabSpec, requested: str | None) -> tuple[str, str]:
    """The backend `up` should use, and a sentence saying why (the CLI prints it)."""
    if requested:
        problem = lab_class(requested).unavailable_reason()
        if problem:
            raise ToolMissingError(f"the {requested} backend cannot run here: {problem}")
        return requested, f"using the {requested} backend, as asked"
    vbox_problem = lab_class("vagrant").unavailable_reason()
    if vbox_problem is None:
        return "vagrant", "Vagrant and VirtualBox found: bringing up the VirtualBox lab"
    netns_problem = lab_class("netns").unavailable_reason()
    if netns_problem is None:
        return "netns", (f"VirtualBox lab not possible here ({vbox_problem}); "
                         "bringing up the emulated lab (network namespaces) instead")
    raise ToolMissingError(f"no lab can be brought up here.\n  VirtualBox lab: {vbox_problem}\n"
                           f"  emulated lab: {netns_problem}")
