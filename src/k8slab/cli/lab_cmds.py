"""Lab lifecycle commands, the same for both backends: spec, up, destroy, recreate, status."""

from __future__ import annotations

import argparse
import sys

from k8slab.errors import LabStateError
from k8slab.labs.base import node_row
from k8slab.labs.registry import (
    BACKENDS,
    backend_for_up,
    open_lab,
    present_but_unusable,
    running_lab,
    unavailable_reason,
    usable_lab,
)
from k8slab.render import console
from k8slab.spec.facts import BRIDGE_IF
from k8slab.spec.load import load_spec


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("spec", help="validate lab.yaml and print the resolved lab")
    p.set_defaults(func=cmd_spec)

    p = sub.add_parser("up", help="bring the lab up (VirtualBox if available, else the emulated lab)")
    p.add_argument("--backend", choices=BACKENDS, help="vagrant = VirtualBox VMs, netns = emulated lab")
    p.add_argument("--dry-run", action="store_true", help="print what would be built, build nothing")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("destroy", help="remove the lab and everything it made")
    p.add_argument("--backend", choices=BACKENDS)
    p.add_argument("--yes", "-y", action="store_true", help="do not ask")
    p.set_defaults(func=cmd_destroy)

    p = sub.add_parser("recreate", help="destroy the lab and bring it up again")
    p.add_argument("--backend", choices=BACKENDS)
    p.add_argument("--yes", "-y", action="store_true", help="do not ask")
    p.set_defaults(func=cmd_recreate)

    p = sub.add_parser("status", help="show each node of the lab that is up")
    p.add_argument("--backend", choices=BACKENDS)
    p.set_defaults(func=cmd_status)


def cmd_spec(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    print(f"lab {spec.name!r} from {spec.source}: {len(spec.nodes)} nodes, "
          f"flannel {spec.cni_backend} on {spec.cni_interface}, Kubernetes {spec.k8s_version}, box "
          f"{spec.box_name} {spec.box_version}")
    print(f"host-only network {spec.host_only} (host {spec.host_ip}), pod CIDR {spec.pod_cidr}, "
          f"service CIDR {spec.service_cidr}")
    rows = [{**node_row(n), f"{BRIDGE_IF} gateway": str(n.pod_gateway), "cpus": str(n.cpus),
             "memory": f"{n.memory} MB"} for n in spec.nodes]
    print(console.table(rows))
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    backend, why = backend_for_up(spec, args.backend) if not args.dry_run else (args.backend or "netns", "")
    lab = open_lab(spec, backend)
    if args.dry_run:
        print(lab.plan())
        return 0
    # No "already up" check here: lab.up() makes it under the lab's lock, where a concurrent destroy cannot
    # slip in between the check and the build.
    console.say(why)
    lab.up(console.progress_printer())
    console.say(f"lab {spec.name!r} is up ({backend}, {len(spec.nodes)} nodes). Next: `make test` or "
                "`k8slab walkthrough`")
    return 0


def _confirm(args: argparse.Namespace, what: str) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise LabStateError(f"refusing to {what} without confirmation; pass --yes")
    return input(f"{what}? [y/N] ").strip().lower() in ("y", "yes")


def cmd_destroy(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    labs = [usable_lab(spec, args.backend, teardown=True)] if args.backend else _present_labs(spec)
    if not labs:
        console.say(f"no lab {spec.name!r} found; nothing to destroy")
        return 0
    for lab in labs:
        if not _confirm(args, f"destroy the {lab.backend} lab {spec.name!r}"):
            console.say("left as it is")
            return 1
        console.say(f"destroying the {lab.backend} lab {spec.name!r}")
        lab.destroy(console.progress_printer())
    console.say("destroyed")
    return 0


def _present_labs(spec):
    """Every backend's lab of this spec that may have left something behind (destroy cleans leftovers too)."""
    found = []
    for backend in BACKENDS:
        problem = unavailable_reason(backend, teardown=True)
        if problem is None:
            lab = open_lab(spec, backend)
            if lab.is_up() or getattr(lab, "has_leftovers", lambda: False)():
                found.append(lab)
        elif (error := present_but_unusable(spec, backend, problem)) is not None:
            raise error  # "nothing to destroy" would be false, and removing it needs what is missing
    return found


def cmd_recreate(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    backend, why = backend_for_up(spec, args.backend)
    lab = open_lab(spec, backend)
    if not _confirm(args, f"destroy and rebuild the {backend} lab {spec.name!r}"):
        return 1
    console.say(f"destroying the {backend} lab {spec.name!r}")
    lab.destroy(console.progress_printer())
    console.say(why)
    lab.up(console.progress_printer())
    console.say(f"lab {spec.name!r} is up again ({backend})")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    lab = running_lab(spec, args.backend)
    console.say(f"lab {spec.name!r} ({lab.backend})")
    drift = getattr(lab, "spec_drift", lambda: None)()
    if drift:
        console.say(f"warning: {drift}")
    print(console.table(lab.status()))
    return 0
