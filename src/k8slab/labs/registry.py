"""Choosing and opening a lab backend: the VirtualBox lab (vagrant) or the emulated lab (netns)."""

from __future__ import annotations

from k8slab.errors import LabStateError, ToolMissingError
from k8slab.labs.base import Lab
from k8slab.spec.model import LabSpec

BACKENDS = ("vagrant", "netns")


def lab_class(backend: str) -> type[Lab]:
    # Imported lazily: the vagrant side needs python-vagrant, the netns side pyroute2.
    if backend == "vagrant":
        from k8slab.labs.vagrant import VagrantLab

        return VagrantLab
    if backend == "netns":
        from k8slab.labs.netns import NetnsLab

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


# Backends whose lab state is plain files (no tool, no root needed to read it): a lab of theirs that is up
# can be seen even where it cannot be used, so the user is told why rather than "no lab is up".
# (Asking the vagrant side means running vagrant, which is slow and fails where it cannot run.)
LOCAL_STATE_BACKENDS = ("netns",)


def start_hint(spec: LabSpec, backend: str | None = None) -> str:
    """The command that brings this spec's lab up, naming --spec when it is not the default lab.yaml."""
    return spec.command("up" + (f" --backend {backend}" if backend else ""))


def present_but_unusable(spec: LabSpec, backend: str, problem: str) -> ToolMissingError | None:
    """The error for a lab of this spec that exists but cannot be reached from here (not root, a tool missing)."""
    if backend not in LOCAL_STATE_BACKENDS:
        return None
    lab = lab_class(backend)(spec)
    if not (lab.is_up() or getattr(lab, "has_leftovers", lambda: False)()):
        return None
    return ToolMissingError(f"lab {spec.name!r} ({backend}) exists, but cannot be used from here: {problem}")


def unavailable_reason(backend: str, teardown: bool = False) -> str | None:
    """Why this backend cannot run here; with teardown, why its labs cannot even be removed (a backend may
    need fewer things to remove a lab than to build one)."""
    cls = lab_class(backend)
    if teardown:
        return getattr(cls, "teardown_unavailable_reason", cls.unavailable_reason)()
    return cls.unavailable_reason()


def usable_lab(spec: LabSpec, backend: str, teardown: bool = False) -> Lab:
    """The lab of this spec on this backend, refused with the reason when the backend cannot run here."""
    problem = unavailable_reason(backend, teardown)
    if problem:
        raise present_but_unusable(spec, backend, problem) or ToolMissingError(
            f"the {backend} backend cannot run here: {problem}")
    return open_lab(spec, backend)


def running_lab(spec: LabSpec, requested: str | None = None) -> Lab:
    """The lab of this spec that is up (the one asked for, else whichever is up)."""
    if requested:
        lab = usable_lab(spec, requested)
        if lab.is_up():
            return lab
    else:
        for backend in BACKENDS:
            cls = lab_class(backend)
            problem = cls.unavailable_reason()
            if problem is None:
                lab = cls(spec)
                if lab.is_up():
                    return lab
            elif (error := present_but_unusable(spec, backend, problem)) is not None:
                raise error
    which = f"{requested} " if requested else ""
    raise LabStateError(f"no {which}lab {spec.name!r} is up (spec {spec.source}); start one with `make lab` "
                        f"or `{start_hint(spec, requested)}`")
