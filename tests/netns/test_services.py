"""Cluster DNS and ClusterIP services on the emulated lab: dnsmasq behind the kube-dns ClusterIP answers
what a cluster's DNS answers and nothing else waits; a service balances over all its endpoints from
any node, its chains have kube-proxy's shape, and they follow the endpoints."""

from __future__ import annotations

import collections
import re

import pytest

from k8slab.errors import LabStateError
from k8slab.labs.base import Container
from k8slab.labs.kube_proxy import check, svc_chain
from k8slab.labs.netns import NetnsLab, dns, names
from k8slab.verify.services import service_checks

from .labtools import default_spec, run_cli, unique_name, up_through_cli


@pytest.fixture
def lab(labs) -> NetnsLab:
    lab = labs(default_spec(unique_name("s")))
    lab.up()
    return lab


def nat(lab: NetnsLab, node: str) -> str:
    """The node's nat table as a student reads it, through the Lab (not the emulator's own module)."""
    saved = lab.node_run(node, ["iptables-save", "-t", "nat"])
    assert saved.ok, saved.stderr
    return saved.stdout


def resolve(lab: NetnsLab, pod: str, name: str) -> list[str]:
    result = lab.pod_run(pod, ["getent", "hosts", name], timeout=30)  # glibc without an answer: 5 s per try
    assert result.rc != 124, f"resolving {name} hung"
    return result.stdout.split()


def test_cluster_dns_answers_names_and_refuses_the_rest_at_once(lab):
    spec = lab.spec
    web = lab.pod_start("web", spec.workers[0].name, (Container("web", "nginx"),))
    lab.pod_start("client", spec.workers[-1].name)
    conf = lab.pod_run("client", ["cat", "/etc/resolv.conf"]).stdout
    assert conf == dns.resolv_conf(spec)
    for node in spec.nodes:
        assert resolve(lab, "client", node.name)[:1] == [str(node.ip)]
    assert resolve(lab, "client", "web")[:1] == [str(web.ip)]
    dashed = str(web.ip).replace(".", "-") + ".default.pod.cluster.local"
    assert resolve(lab, "client", dashed)[:1] == [str(web.ip)]
    assert resolve(lab, "client", "kube-dns.kube-system.svc.cluster.local")[:1] == [str(dns.cluster_ip(spec))]
    # an unknown name gets an answer (NXDOMAIN) from the server, not a timeout
    unknown = lab.pod_run("client", ["nslookup", "no-such-name.example"], timeout=10)
    assert unknown.rc not in (0, 124) and "NXDOMAIN" in unknown.stdout + unknown.stderr
    # traceroute without -n names the hops (reverse lookups answered) instead of waiting on each; three probes
    # a hop, as by default, so one answer held back by the kernel's ICMP rate limit does not blank the hop
    hops = lab.pod_run("client", ["traceroute", "-w", "2", "-q", "3", str(web.ip)], timeout=60)
    assert hops.ok and f"web ({web.ip})" in hops.stdout, hops.stdout + hops.stderr
    assert f"{spec.workers[0].name} ({spec.workers[0].ip})" in hops.stdout
    # the DNS pod is the lab's: not in pod list, and its name cannot be taken
    assert dns.POD not in {p.name for p in lab.pods()}


def test_nodes_know_each_other_and_nothing_else_and_destroy_forgets_it(lab):
    spec = lab.spec
    for node in spec.nodes:
        found = lab.node_run(spec.workers[0].name, ["getent", "hosts", node.name], timeout=30)
        assert found.stdout.split()[:1] == [str(node.ip)], found.stderr
    unknown = lab.node_run(spec.workers[0].name, ["getent", "hosts", "no-such-name.example"], timeout=30)
    assert unknown.rc == 2  # getent: not found (a timeout would be 124)
    folders = [dns.ETC_NETNS / names.node_netns(spec.name, n.name) for n in spec.nodes]
    assert all((f / "hosts").exists() for f in folders)
    lab.destroy()
    assert not any(f.exists() for f in folders)


def test_a_service_balances_over_every_endpoint_from_any_node(lab):
    spec = lab.spec
    workers = [w.name for w in spec.workers]
    backends = lab.pods_start([(f"web-{i}", workers[i % len(workers)]) for i in range(3)],
                              {f"web-{i}": (Container(f"web-{i}", "httpd"),) for i in range(3)})
    lab.pod_start("client", spec.control_plane.name)
    rec = lab.service_expose("web", 8080, 80, [p.name for p in backends])
    assert rec.cluster_ip == str(spec.service_cidr.network_address + 2)
    svc = next(s for s in lab.services() if s.name == "web")
    assert set(svc.endpoints) == {p.ip for p in backends}
    for node in spec.nodes:  # every node carries kube-proxy's chains for it, with the right odds
        saved = nat(lab, node.name)
        assert check(saved, lab.services()) == [], node.name
    seen = collections.Counter()
    for _ in range(20):
        page = lab.pod_run("client", ["wget", "-qO-", "-T", "15", f"http://web.default.svc.cluster.local:{rec.port}/"])
        assert page.ok, page.stderr
        seen.update(re.findall(r"pod (web-\d) ", page.stdout))
    assert set(seen) == {p.name for p in backends}, seen  # 20 requests reach all 3 (a miss is 3·(2/3)^20 ≈ 0.1 %)

    # verify reads every node's table back; a flushed service chain fails on that node only
    assert all(r.ok for r in service_checks(lab))
    chain = svc_chain(svc, svc.ports[0])
    assert lab.node_run(workers[0], ["iptables", "-t", "nat", "-F", chain]).ok
    failed = [r for r in service_checks(lab) if not r.ok]
    assert [r.node for r in failed] == [workers[0]] and "reaches nothing" in failed[0].observed
    lab.service_delete("web")  # and programming it again repairs it
    rec = lab.service_expose("web", 8080, 80, [p.name for p in backends])
    svc = next(s for s in lab.services() if s.name == "web")
    assert all(r.ok for r in service_checks(lab))

    # an endpoint pod goes: its DNAT goes from every node
    lab.pod_delete(backends[0].name)
    assert f"{backends[0].ip}:80" not in nat(lab, workers[0])
    assert check(nat(lab, workers[0]), lab.services()) == []
    with pytest.raises(LabStateError, match="exists"):
        lab.service_expose("web", 80, 80, [backends[1].name])
    lab.service_delete("web")
    assert svc_chain(svc, svc.ports[0]) not in nat(lab, workers[0])
    assert [s.name for s in lab.services()] == [dns.SERVICE]


def test_service_commands(tmp_path, cli_labs):
    path, spec = up_through_cli(tmp_path, cli_labs, "sc")
    for pod in ("web-1", "web-2"):
        assert run_cli(path, "pod", "run", pod, "--image", "httpd").returncode == 0
    done = run_cli(path, "service", "expose", "web", "--port", "80", "--pods", "web-1,web-2")
    ip = spec.service_cidr.network_address + 2
    assert done.returncode == 0 and f"service web is {ip}:80/tcp" in done.stdout, done.stderr
    rows = {line.split()[1]: line.split() for line in run_cli(path, "service", "list").stdout.splitlines()[1:]}
    assert rows["web"][:3] == ["default", "web", str(ip)] and rows["kube-dns"][2] == str(dns.cluster_ip(spec))
    refused = run_cli(path, "service", "expose", "db", "--port", "5432", "--pods", "nope")
    assert refused.returncode == 2 and "no pod named nope" in refused.stderr
    assert run_cli(path, "service", "delete", "web").returncode == 0
    assert "web" not in run_cli(path, "service", "list").stdout.split()
