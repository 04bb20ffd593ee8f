"""A testinfra Host for a node of the emulated lab. testinfra has no backend plugin API, so this
is its local backend with every command wrapped to run inside the node's namespaces (through
`ip netns exec`, which also mounts the node's own /sys, so /sys/class/net is the node's)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

import testinfra.host
from testinfra.backend import base
from testinfra.backend.local import LocalBackend


class NamespaceBackend(LocalBackend):
    NAME = "netns"

    def __init__(self, name: str, enter: Sequence[str], **kwargs: Any):
        super().__init__(**kwargs)
        self.hostname = name
        self.enter = list(enter)

    def get_pytest_id(self) -> str:
        return f"netns://{self.hostname}"

    def get_command(self, command: str, *args: str) -> str:
        inner = super().get_command(command, *args)
        return shlex.join([*self.enter, "/bin/sh", "-c", inner])

    def run(self, command: str, *args: str, **kwargs: Any) -> base.CommandResult:
        return self.run_local(self.get_command(command, *args))


def host(name: str, enter: Sequence[str]) -> testinfra.host.Host:
    backend = NamespaceBackend(name, enter)
    h = testinfra.host.Host(backend)
    backend.set_host(h)
    return h
