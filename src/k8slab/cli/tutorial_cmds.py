"""Commands that teach: walkthrough (the tutorial's examples), trace (every hop explained), diagram."""

from __future__ import annotations

import argparse
import sys

from k8slab.errors import LabStateError
from k8slab.labs.registry import BACKENDS, running_lab
from k8slab.render import console
from k8slab.spec.model import load_spec


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("walkthrough", help="run the tutorial's practical examples on the lab that is up, step by step")
    p.add_argument("--step", type=int, metavar="N", help="run only step N (1-4)")
    p.add_argument("--no-pause", action="store_true", help="do not wait for Enter between steps")
    p.add_argument("--no-capture", action="store_true", help="skip the short tcpdump on eth1 in the pod steps")
    p.add_argument("--backend", choices=BACKENDS)
    p.set_defaults(func=cmd_walkthrough)

    p = sub.add_parser("trace", help="trace from SRC to DST and explain every hop (pod names, node names, addresses)",
                       description="Run traceroute -n from SRC to DST, read `ip route get` on the way, and explain "
                                   "which route sent the packet where. Exit status 1 if the path is not the "
                                   "tutorial's.",
                       epilog="examples:\n  k8slab trace busybox httpd          pod to pod (names from `k8slab pod list`)\n"
                              "  k8slab trace controlplane node-1    node to node\n"
                              "  k8slab trace busybox 10.244.1.5 --no-capture",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", metavar="SRC", help="a pod or node to trace from")
    p.add_argument("dst", metavar="DST", help="a pod, node or address to trace to")
    p.add_argument("--no-capture", action="store_true", help="skip the short tcpdump on the destination's eth1")
    p.add_argument("--backend", choices=BACKENDS, help="which lab (default: whichever of this spec is up)")
    p.set_defaults(func=cmd_trace)

    p = sub.add_parser("diagram", help="draw the lab (nodes, interfaces, pods, routes) as SVG or PNG",
                       description="Draw the lab like the tutorial's figures: each node with its interfaces and "
                                   "routing table, its pods, the host-only network. With --trace, the path of a "
                                   "packet in red, and where it was lost if it was.",
                       epilog="examples:\n  k8slab diagram -o lab.svg\n  k8slab diagram -o path.png --trace busybox httpd",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="lab.svg or lab.png")
    p.add_argument("--trace", nargs=2, metavar=("SRC", "DST"), help="highlight the path of a trace from SRC to DST")
    p.add_argument("--backend", choices=BACKENDS, help="which lab (default: whichever of this spec is up)")
    p.set_defaults(func=cmd_diagram)


def _show(lines: list[str]) -> None:
    print("\n".join(lines), flush=True)


def cmd_walkthrough(args: argparse.Namespace) -> int:
    from k8slab.teach.walkthrough import STEPS, run_walkthrough, step_text

    spec = load_spec(args.spec)
    if args.step is not None and args.step not in STEPS:
        raise LabStateError(f"there is no step {args.step}; the walkthrough has steps {', '.join(map(str, STEPS))}")
    steps = [args.step] if args.step else list(STEPS)
    for s in steps:
        step_text(spec, s)  # a lab without two workers is refused before anything starts
    lab = running_lab(spec, args.backend)
    interactive = sys.stdin.isatty() and not args.no_pause

    def pause(next_step: int) -> None:
        input(f"\n-- press Enter for step {next_step} (Ctrl-C to stop) --")
        print()

    console.say(f"walkthrough of the tutorial on lab {spec.name!r} ({lab.backend}): step(s) "
                f"{', '.join(map(str, steps))}")
    results = run_walkthrough(lab, steps, show=_show, pause=pause if interactive else None,
                              progress=console.progress_printer(), capture=not args.no_capture)
    failed = [r.text.number for r in results if not r.ok]
    print()
    if failed:
        console.say(f"{console.mark(False)} step(s) {', '.join(map(str, failed))} do not match the tutorial")
        return 1
    console.say(f"{console.mark(True)} every step matches the tutorial")
    return 0


def _trace(lab, src_text: str, dst_text: str, capture: bool):
    from k8slab.teach.explain import resolve_endpoint
    from k8slab.teach.walkthrough import observe_trace

    pods = lab.pods()
    src = resolve_endpoint(lab.spec, pods, src_text, source=True)
    dst = resolve_endpoint(lab.spec, pods, dst_text)
    if src.address == dst.address:
        raise LabStateError(f"{src_text} and {dst_text} are the same address ({src.address}); pick two places")
    return observe_trace(lab, src, dst, capture=capture, pods=pods), pods


def cmd_trace(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    lab = running_lab(spec, args.backend)
    run, _ = _trace(lab, args.src, args.dst, capture=not args.no_capture)
    ex = run.explanation
    print(f"$ {run.command}")
    print(run.trace_text.rstrip())
    print()
    print("\n".join(ex.lines))
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
        lab = running_lab(spec, args.backend)
    except LabStateError:
        if args.trace:
            raise
        lab = None
    if lab is None:
        dot = diagram.build_dot(spec)
        console.say(f"no lab {spec.name!r} is up: drawing the lab as {spec.source} describes it (no pods)")
    else:
        if args.trace:
            run, _ = _trace(lab, args.trace[0], args.trace[1], capture=False)
            ex = run.explanation
            path = diagram.path_from_stops(spec, ex.src, ex.dst, ex.stops, [h.observed for h in ex.hops])
            console.say(f"{console.mark(ex.ok)} {ex.summary}")
        dot = diagram.live_dot(lab, path)
    out = diagram.write(dot, args.output)
    console.say(f"wrote {out}")
    return 0
