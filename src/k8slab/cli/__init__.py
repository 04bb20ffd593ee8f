"""The `k8slab` command. Each group of subcommands lives in its own module and registers itself."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from importlib import import_module, metadata

from k8slab import interrupts
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
    """Run one command. Ctrl-C, SIGTERM and SIGHUP undo what the command had half made and exit 128+signal,
    never with a traceback and never 0; a reader that went away (`k8slab spec | head -1`) is a quiet exit."""
    if sys.platform == "win32":  # refused at start, before anything half works (README: Prerequisites)
        from k8slab.labs.vagrant_host import platform_problem

        print(f"k8slab: error: {platform_problem('Windows', '', '')}", file=sys.stderr)
        return 2
    old = {s: signal.getsignal(s) for s in interrupts.SIGNALS}
    if threading.current_thread() is threading.main_thread():
        interrupts.install()
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
    finally:
        if threading.current_thread() is threading.main_thread():
            for s, handler in old.items():
                signal.signal(s, handler)
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
