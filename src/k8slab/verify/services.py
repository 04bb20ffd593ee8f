"""verify's checks of ClusterIP services: every node's nat table, read with `iptables-save -t nat`, must
send each service's ClusterIP:port to exactly its endpoints with equal odds (kube_proxy.check). Labs that
list their services (the emulated lab, kube-dns included) are checked; others have no such check yet."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from k8slab.labs.base import Lab
from k8slab.labs.kube_proxy import Service, check
from k8slab.verify.checks import CheckResult
from k8slab.verify.concurrency import concurrently

GROUP = "services"


def observe_tables(lab: Lab) -> tuple[list[Service], dict[str, str]] | None:
    """The lab's services and every node's nat table, or None when the lab does not list services."""
    listed = lab.services()
    if listed is None:
        return None
    tables = concurrently({n.name: (lambda n=n: lab.node_run(n.name, ["iptables-save", "-t", "nat"]))
                           for n in lab.spec.nodes})
    return listed, {node: res.stdout if res.ok else "" for node, res in tables.items()}


def check_tables(services: Sequence[Service], tables: Mapping[str, str]) -> list[CheckResult]:
    """One result per node (pure)."""
    wanted = ", ".join(f"{s.name} {s.cluster_ip} -> {len(s.endpoints)} endpoints" for s in services) or "no service"
    results = []
    for node, saved in tables.items():
        problems = check(saved, services)
        results.append(CheckResult(
            GROUP, f"{node}: kube-proxy's chains", wanted, "as programmed" if not problems else "; ".join(problems),
            not problems, None if not problems else (
                "the nat table no longer matches the services (rules flushed or edited by hand?); "
                "`service delete` and `service expose` program them again"), node))
    return results


def service_checks(lab: Lab) -> list[CheckResult]:
    seen = observe_tables(lab)
    return [] if seen is None else check_tables(*seen)
