"""Argument helpers the command modules share: a subcommand whose help shows its examples as written,
and --backend with its example."""

from __future__ import annotations

import argparse

from k8slab.labs.registry import BACKENDS


def subcommand(sub: argparse._SubParsersAction, name: str, help: str, epilog: str) -> argparse.ArgumentParser:
    """A subcommand whose epilog (its examples) keeps its line breaks."""
    return sub.add_parser(name, help=help, description=help, epilog=epilog,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def backend_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=BACKENDS, help="which lab (e.g. --backend netns; default: whichever of "
                                                       "this spec is up)")
