"""Choosing and opening a lab backend: the VirtualBox lab (vagrant) or the emulated lab (netns)."""

from __future__ import annotations

from k8slab.errors import LabStateError, ToolMissingError
from k8slab.lab import Lab
from k8slab.spec import LabSpec

BACKENDS = ("vagrant", "netns")


def lab_class(backend: str) -> type[Lab]:
    # Imported lazily: the vagrant side needs python-vagrant, the netns side pyroute2.
    if backend == "vagrant":
        from k8slab.backends.vagrant import VagrantLab

        return VagrantLab
    if backend == "netns":
        from k8slab.backends.netns import NetnsLab

        return NetnsLab
    raise LabStateError(f"unknown backend {backend!r}; use one of: {', '.join(BACKENDS)}")


def open_lab(spec: LabSpec, backend: str) -> Lab:
    return lab_class(backend)(spec)


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


def running_lab(spec: LabSpec, requested: str | None = None) -> Lab:
    """The lab of this spec that is up (the one asked for, else whichever is up)."""
    for backend in ([requested] if requested else list(BACKENDS)):
        cls = lab_class(backend)
        if cls.unavailable_reason() is None:
            lab = cls(spec)
            if lab.is_up():
                return lab
    which = f"{requested} " if requested else ""
    raise LabStateError(f"no {which}lab {spec.name!r} is up (spec {spec.source}); start one with `make lab` "
                        f"or `k8slab up{' --backend ' + requested if requested else ''}`")
