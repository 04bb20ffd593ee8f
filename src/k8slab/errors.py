"""Errors a user can act on. The CLI prints their message and exits 2, never a traceback."""

from __future__ import annotations


class K8slabError(Exception):
    """Base of every error whose message is meant for the user as it is."""


class LabSpecError(K8slabError):
    """lab.yaml is unreadable or invalid; lists every problem found, each with its fix."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source} is not a valid lab spec:\n{lines}")


class ToolMissingError(K8slabError):
    """A program the lab needs is not installed."""


class NotRootError(K8slabError):
    """The emulated lab needs root (network namespaces)."""


class UsageError(K8slabError):
    """The command line asks for something that cannot be: an unknown node or pod name, options that do not
    go together, a missing argument. Nothing was touched."""


class LabStateError(K8slabError):
    """The lab is not in the state the command needs (already up, not up, no such pod...)."""


class CommandFailedError(K8slabError):
    """An external step (vagrant, ansible, a CNI plugin) failed; the message says where."""


class OutputPathError(K8slabError):
    """A file k8slab was asked to write (report, diagram) cannot be written at the path given."""
