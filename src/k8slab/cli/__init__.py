"""The `k8slab` command. Each group of subcommands lives in its own module and registers itself."""

from __future__ import annotations

import argparse
import os
import sys
from importlib import import_module, metadata

from k8slab.errors import K8slabError

# Each module has register(subparsers); a subcommand sets func(args) -> int exit status.
COMMAND_MODULES = ("lab_cmds", "vagrant_cmds", "pod_cmds", "service_cmds", "capture_cmds", "verify_cmds",
                   "tutorial_cmds", "exercise_cmds")


def _version() -> str:
    """The installed distribution's version (pyproject.toml's), the package's own when not installed."""
    try:
        return metadata.version("k8slab")
    except metadata.PackageNotFoundError:
        from k8slab import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="k8slab",
        description="Bring up the pod-to-pod tracing tutorial's Kubernetes lab and verify its network.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}",
                        help="print k8slab's version and exit")
    parser.add_argument("--spec", default="lab.yaml", metavar="FILE", help="lab spec (default: ./lab.yaml)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = import_module(f"k8slab.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"k8slab.cli.{name}":
                raise
            continue
        module.register(sub)
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
    if sys.platform == "win32":  # refused at start, before anything half works (README: Prerequisites)
        from k8slab.labs.vagrant_host import platform_problem

        print(f"k8slab: error: {platform_problem('Windows', '', '')}", file=sys.stderr)
        return 2
    parser = build_parser()
    own, command = split_command(list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(own)
    if command is not None:
        if not hasattr(args, "argv") or args.argv:
            parser.error(f"`-- {' '.join(command)}`: this command takes no program after --")
        args.argv = command
    try:
        return int(args.func(args) or 0)
    except K8slabError as exc:
        print(f"k8slab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("k8slab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`); cleanups already ran on the way out. Nothing more to say to
        # nobody: stdout goes to /dev/null so the interpreter's final flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command cut off by a closed pipe
