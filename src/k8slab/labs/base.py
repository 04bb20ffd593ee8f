"""The one Lab interface every backend implements; everything above it (verify, trace, walkthrough,
the CLI, the acceptance suite) is written against this and nothing else. What a backend may or may
not do is declared here with a default, so no caller has to probe a lab for a method."""

from __future__ import annotations

import abc
import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from k8slab.errors import LabStateError, UsageError
from k8slab.labs.values import (  # re-exported: the values of the contract
    CLIENT_IMAGE,
    SERVER_IMAGES,
    Container,
    InvalidNameError,
    Pod,
    PodState,
    Progress,
    Result,
    check_name,
    default_containers,
    name_problem,
    node_row,
    quiet,
    shown,
)
from k8slab.spec.model import LabSpec

if TYPE_CHECKING:
    import testinfra.host

    from k8slab.labs.kube_proxy import Service

__all__ = ["CLIENT_IMAGE", "SERVER_IMAGES", "Container", "InvalidNameError", "Lab", "Pod", "PodState", "Progress",
           "Result", "check_name", "default_containers", "name_problem", "node_row", "quiet", "shown"]


class Lab(abc.ABC):
    """A running (or startable) lab built from one LabSpec."""

    backend: ClassVar[str] = ""
    has_kubernetes: ClassVar[bool] = False  # a Kubernetes API answers kubectl()
    needs_inventory: ClassVar[bool] = False  # its machines come from an Ansible inventory (--inventory FILE)
    state_is_local: ClassVar[bool] = False  # its labs show in plain files, seen even where it cannot run

    def __init__(self, spec: LabSpec):
        self.spec = spec
        self.inventory: Path | None = None  # the Ansible inventory of its machines, when it has one

    @classmethod
    def open(cls, spec: LabSpec, inventory: Path | None = None) -> Lab:
        """This backend's lab of spec; only an inventory backend takes an inventory."""
        if inventory is not None:
            raise UsageError(f"--inventory names the machines of an existing cluster (--backend ssh); the "
                             f"{cls.backend} backend makes its own")
        return cls(spec)

    # where it can run
    @classmethod
    @abc.abstractmethod
    def unavailable_reason(cls) -> str | None:
        """None when this backend can run on this machine, else what is missing and how to get it."""

    @classmethod
    def teardown_unavailable_reason(cls) -> str | None:
        """Why its labs cannot even be removed here (removing may need less than building)."""
        return cls.unavailable_reason()

    # lifecycle
    @abc.abstractmethod
    def is_up(self) -> bool: ...

    def has_leftovers(self) -> bool:
        """Something of this lab exists although it is not up (a crashed run); destroy removes it."""
        return False

    def spec_drift(self) -> str | None:
        """Why the lab that is up was not built from this spec, or None."""
        return None

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

    def node_argv(self, node: str) -> list[str] | None:
        """A local command prefix that enters the node, so an interactive program gets the terminal;
        None: the node is remote and only node_run reaches it."""
        return None

    def node_stream_argv(self, node: str, argv: Sequence[str]) -> list[str]:
        """A local command line running argv on the node, its stdout passed on byte for byte (a pcap)."""
        local = self.node_argv(node)
        if local is None:
            raise LabStateError(f"the {self.backend} lab cannot stream a command's output from its nodes")
        return [*local, *argv]

    # pods
    @abc.abstractmethod
    def pod_start(self, name: str, node: str, containers: Sequence[Container] = ()) -> Pod:
        """Start a pod pinned to node and wait until it has an address and its containers run. No containers
        means default_containers(name). LabStateError if the name is taken."""

    def pods_start(self, wanted: Sequence[tuple[str, str]],
                   containers: Mapping[str, Sequence[Container]] | None = None) -> list[Pod]:
        """Start (name, node) pods together, all or nothing; in wanted's order."""
        from k8slab.labs.pod_batch import start_all

        return start_all(self, wanted, containers or {})

    @abc.abstractmethod
    def pod_delete(self, name: str) -> None:
        """Remove the pod. LabStateError naming the known pods if there is no such pod."""

    @abc.abstractmethod
    def pods(self) -> list[Pod]: ...

    @abc.abstractmethod
    def pod_run(self, name: str, argv: Sequence[str], timeout: float = 30, container: str | None = None) -> Result:
        """Run a command inside the pod (traceroute, ping, wget...), in its first container unless one is named."""

    def pod_argv(self, name: str, container: str | None = None) -> list[str] | None:
        """Like node_argv, for a pod's container; None: only pod_run reaches it."""
        return None

    def pod_states(self) -> dict[str, PodState]:
        """Pod name -> READY and STATUS; backends that know better override this."""
        return {p.name: PodState(1, 1, "Running") for p in self.pods()}

    def kubectl(self, *args: str, timeout: float = 60) -> Result:
        """kubectl against the lab's cluster (has_kubernetes labs only)."""
        raise LabStateError(f"the {self.backend} lab {self.spec.name!r} has no Kubernetes API")

    # services and routing daemons
    def services(self) -> list[Service] | None:
        """Every ClusterIP service with its endpoints' addresses; None where the lab does not list them."""
        return None

    def service_expose(self, name: str, port: int, target_port: int, pod_names: Sequence[str],
                       protocol: str = "tcp") -> object:
        """Give pods a ClusterIP service that every node's kube-proxy chains send to them."""
        raise LabStateError(f"the {self.backend} lab {self.spec.name!r} has no service commands; use kubectl there")

    def service_delete(self, name: str) -> object:
        raise LabStateError(f"the {self.backend} lab {self.spec.name!r} has no service commands; use kubectl there")

    def adopt_cluster_blocks(self) -> None:
        """Take each node's pod subnet from the cluster itself where it, not lab.yaml's order, chose them (a
        real Calico cluster's block affinities); elsewhere the spec already says."""

    def bgp_status(self, node: str) -> tuple[str | None, str | None] | None:
        """What the node's BGP daemon says (`show status`, `show protocols`); None where the lab cannot ask."""
        return None

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

    # above the contract
    def command(self, rest: str) -> str:
        """A k8slab command line for this very lab (its spec and backend), for hints."""
        return self.spec.command(rest, backend=self.backend, inventory=self.inventory if self.needs_inventory else None)

    def notes_dir(self) -> Path:
        """Where commands above the contract keep small JSON records about this lab (the pods a walkthrough
        started, a class exercise), read back as data and validated. Per user and lab by default; a backend
        that keeps state of its own keeps them there, so removing the lab removes them."""
        base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
        return base / "k8slab" / self.backend / self.spec.name

    def pod(self, name: str) -> Pod:
        for pod in self.pods():
            if pod.name == name:
                return pod
        known = ", ".join(p.name for p in self.pods()) or "none"
        raise LabStateError(f"no pod named {name!r} in lab {self.spec.name!r}; pods: {known}")
