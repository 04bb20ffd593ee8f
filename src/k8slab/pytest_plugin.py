"""k8slab as a pytest plugin: any test file, in this repository or a teacher's folder, can check a lab.

Installed with k8slab (the `pytest11` entry point in pyproject.toml), so pytest loads it in every run:

    pytest --k8slab-spec lab.yaml my_checks.py

Options (each also from the environment):
  --k8slab-spec / --spec FILE           K8SLAB_SPEC       the lab spec (default: lab.yaml in pytest's rootdir)
  --k8slab-backend / --lab-backend B    K8SLAB_BACKEND    netns | vagrant | ssh (default: the spec's lab that is up)
  --k8slab-inventory / --lab-inventory  K8SLAB_INVENTORY  an existing cluster, from an Ansible inventory (SSH)

Fixtures: `spec` (the LabSpec), `lab` (the running Lab), `node_hosts` / `pod_hosts` (name -> testinfra
Host), and the spec's expectations: `expected_interfaces`, `expected_routes` (node -> list), and
`expected_hops` (a function: source pod, destination pod -> the addresses traceroute must show).

On a lab with Kubernetes and Calico the spec is the one the cluster decided: each node's pod subnet is the block
its BlockAffinity names (read once, at collection), so the parametrized checks and `spec` agree with the cluster.

No lab up: in CI (CI=true) the spec's emulated lab is brought up for the session and destroyed at
the end; elsewhere the tests that use the lab are skipped with the command that starts one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from k8slab.errors import K8slabError
from k8slab.labs.base import Lab
from k8slab.labs.registry import BACKENDS, Selection, open_lab, running_lab
from k8slab.spec.expect import InterfaceExpectation, RouteExpectation, hops_from_pod, node_interfaces, node_routes
from k8slab.spec.load import load_spec
from k8slab.spec.model import LabSpec

KUBERNETES_MARK = "kubernetes"
IPIP_MARK = "needs_ipip"
LAB_FIXTURES = frozenset({"lab", "node_hosts", "pod_hosts"})
_KEY = pytest.StashKey["LabTarget"]()
_IPIP_KEY = pytest.StashKey["str | None"]()  # why this machine's emulated lab cannot make IP-in-IP, None if it can


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@dataclass
class LabTarget:
    spec: LabSpec | None = None
    lab: Lab | None = None
    bring_up: bool = False        # CI with no lab up: the session makes (and removes) the emulated lab
    skip_reason: str | None = None
    error: str | None = None      # the spec or the options are wrong: every test using the lab errors with this

    def describe(self) -> str:
        if self.error:
            return f"k8slab lab: none ({self.error.splitlines()[0]})"
        assert self.spec is not None
        where = f"lab {self.spec.name!r} from {self.spec.source}"
        if self.skip_reason:
            return f"k8slab {where}: not up; tests that use it will be skipped"
        assert self.lab is not None
        how = "brought up for this session (CI) and destroyed after" if self.bring_up else "already up"
        return f"k8slab {where}: {self.lab.backend} backend, {how}"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("k8slab", "k8slab: the lab the tests check")
    group.addoption("--k8slab-spec", "--spec", dest="lab_spec", metavar="FILE",
                    default=os.environ.get("K8SLAB_SPEC") or None,
                    help="lab spec (default: lab.yaml in pytest's rootdir); env K8SLAB_SPEC")
    group.addoption("--k8slab-backend", "--lab-backend", dest="lab_backend", choices=BACKENDS,
                    default=os.environ.get("K8SLAB_BACKEND") or None,
                    help="netns (emulated), vagrant (VirtualBox) or ssh (with --k8slab-inventory); env "
                         "K8SLAB_BACKEND; default: the lab of the spec that is up")
    group.addoption("--k8slab-inventory", "--lab-inventory", dest="lab_inventory", metavar="FILE",
                    default=os.environ.get("K8SLAB_INVENTORY") or None,
                    help="check an existing cluster listed in this Ansible inventory (SSH); env K8SLAB_INVENTORY")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{KUBERNETES_MARK}: needs a Kubernetes API (VirtualBox lab or an existing "
                                       "cluster); deselected on the emulated lab")
    config.addinivalue_line("markers", "check_name(fn): node -> the check's name, the id of a per-node test")
    config.addinivalue_line("markers", f"{IPIP_MARK}: builds an emulated IP-in-IP lab; deselected where this machine's "
                                       "kernel has no ipip module (the emulated lab refuses IPIP there at `up`)")


def spec_path(config: pytest.Config) -> Path:
    given = config.getoption("lab_spec")
    if not given:
        return config.rootpath / "lab.yaml"
    path = Path(given)
    return path if path.is_absolute() or path.exists() else config.rootpath / path


def resolve(config: pytest.Config) -> LabTarget:
    """Decide once per session which lab is under test; nothing is built here."""
    if _KEY in config.stash:
        return config.stash[_KEY]
    target = LabTarget()
    config.stash[_KEY] = target
    try:
        # The options default to K8SLAB_SPEC/BACKEND/INVENTORY; the CLI's own selection checks them alike.
        chosen = Selection.resolve(spec_path(config), config.getoption("lab_backend"),
                                   config.getoption("lab_inventory"), env={})
        target.spec = load_spec(chosen.spec)
        backend = chosen.backend
        try:
            target.lab = running_lab(target.spec, backend, chosen.inventory)
            if target.lab.has_kubernetes and target.spec.calico is not None:
                # Which block each node got is calico-node's choice, not lab.yaml's order: parametrize and judge
                # against the blocks the cluster's BlockAffinities say (once, at collection; nothing elsewhere).
                target.lab.adopt_cluster_blocks()
                target.spec = target.lab.spec
        except K8slabError as exc:
            if in_ci() and backend in (None, "netns"):
                target.lab, target.bring_up = open_lab(target.spec, "netns"), True
            else:
                target.skip_reason = f"these tests check a running lab, and {exc}; then run pytest again"
    except K8slabError as exc:
        target.error = str(exc)
    return target


def _uses_lab(items: list[pytest.Item]) -> bool:
    """Whether a collected test uses this plugin's lab (a test folder may define a `lab` fixture of its own)."""
    ours = {getattr(f, "__wrapped__", f) for f in (lab, node_hosts, pod_hosts)}
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        for name in LAB_FIXTURES & set(getattr(item, "fixturenames", ())):
            defs = info.name2fixturedefs.get(name, ()) if info else ()
            if defs and defs[-1].func in ours:
                return True
    return False


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    """Which lab the collected tests check (said only when some test uses it: `pytest tests/unit` probes nothing)."""
    ipip = [(f"k8slab: IP-in-IP tests deselected: {config.stash[_IPIP_KEY]}; they run where the kernel has ipip "
            "(the unit tests prove those faults from facts)")] if config.stash.get(_IPIP_KEY, None) else []
    if not _uses_lab(items):
        return ipip

    target = resolve(config)
    lines = [target.describe(), *ipip]
    if target.lab is not None and not target.lab.has_kubernetes:
        lines.append(f"k8slab: Kubernetes-facts tests deselected: the {target.lab.backend} lab has no Kubernetes API "
                     "(no kubectl); they run on the VirtualBox lab or an existing cluster")
    return lines


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if any(item.get_closest_marker(IPIP_MARK) for item in items):
        config.stash[_IPIP_KEY] = ipip_unavailable_reason()
        if config.stash[_IPIP_KEY]:
            _deselect(config, items, IPIP_MARK)
    if not any(item.get_closest_marker(KUBERNETES_MARK) for item in items):
        return

    target = resolve(config)
    if target.lab is None or target.lab.has_kubernetes:
        return
    _deselect(config, items, KUBERNETES_MARK)


