"""Every node shows lo, eth0 (NAT), eth1 (its host-only address), cni0 (its pod gateway) and a
host-side veth on cni0 per local pod — read through testinfra on the node, judged by checks.py."""

from __future__ import annotations

import pytest

from k8slab.verify import checks, names


def test_interface(interface_exp, node_facts, passes):
    result = checks.check_interface(interface_exp, node_facts[interface_exp.node])
    passes(result)


@pytest.mark.check_name.with_args(names.veth_name)
def test_veth_per_pod(spec, node, node_facts, all_pods, passes):
    here = [p.name for p in all_pods if p.node == node.name]
    assert here, f"the suite started pods on every node, but the lab lists none on {node.name}"
    check = checks.check_calico_veths if spec.calico is not None else checks.check_veths  # Calico: no bridge
    result = check(node, node_facts[node.name], here)
    passes(result)
