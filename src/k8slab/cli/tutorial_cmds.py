"""Commands that teach: walkthrough (the tutorial's examples), trace (every hop explained), diagram."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from ipaddress import IPv4Address
from pathlib import Path

from k8slab.errors import LabStateError, UsageError
from k8slab.labs.base import name_problem
from k8slab.labs.registry import running_lab
from k8slab.render import console
from k8slab.spec.load import load_spec


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("walkthrough", help="run a tutorial's practical examples on the lab that is up, step by step",
                       description="Run the tutorial's examples on the lab that is up: the tutorial's commands "
                                   "beside this lab's, their real output, and whether it matches what the tutorial "
                                   "says; without NAME, the one written for the lab's CNI plugin. It starts its own "
                                   "pods (the tutorial's names: nginx, httpd, busybox; Calico's: busybox-1, httpd-1, "
                                   "busybox-2) and removes them at the end, also after Ctrl-C or a closed pipe; a "
                                   "smaller lab runs the steps it can and says why it skips the others.",
                       epilog="examples:\n  k8slab walkthrough                  every step, Enter between steps\n"
                              "  k8slab walkthrough --step 4 --keep  the cross-node trace; keep its pods to explore\n"
                              "  k8slab walkthrough pods --capture-dir /tmp/caps   save the pod steps' pcaps there\n"
                              "  k8slab walkthrough calico --step 3  Calico: pods across nodes, BGP or VXLAN\n"
                              "  k8slab walkthrough --list           the walkthroughs there are",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", default=None, metavar="NAME",
                   help="which walkthrough (default: the one for the lab's CNI plugin, tutorial on flannel, "
                        "calico on Calico; --list names them)")
    p.add_argument("--list", action="store_true", help="list the walkthroughs and their steps, run nothing")
    p.add_argument("--step", type=int, metavar="N", help="run only step N")
    p.add_argument("--no-pause", action="store_true", help="do not wait for Enter between steps")
    p.add_argument("--no-capture", action="store_true", help="skip the short tcpdump on eth1 in the pod steps")
    p.add_argument("--capture-dir", type=Path, default=None, metavar="DIR",
                   help="where steps that capture save their pcap, as <walkthrough>-step<N>.pcap "
                        "(default: ./k8slab-captures, made when needed)")
    p.add_argument("--keep", action="store_true",
                   help="leave the walkthrough's pods running for exploring (the next walkthrough removes them)")
    p.set_defaults(func=cmd_walkthrough)

    p = sub.add_parser("trace", help="trace from SRC to DST and explain every hop (pod names, node names, addresses)",
                       description="Run traceroute -n from SRC to DST, read `ip route get` on the way, and explain "
                                   "which route sent the packet where. To a ClusterIP service, first show where "
                                   "one real connection was rewritten (DNAT by kube-proxy's chains, read from the "
                                   "nodes' nat counters) and to which endpoint, then trace that endpoint: a "
                                   "traceroute to a ClusterIP reaches no pod. Exit status 1 if the path is not the "
                                   "expected one, or nothing rewrites the service address and port.",
                       epilog="examples:\n"
                              "  k8slab trace busybox httpd          pod to pod (names from `k8slab pod list`)\n"
                              "  k8slab trace controlplane node-1    node to node\n"
                              "  k8slab trace busybox 10.244.1.5 --no-capture\n"
                              "  k8slab trace busybox svc/web        DNAT to a service's endpoint, then its path\n"
                              "  k8slab trace node-1 10.96.0.2:80    a ClusterIP:port from a node (nat OUTPUT)",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", metavar="SRC", type=endpoint, help="a pod or node to trace from")
    p.add_argument("dst", metavar="DST", type=destination,
                   help="a pod, node or address to trace to, or a service: svc/NAME, NAME, CLUSTERIP[:PORT]")
    p.add_argument("--no-capture", action="store_true", help="skip the short tcpdump on the destination's eth1")
    p.set_defaults(func=cmd_trace)

    p = sub.add_parser("diagram", help="draw the lab (nodes, interfaces, pods, routes) as SVG or PNG",
                       description="Draw the lab like the tutorial's figures: each node with its interfaces and "
                                   "routing table, its pods, the host-only network. With --trace, the path of a "
                                   "packet in red, and where it was lost if it was.",
                       epilog="examples:\n  k8slab diagram -o lab.svg\n"
                              "  k8slab diagram -o path.png --trace busybox httpd",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="lab.svg or lab.png")
    p.add_argument("--trace", nargs=2, type=destination, metavar=("SRC", "DST"),
                   help="highlight the path of a trace from SRC to DST")
    p.set_defaults(func=cmd_diagram)


def endpoint(text: str) -> str:
    """argparse type for a trace's ends: an IPv4 address, or a pod or node name passing the one name check."""
    try:
        IPv4Address(text)
        return text
    except ValueError:
        pass
    problem = name_problem("pod or node", text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def destination(text: str) -> str:
    """argparse type for a trace's destination: an endpoint, or a service (svc/NAME, NAME:PORT, CLUSTERIP:PORT)."""
    from k8slab.teach.dnat import SERVICE_PREFIXES

    name = text.split("/", 1)[1] if text.startswith(SERVICE_PREFIXES) else text
    host, colon, port = name.rpartition(":")
    if colon and not (port.isdigit() and 0 < int(port) < 65536):
        raise argparse.ArgumentTypeError(f"{text!r}: {port[:20]!r} after ':' is not a port number (1-65535)")
    endpoint(host if colon else name)  # the one name check, on the name part
    return text


def cmd_walkthrough(args: argparse.Namespace) -> int:
    from k8slab.errors import OutputPathError
    from k8slab.render.output_files import path_problem
    from k8slab.teach.walkthroughs import WALKTHROUGHS, choose, fits_text, for_lab, walkthrough
    from k8slab.teach.walkthroughs.model import DEFAULT_CAPTURE_DIR

    if args.list:
        for w in WALKTHROUGHS.values():
            print(f"{w.name}: {w.about}")
            print(f"  follows: {fits_text(w)}")
            print("\n".join(f"  step {n}: {w.step(n).title}" for n in w.numbers))
        return 0
    spec = load_spec(args.spec)
    # An unknown name or step is refused before the lab is looked at.
    walk = walkthrough(args.name) if args.name is not None else for_lab(spec)
    if args.step is not None and args.step not in walk.numbers:
        raise UsageError(f"there is no step {args.step}; the {walk.name} walkthrough has steps "
                            f"{', '.join(map(str, walk.numbers))}")
    args.capture_dir = args.capture_dir or DEFAULT_CAPTURE_DIR
    problem = None if args.no_capture else path_problem(args.capture_dir / "step.pcap")
    if problem:  # refused before the lab is touched: a typo costs no run
        raise OutputPathError(f"cannot save the walkthrough's captures in {str(args.capture_dir)!r}: {problem}; "
                              "pick another folder with --capture-dir DIR")
    lab = running_lab(spec, args.backend, args.inventory)
    walk, chosen = choose(spec, args.name, lab.command)  # refuses one written for another CNI plugin
    if chosen:
        console.say(chosen)
    # One walkthrough at a time per lab (its pods have the tutorial's fixed names); without --keep its pods
    # carry this run's mark, so if it is killed the next command that meets them removes them.
    with lab.session("walkthrough", console.say, ephemeral=not args.keep):
        return _walk(args, walk, lab)


def _walk(args: argparse.Namespace, walk, lab) -> int:
    from k8slab.render.walkthrough_text import format_skipped, format_step, summary
    from k8slab.teach.walkthroughs.runner import plan, run_walkthrough

    asked = [args.step] if args.step else list(walk.numbers)
    numbers, skipped = plan(lab.spec, walk, asked)
    interactive = sys.stdin.isatty() and not args.no_pause
    total = len(walk.steps)

    def pause(next_step: int) -> None:
        input(f"\n-- press Enter for step {next_step} (Ctrl-C to stop) --")
        print()

    def show(result) -> None:
        print("\n".join(format_step(result, lab.backend, total, columns=console.width())),
              flush=True)

    console.say(f"{walk.name} walkthrough on lab {lab.spec.name!r} ({lab.backend}): step(s) "
                f"{', '.join(map(str, numbers)) or 'none'}")
    if skipped:
        print("\n".join(format_skipped(skipped, total)), flush=True)
    results, kept = run_walkthrough(lab, walk, numbers, show=show, pause=pause if interactive else None,
                                    progress=console.progress_printer(), capture=not args.no_capture,
                                    keep=args.keep, capture_dir=args.capture_dir)
    print()
    if kept:
        console.say(f"left pod(s) {', '.join(kept)} running for you: try `{lab.command('pod list')}`, "
                    f"`{lab.command(f'pod exec {kept[-1]} -- ip route')}`; the next walkthrough removes them")
    ok, line = summary(walk, results, skipped)
    console.say(f"{console.mark(ok)} {line}")
    return 0 if ok else 1


def _trace(lab, src_text: str, dst_text: str, capture: bool):
    """The trace from src_text to dst_text: an ExplainedTrace, or a ServiceTrace when dst_text is a service."""
    from k8slab.teach.explain import resolve_endpoint
    from k8slab.teach.service_trace import observe_service_trace
    from k8slab.teach.trace import observe_trace

    pods = lab.pods()
    src = resolve_endpoint(lab.spec, pods, src_text, source=True)
    target = _service_target(lab, pods, dst_text)
    if target is not None:
        return observe_service_trace(lab, src, target, capture=capture, pods=pods, progress=console.progress_printer())
    dst = resolve_endpoint(lab.spec, pods, dst_text)
    if src.address == dst.address:
        raise UsageError(f"{src_text} and {dst_text} are the same address ({src.address}); pick two places")
    return observe_trace(lab, src, dst, capture=capture, pods=pods)


def _service_target(lab, pods, text: str):
    """A service DST, or None: a pod's or node's name wins over a service's of the same name (svc/NAME picks the
    service); only a lab that lists its services can have one traced."""
    from k8slab.teach.dnat import SERVICE_PREFIXES, service_target

    if any(text in (p.name, str(p.ip)) for p in pods) or any(text == n.name for n in lab.spec.nodes):
        return None
    try:
        if IPv4Address(text) not in lab.spec.service_cidr:
            return None  # a plain address: no need to ask the lab for its services
    except ValueError:
        pass
    listed = lab.services()
    if listed is None:
        if text.startswith(SERVICE_PREFIXES):
            raise LabStateError(f"the {lab.backend} lab {lab.spec.name!r} does not list its services, so {text} "
                                "cannot be traced; trace to one of its endpoint pods")
        return None
    return service_target(lab.spec, listed, text)


def _print_trace(run) -> None:
    ex = run.explanation
    print(f"$ {run.command}")
    print(run.trace_text.rstrip())
    print("\n".join(f"$ {c}" for c in run.capture_commands))
    print()
    print("\n".join(ex.lines))


def cmd_trace(args: argparse.Namespace) -> int:
    from k8slab.teach.service_trace import ServiceTrace

    spec = load_spec(args.spec)
    lab = running_lab(spec, args.backend, args.inventory)
    run = _trace(lab, args.src, args.dst, capture=not args.no_capture)
    if isinstance(run, ServiceTrace):
        print("\n".join(run.dnat.lines))
        if run.path is not None:
            print()
            _print_trace(run.path)
        print()
        console.say(f"{console.mark(run.ok)} {run.summary}")
        return 0 if run.ok else 1
    ex = run.explanation
    _print_trace(run)
    print()
    console.say(f"{console.mark(ex.ok)} {ex.summary}")
    return 0 if ex.ok and ex.encapsulation_ok is not False else 1


def cmd_diagram(args: argparse.Namespace) -> int:
    from k8slab.render import diagram
    from k8slab.render.output_files import check_output

    diagram.output_format(args.output)  # refuse a bad file name before touching the lab
    check_output(args.output, "diagram")
    spec = load_spec(args.spec)
    path = None
    try:
        lab = running_lab(spec, args.backend, args.inventory)
    except LabStateError:
        if args.trace:
            raise
        lab = None
    if lab is None:
        dot = diagram.build_dot(spec)
        console.say(f"no lab {spec.name!r} is up: drawing the lab as {spec.source} describes it (no pods)")
    else:
        if args.trace:
            run = _trace(lab, args.trace[0], args.trace[1], capture=False)
            dnat = getattr(run, "dnat", None)
            if dnat is not None:  # a service: draw the path to the endpoint it reached, the DNAT in the title
                console.say(f"{console.mark(run.ok)} {dnat.summary}")
                if run.path is None:
                    raise LabStateError(f"no endpoint of {args.trace[1]} was reached, so there is no path to draw")
                run = run.path
            ex = run.explanation
            path = diagram.path_from_stops(spec, ex.src, ex.dst, ex.stops, [h.observed for h in ex.hops])
            if dnat is not None:
                path = dataclasses.replace(path, title=f"{path.title}; {dnat.diagram_note}")
            console.say(f"{console.mark(ex.ok)} {ex.summary}")
        dot = diagram.live_dot(lab, path)
    out = diagram.write(dot, args.output)
    console.say(f"wrote {out}")
    return 0
