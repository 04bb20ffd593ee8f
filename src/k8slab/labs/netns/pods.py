"""What the emulated lab's pods hold beyond their network: their containers, checked before anything is
built, started once the pod has its address, entered by `pod exec`, and read back by `pod list`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from k8slab.errors import LabStateError
from k8slab.labs import values
from k8slab.labs.base import Container, PodState, default_containers
from k8slab.labs.netns import containers, dns, images, names, supervise
from k8slab.labs.netns.state import PodRecord
from k8slab.labs.placement import node_name_clash
from k8slab.spec.model import LabSpec


def wanted_containers(name: str, given: Sequence[Container]) -> tuple[Container, ...]:
    return tuple(given) or default_containers(name)


def problems(spec: LabSpec, name: str, wanted: Sequence[Container]) -> list[str]:
    """Why this pod cannot be made, checked before anything is built ([] if it can)."""
    found = [clash] if (clash := node_name_clash(spec, name)) else []
    if dns.is_system(name):
        found.append(f"pod name {name!r} is the lab's cluster DNS pod (kube-system); pick another name")
    seen: set[str] = set()
    for c in wanted:
        problem = names.pod_name_problem(c.name)
        if problem:
            found.append(problem.replace("pod name", f"container name in pod {name}:", 1))
        if c.name in seen:
            found.append(f"pod {name} names container {c.name!r} twice; containers of one pod need distinct names")
        seen.add(c.name)
        problem = images.image_problem(c.image)
        if problem:
            found.append(f"pod {name}, container {c.name}: {problem}")
    return found


def to_json(wanted: Sequence[Container]) -> list[dict[str, Any]]:
    return [{"name": c.name, "image": c.image, "command": list(c.command)} for c in wanted]


def from_record(rec: PodRecord) -> tuple[Container, ...]:
    return tuple(Container(str(c["name"]), str(c["image"]), tuple(str(a) for a in c.get("command", [])))
                 for c in rec.containers)


def restart_policy(rec: PodRecord) -> str:
    """The lab's own DNS pod restarts always (a Deployment's pod on a real cluster), whatever its command."""
    return supervise.ALWAYS if dns.is_system(rec.name) else values.restart_policy(from_record(rec))


def start_all(state_dir: Path, rec: PodRecord, resolv_conf: str | None,
              backoff: supervise.Backoff = supervise.KUBELET) -> None:
    """Start the pod's containers in order (as the kubelet starts a pod's containers)."""
    restart = restart_policy(rec)
    for c in from_record(rec):
        containers.start(state_dir, pod=rec.name, ip=rec.ip, node=rec.node, netns=names.NETNS_DIR / rec.netns,
                         uts=Path(rec.uts), container=c, image=images.resolve(c.image), resolv_conf=resolv_conf,
                         restart=restart, backoff=backoff)


def exec_argv(state_dir: Path, rec: PodRecord, container: str | None) -> list[str]:
    """The prefix that runs a command in one of the pod's containers (the first unless one is named);
    a pod without containers (made by an older k8slab) is entered by its namespaces alone."""
    wanted = from_record(rec)
    if not wanted:
        if container is not None:
            raise LabStateError(f"pod {rec.name} has no containers; run the command without -c")
        return ["nsenter", f"--uts={rec.uts}", "--", "ip", "netns", "exec", rec.netns]
    name = container or wanted[0].name
    if name not in {c.name for c in wanted}:
        raise LabStateError(f"pod {rec.name} has no container {name!r}; its containers: "
                            f"{', '.join(c.name for c in wanted)}")
    pid = containers.running(names.NETNS_DIR / rec.netns).get(name)
    if pid is None:
        state = container_status(state_dir, rec, name, None)
        raise LabStateError(f"container {name} of pod {rec.name} is not running ({state}); "
                            f"its log: {containers.log_tail(containers.container_dir(state_dir, rec.name, name))}")
    return containers.exec_argv(pid, state_dir)


def container_status(state_dir: Path, rec: PodRecord, container: str, pid: int | None) -> str:
    return status_word(containers.read_status(state_dir, rec.name, container), pid)


def status_word(st: supervise.Status | None, pid: int | None) -> str:
    """kubectl's word for one container: pid is its PID 1 if that runs (it is the container's supervisor)."""
    if pid is not None:
        return "CrashLoopBackOff" if st is not None and st.state == "waiting" else "Running"
    if st is None:
        return "Unknown"
    if st.state == "exited":
        return "Completed" if st.last_exit == 0 else "Error"
    return "Error"  # its PID 1 was killed: the container is gone, as after its runtime's shim crashed


def last_state(container: str, st: supervise.Status | None, pid: int | None) -> str:
    """How the container last ended and what its supervisor did about it ("" if it never ended)."""
    if st is None:
        return ""
    if pid is None and st.state != "exited":
        return (f"{container}: its PID 1 (the container's supervisor) was killed, so nothing restarts it; "
                f"delete the pod and run it again")
    if st.last_exit is None:
        return ""
    ended = supervise.describe_exit(st.last_exit)
    if st.state == "waiting":
        return (f"{container}: {ended}; restart {st.restarts + 1} after a back-off of {st.backoff_ms / 1000:g} s "
                "(CrashLoopBackOff)")
    if st.restarts:
        return f"{container}: {ended}; restarted {st.restarts} time(s), the last after {st.backoff_ms / 1000:g} s"
    return f"{container}: {ended}"


def states(state_dir: Path, records: Sequence[PodRecord]) -> dict[str, PodState]:
    """READY, STATUS and RESTARTS of each pod, read from the kernel and its containers' status files: a pod
    whose namespace is gone is Unknown."""
    paths = [names.NETNS_DIR / r.netns for r in records]
    alive = containers.running_in(paths)
    result = {}
    for rec, path in zip(records, paths):
        if not path.exists():
            result[rec.name] = PodState(0, max(1, len(rec.containers)), "Unknown")
            continue
        wanted = from_record(rec)
        if not wanted:
            result[rec.name] = PodState(1, 1, "Running")
            continue
        pids: Mapping[str, int] = alive.get(str(path), {})
        found = [(c.name, containers.read_status(state_dir, rec.name, c.name), pids.get(c.name)) for c in wanted]
        each = [status_word(st, pid) for _, st, pid in found]
        restarts = sum(st.restarts for _, st, _ in found if st is not None)
        notes = "; ".join(note for name, st, pid in found if (note := last_state(name, st, pid)))
        ready = each.count("Running")
        status = ("Running" if ready == len(each) else "CrashLoopBackOff" if "CrashLoopBackOff" in each
                  else "Error" if "Error" in each else "Completed" if set(each) == {"Completed"} else "NotReady")
        result[rec.name] = PodState(ready, len(each), status, restarts, notes)
    return result
