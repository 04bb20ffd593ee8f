"""`k8slab trace` end to end: real traceroute, real `ip route get` on each node, a real capture on
eth1, explained; one hop and three hops, every expected value from the spec."""

from __future__ import annotations

import pytest

from k8slab.cli import main
from k8slab.labs.registry import BACKENDS
from k8slab.spec.expect import hops_from_pod
from k8slab.spec.facts import BRIDGE_IF, HOST_ONLY_IF, VXLAN_IF
from k8slab.teach.explain import Endpoint
from k8slab.teach.trace import observe_trace

pytestmark = pytest.mark.usefixtures("flannel_tutorial")

PEER = "w-trace-peer"


def pod_ep(pod) -> Endpoint:
    return Endpoint(pod.ip, pod.node, pod=pod.name)


@pytest.fixture
def workers(spec):
    assert len(spec.workers) >= 2, "these traces need two workers"
    return spec.workers[0], spec.workers[1]


@pytest.fixture
def peer(lab, lab_pods, workers):
    """A second pod on the first worker, for the same-node trace; removed after."""
    pod = lab.pod_start(PEER, workers[0].name)
    try:
        yield pod
    finally:
        lab.pod_delete(PEER)


def test_cross_node_three_hops_explained(lab, spec, lab_pods, workers):
    w1, w2 = workers
    src, dst = pod_ep(lab_pods[w2.name]), pod_ep(lab_pods[w1.name])
    run = observe_trace(lab, src, dst, capture=True, pods=list(lab_pods.values()))
    ex = run.explanation
    expected = [h.address for h in hops_from_pod(spec, w2, dst.address)]
    assert len(expected) == 3
    assert [h.observed for h in ex.hops] == expected and ex.ok, "\n".join(ex.lines)
    # The route taken at each stop, read from the real `ip route get` there.
    assert [s.where for s in ex.stops] == [f"pod {src.pod}", w2.name, w1.name]
    out_of_w2 = ex.stops[1].route
    if spec.cni_backend == "host-gw":
        assert (out_of_w2.via, out_of_w2.dev) == (w1.ip, HOST_ONLY_IF)
    else:
        assert (out_of_w2.via, out_of_w2.dev) == (w1.pod_subnet.network_address, VXLAN_IF)
    assert ex.stops[2].route.dev == BRIDGE_IF and ex.stops[2].route.via is None
    assert ex.stops[1].arrives.startswith(BRIDGE_IF) and ex.stops[2].arrives.startswith(HOST_ONLY_IF)
    text = "\n".join(ex.lines)
    assert f"why 3 hops: 2 router(s) forward the packet ({w2.name}, then {w1.name})" in text
    # The capture on the destination's eth1 saw the probes, as flannel's backend puts them on the wire.
    assert ex.encapsulation_ok is True, text
    assert ("not encapsulated" if spec.cni_backend == "host-gw" else "encapsulated: node addresses") in text


def test_same_node_one_hop_explained(lab, spec, lab_pods, workers, peer):
    w1 = workers[0]
    src, dst = pod_ep(peer), pod_ep(lab_pods[w1.name])
    ex = observe_trace(lab, src, dst, capture=True, pods=[*lab_pods.values(), peer]).explanation
    assert [h.observed for h in ex.hops] == [dst.address] and ex.ok, "\n".join(ex.lines)
    assert [s.where for s in ex.stops] == [f"pod {PEER}"]
    assert ex.stops[0].route.via is None
    text = "\n".join(ex.lines)
    assert f"why 1 hop: both pods sit on {w1.name}'s {BRIDGE_IF}" in text
    assert ex.encapsulation_ok is True and "never reaches the wire" in text


def test_node_to_node_one_hop(lab, spec, workers):
    cp, w1 = spec.control_plane, workers[0]
    src, dst = Endpoint(cp.ip, cp.name, is_node=True), Endpoint(w1.ip, w1.name, is_node=True)
    ex = observe_trace(lab, src, dst, capture=False).explanation
    assert [h.observed for h in ex.hops] == [w1.ip] and ex.ok
    assert [s.where for s in ex.stops] == [cp.name, w1.name] and ex.stops[1].route.local


def trace_cli(spec, lab, capsys, *args):
    backend = ["--backend", lab.backend] if lab.backend in BACKENDS else []
    rc = main(["--spec", spec.source, "trace", *args, *backend])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_trace_command_by_pod_and_node_names(lab, spec, lab_pods, workers, capsys):
    w1, w2 = workers
    src, dst = lab_pods[w2.name], lab_pods[w1.name]
    rc, out, _ = trace_cli(spec, lab, capsys, src.name, dst.name)
    assert rc == 0, out
    assert f"traceroute to {dst.ip} ({dst.ip})" in out
    # Each TTL's line carries the hop expect computes for this lab's backend, nothing else.
    for ttl, hop in enumerate(hops_from_pod(spec, w2, dst.ip), 1):
        assert f"✓ {ttl}  {hop.address!s:15}  " in out, f"hop {ttl} should be {hop.address}:\n{out}"
    assert "✗" not in out and "NOT as" not in out and "as the tutorial says" in out, out
    rc, out, _ = trace_cli(spec, lab, capsys, spec.control_plane.name, str(w2.ip), "--no-capture")
    assert rc == 0 and "why 1 hop" in out


def test_trace_command_refuses_what_is_not_in_the_lab(lab, spec, capsys):
    rc, _, err = trace_cli(spec, lab, capsys, "no-such-pod", spec.control_plane.name)
    assert rc == 2 and "'no-such-pod' is not a pod or a node" in err and spec.control_plane.name in err
