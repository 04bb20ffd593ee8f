"""The tutorial's traces: control plane to each worker in one hop; a pod to a pod on the same node in
one hop; a pod to a pod on another node in exactly [source cni0 gateway, destination eth1, the pod],
for every ordered pair of nodes. The traces ran once, concurrently (conftest `observed`)."""

from __future__ import annotations

from k8slab.verify import checks


def test_node_trace(spec, worker, observed, node_facts, passes):
    result = checks.check_node_trace(spec, spec.control_plane, worker, observed.node_traces[worker.name], node_facts)
    passes(result)


def test_pod_address(spec, address_slot, suite_pods, observed, passes):
    node, second = address_slot
    pod = (suite_pods.second if second else suite_pods.first)[node.name]
    result = checks.check_pod_address(spec, pod, observed.addresses[pod.ip], second)
    passes(result)


def test_pod_trace(spec, node_pair, suite_pods, observed, node_facts, passes):
    src_node, dst_node = node_pair
    src, dst = suite_pods.pair(src_node.name, dst_node.name)
    run = observed.pod_traces[(src_node.name, dst_node.name)]
    result = checks.check_pod_trace(spec, src, dst, run, node_facts, observed.addresses)
    passes(result)
