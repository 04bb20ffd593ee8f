"""flannel host-gw routing on every node: its own pod subnet on cni0, every peer's pod subnet via
that peer's eth1 address, nothing of the pod network on eth0, and IPv4 forwarding on."""

from __future__ import annotations

import pytest

from k8slab.verify import checks, names


def test_route(spec, route_exp, node_facts, passes):
    result = checks.check_route(spec, route_exp, node_facts[route_exp.node])
    passes(result)


@pytest.mark.check_name.with_args(checks.eth0_routes_name)
def test_no_pod_route_on_eth0(spec, node, node_facts, passes):
    result = checks.check_eth0_routes(spec, node, node_facts[node.name])
    passes(result)


@pytest.mark.check_name.with_args(names.forwarding_name)
def test_forwarding(node, node_facts, passes):
    result = checks.check_forwarding(node, node_facts[node.name])
    passes(result)
