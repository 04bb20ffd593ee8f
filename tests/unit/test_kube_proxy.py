"""kube-proxy's iptables chains as k8slab writes and reads them, and the emulated cluster DNS's files."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from k8slab.labs.kube_proxy import Service, ServicePort, check, probability, restore_input, rules, sep_chain, svc_chain
from k8slab.labs.netns import dns, services
from k8slab.spec.load import load_spec
from k8slab.verify.services import check_tables

ROOT = Path(__file__).resolve().parents[2]
SPEC = load_spec(ROOT / "lab.yaml")
DATA = Path(__file__).parent / "data"
PODS = IPv4Network("10.244.0.0/16")
WEB = Service("default", "web", IPv4Address("10.96.0.2"), (ServicePort(80, 8080),),
              tuple(IPv4Address(f"10.244.{n}.2") for n in (1, 2, 3)))


def test_kube_dns_chains_have_the_names_every_kubeadm_cluster_shows():
    # the well-known chain names of kube-dns in kube-proxy's iptables mode (e.g. `iptables -t nat -S` on any
    # kubeadm cluster): the hash is kube-proxy's, not one of k8slab's choosing
    svc = dns.service(SPEC, IPv4Address("10.244.0.2"))
    assert [svc_chain(svc, p) for p in svc.ports] == ["KUBE-SVC-TCOU7JCQXEZGVUNU", "KUBE-SVC-ERIFXISQEP7F7OF4"]
    assert svc.cluster_ip == SPEC.service_cidr.network_address + 10 == IPv4Address("10.96.0.10")


def test_each_endpoint_is_picked_with_equal_odds():
    assert [probability(n) for n in (3, 2)] == ["0.3333333333", "0.5000000000"]
    chains, body = rules([WEB], PODS)
    svc = svc_chain(WEB, WEB.ports[0])
    picks = [line for line in body if line.startswith(f"-A {svc} ") and "KUBE-SEP-" in line]
    assert len(picks) == 3 and "--probability 0.3333333333" in picks[0] and "--probability 0.5000000000" in picks[1]
    assert "statistic" not in picks[2]  # the last one takes whatever is left
    for ep in WEB.endpoints:
        sep = sep_chain(WEB, WEB.ports[0], ep)
        assert sep in chains and f"-A {sep} -p tcp -m comment --comment \"default/web\" -m tcp -j DNAT " \
                                  f"--to-destination {ep}:8080" in body
    assert f"! -s {PODS} -d 10.96.0.2/32" in next(line for line in body if line.startswith(f"-A {svc} "))


def test_restore_adds_hooks_once_and_deletes_chains_of_services_gone():
    first = restore_input([WEB], PODS, saved="*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n")
    assert first.count("-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES") == 1
    saved = first.replace("COMMIT", "")  # what iptables-save would show afterwards (near enough for the hooks)
    again = restore_input([], PODS, saved=saved)
    assert "-A PREROUTING" not in again
    old = svc_chain(WEB, WEB.ports[0])
    assert f"-X {old}" in again and all(f"-X {sep_chain(WEB, WEB.ports[0], ep)}" in again for ep in WEB.endpoints)


def saved_from(body: list[str]) -> str:
    """iptables-save prints probabilities as the kernel stores them (0.33333333349 for 0.3333333333)."""
    text = "\n".join(body).replace("0.3333333333", "0.33333333349").replace("0.5000000000", "0.50000000000")
    return "*nat\n" + text + "\nCOMMIT\n"


def test_check_passes_what_kube_proxy_writes_and_names_what_is_wrong():
    body = rules([WEB], PODS)[1]
    assert check(saved_from(body), [WEB]) == []
    missing = [line for line in body if "10.244.3.2:8080" not in line or not line.startswith("-A KUBE-SVC")]
    assert "not the endpoints" in check(saved_from(missing), [WEB])[0]
    uneven = saved_from(body).replace("0.33333333349", "0.90000000000")
    assert "probability 0.90000000000" in check(uneven, [WEB])[0]
    assert "KUBE-SERVICES has 0 rules" in check("*nat\nCOMMIT\n", [WEB])[0]


def test_dns_files_as_the_kubelet_and_kube_dns_have_them():
    conf = dns.resolv_conf(SPEC)
    assert conf.splitlines() == [f"nameserver {SPEC.service_cidr.network_address + 10}",
                                 "search default.svc.cluster.local svc.cluster.local cluster.local", "options ndots:5"]
    hosts = dns.hosts(SPEC, [dns.Name("web", IPv4Address("10.244.1.2"))], [WEB])
    assert all(f"{n.ip}\t{n.name}" in hosts for n in SPEC.nodes)
    assert "10.244.1.2\tweb" in hosts and "10.96.0.2\tweb.default.svc.cluster.local" in hosts
    command = dns.container(SPEC, Path("/x/hosts")).command
    assert f"--synth-domain=default.pod.cluster.local,{SPEC.pod_cidr}" in command and "--address=/#/" in command


def test_cluster_ips_skip_the_apiserver_and_kube_dns():
    net = SPEC.service_cidr.network_address
    assert services.allocate(SPEC, set()) == net + 2
    taken = {net + i for i in range(2, 10)}
    assert services.allocate(SPEC, taken) == net + 11


@pytest.mark.parametrize(("args", "message"), [
    (("Web", 80, 80, ["a"]), "DNS label"), (("web", 0, 80, ["a"]), "--port 0"), (("web", 80, 70000, ["a"]), "1-65535"),
    (("web", 80, 80, []), "name the pods"), (("web", 80, 80, ["zz"]), "no pod named zz"),
    (("old", 80, 80, ["a"]), "exists")])
def test_bad_services_are_refused_with_the_reason(args, message):
    problems = services.expose_problems(SPEC, *args, known_pods={"a"}, existing={"old"})
    assert any(message in p for p in problems), problems


def test_verify_reports_each_node_and_names_the_broken_one():
    good = saved_from(rules([WEB], PODS)[1])
    results = check_tables([WEB], {"node-1": good, "node-2": "*nat\nCOMMIT\n"})
    assert [(r.node, r.ok) for r in results] == [("node-1", True), ("node-2", False)]
    assert results[1].cause and "KUBE-SERVICES has 0 rules" in results[1].observed
    assert "web 10.96.0.2 -> 3 endpoints" in results[0].expected


# the VirtualBox lab: services read back from kubectl, chains written by the real kube-proxy

def test_services_read_back_from_kubectl_and_checked_against_kube_proxys_table():
    from k8slab.labs.kubectl_services import expose_args, label_args, parse_services, unlabel_args

    services = {s.name: s for s in parse_services((DATA / "kubectl-get-services-endpointslices.json").read_text())}
    assert set(services) == {"kubernetes", "web", "kube-dns"}  # the headless one has no chains
    web = services["web"]
    assert web.endpoints == tuple(IPv4Address(a) for a in ("10.244.1.5", "10.244.1.6", "10.244.2.4"))  # ready only
    assert [(p.name, p.protocol, p.port, p.target_port) for p in services["kube-dns"].ports] == [
        ("dns", "udp", 53, 53), ("dns-tcp", "tcp", 53, 53), ("metrics", "tcp", 9153, 9153)]
    saved = (DATA / "iptables-save-nat-kube-proxy.txt").read_text()  # in the shape kube-proxy 1.31 writes
    assert check(saved, services.values()) == []
    # the table lost one of web's endpoints, or its odds: named
    dropped = "\n".join(line for line in saved.splitlines() if "-> 10.244.1.6:80" not in line)
    assert "not the endpoints" in check(dropped, [web])[0]
    assert "probability" in check(saved.replace("0.33333333349", "0.10000000000"), [web])[0]
    # what k8slab asks kubectl: a label of its own that the service selects
    assert label_args("web", ["a", "b"]) == ["label", "pods", "a", "b", "svc.k8slab.io/web=true", "--overwrite"]
    assert expose_args("web", "a", 80, 8080, "tcp") == [
        "expose", "pod", "a", "--name=web", "--port=80", "--target-port=8080", "--protocol=TCP",
        "--selector=svc.k8slab.io/web=true"]
    assert unlabel_args("web") == ["label", "pods", "-l", "svc.k8slab.io/web", "svc.k8slab.io/web-"]
