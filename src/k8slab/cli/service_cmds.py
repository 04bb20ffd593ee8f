"""`k8slab service expose|list|delete`: ClusterIP services as kube-proxy's iptables mode programs them,
in every node (the emulated lab writes the same chains kube-proxy writes; see labs/kube_proxy.py)."""

from __future__ import annotations

import argparse

from k8slab.cli.args import subcommand
from k8slab.labs.base import Lab
from k8slab.labs.registry import running_lab
from k8slab.render import console
from k8slab.spec.load import load_spec


def register(sub: argparse._SubParsersAction) -> None:
    svc = sub.add_parser("service", help="ClusterIP services over pods, as kube-proxy programs them")
    svc_sub = svc.add_subparsers(dest="service_command", metavar="ACTION")
    svc_sub.required = True

    p = subcommand(svc_sub, "expose", "give pods one ClusterIP address that balances over them (kubectl expose)",
                "examples:\n  k8slab service expose web --port 80 --pods web-1,web-2,web-3\n"
                "  k8slab pod exec client -- wget -qO- web          # by name, through the cluster DNS\n"
                "  k8slab node exec node-1 -- iptables -t nat -S KUBE-SERVICES\n")
    p.add_argument("name", help="service name, a DNS label (e.g. web); resolves as NAME.default.svc.cluster.local")
    p.add_argument("--port", type=int, required=True, help="the service's port (e.g. --port 80)")
    p.add_argument("--target-port", type=int, help="the pods' port (e.g. --target-port 8080; default: --port)")
    p.add_argument("--pods", required=True, help="the endpoints, comma-separated (e.g. --pods web-1,web-2)")
    p.add_argument("--protocol", choices=("tcp", "udp"), default="tcp", help="(e.g. --protocol udp; default tcp)")
    p.set_defaults(func=cmd_expose)

    p = subcommand(svc_sub, "list", "list services: NAMESPACE NAME CLUSTER-IP PORT ENDPOINTS (kubectl get svc -A)",
                "example:\n  k8slab service list\n")
    p.set_defaults(func=cmd_list)

    p = subcommand(svc_sub, "delete", "delete a service and its chains on every node", "example:\n"
                "  k8slab service delete web\n")
    p.add_argument("name", help="the service (e.g. web)")
    p.set_defaults(func=cmd_delete)


def _lab(args: argparse.Namespace) -> Lab:
    lab = running_lab(load_spec(args.spec), args.backend, args.inventory)
    return lab


def cmd_expose(args: argparse.Namespace) -> int:
    lab = _lab(args)
    pods = [p.strip() for p in args.pods.split(",") if p.strip()]
    lab.service_expose(args.name, args.port, args.target_port or args.port, pods,
                       args.protocol)
    svc = next((s for s in lab.services() or [] if s.name == args.name), None)
    where = f"{svc.cluster_ip}:{args.port}/{args.protocol}" if svc else f"port {args.port}/{args.protocol}"
    console.say(f"service {args.name} is {where} -> {', '.join(pods)} port {args.target_port or args.port}; "
                f"every node's KUBE-SERVICES chain sends it there (`{lab.command('service list')}`)")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    lab = _lab(args)
    rows = []
    for svc in lab.services() or []:
        ports = ",".join(f"{p.port}/{p.protocol.upper()}" for p in svc.ports)
        targets = sorted({p.target_port for p in svc.ports})
        endpoints = ",".join(f"{ep}:{t}" for ep in svc.endpoints for t in targets) or "<none>"
        rows.append({"namespace": svc.namespace, "name": svc.name, "cluster-ip": str(svc.cluster_ip),
                     "port(s)": ports, "endpoints": endpoints})
    print(console.table(rows))
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    lab = _lab(args)
    lab.service_delete(args.name)
    console.say(f"service {args.name} deleted; its address is free and its chains are gone from every node")
    return 0
