"""The one Lab interface both backends implement; everything above it (verify, trace,
walkthrough, the acceptance suite) is written against this and nothing else."""

from __future__ import annotations

import abc
import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import TYPE_CHECKING

from k8slab.errors import K8slabError
from k8slab.spec.facts import DNS_LABEL, HOST_ONLY_IF
from k8slab.spec.model import LabSpec, Node

if TYPE_CHECKING:
    import testinfra.host

# Receives one line of progress ("node-1: containerd: install packages"); the CLI shows it live.
Progress = Callable[[str], None]


MAX_SHOWN = 80  # a name echoed in an error is cut here, so a megabyte of argument is not printed back


class InvalidNameError(K8slabError):
    """A pod or node name no lab accepts."""


def shown(name: str) -> str:
    """A name as an error message quotes it: repr (control characters visible), at most MAX_SHOWN characters."""
    return repr(name) if len(name) <= MAX_SHOWN else repr(name[:MAX_SHOWN]) + f"... ({len(name)} characters)"


def name_problem(kind: str, name: str) -> str | None:
    """The one check every pod and node name given to a command passes (exec, delete, trace, run): an ASCII
    DNS label, so a name can never be a path ("../lab") or carry anything but [a-z0-9-]."""
    if not DNS_LABEL.fullmatch(name):  # ASCII, whole: no '/', '.' or '..' can pass
        return (f"{kind} name {shown(name)} is not a DNS label: lowercase letters, digits and '-', starting and "
                "ending with a letter or digit, at most 63 characters (as Kubernetes requires)")
    return None


def check_name(kind: str, name: str) -> str:
    """name, or InvalidNameError saying why it cannot be a pod's or node's name."""
    problem = name_problem(kind, name)
    if problem:
        raise InvalidNameError(problem)
    return name


def quiet(_: str) -> None:
    """A Progress that drops everything, for library use and tests."""


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


@dataclass(frozen=True)
class Pod:
    name: str
    node: str
    ip: IPv4Address


# The tutorial's images by the name a pod is given when no image is: a server if a dash-separated word
# of the name is one ("httpd", "w-httpd", "nginx-2"), else busybox (a shell with traceroute, ping, wget).
CLIENT_IMAGE = "busybox"
SERVER_IMAGES = ("httpd", "nginx")


@dataclass(frozen=True)
class Container:
    """One container of a pod. An empty command runs the image's own (a server, or a shell kept alive)."""
    name: str
    image: str
    command: tuple[str, ...] = ()


def default_containers(pod: str) -> tuple[Container, ...]:
    """`kubectl run POD` names its one container after the pod; the image follows the pod's name."""
    image = next((word for word in pod.split("-") if word in SERVER_IMAGES), CLIENT_IMAGE)
    return (Container(pod, image),)


@dataclass(frozen=True)
class PodState:
    """What `kubectl get pods` shows beyond name, node and address: READY x/y and STATUS."""
    ready: int
    total: int
    status: str  # Running, Completed, Error, Unknown (the lab lost the pod's namespace) ...


def node_row(node: Node) -> dict[str, str]:
    """The columns every node table starts with (`status` on each backend, `spec`), so they line up."""
    return {"node": node.name, "role": node.role, HOST_ONLY_IF: str(node.ip), "pod subnet": str(node.pod_subnet)}


class Lab(abc.ABC):
    """A running (or startable) lab built from one LabSpec."""

    backend: str = ""

    def __init__(self, spec: LabSpec):
        self.spec = spec

    @classmethod
    @abc.abstractmethod
    def unavailable_reason(cls) -> str | None:
        """None when this backend can run on this machine, else what is missing and how to get it."""

    # lifecycle
    @abc.abstractmethod
    def is_up(self) -> bool: ...

    @abc.abstractmethod
    def up(self, progress: Progress = quiet) -> None:
        """Build the lab. Raises LabStateError if it is already up; leaves nothing half made on failure."""

    @abc.abstractmethod
    def destroy(self, progress: Progress = quiet) -> None:
        """Remove everything the lab made, also leftovers of a crashed run. Safe when nothing is up."""

    @abc.abstractmethod
    def plan(self) -> str:
        """What `up` would build, as text a person reads (`k8slab up --dry-run`); needs no root."""

    def status(self) -> list[dict[str, str]]:
        """One row per node for `k8slab status`; backends add what they know (VM state, Ready)."""
        up = self.is_up()
        return [{**node_row(n), "state": "up" if up else "down"} for n in self.spec.nodes]

    # nodes
    @abc.abstractmethod
    def node_run(self, node: str, argv: Sequence[str], timeout: float = 30) -> Result: ...

    @abc.abstractmethod
    def testinfra_host(self, node: str) -> testinfra.host.Host:
        """A testinfra Host whose commands run on the node."""

    # pods
    @abc.abstractmethod
    def pod_start(self, name: str, node: str, containers: Sequence[Container] = ()) -> Pod:
        """Start a pod pinned to node and wait until it has an address and its containers run. No containers
        means default_containers(name). LabStateError if the name is taken."""

    @abc.abstractmethod
    def pod_delete(self, name: str) -> None:
        """Remove the pod. LabStateError naming the known pods if there is no such pod."""

    @abc.abstractmethod
    def pods(self) -> list[Pod]: ...

    @abc.abstractmethod
    def pod_run(self, name: str, argv: Sequence[str], timeout: float = 30, container: str | None = None) -> Result:
        """Run a command inside the pod (traceroute, ping, wget...), in its first container unless one is named."""

    def pod_states(self) -> dict[str, PodState]:
        """Pod name -> READY and STATUS; backends that know better override this."""
        return {p.name: PodState(1, 1, "Running") for p in self.pods()}

    # runs that own pods, and what a killed one left
    @contextlib.contextmanager
    def session(self, run: str, progress: Progress = quiet, ephemeral: bool = True) -> Iterator[None]:
        """Hold the lab for one verify or walkthrough (`run`): a second one on the same lab waits, saying so, or
        refuses clearly. ephemeral: the pods started inside belong to this run, and once its process is gone
        (killed: SIGKILL runs no cleanup) the next command removes them. A backend without such state holds nothing."""
        yield

    def reap(self, progress: Progress = quiet) -> list[str]:
        """Remove what a killed k8slab left behind (half-made pods, a dead run's pods), say so through progress,
        and return their names. A backend whose cluster cleans up after itself has nothing to reap."""
        return []

    # notes of the tools above the contract
    def notes_dir(self) -> Path:
        """Where commands above the contract keep small JSON records about this lab (the pods a walkthrough
        started, a class exercise), read back as data and validated. Per user and lab by default; a backend
        that keeps state of its own keeps them there, so removing the lab removes them."""
        base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
        return base / "k8slab" / self.backend / self.spec.name

    # shared helpers
    def pod(self, name: str) -> Pod:
        from k8slab.errors import LabStateError

        for pod in self.pods():
            if pod.name == name:
                return pod
        known = ", ".join(p.name for p in self.pods()) or "none"
        raise LabStateError(f"no pod named {name!r} in lab {self.spec.name!r}; pods: {known}")
