"""Restarts of the emulated lab's containers, as the kubelet does them for a pod with restartPolicy Always.

Who supervises: each container's PID 1, the small shell (containers.INIT) that already runs inside the
container's own PID namespace. It runs the container's main process as its child, and when that ends
(killed -9, crashed, or done) it waits out the back-off and runs it again, writing how it stands to a status
file in the lab's state after every change. So no extra process exists on this machine: killing a pod's
processes by namespace (pod delete, destroy, reap after a SIGKILLed k8slab) kills the supervisor with what
it supervises, and a k8slab command killed half way cannot leave a supervisor behind that nobody knows of.
Killing the server (`kill -9` of PID 1's child) shows a restart; killing PID 1 itself is killing the
container's runtime (a crashed containerd-shim on a real node): the kernel ends everything in its PID
namespace and nothing on this machine is left to start it again, so the pod shows that container as Error
until it is deleted and run again; the lab keeps no daemon that could do more.

The back-off follows the kubelet's documented curve (kubernetes.io, Pod Lifecycle, "Container restarts"):
10 s before the first restart, doubling each time (20 s, 40 s ...) up to 5 minutes, and starting over once
the container has run for 10 minutes. (The kubelet's code restarts the very first exit at its next sync and
waits 10 s from the second on; the documented curve is what students read, so it is the one used here.)
The figures are the lab's, recorded in lab.json at `up` (a lab built for tests can take a shorter first
delay and the tests read it back); every container started in the lab gets them.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from k8slab.errors import LabStateError

ALWAYS, NEVER = "Always", "Never"
STATES = ("running", "waiting", "exited")  # waiting: in back-off before a restart
MAX_EXIT = 255  # what a shell's $? can be (128 + signal number for a killed process)
LIMIT_MS = 3_600_000  # no back-off figure the lab writes exceeds an hour


@dataclass(frozen=True)
class Backoff:
    """The kubelet's restart back-off, in milliseconds (the shell computes with integers only)."""
    initial_ms: int = 10_000
    max_ms: int = 300_000
    reset_ms: int = 600_000  # a container that ran this long before it ended starts the curve over

    def problem(self) -> str | None:
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (self.initial_ms, self.max_ms,
                                                                            self.reset_ms)):
            return "its figures are not whole milliseconds"
        if not 1 <= self.initial_ms <= self.max_ms <= LIMIT_MS or not 1000 <= self.reset_ms <= LIMIT_MS:
            return (f"initial {self.initial_ms} ms, max {self.max_ms} ms, reset {self.reset_ms} ms are not "
                    f"1 <= initial <= max <= {LIMIT_MS} and 1000 <= reset <= {LIMIT_MS}")
        return None

    def to_json(self) -> dict[str, int]:
        return {"initial_ms": self.initial_ms, "max_ms": self.max_ms, "reset_ms": self.reset_ms}

    def env(self) -> dict[str, str]:
        """What the container's PID 1 reads (containers.INIT)."""
        return {"K8SLAB_BACKOFF_MS": str(self.initial_ms), "K8SLAB_BACKOFF_MAX_MS": str(self.max_ms),
                "K8SLAB_BACKOFF_RESET_S": str(self.reset_ms // 1000)}


KUBELET = Backoff()


def backoff_from_lab(data: Any) -> Backoff:
    """The back-off lab.json records (a lab built by an older k8slab has none: the kubelet's), checked as
    data: anything but three whole numbers in range is refused, never passed on to a container."""
    if not isinstance(data, Mapping) or "restart_backoff" not in data:
        return KUBELET
    raw = data["restart_backoff"]
    if not isinstance(raw, Mapping) or set(raw) != {"initial_ms", "max_ms", "reset_ms"}:
        raise LabStateError("lab.json's restart_backoff is not {initial_ms, max_ms, reset_ms}; "
                            "`k8slab destroy` removes the lab")
    found = Backoff(raw["initial_ms"], raw["max_ms"], raw["reset_ms"])
    problem = found.problem()
    if problem:
        raise LabStateError(f"lab.json's restart_backoff is not one k8slab writes: {problem}; "
                            "`k8slab destroy` removes the lab")
    return found


def next_delay(previous_ms: int, ran_s: int, backoff: Backoff) -> int:
    """The wait before restarting a container whose main process just ended, after running ran_s seconds;
    previous_ms is the wait before its last restart (0: never restarted). RULE below is this in sh."""
    if previous_ms == 0 or ran_s >= backoff.reset_ms // 1000:
        return backoff.initial_ms
    return min(previous_ms * 2, backoff.max_ms)


# next_delay in POSIX sh (dash), for the container's PID 1: reads $delay (the previous wait) and $ran, sets $delay.
RULE = r"""next_delay() {
  if [ "$delay" -eq 0 ] || [ "$ran" -ge "$K8SLAB_BACKOFF_RESET_S" ]; then delay=$K8SLAB_BACKOFF_MS
  else delay=$((delay * 2)); [ "$delay" -le "$K8SLAB_BACKOFF_MAX_MS" ] || delay=$K8SLAB_BACKOFF_MAX_MS; fi
}
"""


@dataclass(frozen=True)
class Status:
    """How a container stands, as its PID 1 last wrote it (the file `status` in its folder)."""
    state: str  # running, waiting (back-off before a restart), exited (restartPolicy Never: it ended)
    restarts: int
    last_exit: int | None  # how its main process last ended (137: killed by SIGKILL); None: never yet
    backoff_ms: int  # the wait before its latest (or, while waiting, its next) restart; 0: none yet


def status_from(data: Any) -> Status:
    """A status file's JSON as a Status, each field checked: the file lies in the lab's state, and what it
    holds is data to show, nothing to act on; anything else is refused with the way out."""
    def bad(why: str) -> LabStateError:
        return LabStateError(f"a container status file is not one k8slab writes ({why}); "
                             "`k8slab destroy` removes the lab")

    if not isinstance(data, dict) or set(data) != {"state", "restarts", "last_exit", "backoff_ms"}:
        raise bad("not {state, restarts, last_exit, backoff_ms}")
    state, restarts, last_exit, backoff_ms = data["state"], data["restarts"], data["last_exit"], data["backoff_ms"]
    if state not in STATES:
        raise bad(f"state {str(state)[:40]!r}")

    def whole(v: Any, top: int) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= top

    if not whole(restarts, 10**9):
        raise bad("restarts is not a count")
    if last_exit is not None and not whole(last_exit, MAX_EXIT):
        raise bad("last_exit is not an exit status")
    if not whole(backoff_ms, LIMIT_MS):
        raise bad("backoff_ms is not a delay")
    return Status(state, restarts, last_exit, backoff_ms)


def describe_exit(code: int) -> str:
    """An exit status as a person reads it: 137 -> 'exit 137 (killed by SIGKILL)'."""
    if code > 128:
        try:
            return f"exit {code} (killed by {signal.Signals(code - 128).name})"
        except ValueError:
            pass
    return f"exit {code}"
