"""Lab lifecycle commands, the same for every backend: spec, up, destroy, recreate, status."""

from __future__ import annotations

import argparse
import sys

from k8slab.cli.args import subcommand
from k8slab.errors import LabStateError, UsageError
from k8slab.labs.base import Lab, node_row
from k8slab.labs.registry import backend_for_up, open_lab, running_lab, survey, unusable_error
from k8slab.render import console
from k8slab.spec.facts import BRIDGE_IF
from k8slab.spec.load import load_spec
from k8slab.spec.model import LabSpec


def register(sub: argparse._SubParsersAction) -> None:
    p = subcommand(sub, "spec", "validate lab.yaml and print the resolved lab", epilog=(
        "examples:\n  k8slab spec\n  k8slab spec --spec my-lab.yaml    # another lab, next to the default one"))
    p.set_defaults(func=cmd_spec)

    p = subcommand(sub, "up", "bring the lab up (VirtualBox if available, else the emulated lab)", epilog=(
        "examples:\n  k8slab up\n  k8slab up --dry-run                # what would be built, as text\n"
        "  k8slab up --backend netns          # the emulated lab even where VirtualBox is installed"))
    p.add_argument("--dry-run", action="store_true", help="print what would be built, build nothing")
    p.set_defaults(func=cmd_up)

    p = subcommand(sub, "destroy", "remove the lab and everything it made", epilog=(
        "examples:\n  k8slab destroy\n  k8slab destroy --yes --spec my-lab.yaml"))
    p.add_argument("--yes", "-y", action="store_true", help="do not ask")
    p.set_defaults(func=cmd_destroy)

    p = subcommand(sub, "recreate", "destroy the lab and bring it up again", epilog=(
        "examples:\n  k8slab recreate --yes               # a fresh lab after an exercise went wrong"))
    p.add_argument("--yes", "-y", action="store_true", help="do not ask")
    p.set_defaults(func=cmd_recreate)

    p = subcommand(sub, "status", "show each node of the lab that is up", epilog=(
        "examples:\n  k8slab status\n  k8slab status --backend ssh --inventory hosts.yml"))
    p.set_defaults(func=cmd_status)


def cmd_spec(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    print(f"lab {spec.name!r} from {spec.source}: {len(spec.nodes)} nodes, "
          f"{spec.dataplane} on {spec.cni_interface}, Kubernetes {spec.k8s_version}, box "
          f"{spec.box_name} {spec.box_version}")
    print(f"host-only network {spec.host_only} (host {spec.host_ip}), pod CIDR {spec.pod_cidr}, "
          f"service CIDR {spec.service_cidr}")
    gateway = "pods' gateway (proxy ARP)" if spec.calico else f"{BRIDGE_IF} gateway"
    rows = [{**node_row(n), gateway: str(n.pod_gateway), "cpus": str(n.cpus),
             "memory": f"{n.memory} MB"} for n in spec.nodes]
    print(console.table(rows))
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    if args.dry_run:
        print(open_lab(spec, args.backend or "netns", args.inventory).plan())
        return 0
    if args.inventory is not None:  # an existing cluster: `up` runs the roles on it
        backend, why = "ssh", f"provisioning the machines of {args.inventory}"
    else:
        backend, why = backend_for_up(spec, args.backend)
    _refuse_a_second_lab(spec, backend)
    lab = open_lab(spec, backend, args.inventory)
    # No "already up" check for the same backend here: lab.up() makes it under the lab's lock, where a
    # concurrent destroy cannot slip in between the check and the build.
    console.say(why)
    lab.up(console.progress_printer())
    console.say(f"lab {spec.name!r} is up ({backend}, {len(spec.nodes)} nodes). {next_steps(lab)}")
    return 0


def next_steps(lab: Lab) -> str:
    return f"Next: `{lab.command('verify')}` or `{lab.command('walkthrough')}`"


def _refuse_a_second_lab(spec: LabSpec, backend: str) -> None:
    """Two labs of one spec (VirtualBox and emulated) would share its name: every later command would
    pick one of them silently."""
    other = next((f for f in survey(spec) if f.up and f.backend != backend), None)
    if other is not None:
        raise LabStateError(f"lab {spec.name!r} is already up on the {other.backend} backend; use it "
                            f"(`{spec.command('status', backend=other.backend)}`) or remove it first "
                            f"(`{spec.command('destroy', backend=other.backend)}`)")


def _confirm(args: argparse.Namespace, what: str) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(f"refusing to {what} without confirmation; pass --yes")
    return input(f"{what}? [y/N] ").strip().lower() in ("y", "yes")


def cmd_destroy(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    labs = []
    for found in survey(spec, args.backend, args.inventory, teardown=True):
        if found.lab is None:
            raise unusable_error(spec, found)  # "nothing to destroy" would be false, and removing it needs that
        labs.append(found.lab)
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


def cmd_recreate(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    backend, why = backend_for_up(spec, args.backend)
    lab = open_lab(spec, backend, args.inventory)
    if not _confirm(args, f"destroy and rebuild the {backend} lab {spec.name!r}"):
        return 1
    console.say(f"destroying the {backend} lab {spec.name!r}")
    lab.destroy(console.progress_printer())
    console.say(why)
    lab.up(console.progress_printer())
    console.say(f"lab {spec.name!r} is up again ({backend}). {next_steps(lab)}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    lab = running_lab(spec, args.backend, args.inventory)
    console.say(f"lab {spec.name!r} ({lab.backend})")
    drift = lab.spec_drift()
    if drift:
        console.say(f"warning: {drift}")
    print(console.table(lab.status()))
    return 0
