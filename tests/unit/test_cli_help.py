"""Every command and argument of the CLI explains itself: help text on each, and an example in the
epilog of every command that runs something. Walks the whole parser, so a new argument without help
fails here, whichever module registers it."""

from __future__ import annotations

import argparse

import pytest

from k8slab.cli import build_parser, main


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("k8slab",)):
    """(command path, parser, subcommand help or None for the top) for every parser."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, (*path, name))


def command_help(parser: argparse.ArgumentParser) -> dict[str, str | None]:
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update({a.dest: a.help for a in action._choices_actions})
    return found


PARSERS = list(walk(build_parser()))



@pytest.mark.parametrize("path,parser", PARSERS, ids=[" ".join(p) for p, _ in PARSERS])
def test_every_argument_and_subcommand_has_help(path, parser):
    missing = [a.option_strings or [a.dest] for a in parser._actions
               if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction) and not a.help]
    assert missing == [], f"`{' '.join(path)}`: arguments without help: {missing}"
    assert [name for name, text in command_help(parser).items() if not text] == []


LEAVES = [(path, p) for path, p in PARSERS if not command_help(p) and len(path) > 1]


@pytest.mark.parametrize("path,parser", LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_every_command_shows_an_example(path, parser):
    assert parser.epilog and "example" in parser.epilog and "k8slab " in parser.epilog, (
        f"`{' '.join(path)} --help` shows no example (epilog)")


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    name, version = capsys.readouterr().out.split()
    assert name == "k8slab" and version[0].isdigit()
