"""pods_start makes each node's pod networks in order and starts all their containers at once: the addresses
are still handed out in order, every container runs, and one container that fails fails the whole batch with its
own error and leaves no pod, address or process behind."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from k8slab.errors import CommandFailedError
from k8slab.labs.netns import NetnsLab, containers, dns, nsfs

from .labtools import default_spec, unique_name

PODS_PER_NODE = 4


@pytest.fixture
def lab(labs) -> NetnsLab:
    lab = labs(default_spec(unique_name("b")))
    lab.up()
    return lab


def wanted(lab: NetnsLab) -> list[tuple[str, str]]:
    return [(f"p-{i}-{k}", n.name) for i, n in enumerate(lab.spec.nodes) for k in range(PODS_PER_NODE)]


def test_many_pods_start_with_addresses_in_order_and_every_container_running(lab):
    started = lab.pods_start(wanted(lab))
    assert [(p.name, p.node) for p in started] == wanted(lab)
    for node in lab.spec.nodes:
        ips = [p.ip for p in started if p.node == node.name]
        # host-local hands out the subnet's addresses in order; the control plane's first is kube-dns's
        first = node.pod_gateway + (2 if node.name == lab.spec.control_plane.name else 1)
        assert ips == [IPv4Address(int(first) + k) for k in range(PODS_PER_NODE)], node.name
    states = lab.pod_states()
    assert {name: (s.ready, s.status) for name, s in states.items()} == {n: (1, "Running") for n, _ in wanted(lab)}


def test_one_failing_container_fails_the_batch_and_leaves_nothing(lab, monkeypatch):
    batch = wanted(lab)
    bad = batch[len(batch) // 2][0]
    real = containers.start

    def start(*args, **kwargs):
        if kwargs["pod"] == bad:
            raise CommandFailedError(f"container {bad} (busybox) exited at once (exit 1): planted by the test")
        return real(*args, **kwargs)

    monkeypatch.setattr(containers, "start", start)
    with pytest.raises(CommandFailedError, match=f"container {bad} .*planted"):
        lab.pods_start(batch)
    assert lab.pods() == []
    assert [n for n in nsfs.list_netns(lab.prefix) if "_pod-" in n and not n.endswith(f"_pod-{dns.POD}")] == []
    assert [p for name, _ in batch for p in containers.pids_under(containers.pod_dir(lab.paths.dir, name))] == []
    held = [path.name for node in lab.spec.nodes for path in lab.paths.ipam_dir(node.name).rglob("*")
            if path.is_file() and path.name[:1].isdigit()]
    assert held == [str(lab.spec.control_plane.pod_gateway + 1)]  # host-local gave back all but kube-dns's address
    monkeypatch.undo()
    assert len(lab.pods_start(batch)) == len(batch)  # every name is free again
