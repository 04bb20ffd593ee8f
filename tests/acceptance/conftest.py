"""Fixtures of the acceptance suite: the lab under test, its pods, what its nodes show.

Tests are parametrized from the spec at collection time (per node, per expected interface and
route, per ordered node pair), so a 5-node lab gets its tests for free and every test id reads
like the check it makes. Which lab, and the `spec`, `lab` and `passes` fixtures: k8slab's pytest plugin
(src/k8slab/pytest_plugin.py), the same one a teacher's own test file gets.
"""

from __future__ import annotations

import pytest

from k8slab.labs.base import Lab, Pod
from k8slab.pytest_plugin import spec_or_fail
from k8slab.spec.expect import node_interfaces, node_routes
from k8slab.verify.names import (
    interface_name,
    kubernetes_names,
    node_pairs,
    node_trace_name,
    pod_address_name,
    pod_trace_name,
    route_name,
)
from k8slab.verify.observe import Observation, observe
from k8slab.verify.pods import SuitePods, delete_pods, start_pods


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    names = set(metafunc.fixturenames)
    wanted = names & {"interface_exp", "route_exp", "node", "worker", "node_pair", "kube_check", "address_slot"}
    if not wanted:
        return
    spec = spec_or_fail(metafunc.config)
    if "interface_exp" in names:
        exps = [e for n in spec.nodes for e in node_interfaces(spec, n, has_pods=True)]
        metafunc.parametrize("interface_exp", exps, ids=[interface_name(e) for e in exps])
    if "route_exp" in names:
        exps = [e for n in spec.nodes for e in node_routes(spec, n, has_pods=True)]
        metafunc.parametrize("route_exp", exps, ids=[route_name(e) for e in exps])
    if "node" in names:
        # Each per-node test names its check with @pytest.mark.check_name.with_args(node -> name).
        mark = metafunc.definition.get_closest_marker("check_name")
        namer = mark.args[0] if mark else None
        metafunc.parametrize("node", spec.nodes, ids=[namer(n) if namer else n.name for n in spec.nodes])
    if "worker" in names:
        cp = spec.control_plane
        others = [n for n in spec.nodes if n.name != cp.name]
        metafunc.parametrize("worker", others, ids=[node_trace_name(spec, cp, n) for n in others])
    if "node_pair" in names:
        pairs = node_pairs(spec)
        metafunc.parametrize("node_pair", pairs, ids=[pod_trace_name(spec, a, b) for a, b in pairs])
    if "address_slot" in names:
        slots = [(n, second) for second in (False, True) for n in spec.nodes]
        metafunc.parametrize("address_slot", slots, ids=[pod_address_name(n, s) for n, s in slots])
    if "kube_check" in names:
        kube_names = kubernetes_names(spec)
        metafunc.parametrize("kube_check", kube_names, ids=kube_names)


@pytest.fixture(scope="session")
def suite_pods(lab: Lab):
    """Two pods per node (t-<token>-<node>-a/-b), removed at the end of the session even on failure."""
    pods = start_pods(lab)
    try:
        yield pods
    finally:
        delete_pods(lab, pods.all())


@pytest.fixture(scope="session")
def lab_pods(suite_pods: SuitePods) -> dict[str, Pod]:
    """node name -> one pod on it that the suite started."""
    return suite_pods.first


@pytest.fixture(scope="session")
def observed(lab: Lab, suite_pods: SuitePods) -> Observation:
    """One look at every node (through testinfra), every pod's address, every trace, concurrently.
    The Kubernetes facts are observed by their own tests, which the emulated lab deselects."""
    return observe(lab, suite_pods, kubernetes=False)


@pytest.fixture(scope="session")
def node_facts(observed: Observation) -> dict:
    return dict(observed.facts)


@pytest.fixture(scope="session")
def all_pods(observed: Observation) -> list[Pod]:
    return list(observed.pods)


@pytest.fixture
def flannel_tutorial(spec) -> None:
    """Tests of the flannel tutorial's own steps (its walkthrough, its explained traces, the exercises drawn
    from flannel's faults): a lab with another dataplane skips them with the reason (CI runs lab.yaml's
    flannel lab; Calico's checks, traces, diagram and faults are proven in tests/netns and test_faults)."""
    if spec.cni_plugin != "flannel":
        pytest.skip(f"flannel's tutorial steps and exercises; this lab is {spec.dataplane}, whose walkthrough is "
                    "`calico` (tests/netns/test_dataplanes.py runs it and proves its checks and traces)")
