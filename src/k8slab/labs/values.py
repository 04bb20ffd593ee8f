"""The values a Lab hands out and takes (results, pods, containers) and the one name check every pod
and node name given to a command passes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address

from k8slab.errors import K8slabError
from k8slab.spec.facts import DNS_LABEL, HOST_ONLY_IF
from k8slab.spec.model import Node

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
    if not DNS_LABEL.fullmatch(name):  # ASCII, whole: no '/', '.', '..' or newline passes
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


def restart_policy(containers: Sequence[Container]) -> str:
    """The pod's restartPolicy: Always (kubectl run's default) when its containers run their images' own
    commands (servers, shells kept alive), Never when given a command, which runs once and ends Completed or
    Error (`kubectl run --restart=Never ... -- CMD`)."""
    return "Never" if any(c.command for c in containers) else "Always"


@dataclass(frozen=True)
class PodState:
    """What `kubectl get pods` shows beyond name, node and address: READY x/y, STATUS and RESTARTS."""
    ready: int
    total: int
    status: str  # Running, CrashLoopBackOff, Completed, Error, Unknown (the lab lost the pod's namespace) ...
    restarts: int = 0  # of all its containers, as kubectl counts them
    last_state: str = ""  # how its containers last ended, when they did ("web: exit 137 (killed by SIGKILL) ...")


def node_row(node: Node) -> dict[str, str]:
    """The columns every node table starts with (`status` on each backend, `spec`), so they line up."""
    return {"node": node.name, "role": node.role, HOST_ONLY_IF: str(node.ip), "pod subnet": str(node.pod_subnet)}
