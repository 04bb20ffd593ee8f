"""`k8slab trace` to a ClusterIP service on the emulated lab: one real connection's DNAT is found in the nodes'
nat counters on the source's own node (PREROUTING from a pod, OUTPUT from a node), it names one of the
service's endpoints, the page that answered agrees, and the path to that endpoint has the hops spec/expect.py
computes; a port the service does not expose is rewritten by nothing."""

from __future__ import annotations

import html

import pytest

from k8slab.labs.base import Container
from k8slab.labs.netns import NetnsLab
from k8slab.spec.expect import hops_from_node, hops_from_pod
from k8slab.teach.dnat import service_target
from k8slab.teach.explain import Endpoint
from k8slab.teach.service_trace import observe_service_trace

from .labtools import default_spec, leftovers, run_cli, spec_data, unique_name, write_spec

BACKENDS = ("web-1", "web-2", "web-3")


@pytest.fixture(scope="module")
def lab():
    """3 server pods on two workers behind service web (8080 -> 80), a client pod on the second worker."""
    spec = default_spec(unique_name("dn"))
    made = NetnsLab(spec)
    try:
        made.up()
        w1, w2 = spec.workers[0].name, spec.workers[1].name
        made.pods_start([(name, node) for name, node in zip(BACKENDS, (w1, w2, w1), strict=True)],
                        {name: (Container(name, "httpd"),) for name in BACKENDS})
        made.pod_start("client", w2)
        made.service_expose("web", 8080, 80, list(BACKENDS))
        yield made
    finally:
        made.destroy()
    assert not leftovers(spec.name)


def client(lab) -> Endpoint:
    pod = lab.pod("client")
    return Endpoint(pod.ip, pod.node, pod=pod.name)


def test_cli_trace_to_a_service_names_the_dnat_node_and_an_endpoint(lab, tmp_path):
    path = write_spec(tmp_path / "lab.yaml", spec_data(), lab.spec.name)
    done = run_cli(path, "trace", "client", "svc/web", "--no-capture")
    assert done.returncode == 0, done.stdout + done.stderr
    src_node = lab.pod("client").node
    assert f"counted 1 packet(s): {src_node} is the source's node: the packet's first stop, nat PREROUTING" \
        in done.stdout, done.stdout
    svc = next(s for s in lab.services() if s.name == "web")
    assert f"service web ({svc.cluster_ip}:8080/tcp)" in done.stdout
    assert "traceroute's probes are UDP" in done.stdout
    # the diagram draws the path to the endpoint reached and names the DNAT in its title
    drawn = run_cli(path, "diagram", "-o", str(tmp_path / "path.svg"), "--trace", "client", "svc/web")
    assert drawn.returncode == 0, drawn.stderr
    svg = html.unescape((tmp_path / "path.svg").read_text())  # graphviz writes '-' as &#45;
    assert f"svc/web: DNAT on {src_node} (nat PREROUTING) {svc.cluster_ip}:8080 -> " in svg


def test_a_pods_connection_is_rewritten_on_its_node_to_the_endpoint_that_answers(lab):
    spec, pods, src = lab.spec, lab.pods(), client(lab)
    target = service_target(spec, lab.services(), "svc/web")
    run = observe_service_trace(lab, src, target, capture=False, pods=pods)
    text = "\n".join(run.dnat.lines)
    assert run.ok, text
    # the counters: exactly one DNAT, on the client's node, to one of the service's endpoints
    assert [(c.node, c.packets) for c in run.dnat.seen] == [(src.node, 1)], text
    assert run.dnat.expected.hook == "PREROUTING"
    backends = {p.name: p for p in pods if p.name in BACKENDS}
    assert run.endpoint.pod in backends and run.endpoint.address == run.dnat.chosen.endpoint
    assert f"✓ the page names pod {run.endpoint.pod}, the endpoint the counter names" in text
    # then the ordinary trace to that endpoint: spec/expect.py's hops
    expected = [h.address for h in hops_from_pod(spec, spec.node(src.node), run.endpoint.address)]
    assert [h.observed for h in run.path.explanation.hops] == expected, "\n".join(run.path.explanation.lines)


def test_a_nodes_connection_is_rewritten_in_output(lab):
    spec, pods = lab.spec, lab.pods()
    cp = spec.control_plane
    src = Endpoint(cp.ip, cp.name, is_node=True)
    svc = next(s for s in lab.services() if s.name == "web")
    run = observe_service_trace(lab, src, service_target(spec, lab.services(), f"{svc.cluster_ip}:8080"),
                                capture=False, pods=pods)
    text = "\n".join(run.dnat.lines)
    assert run.ok and run.dnat.expected.hook == "OUTPUT", text
    assert "nat OUTPUT -> KUBE-SERVICES" in text and f"{cp.name} is the source's node" in text
    assert [c.node for c in run.dnat.seen] == [cp.name] and run.endpoint.pod in BACKENDS
    expected = [h.address for h in hops_from_node(spec, cp, run.endpoint.address)]
    assert [h.observed for h in run.path.explanation.hops] == expected, "\n".join(run.path.explanation.lines)


def test_a_port_the_service_does_not_expose_is_rewritten_by_nothing(lab, tmp_path):
    svc = next(s for s in lab.services() if s.name == "web")
    path = write_spec(tmp_path / "lab.yaml", spec_data(), lab.spec.name)
    done = run_cli(path, "trace", "client", f"{svc.cluster_ip}:81")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"nothing DNATs {svc.cluster_ip}:81/tcp: service web has {svc.cluster_ip} but does not expose 81/tcp" \
        in done.stdout
    assert "✓ no KUBE-SEP DNAT rule counted a packet on any node" in done.stdout, done.stdout


def test_an_endpoint_reaching_its_own_service_is_a_hairpin(lab):
    lab.service_expose("self", 80, 80, ["web-1"])
    try:
        web1 = lab.pod("web-1")
        src = Endpoint(web1.ip, web1.node, pod=web1.name)
        run = observe_service_trace(lab, src, service_target(lab.spec, lab.services(), "svc/self"), capture=False,
                                    pods=lab.pods())
        text = "\n".join(run.dnat.lines)
        assert run.ok and run.path is None and run.endpoint.pod == "web-1", text
        assert [c.node for c in run.dnat.seen] == [web1.node] and "(hairpin)" in text
        assert "✓ the page names pod web-1" in text  # the bridge sends it back on the veth it came from
    finally:
        lab.service_delete("self")


def test_a_connection_refused_by_the_endpoint_was_rewritten_all_the_same(lab):
    lab.service_expose("closed", 81, 81, ["web-1"])  # httpd listens on 80 only
    try:
        src = client(lab)
        run = observe_service_trace(lab, src, service_target(lab.spec, lab.services(), "svc/closed"), capture=False,
                                    pods=lab.pods())
        text = "\n".join(run.dnat.lines)
        assert run.ok and run.endpoint.pod == "web-1" and [c.node for c in run.dnat.seen] == [src.node], text
        assert "no page answered (nothing serves HTTP on port 81 there?)" in text
    finally:
        lab.service_delete("closed")
