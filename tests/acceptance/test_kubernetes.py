"""Kubernetes' own view agrees with the network (VirtualBox lab or an existing cluster only; on the
emulated lab these are deselected at collection, see the session header): every node Ready, podCIDR
and InternalIP as derived from lab.yaml, flannel's public-ip on eth1 and host-gw in its net-conf,
and `kubectl logs` working for a pod on every node (it fails when kubelet registered the NAT address)."""

from __future__ import annotations

import pytest

from k8slab.verify import checks, observe

pytestmark = pytest.mark.kubernetes


@pytest.fixture(scope="session")
def kube_results(spec, lab, lab_pods) -> dict[str, checks.CheckResult]:
    return {r.name: r for r in checks.check_kubernetes(spec, observe.observe_kubernetes(lab, lab_pods))}


def test_kubernetes_fact(kube_check, kube_results, passes):
    result = kube_results[kube_check]
    passes(result)
