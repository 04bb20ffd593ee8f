"""The `k8slab` command. Each group of subcommands lives in its own module and registers itself; the lab
options (--spec, --backend, --inventory) are k8slab's own and accepted before or after any subcommand."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from importlib import import_module, metadata

from k8slab import interrupts
from k8slab.errors import K8slabError
from k8slab.labs.registry import BACKENDS, ENV, Selection

# Each module has register(subparsers); a subcommand sets func(args) -> int exit status. A module that
# fails to import is a broken install: the error is raised, not a command quietly missing from --help.
COMMAND_MODULES = ("lab_cmds", "vagrant_cmds", "pod_cmds", "service_cmds", "capture_cmds", "verify_cmds",
                   "tutorial_cmds", "exercise_cmds")


def _version() -> str:
    """The installed distribution's version (pyproject.toml's), the package's own when not installed."""
    try:
        return metadata.version("k8slab")
    except metadata.PackageNotFoundError:
        from k8slab import __version__

        return __version__


def add_lab_options(parser: argparse.ArgumentParser, default: object = None) -> None:
    """--spec, --backend and --inventory: which lab a command means (Selection resolves them with the env)."""
    group = parser.add_argument_group("which lab (before or after the command)")
    group.add_argument("--spec", metavar="FILE", default=default,
                       help=f"the lab spec, e.g. --spec my-lab.yaml (default: ${ENV['spec']}, else ./lab.yaml)")
    group.add_argument("--backend", choices=BACKENDS, default=default,
                       help="vagrant (VirtualBox VMs), netns (the emulated lab) or ssh (an existing cluster, with "
                            f"--inventory), e.g. --backend netns; default: ${ENV['backend']}, else whichever lab "
                            "of the spec is up")
    group.add_argument("--inventory", metavar="FILE", default=default,
                       help=f"an Ansible inventory of an existing cluster's machines, named like the spec's "
                            f"nodes, e.g. --inventory hosts.yml (implies --backend ssh; default: ${ENV['inventory']})")


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases share a parser
                yield sub
                yield from _subparsers(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="k8slab",
        description="Bring up the pod-to-pod tracing tutorial's Kubernetes lab and verify its network.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}",
                        help="print k8slab's version and exit")
    add_lab_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        import_module(f"k8slab.cli.{name}").register(sub)
    # After the subcommand too; SUPPRESS keeps a value given before it (a subparser's default would win).
    for sub_parser in _subparsers(parser):
        add_lab_options(sub_parser, default=argparse.SUPPRESS)
    return parser


def split_command(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """k8slab's own arguments, and the program after the first `--` (None if there is no `--`). argparse
    cannot do this itself: a `nargs="*"` positional is filled, empty, at the pod's name, so it would
    refuse `pod run web --image=nginx -- sleep 3600`."""
    if "--" not in argv:
        return argv, None
    i = argv.index("--")
    return argv[:i], argv[i + 1:]


def main(argv: list[str] | None = None) -> int:
    """Run one command. Ctrl-C, SIGTERM and SIGHUP undo what the command had half made and exit 128+signal,
    never with a traceback and never 0; a reader that went away (`k8slab spec | head -1`) is a quiet exit."""
    if sys.platform == "win32":  # refused at start, before anything half works (README: Prerequisites)
        from k8slab.labs.vagrant_host import platform_problem

        print(f"k8slab: error: {platform_problem('Windows', '', '')}", file=sys.stderr)
        return 2
    with interrupts.handled():
        try:
            rc = _run(argv)
        except BrokenPipeError:
            return _reader_gone()
        except KeyboardInterrupt as exc:
            rc = _interrupted(getattr(exc, "signum", signal.SIGINT))
        except Exception:
            if interrupts.received() is None:
                raise
            # An interrupt that a library turned into another exception (asyncio's "Event loop stopped before
            # Future completed" from netlink calls): still the interrupt, not a bug to show as a traceback.
            rc = _interrupted(interrupts.received())
    signum = interrupts.received()
    if signum is not None and rc == 0:
        rc = interrupts.exit_status(signum)  # caught and absorbed somewhere below: still not a success
    return rc


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    own, command = split_command(list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(own)
    if command is not None:
        if not hasattr(args, "argv") or args.argv:
            parser.error(f"`-- {' '.join(command)}`: this command takes no program after --")
        args.argv = command
    try:
        chosen = Selection.resolve(args.spec, args.backend, args.inventory)
        args.spec, args.backend, args.inventory = str(chosen.spec), chosen.backend, chosen.inventory
        return int(args.func(args) or 0)
    except K8slabError as exc:
        print(f"k8slab: error: {_bounded(str(exc))}", file=sys.stderr)
        return 2


MAX_MESSAGE = 4000  # an error quoting a huge input is cut, so a hostile spec cannot flood the terminal


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + f"... ({len(text) - MAX_MESSAGE} more characters)"


def _interrupted(signum: int) -> int:
    name = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated (SIGTERM)",
            signal.SIGHUP: "hung up (SIGHUP)"}.get(signum, f"stopped by signal {signum}")
    with contextlib.suppress(OSError):
        print(f"k8slab: {name}", file=sys.stderr)
    return interrupts.exit_status(signum)


def _reader_gone() -> int:
    """stdout's reader closed the pipe: nothing more can be said to it. Point stdout at /dev/null so the
    interpreter's final flush does not complain either, and exit as a shell reports SIGPIPE."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 128 + signal.SIGPIPE
