"""Commands of the SSH side: `k8slab provision` (the roles on the Vagrant VMs or on machines from an
inventory), `k8slab ssh NODE` (a shell on a Vagrant VM), `k8slab halt` (stop the VMs) and
`k8slab kubeconfig` (kubectl on the host)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from k8slab.cli.args import subcommand
from k8slab.errors import ToolMissingError
from k8slab.render import console
from k8slab.spec.load import load_spec


def register(sub: argparse._SubParsersAction) -> None:
    p = subcommand(sub, "provision", "run the Ansible roles on the lab's VMs, or on your own machines "
                   "(--inventory FILE: an inventory whose host names are the lab's node names)", epilog=(
                       "examples:\n  k8slab provision                   # the VirtualBox lab's VMs again\n"
                       "  k8slab provision --inventory hosts.yml"))
    p.set_defaults(func=cmd_provision)

    p = subcommand(sub, "halt", "stop the VirtualBox lab's VMs (kept on disk; `k8slab up` boots them again)",
                   epilog="examples:\n  k8slab halt\n  k8slab up                          # boots them again")
    p.set_defaults(func=cmd_halt)

    p = subcommand(sub, "kubeconfig", "write the VirtualBox lab's kubeconfig so kubectl on this host reaches it "
                   "(the control plane's admin.conf, its server on the control plane's eth1 address)", epilog=(
                       "examples:\n  k8slab kubeconfig && export KUBECONFIG=build/tutorial.kubeconfig"))
    p.add_argument("-o", "--output", metavar="FILE", type=Path,
                   help="where to write it (default: build/<lab name>.kubeconfig)")
    p.set_defaults(func=cmd_kubeconfig)

    p = subcommand(sub, "ssh", "open a shell on a node of the VirtualBox lab (vagrant ssh NODE)",
                   epilog="examples:\n  k8slab ssh node-1")
    p.add_argument("node", help="node name from lab.yaml")
    p.set_defaults(func=cmd_ssh)


def cmd_provision(args: argparse.Namespace) -> int:
    from k8slab.labs.ssh import SshLab
    from k8slab.labs.vagrant import VagrantLab

    spec = load_spec(args.spec)
    lab: SshLab
    if args.inventory:
        lab = SshLab.from_inventory(spec, args.inventory)
        console.say(f"provisioning lab {spec.name!r} on the machines of {args.inventory}")
        lab.up(console.progress_printer())
    else:
        problem = VagrantLab.unavailable_reason()
        if problem:
            raise ToolMissingError(f"the VirtualBox lab cannot run here: {problem}. To provision machines you "
                                   "already have, pass --inventory FILE")
        console.say(f"provisioning the VMs of lab {spec.name!r}")
        lab = VagrantLab(spec)
        lab.provision(console.progress_printer())
    console.say(f"lab {spec.name!r} is provisioned. Next: `{lab.command('verify')}`")
    return 0


def _vagrant_lab(spec, what: str):
    from k8slab.labs.vagrant import VagrantLab

    problem = VagrantLab.unavailable_reason()
    if problem:
        raise ToolMissingError(f"`k8slab {what}` works on the VirtualBox lab, which cannot run here: {problem}")
    return VagrantLab(spec)


def cmd_halt(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    lab = _vagrant_lab(spec, "halt")
    lab.halt(console.progress_printer())
    console.say(f"lab {spec.name!r} is stopped. `{lab.command('up')}` boots it again")
    return 0


def cmd_kubeconfig(args: argparse.Namespace) -> int:
    from k8slab.paths import PROJECT_ROOT
    from k8slab.provision.kubeconfig import host_kubeconfig, write_private

    spec = load_spec(args.spec)
    lab = _vagrant_lab(spec, "kubeconfig")
    path = write_private(args.output or PROJECT_ROOT / "build" / f"{spec.name}.kubeconfig",
                         host_kubeconfig(lab.admin_kubeconfig(), spec))
    console.say(f"wrote {path} (cluster admin: keep it private). Use it with: export KUBECONFIG={path}")
    return 0


def cmd_ssh(args: argparse.Namespace) -> int:
    from k8slab.labs.vagrant import VagrantLab

    spec = load_spec(args.spec)
    spec.node(args.node)  # an unknown node: the one message that lists the spec's nodes
    problem = VagrantLab.unavailable_reason()
    if problem:
        raise ToolMissingError(f"`k8slab ssh` opens a shell on a VM of the VirtualBox lab, which cannot run here: "
                               f"{problem}. On the emulated lab, use "
                               f"`{spec.command(f'node exec {args.node} -- bash', backend='netns')}`")
    lab = VagrantLab(spec)
    argv = lab.ssh_argv(args.node)
    os.execve(argv[0], argv, lab.vagrant_env())
    return 0  # not reached: the process is now vagrant ssh
