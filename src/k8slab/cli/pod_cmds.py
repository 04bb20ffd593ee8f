"""Commands that run things in the lab: `k8slab pod run|list|exec|delete` and `k8slab node exec`.

They go through the Lab interface, so they work on whichever lab of the spec is up. `exec` hands
the terminal to the command when the backend can (live traceroute, tcpdump until Ctrl-C).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable

from k8slab.errors import LabStateError
from k8slab.labs.base import Lab, Result
from k8slab.labs.registry import BACKENDS, running_lab
from k8slab.render import console
from k8slab.spec.model import load_spec


def register(sub: argparse._SubParsersAction) -> None:
    pod = sub.add_parser("pod", help="start, list, enter and delete pods (pinned to a node)")
    pod_sub = pod.add_subparsers(dest="pod_command", metavar="ACTION")
    pod_sub.required = True

    p = pod_sub.add_parser("run", help="start a pod on a node and print its address")
    p.add_argument("name", help="pod name (a DNS label, as in Kubernetes)")
    p.add_argument("--node", required=True, help="the node to pin it to (nodeSelector kubernetes.io/hostname)")
    _backend_arg(p)
    p.set_defaults(func=cmd_pod_run)

    p = pod_sub.add_parser("list", help="list pods with their node and address, like kubectl get pods -o wide")
    _backend_arg(p)
    p.set_defaults(func=cmd_pod_list)

    p = pod_sub.add_parser("exec", help="run a command in a pod: k8slab pod exec NAME -- traceroute -n IP")
    p.add_argument("name")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ...")
    _backend_arg(p)
    p.set_defaults(func=cmd_pod_exec)

    p = pod_sub.add_parser("delete", help="delete a pod and free its address")
    p.add_argument("name")
    _backend_arg(p)
    p.set_defaults(func=cmd_pod_delete)

    node = sub.add_parser("node", help="run commands on a node")
    node_sub = node.add_subparsers(dest="node_command", metavar="ACTION")
    node_sub.required = True
    p = node_sub.add_parser("exec", help="run a command on a node: k8slab node exec controlplane -- ip route")
    p.add_argument("node")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ...")
    _backend_arg(p)
    p.set_defaults(func=cmd_node_exec)


def _backend_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=BACKENDS, help="which lab (default: whichever of this spec is up)")


def _lab(args: argparse.Namespace) -> Lab:
    return running_lab(load_spec(args.spec), args.backend)


def _command(args: argparse.Namespace) -> list[str]:
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise LabStateError("no command given; put it after --, e.g. `-- ip route`")
    return argv


def cmd_pod_run(args: argparse.Namespace) -> int:
    lab = _lab(args)
    pod = lab.pod_start(args.name, args.node)
    console.say(f"pod {pod.name} is running on {pod.node} with address {pod.ip}")
    return 0


def cmd_pod_list(args: argparse.Namespace) -> int:
    lab = _lab(args)
    rows = [{"name": p.name, "status": "Running", "ip": str(p.ip), "node": p.node} for p in lab.pods()]
    if not rows:
        print(f"No pods in lab {lab.spec.name!r}.")
        return 0
    print(console.table(rows))
    return 0


def cmd_pod_exec(args: argparse.Namespace) -> int:
    lab = _lab(args)
    return _exec(getattr(lab, "pod_argv", None), lab.pod_run, args.name, _command(args))


def cmd_pod_delete(args: argparse.Namespace) -> int:
    lab = _lab(args)
    pod = lab.pod(args.name)
    lab.pod_delete(args.name)
    console.say(f"pod {pod.name} deleted; {pod.ip} is free again on {pod.node}")
    return 0


def cmd_node_exec(args: argparse.Namespace) -> int:
    lab = _lab(args)
    return _exec(getattr(lab, "node_argv", None), lab.node_run, args.node, _command(args))


def _exec(enter: Callable[[str], list[str]] | None, run: Callable[..., Result], target: str, argv: list[str]) -> int:
    """Hand the terminal to the command where the backend can enter the target locally (live traceroute,
    tcpdump); otherwise run it remotely and print what it wrote."""
    if enter is not None:
        return _interactive([*enter(target), *argv])
    return _print(run(target, argv, timeout=3600))


def _interactive(argv: list[str]) -> int:
    """The command gets this terminal (and Ctrl-C, which ends it rather than k8slab)."""
    proc = subprocess.Popen(argv)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue  # the child got SIGINT too; report its exit status once it is gone


def _print(result: Result) -> int:
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.rc
