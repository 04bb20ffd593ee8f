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
    """A running (or startable) lab built from one LabSpec. Abstract: what every backend must do; the rest
    is optional, each with the default a backend without that capability has."""

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

    # ---- where it runs, and its life
    @classmethod
    @abc.abstractmethod
    def unavailable_reason(cls) -> str | None:
        """None when this backend can run on this machine, else what is missing and how to get it."""

    @classmethod
    def teardown_unavailable_reason(cls) -> str | None:
        return cls.unavailable_reason()  # removing a lab may need less than building one

    @abc.abstractmethod
    def is_up(self) -> bool: ...

    @abc.abstractmethod
    def up(self, progress: Progress = quiet) -> None:
        """Build the lab; LabStateError if it is up already; nothing half made on failure."""

    @abc.abstractmethod
    def destroy(self, progress: Progress = quiet) -> None:
        """Remove everything the lab made, leftovers of a crashed run too; safe when nothing is up."""

    @abc.abstractmethod
    def plan(self) -> str:
        """What `up` would build, as text a person reads (`k8slab up --dry-run`); needs no root."""

    def has_leftovers(self) -> bool:
        return False  # something of it exists although it is not up (a crashed run)

    def spec_drift(self) -> str | None:
        return None  # why the lab that is up was not built from this spec

    def status(self) -> list[dict[str, str]]:
        up = self.is_up()  # one row per node for `k8slab status`; backends add what they know
        return [{**node_row(n), "state": "up" if up else "down"} for n in self.spec.nodes]

    # ---- nodes
    @abc.abstractmethod
    def node_run(self, node: str, argv: Sequence[str], timeout: float = 30) -> Result: ...

    @abc.abstractmethod
    def testinfra_host(self, node: str) -> testinfra.host.Host: ...

    def node_argv(self, node: str) -> list[str] | None:
        return None  # a local prefix entering the node (an interactive program gets the terminal); None: remote

    def node_stream_argv(self, node: str, argv: Sequence[str]) -> list[str]:
        """A local command line running argv on the node, its stdout passed on byte for byte (a pcap)."""
        local = self.node_argv(node)
        if local is None:
            raise LabStateError(f"the {self.backend} lab cannot stream a command's output from its nodes")
        return [*local, *argv]

    # ---- pods
    @abc.abstractmethod
    def pod_start(self, name: str, node: str, containers: Sequence[Container] = ()) -> Pod:
        """Start a pod pinned to node, wait for its address and containers (none: default_containers(name))."""

    @abc.abstractmethod
    def pod_delete(self, name: str) -> None: ...

    @abc.abstractmethod
    def pods(self) -> list[Pod]: ...

    @abc.abstractmethod
    def pod_run(self, name: str, argv: Sequence[str], timeout: float = 30, container: str | None = None) -> Result:
        """Run a command in the pod, in its first container unless one is named."""

    def pods_start(self, wanted: Sequence[tuple[str, str]],
                   containers: Mapping[str, Sequence[Container]] | None = None) -> list[Pod]:
        from k8slab.labs.pod_batch import start_all  # (name, node) pods at once, all or nothing, in order

        return start_all(self, wanted, containers or {})

    def pods_delete(self, names: Sequence[str]) -> None:
        """Remove several pods at once; every one is tried, and the ones that could not be removed are named
        together in one error."""
        from k8slab.labs.pod_batch import delete_all  # kubectl delete waits seconds per pod

        delete_all(self, names)

    def pod_argv(self, name: str, container: str | None = None) -> list[str] | None:
        return None  # like node_argv, for a pod's container

    def pod_states(self) -> dict[str, PodState]:
        return {p.name: PodState(1, 1, "Running") for p in self.pods()}  # READY and STATUS

    # ---- the cluster: Kubernetes, services, BGP
    def kubectl(self, *args: str, timeout: float = 60) -> Result:
        raise LabStateError(f"the {self.backend} lab {self.spec.name!r} has no Kubernetes API")

    def services(self) -> list[Service] | None:
        return None  # ClusterIP services with their endpoints; None where the lab does not list them

    def service_expose(self, name: str, port: int, target_port: int, pod_names: Sequence[str],
                       protocol: str = "tcp") -> object:
        raise LabStateError(f"the {self.backend} lab {self.spec.name!r} has no service commands; use kubectl there")

    def service_delete(self, name: str) -> object:
        raise LabStateError(f"the {self.backend} lab {self.spec.name!r} has no service commands; use kubectl there")

    def adopt_cluster_blocks(self) -> None:
        """Take the nodes' pod subnets from the cluster where it chose them (a real Calico cluster)."""

    @property
    def learns_node_neighbours(self) -> bool:
        """True where the nodes learn each other's eth1 MAC by ARP into one neighbour table they all share (a
        small emulated lab: one kernel): a trace joining two nodes not yet joined then costs that table two
        entries, and verify paces how many it adds a second (verify/schedule.py). Real nodes each have a table
        of their own."""
        return False

    def bgp_status(self, node: str) -> tuple[str | None, str | None] | None:
        return None  # the node's BGP daemon (`show status`, `show protocols`); None: cannot ask

    # ---- runs that own pods, and what a killed one left
    @contextlib.contextmanager
    def session(self, run: str, progress: Progress = quiet, ephemeral: bool = True) -> Iterator[None]:
        """Hold the lab for one verify or walkthrough: a second waits or refuses; with ephemeral, pods started
        inside belong to this run and the next command removes them once its process is gone (SIGKILL)."""
        yield

    def reap(self, progress: Progress = quiet) -> list[str]:
        return []  # remove (and name) what a killed k8slab left; a self-cleaning cluster has nothing

    # ---- used above the contract
    def command(self, rest: str) -> str:
        """A k8slab command line for this very lab (its spec, backend, inventory), for hints."""
        return self.spec.command(rest, backend=self.backend, inventory=self.inventory if self.needs_inventory else None)

    def notes_dir(self) -> Path:
        """Where commands above the contract keep small JSON records about this lab (per user and lab; a backend
        with state of its own keeps them there, so removing the lab removes them)."""
        base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
        return base / "k8slab" / self.backend / self.spec.name

    def pod(self, name: str) -> Pod:
        for pod in self.pods():
            if pod.name == name:
                return pod
        known = ", ".join(p.name for p in self.pods()) or "none"
        raise LabStateError(f"no pod named {name!r} in lab {self.spec.name!r}; pods: {known}")
