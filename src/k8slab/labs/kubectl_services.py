"""ClusterIP services on a real cluster (the VirtualBox lab, any SSH lab): what k8slab asks kubectl, and
the services with their ready endpoints read back from `kubectl get services,endpointslices -A -o json`,
in the shape kube_proxy.check compares with each node's nat table (written there by the real kube-proxy).

Pods are put behind a service by a label of k8slab's own (svc.k8slab.io/NAME=true), which the service
selects: `kubectl expose pod` would otherwise select the first pod's `run=` label, that is one pod."""

from __future__ import annotations

import json
from collections.abc import Sequence
from ipaddress import IPv4Address

from k8slab.labs.kube_proxy import Service, ServicePort

LABEL_PREFIX = "svc.k8slab.io/"


def label(name: str) -> str:
    return f"{LABEL_PREFIX}{name}"


def label_args(name: str, pods: Sequence[str]) -> list[str]:
    return ["label", "pods", *pods, f"{label(name)}=true", "--overwrite"]


def unlabel_args(name: str) -> list[str]:
    return ["label", "pods", "-l", label(name), f"{label(name)}-"]


def expose_args(name: str, first_pod: str, port: int, target_port: int, protocol: str) -> list[str]:
    return ["expose", "pod", first_pod, f"--name={name}", f"--port={port}", f"--target-port={target_port}",
            f"--protocol={protocol.upper()}", f"--selector={label(name)}=true"]


def parse_services(kubectl_json: str) -> list[Service]:
    """ClusterIP services with the ready endpoints of their EndpointSlices (kube-proxy's view of them)."""
    items = json.loads(kubectl_json).get("items", [])
    slices: dict[tuple[str, str], list[dict]] = {}
    for item in items:
        if item.get("kind") == "EndpointSlice" and item.get("addressType", "IPv4") == "IPv4":
            owner = item.get("metadata", {}).get("labels", {}).get("kubernetes.io/service-name")
            if owner:
                slices.setdefault((item["metadata"].get("namespace", "default"), owner), []).append(item)
    found = []
    for item in items:
        spec = item.get("spec", {})
        if item.get("kind") != "Service" or spec.get("type", "ClusterIP") != "ClusterIP":
            continue
        ip = spec.get("clusterIP")
        if not ip or ip == "None":
            continue  # headless: kube-proxy writes nothing for it
        ns, name = item["metadata"].get("namespace", "default"), item["metadata"]["name"]
        ready: list[IPv4Address] = []
        target: dict[str, int] = {}
        for s in slices.get((ns, name), []):
            for p in s.get("ports") or []:
                target[p.get("name") or ""] = int(p["port"])
            for ep in s.get("endpoints") or []:
                if ep.get("conditions", {}).get("ready", True):
                    ready += [IPv4Address(a) for a in ep.get("addresses", [])]
        ports = tuple(ServicePort(int(p["port"]), target.get(p.get("name") or "", _int(p.get("targetPort"), p["port"])),
                                  p.get("protocol", "TCP").lower(), p.get("name") or "")
                      for p in spec.get("ports", []))
        found.append(Service(ns, name, IPv4Address(ip), ports, tuple(sorted(set(ready)))))
    return found


def _int(value: object, default: object) -> int:
    return int(value) if isinstance(value, int) or (isinstance(value, str) and value.isdigit()) else int(default)
