"""A testinfra Host whose commands go through a Lab's own runner (pod_run, node_run), so a pod is a
testinfra host on every backend: a network namespace on the emulated lab, `kubectl exec` on the
VirtualBox lab or an existing cluster."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import testinfra.host
from testinfra.backend import base

from k8slab.labs.base import Result

Runner = Callable[[Sequence[str]], Result]


class LabRunBackend(base.BaseBackend):
    NAME = "k8slab"

    def __init__(self, name: str, run: Runner, **kwargs: Any):
        super().__init__(name, **kwargs)
        self._run = run

    def get_pytest_id(self) -> str:
        return f"k8slab://{self.hostname}"

    def get_encoding(self) -> str:
        return "utf-8"  # testinfra would otherwise probe the target with a python one-liner a pod may lack

    def run(self, command: str, *args: str, **kwargs: Any) -> base.CommandResult:
        cmd = self.get_command(command, *args)
        r = self._run(["/bin/sh", "-c", cmd])
        return self.result(r.rc, self.encode(cmd), r.stdout, r.stderr)


def command_host(name: str, run: Runner) -> testinfra.host.Host:
    backend = LabRunBackend(name, run)
    h = testinfra.host.Host(backend)
    backend.set_host(h)
    return h


def pod_host(lab, pod: str) -> testinfra.host.Host:
    """A testinfra Host for a pod of lab (which must exist: LabStateError naming the pods otherwise)."""
    lab.pod(pod)
    return command_host(pod, lambda argv: lab.pod_run(pod, argv, timeout=120))
