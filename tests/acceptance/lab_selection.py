"""Which lab the acceptance suite checks: options, environment, the lab that is up, CI's own lab.

A pytest plugin (loaded by tests/conftest.py's pytest_plugins, because pytest reads command-line
options only from plugins and conftests it loads before parsing, and tests/acceptance/conftest.py
is not one of them for `pytest tests/`).

  --lab-backend / K8SLAB_BACKEND      netns | vagrant | ssh (default: whichever lab of the spec is up)
  --lab-inventory / K8SLAB_INVENTORY  an existing cluster, from an Ansible inventory (SSH)
  --spec / K8SLAB_SPEC                the lab spec (default: lab.yaml at the project root)

No lab up: in CI (CI=true) the spec's emulated lab is brought up for the session and destroyed at
the end; elsewhere the acceptance tests are skipped with the command that starts a lab.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from k8slab.errors import K8slabError
from k8slab.labs.base import Lab
from k8slab.labs.registry import BACKENDS, open_lab, running_lab
from k8slab.spec.model import LabSpec, load_spec
from k8slab.verify.checks import has_kubernetes

ACCEPTANCE_DIR = Path(__file__).resolve().parent
ROOT = ACCEPTANCE_DIR.parents[1]
KUBERNETES_MARK = "kubernetes"
_KEY = pytest.StashKey["LabTarget"]()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@dataclass
class LabTarget:
    spec: LabSpec | None = None
    lab: Lab | None = None
    bring_up: bool = False        # CI with no lab up: the session makes (and removes) the emulated lab
    skip_reason: str | None = None
    error: str | None = None      # the spec or the options are wrong: every acceptance test errors with this

    def describe(self) -> str:
        if self.error:
            return f"k8slab lab: none ({self.error.splitlines()[0]})"
        assert self.spec is not None
        where = f"lab {self.spec.name!r} from {self.spec.source}"
        if self.skip_reason:
            return f"k8slab {where}: not up; acceptance tests will be skipped"
        assert self.lab is not None
        how = "brought up for this session (CI) and destroyed after" if self.bring_up else "already up"
        return f"k8slab {where}: {self.lab.backend} backend, {how}"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("k8slab", "k8slab acceptance suite: the lab to check")
    group.addoption("--lab-backend", choices=(*BACKENDS, "ssh"), default=os.environ.get("K8SLAB_BACKEND") or None,
                    help="netns (emulated), vagrant (VirtualBox) or ssh (with --lab-inventory); env K8SLAB_BACKEND; "
                         "default: the lab of the spec that is up")
    group.addoption("--lab-inventory", metavar="FILE", default=os.environ.get("K8SLAB_INVENTORY") or None,
                    help="check an existing cluster listed in this Ansible inventory (SSH); env K8SLAB_INVENTORY")
    group.addoption("--spec", dest="lab_spec", metavar="FILE", default=os.environ.get("K8SLAB_SPEC") or None,
                    help="lab spec (default: lab.yaml at the project root); env K8SLAB_SPEC")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{KUBERNETES_MARK}: needs a Kubernetes API (VirtualBox lab or an existing "
                                       "cluster); deselected on the emulated lab")
    config.addinivalue_line("markers", "check_name(fn): node -> the check's name, the id of a per-node test")


def spec_path(config: pytest.Config) -> Path:
    given = config.getoption("lab_spec")
    if not given:
        return ROOT / "lab.yaml"
    path = Path(given)
    return path if path.is_absolute() or path.exists() else ROOT / path


def _wants_acceptance(config: pytest.Config) -> bool:
    """Whether this run collects the acceptance suite (so `pytest tests/unit` never probes for labs)."""
    args = [Path(str(a).split("::")[0]).resolve() for a in config.args] or [Path.cwd()]
    return any(a == ACCEPTANCE_DIR or ACCEPTANCE_DIR in a.parents or a in ACCEPTANCE_DIR.parents for a in args)


def resolve(config: pytest.Config) -> LabTarget:
    """Decide once per session which lab is under test; nothing is built here."""
    if _KEY in config.stash:
        return config.stash[_KEY]
    target = LabTarget()
    config.stash[_KEY] = target
    try:
        target.spec = load_spec(spec_path(config))
        backend, inventory = config.getoption("lab_backend"), config.getoption("lab_inventory")
        if inventory or backend == "ssh":
            if not inventory:
                raise K8slabError("--lab-backend ssh needs --lab-inventory FILE (or K8SLAB_INVENTORY)")
            from k8slab.labs.ssh import SshLab

            target.lab = SshLab.from_inventory(target.spec, Path(inventory))
            return target
        try:
            target.lab = running_lab(target.spec, backend)
        except K8slabError as exc:
            if in_ci() and backend in (None, "netns"):
                target.lab, target.bring_up = open_lab(target.spec, "netns"), True
            else:
                target.skip_reason = f"the acceptance suite checks a running lab, and {exc}; then run `pytest tests/` again"
    except K8slabError as exc:
        target.error = str(exc)
    return target


def pytest_report_header(config: pytest.Config) -> list[str]:
    if not _wants_acceptance(config):
        return []
    target = resolve(config)
    lines = [target.describe()]
    if target.lab is not None and not has_kubernetes(target.lab):
        lines.append(f"k8slab: Kubernetes-facts tests deselected: the {target.lab.backend} lab has no Kubernetes API "
                     "(no kubectl); they run on the VirtualBox lab or an existing cluster")
    return lines


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any(item.get_closest_marker(KUBERNETES_MARK) for item in items):
        return
    target = resolve(config)
    if target.lab is None or has_kubernetes(target.lab):
        return
    keep = [i for i in items if not i.get_closest_marker(KUBERNETES_MARK)]
    dropped = [i for i in items if i.get_closest_marker(KUBERNETES_MARK)]
    config.hook.pytest_deselected(items=dropped)
    items[:] = keep
