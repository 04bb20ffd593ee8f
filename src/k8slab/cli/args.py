"""Argument helpers the command modules share: a subcommand whose help shows its examples as written.
(--spec, --backend and --inventory are k8slab's own, added to every subcommand by cli/__init__.py.)"""

from __future__ import annotations

import argparse


def subcommand(sub: argparse._SubParsersAction, name: str, help: str, epilog: str) -> argparse.ArgumentParser:
    """A subcommand whose epilog (its examples) keeps its line breaks."""
    return sub.add_parser(name, help=help, description=help, epilog=epilog,
                          formatter_class=argparse.RawDescriptionHelpFormatter)