def _deselect(config: pytest.Config, items: list[pytest.Item], mark: str) -> None:
    keep = [i for i in items if not i.get_closest_marker(mark)]
    dropped = [i for i in items if i.get_closest_marker(mark)]
    config.hook.pytest_deselected(items=dropped)
    items[:] = keep


def ipip_unavailable_reason() -> str | None:
    """Why this machine's emulated lab cannot build an IP-in-IP dataplane (the kernel probed in a scratch
    namespace, as `up` does), None if it can."""
    from k8slab.labs.registry import lab_class

    problem = lab_class("netns").unavailable_reason()
    if problem:
        return f"the emulated lab cannot run here ({problem})"
    from k8slab.labs.netns import kernel, names

    return kernel.ipip_missing(names.prefix(f"ipip-probe-{os.getpid()}"))


def spec_or_fail(config: pytest.Config) -> LabSpec:
    target = resolve(config)
    if target.error:
        pytest.fail(f"k8slab cannot start: {target.error}", pytrace=False)
    assert target.spec is not None
    return target.spec


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def spec(request: pytest.FixtureRequest) -> LabSpec:
    """The lab spec under test (validated)."""
    return spec_or_fail(request.config)


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest, spec: LabSpec):
    """The lab that is up; in CI with none up, the spec's emulated lab, built now and destroyed after."""
    target = resolve(request.config)
    if target.skip_reason:
        pytest.skip(target.skip_reason)
    lab: Lab = target.lab
    if not target.bring_up:
        yield lab
        return
    problem = type(lab).unavailable_reason()
    if problem:
        pytest.fail(f"CI=true and no lab is up, and the emulated lab cannot be built here: {problem}", pytrace=False)
    lab.destroy()  # leftovers of a crashed earlier run of the same lab
    try:
        lab.up()
        yield lab
    finally:
        lab.destroy()


@pytest.fixture(scope="session")
def passes():
    """Assert a CheckResult passed; on failure show just its message (expected, observed, likely cause)."""
    def check(result) -> None:
        if not result.ok:
            pytest.fail(result.message, pytrace=False)
    return check


@pytest.fixture(scope="session")
def node_hosts(lab: Lab) -> dict[str, object]:
    """Node name -> testinfra Host running its commands on that node."""
    return {n.name: lab.testinfra_host(n.name) for n in lab.spec.nodes}


@pytest.fixture
def pod_hosts(lab: Lab) -> dict[str, object]:
    """Pod name -> testinfra Host running its commands in that pod, for the pods running now."""
    from k8slab.labs.command_host import pod_host

    return {p.name: pod_host(lab, p.name) for p in lab.pods()}


@pytest.fixture(scope="session")
def expected_interfaces(spec: LabSpec) -> dict[str, list[InterfaceExpectation]]:
    """Node name -> the interfaces and addresses it must have (cni0 included: it exists once a pod ran there)."""
    return {n.name: node_interfaces(spec, n, has_pods=True) for n in spec.nodes}


@pytest.fixture(scope="session")
def expected_routes(spec: LabSpec) -> dict[str, list[RouteExpectation]]:
    """Node name -> the pod-network routes it must have: its own pod subnet on cni0, each peer's via flannel."""
    return {n.name: node_routes(spec, n, has_pods=True) for n in spec.nodes}


@pytest.fixture
def expected_hops(lab: Lab) -> Callable[[str, str], list[IPv4Address]]:
    """(source pod, destination pod) -> the addresses `traceroute -n` from the source must show, in order."""
    def hops(src: str, dst: str) -> list[IPv4Address]:
        source, target = lab.pod(src), lab.pod(dst)
        return [h.address for h in hops_from_pod(lab.spec, lab.spec.node(source.node), target.ip)]
    return hops
