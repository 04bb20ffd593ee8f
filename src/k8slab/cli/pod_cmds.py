"""Commands that run things in the lab, with kubectl's habits: `k8slab pod run|list|exec|delete` and
`k8slab node exec`.

They go through the Lab interface, so they work on whichever lab of the spec is up. `exec` hands
the terminal to the command when the backend can (a shell, live traceroute, tcpdump until Ctrl-C).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable

from k8slab.cli.args import subcommand
from k8slab.errors import LabStateError, UsageError
from k8slab.interrupts import Interrupted
from k8slab.labs.base import Container, Lab, Result, name_problem
from k8slab.labs.placement import node_name_clash, place
from k8slab.labs.registry import running_lab
from k8slab.render import console
from k8slab.spec.load import load_spec

RUN_EXAMPLES = """examples:
  k8slab pod run web --image=nginx --node node-1
  k8slab pod run client -- sleep 3600            # no --node: placed as the scheduler would
  k8slab pod run web --image nginx --container sidecar=busybox
"""
EXEC_EXAMPLES = """examples:
  k8slab pod exec -it client -- sh
  k8slab pod exec client -- wget -qO- http://10.244.1.2/
  k8slab pod exec web -c sidecar -- wget -qO- localhost
"""


def register(sub: argparse._SubParsersAction) -> None:
    pod = sub.add_parser("pod", help="start, list, enter and delete pods, as kubectl does")
    pod_sub = pod.add_subparsers(dest="pod_command", metavar="ACTION")
    pod_sub.required = True

    p = subcommand(pod_sub, "run", "start a pod and print its node and address (kubectl run)", RUN_EXAMPLES)
    p.add_argument("name", type=pod_name, help="pod name, a DNS label that is not a node's name (e.g. web)")
    p.add_argument("--image", help="the first container's image (e.g. --image=httpd); default: httpd or nginx "
                                   "if a word of the name is one, else busybox")
    p.add_argument("--node", type=node_name,
                   help="pin the pod to this node (e.g. --node node-1); default: the schedulable node "
                                  "with the fewest pods, as the scheduler would spread them")
    p.add_argument("--container", action="append", default=[], metavar="NAME=IMAGE",
                   help="another container sharing the pod's network, repeatable (e.g. --container sidecar=busybox)")
    p.add_argument("argv", nargs="*", metavar="-- CMD ARGS", help="the first container's command instead of the "
                                                                 "image's own (e.g. -- sleep 3600)")
    p.set_defaults(func=cmd_pod_run)

    p = subcommand(pod_sub, "list", "list pods: NAME READY STATUS RESTARTS IP NODE (kubectl get pods -o wide)",
                "example:\n  k8slab pod list\n")
    p.set_defaults(func=cmd_pod_list)

    p = subcommand(pod_sub, "exec", "run a command in a pod's container (kubectl exec)", EXEC_EXAMPLES)
    p.add_argument("-i", "--stdin", action="store_true", help="keep stdin open, as kubectl's -i (e.g. -it for a shell)")
    p.add_argument("-t", "--tty", action="store_true",
                   help="give the command a terminal, as kubectl's -t (e.g. -it for a shell)")
    p.add_argument("name", type=pod_name, help="the pod (e.g. client)")
    p.add_argument("-c", "--container", help="which container (e.g. -c sidecar); default: the pod's first")
    p.add_argument("argv", nargs="*", metavar="-- CMD ARGS", help="the command (e.g. -- traceroute -n 10.244.2.2)")
    p.set_defaults(func=cmd_pod_exec)

    p = subcommand(pod_sub, "delete", "delete a pod, its containers, and free its address", "example:\n"
                "  k8slab pod delete web\n")
    p.add_argument("name", type=pod_name, help="the pod (e.g. web)")
    p.set_defaults(func=cmd_pod_delete)

    node = sub.add_parser("node", help="run commands on a node")
    node_sub = node.add_subparsers(dest="node_command", metavar="ACTION")
    node_sub.required = True
    p = subcommand(node_sub, "exec", "run a command on a node",
                   "examples:\n  k8slab node exec controlplane -- ip route\n"
                "  k8slab node exec node-1 -- tcpdump -ni cni0 icmp\n")
    p.add_argument("node", type=node_name, help="the node (e.g. node-1)")
    p.add_argument("argv", nargs="*", metavar="-- CMD ARGS", help="the command (e.g. -- ip route)")
    p.set_defaults(func=cmd_node_exec)


def pod_name(text: str) -> str:
    """argparse type: the one name check (labs.base.check_name), so `pod exec ../lab` is a usage error."""
    problem = name_problem("pod", text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def node_name(text: str) -> str:
    problem = name_problem("node", text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def _lab(args: argparse.Namespace) -> Lab:
    lab = running_lab(load_spec(args.spec), args.backend, args.inventory)
    lab.reap(console.say)  # pods a killed k8slab left half made, or a killed verify's: removed, and said so
    return lab


def _command(args: argparse.Namespace) -> list[str]:
    if not args.argv:
        raise UsageError("no command given; put it after --, e.g. `-- ip route`")
    return list(args.argv)


def containers_of(args: argparse.Namespace) -> tuple[Container, ...]:
    """The pod's containers from --image, -- CMD and --container NAME=IMAGE; () leaves the lab's default."""
    extra = []
    for item in args.container:
        name, eq, image = item.partition("=")
        if not eq or not name or not image:
            raise UsageError(f"--container {item!r}: write NAME=IMAGE, e.g. --container sidecar=busybox")
        extra.append(Container(name, image))
    if args.image is None and not args.argv and not extra:
        return ()
    from k8slab.labs.base import default_containers

    main = Container(args.name, args.image or default_containers(args.name)[0].image, tuple(args.argv))
    return (main, *extra)


def cmd_pod_run(args: argparse.Namespace) -> int:
    lab = _lab(args)
    clash = node_name_clash(lab.spec, args.name)
    if clash:
        raise UsageError(clash)
    containers = containers_of(args)
    node = args.node
    if node is None:
        placement = place(lab.spec, lab.pods())
        node = placement.node
        console.say(f"no --node: placing {args.name} on {node}, {placement.why}")
    pod = lab.pod_start(args.name, node, containers)
    state = lab.pod_states().get(pod.name)
    status = state.status if state else "Running"
    console.say(f"pod {pod.name} is {status} on {pod.node} with address {pod.ip}"
                + ("" if status == "Running" else f" (its command ended: {state.ready}/{state.total} ready)"))
    return 0


def cmd_pod_list(args: argparse.Namespace) -> int:
    lab = _lab(args)
    pods = lab.pods()
    if not pods:
        print(f"No pods in lab {lab.spec.name!r}.")
        return 0
    states = lab.pod_states()
    rows = []
    for p in pods:
        state = states.get(p.name)
        rows.append({"name": p.name, "ready": f"{state.ready}/{state.total}" if state else "?",
                     "status": state.status if state else "Unknown", "restarts": str(state.restarts) if state else "?",
                     "ip": str(p.ip), "node": p.node})
    print(console.table(rows))
    for p in pods:  # kubectl describe's "Last State": why a container restarted, or why it will not
        if p.name in states and states[p.name].last_state:
            print(f"{p.name}: {states[p.name].last_state}")
    gone = [p.name for p in pods if p.name in states and states[p.name].status == "Unknown"]
    if gone:
        print(f"Unknown: the lab lost these pods' namespaces; `{lab.command('pod delete ' + gone[0])}` "
              "removes what is left of one")
    return 0


def cmd_pod_exec(args: argparse.Namespace) -> int:
    lab = _lab(args)
    argv = _command(args)
    local = lab.pod_argv(args.name, args.container)
    if local is None and (args.stdin or args.tty):
        raise LabStateError(f"this lab runs pod commands through kubectl without a terminal; for an interactive "
                            f"shell use `{lab.command('ssh ' + lab.spec.control_plane.name)}` and "
                            f"`sudo kubectl exec -it {args.name} -- {' '.join(argv)}` there")
    return _exec(local, lambda cmd: lab.pod_run(args.name, cmd, timeout=3600, container=args.container), argv)


def cmd_pod_delete(args: argparse.Namespace) -> int:
    lab = _lab(args)
    pod = lab.pod(args.name)
    lab.pod_delete(args.name)
    console.say(f"pod {pod.name} deleted; {pod.ip} is free again on {pod.node}")
    return 0


def cmd_node_exec(args: argparse.Namespace) -> int:
    lab = _lab(args)
    lab.spec.node(args.node)
    return _exec(lab.node_argv(args.node), lambda cmd: lab.node_run(args.node, cmd, timeout=3600), _command(args))


def _exec(local: list[str] | None, run: Callable[[list[str]], Result], argv: list[str]) -> int:
    """Hand the terminal to the command where the backend can enter the target locally (a shell, live
    traceroute, tcpdump); otherwise run it remotely and print what it wrote."""
    if local is not None:
        return _interactive([*local, *argv])
    return _print(run(argv))


def _interactive(argv: list[str]) -> int:
    """The command gets this terminal (and Ctrl-C, which ends it rather than k8slab)."""
    proc = subprocess.Popen(argv)
    while True:
        try:
            return proc.wait()
        except Interrupted as exc:
            proc.send_signal(exc.signum)  # SIGTERM/SIGHUP reached k8slab alone: pass it on, then wait
        except KeyboardInterrupt:
            continue  # the child got SIGINT too; report its exit status once it is gone


def _print(result: Result) -> int:
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.rc
