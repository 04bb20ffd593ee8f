"""Tracing to a ClusterIP service, the pure half (teach/dnat.py): which service a DST names, what kube-proxy's
rules do to a connection, and what `iptables-save -c -t nat` before and after one connection shows. The
nat tables are built from kube_proxy.py's own writer, with counters as `iptables-save -c` prints them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from k8slab.errors import LabStateError
from k8slab.labs.base import Pod, Result
from k8slab.labs.kube_proxy import HOOKS, Service, ServicePort, rules, sep_chain, svc_chain
from k8slab.labs.netns import dns
from k8slab.spec.load import load_spec
from k8slab.teach.dnat import (
    counter_rises,
    dnat_rises,
    expect_dnat,
    explain_dnat,
    page_pod,
    parse_counters,
    service_target,
)
from k8slab.teach.explain import Endpoint
from k8slab.teach.service_trace import connect_argv, reply_text

ROOT = Path(__file__).resolve().parents[2]
SPEC = load_spec(ROOT / "lab.yaml")
W1, W2 = SPEC.workers[0], SPEC.workers[1]
# three endpoints on two workers, as `service expose web --port 8080 --target-port 80` makes them
PODS = [Pod(name, node.name, node.pod_subnet.network_address + n)
        for name, node, n in (("web-1", W1, 2), ("web-2", W2, 2), ("web-3", W1, 3), ("client", W2, 3))]
WEB = Service("default", "web", SPEC.service_cidr.network_address + 2, (ServicePort(8080, 80),),
              tuple(p.ip for p in PODS[:3]))
SERVICES = [WEB, dns.service(SPEC, SPEC.control_plane.pod_subnet.network_address + 2)]
CLIENT = Endpoint(PODS[3].ip, W2.name, pod="client")
NODE = Endpoint(W1.ip, W1.name, is_node=True)


def saved(counts: Mapping[str, int] | None = None) -> str:
    """A node's `iptables-save -c -t nat` of these services: the hooks and kube-proxy's rules, each with its
    packet counter (the DNAT rule of a KUBE-SEP chain named in counts carries that many packets), and the
    statistic probabilities as the kernel stores them."""
    counts = counts or {}
    body = [f'-A {hook} -m comment --comment "{comment}" -j {target}' for hook, comment, target in HOOKS]
    body += rules(SERVICES, SPEC.pod_cidr)[1]
    lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    for line in body:
        chain = line.split()[1]
        n = counts.get(chain, 0) if " -j DNAT " in line else 0
        lines.append(f"[{n}:{60 * n}] " + line.replace("0.3333333333", "0.33333333349")
                     .replace("0.5000000000", "0.50000000000"))
    return "\n".join([*lines, "COMMIT"]) + "\n"


def sep(i: int) -> str:
    return sep_chain(WEB, WEB.ports[0], WEB.endpoints[i])


def tables(**by_node: Mapping[str, int]) -> dict[str, str]:
    return {n.name: saved(by_node.get(n.name.replace("-", "_"))) for n in SPEC.nodes}


# ---- what DST names


def test_a_service_is_named_by_name_kind_or_cluster_ip():
    for text in ("svc/web", "service/web", "web", str(WEB.cluster_ip), f"{WEB.cluster_ip}:8080", "svc/web:8080"):
        target = service_target(SPEC, SERVICES, text)
        assert target is not None and target.service == WEB and target.port == WEB.ports[0], text
        assert target.where == f"{WEB.cluster_ip}:8080/tcp"
    # kube-dns has 53/udp and 53/tcp: the TCP one is traced (the probe is a TCP connection)
    assert service_target(SPEC, SERVICES, "kube-dns").port.protocol == "tcp"


def test_an_unexposed_port_or_an_unused_cluster_ip_is_a_target_nothing_rewrites():
    other_port = service_target(SPEC, SERVICES, f"{WEB.cluster_ip}:81")
    assert other_port.service == WEB and other_port.port is None and other_port.where == f"{WEB.cluster_ip}:81/tcp"
    unused = service_target(SPEC, SERVICES, str(SPEC.service_cidr.network_address + 77))
    assert unused is not None and unused.service is None


def test_pods_nodes_and_plain_addresses_are_left_to_the_plain_trace():
    assert service_target(SPEC, SERVICES, "client") is None
    assert service_target(SPEC, SERVICES, str(PODS[0].ip)) is None
    with pytest.raises(LabStateError, match="no service named 'nope'; services: kube-dns, web"):
        service_target(SPEC, SERVICES, "svc/nope")
    with pytest.raises(LabStateError, match=f"not in the service CIDR {SPEC.service_cidr}"):
        service_target(SPEC, SERVICES, f"{PODS[0].ip}:80")
    with pytest.raises(LabStateError, match="not a port number"):
        service_target(SPEC, SERVICES, "svc/web:http")


# ---- what kube-proxy's rules say


def test_expected_dnat_comes_from_kube_proxys_rules():
    target = service_target(SPEC, SERVICES, "svc/web")
    exp = expect_dnat(SPEC, SERVICES, target, CLIENT)
    assert (exp.node, exp.hook, exp.svc_chain) == (W2.name, "PREROUTING", svc_chain(WEB, WEB.ports[0]))
    assert [p.chain for p in exp.picks] == [sep(i) for i in range(3)]
    assert [(p.endpoint, p.target_port) for p in exp.picks] == [(ip, 80) for ip in WEB.endpoints]
    assert [p.probability for p in exp.picks] == [pytest.approx(1 / 3), pytest.approx(1 / 2), None]
    assert all(p.overall == pytest.approx(1 / 3) for p in exp.picks)
    assert not exp.masquerade  # a pod's address is inside the pod CIDR
    from_node = expect_dnat(SPEC, SERVICES, target, NODE)
    assert (from_node.node, from_node.hook, from_node.masquerade) == (W1.name, "OUTPUT", True)
    nothing = expect_dnat(SPEC, SERVICES, service_target(SPEC, SERVICES, f"{WEB.cluster_ip}:81"), CLIENT)
    assert nothing.entry is None and nothing.picks == () and nothing.exposed == ("8080/tcp",)


# ---- what the counters showed


def test_the_dnat_rule_whose_counter_rose_names_the_endpoint_and_the_node():
    parsed = parse_counters(saved({sep(1): 4}))
    assert (parsed[0][0].chain, parsed[0][1]) == ("PREROUTING", 0)
    assert [n for r, n in parsed if r.chain == sep(1) and r.target == "DNAT"] == [4]
    before = tables()
    after = tables(**{W2.name.replace("-", "_"): {sep(1): 1}})
    rises = dnat_rises(counter_rises(before, after))
    assert [(c.node, c.rule.chain, c.packets, c.rule.opt("--to-destination")) for c in rises] == \
        [(W2.name, sep(1), 1, f"{WEB.endpoints[1]}:80")]
    # chains rewritten between the snapshots (a pod came or went): a rule the first one lacks counts from 0
    assert dnat_rises(counter_rises({W2.name: "*nat\nCOMMIT\n"}, {W2.name: saved({sep(2): 1})}))[0].packets == 1
    assert counter_rises(before, before) == []


def explain(after: dict[str, str], page: str, src: Endpoint = CLIENT, text: str = "svc/web"):
    target = service_target(SPEC, SERVICES, text)
    exp = expect_dnat(SPEC, SERVICES, target, src)
    return explain_dnat(SPEC, src, target, exp, counter_rises(tables(), after), probe="wget", reply=page,
                        reply_ok=bool(page), route_on_node=f"{target.address} via 10.0.2.2 dev eth0 src 10.0.2.15",
                        pods=PODS)


def page(pod: Pod) -> str:
    return f"<html><body><h1>It works!</h1>\n<p>httpd in pod {pod.name} (container {pod.name}), {pod.ip} on " \
           f"{pod.node}</p></body></html>\n"


def test_dnat_on_the_source_node_agreeing_with_the_page_is_explained_as_step_0():
    key = W2.name.replace("-", "_")
    ex = explain(tables(**{key: {sep(1): 1}}), page(PODS[1]))
    assert ex.ok and ex.chosen.endpoint == PODS[1].ip, "\n".join(ex.lines)
    text = "\n".join(ex.lines)
    assert f"nat PREROUTING -> KUBE-SERVICES: -d {WEB.cluster_ip}/32 -p tcp --dport 8080 -> " \
           f"{svc_chain(WEB, WEB.ports[0])}" in text
    assert f"✓ {W2.name}: {sep(1)} DNAT --to-destination {PODS[1].ip}:80 counted 1 packet(s): {W2.name} is the " \
           "source's node" in text
    assert f"the destination {WEB.cluster_ip}:8080 became {PODS[1].ip}:80 (pod web-2 on {W2.name})" in text
    assert "✓ the page names pod web-2, the endpoint the counter names" in text
    assert "traceroute's probes are UDP to ports 33434 and up, so no rule rewrites them" in text
    assert "(1 in 3 overall)" in text and "no masquerade mark" in text
    assert ex.summary.endswith(f"DNAT on {W2.name} (PREROUTING) to {PODS[1].ip}:80, as the rules say")
    assert ex.diagram_note == f"svc/web: DNAT on {W2.name} (nat PREROUTING) {WEB.cluster_ip}:8080 -> {PODS[1].ip}:80"


def test_a_page_from_another_pod_or_dnat_on_another_node_is_not_as_the_rules_say():
    key = W2.name.replace("-", "_")
    wrong_page = explain(tables(**{key: {sep(1): 1}}), page(PODS[0]))
    assert not wrong_page.ok and "✗ the page names pod web-1, not the endpoint" in "\n".join(wrong_page.lines)
    elsewhere = explain(tables(**{W1.name.replace("-", "_"): {sep(0): 1}}), page(PODS[0]))
    assert not elsewhere.ok and elsewhere.chosen is None
    assert f"{W1.name} is NOT the source's node {W2.name}" in "\n".join(elsewhere.lines)
    none = explain(tables(), "")
    assert not none.ok and "none of the service's KUBE-SEP DNAT rules counted a packet" in "\n".join(none.lines)


def test_without_a_page_naming_a_pod_the_counter_alone_names_the_endpoint():
    key = W2.name.replace("-", "_")
    image_page = explain(tables(**{key: {sep(0): 1}}), "<html><body><h1>It works!</h1></body></html>")
    assert image_page.ok and image_page.chosen.endpoint == PODS[0].ip
    assert "the answer names no pod (a server's own page)" in "\n".join(image_page.lines)
    refused = explain(tables(**{key: {sep(0): 1}}), "")  # e.g. wget: can't connect: Connection refused
    assert refused.ok and "no page answered (nothing serves HTTP on port 80 there?)" in "\n".join(refused.lines)


def test_a_node_source_is_rewritten_in_output_and_masqueraded():
    key = W1.name.replace("-", "_")
    ex = explain(tables(**{key: {sep(2): 1}}), page(PODS[2]), src=NODE)
    text = "\n".join(ex.lines)
    assert ex.ok and "nat OUTPUT -> KUBE-SERVICES" in text and "KUBE-MARK-MASQ marks it" in text, text


def test_a_port_the_service_does_not_expose_is_rewritten_by_nothing():
    ex = explain(tables(), "", text=f"{WEB.cluster_ip}:81")
    text = "\n".join(ex.lines)
    assert ex.ok and not ex.rewritten, text
    assert (f"nothing DNATs {WEB.cluster_ip}:81/tcp: service web has {WEB.cluster_ip} but does not expose 81/tcp; "
            f"KUBE-SERVICES matches {WEB.cluster_ip} on 8080/tcp") in text
    assert "no KUBE-SEP DNAT rule counted a packet on any node" in text
    assert ex.summary.endswith("nothing DNATs it, as the rules say; no pod answers there")


def test_the_connection_and_what_it_printed():
    target = service_target(SPEC, SERVICES, "svc/web")
    assert connect_argv(CLIENT, target)[-1] == f"http://{WEB.cluster_ip}:8080/"
    assert connect_argv(CLIENT, target)[0] == "timeout"  # busybox wget's -T does not bound the connect
    assert connect_argv(NODE, target)[0] == "curl"
    udp = service_target(SPEC, SERVICES, f"{dns.cluster_ip(SPEC)}:53")
    udp = type(udp)(udp.address, udp.service, next(p for p in udp.service.ports if p.protocol == "udp"))
    assert "nc -u" in connect_argv(CLIENT, udp)[-1]
    assert page_pod(page(PODS[1])) == "web-2" and page_pod("wget: connection refused") is None
    assert reply_text(Result(("wget",), 124, "", "")) == "no answer: gave up after 5 s"
    assert reply_text(Result(("wget",), 1, "", "wget: can't connect\n")) == "wget: can't connect\n"

