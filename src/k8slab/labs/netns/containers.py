"""Containers of the emulated lab's pods: each a process tree of its own inside the pod's namespaces.

A pod is its network and UTS namespace (what the pause container holds on a real node). Every
container is started in them by `unshare --mount --pid --fork --mount-proc`: its own mount
namespace (a fresh /sys of the pod's interfaces, a private /tmp, the pod's /etc/hosts and
resolv.conf bound over this machine's) and its own PID namespace, whose PID 1 is a small shell
that runs the image's command, restarts it as the pod's restartPolicy says (supervise.py), and
records how it stands (restarts, last exit) in the container's folder of the lab's state.

What runs is never taken from disk: a container is found in /proc, as the process whose
network namespace is the pod's, which is PID 1 of its own PID namespace and carries the container's
name in its environment. So a crashed k8slab leaves nothing unknown behind: every process in a lab
namespace is the lab's, and destroy or pod delete kills them all by namespace.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from k8slab.errors import CommandFailedError
from k8slab.labs.base import Container
from k8slab.labs.netns import state, supervise
from k8slab.labs.netns.images import Image

MARK = "K8SLAB_CONTAINER"  # in the environment of each container's PID 1: the container's name
START_TIMEOUT = 10.0
LOG_TAIL = 8

# PID 1 of the container, and its supervisor (supervise.py says why it is PID 1 and not a process of its own).
# It binds the pod's files and mounts, says so (`started`: a command exec'd in before that would see this
# machine's resolv.conf), then runs the command as its child: with restartPolicy Always again after every end,
# waiting out the back-off (supervise.RULE), else once. After every change it writes `status` whole (0600, as
# the rest of the lab's state; the command keeps k8slab's umask) and renames it into place, so a reader never
# sees half a file. A bad mount ends the container before the command runs. SIGTERM (pod delete, destroy:
# kill_all sends it to every process of the pod first) ends PID 1 once its child has ended, instead of a
# restart; as PID 1 of its namespace it would ignore the signal without this trap, and only the SIGKILL after
# the grace would end it.
INIT = r"""set -e
mask=$K8SLAB_UMASK
umount -l /sys 2>/dev/null || true
mount -t sysfs -o ro sysfs /sys
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount --bind "$K8SLAB_DIR/hosts" /etc/hosts
if [ -f /etc/hostname ]; then mount --bind "$K8SLAB_DIR/hostname" /etc/hostname; fi
if [ -f "$K8SLAB_DIR/resolv.conf" ]; then mount --bind "$K8SLAB_DIR/resolv.conf" /etc/resolv.conf; fi
set +e
trap 'exit 143' TERM
""" + supervise.RULE + r"""status() {
  umask 077
  printf '{"state": "%s", "restarts": %d, "last_exit": %s, "backoff_ms": %d}\n' "$1" "$restarts" "$code" "$delay" \
    > "$K8SLAB_DIR/.status" && mv -f "$K8SLAB_DIR/.status" "$K8SLAB_DIR/status"
  umask "$mask"
}
restarts=0 code=null delay=0
: > "$K8SLAB_DIR/started"
cd /
while :; do
  read -r up _ < /proc/uptime; began=${up%.*}
  "$@"
  code=$?
  if [ "$K8SLAB_RESTART" != Always ]; then status exited; exit 0; fi
  read -r up _ < /proc/uptime; ran=$((${up%.*} - began))
  next_delay
  status waiting
  ms=$((1000 + delay % 1000))
  sleep "$((delay / 1000)).${ms#1}"
  restarts=$((restarts + 1))
  status running
done
"""


@dataclass(frozen=True)
class Running:
    pid: int  # this machine's PID of the container's PID 1


def pod_dir(state_dir: Path, pod: str) -> Path:
    """The files a pod's containers see (hosts, resolv.conf) and their logs; removed with the pod."""
    return state_dir / "containers" / pod


def container_dir(state_dir: Path, pod: str, container: str) -> Path:
    return pod_dir(state_dir, pod) / container


def applets_dir(state_dir: Path) -> Path:
    """busybox's applets (nslookup, httpd...) as links, which Debian's busybox package does not make; one
    folder for the whole lab, made with the first container."""
    return state_dir / "busybox"


def search_path(state_dir: Path) -> str:
    """This machine's programs first, then busybox's applets."""
    return f"{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}:{applets_dir(state_dir)}"


_APPLETS = threading.Lock()  # containers start concurrently (pods_start); the links are made once


def _link_applets(state_dir: Path) -> None:
    folder = applets_dir(state_dir)
    with _APPLETS:
        _link_applets_once(state_dir, folder)


def _link_applets_once(state_dir: Path, folder: Path) -> None:
    if not (folder / "busybox-done").exists():
        state.make_dirs(state_dir.parent, folder)
        subprocess.run(["busybox", "--install", "-s", str(folder)], check=True, capture_output=True, timeout=30)
        state.write_bytes(state_dir.parent, folder / "busybox-done", b"")


def hosts_file(pod: str, ip: str) -> str:
    """The pod's /etc/hosts as the kubelet writes it: localhost and the pod's own name on its address."""
    return (f"# Kubernetes-managed hosts file (k8slab emulated lab).\n127.0.0.1\tlocalhost\n::1\tlocalhost "
            f"ip6-localhost ip6-loopback\n{ip}\t{pod}\n")


def start(state_dir: Path, *, pod: str, ip: str, node: str, netns: Path, uts: Path, container: Container,
          image: Image, resolv_conf: str | None, restart: str = supervise.NEVER,
          backoff: supervise.Backoff = supervise.KUBELET) -> None:
    """Start one container of the pod and return once it runs (a server: once it listens). Its files are
    written as the rest of the lab's state is (state.py: 0700/0600, never through a symlink). restart: the
    pod's restartPolicy (Always: its PID 1 runs the command again after each end, with the lab's back-off)."""
    root = state_dir.parent
    cdir = container_dir(state_dir, pod, container.name)
    files = {"hosts": hosts_file(pod, ip), "hostname": f"{pod}\n"}
    if resolv_conf is not None:
        files["resolv.conf"] = resolv_conf
    for name, text in files.items():
        state.write_bytes(root, cdir / name, text.encode())
    docroot = cdir / "www"
    if image.port is not None:
        state.write_bytes(root, docroot / "index.html", image.page(pod, container.name, ip, node).encode())
    command = list(container.command) or image.command(docroot)
    _link_applets(state_dir)
    env = {"PATH": search_path(state_dir), "HOME": "/root", "HOSTNAME": pod,
           MARK: container.name, "K8SLAB_DIR": str(cdir), "K8SLAB_RESTART": restart, "K8SLAB_UMASK": _umask(),
           **backoff.env()}
    argv = ["setsid", "--fork", "nsenter", f"--net={netns}", f"--uts={uts}", "--",
            "unshare", "--mount", "--pid", "--fork", "--mount-proc", "--propagation", "private", "--",
            "sh", "-c", INIT, f"k8slab-init-{container.name}", *command]
    for old in ("exit", "started", ".status"):  # a pod of the same name's, deleted half way
        (cdir / old).unlink(missing_ok=True)
    # PID 1 rewrites this at the first change; written here, it costs the container no process of its own
    state.write_json(root, cdir / "status", {"state": "running", "restarts": 0, "last_exit": None, "backoff_ms": 0})
    fd = os.open(cdir / "log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "ab") as log:
        # setsid --fork returns at once; the container is then a child of init, not of this command
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, check=True,
                       timeout=START_TIMEOUT)
    _wait_started(state_dir, pod, netns, container, image, restart)


def _umask() -> str:
    """This process's umask, which the container's command gets (read from /proc: os.umask would change it, for
    every thread, while it is read)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return line.split()[1]
    except OSError:
        pass
    return "0022"


def _wait_started(state_dir: Path, pod: str, netns: Path, container: Container, image: Image, restart: str) -> None:
    cdir = container_dir(state_dir, pod, container.name)
    wait_port = image.port is not None and (image.system or not container.command)
    deadline = time.monotonic() + START_TIMEOUT
    pid = None
    while True:
        # /proc is searched for PID 1 only once it says it has mounted: a search reads every process on the
        # machine, and pods_start starts many containers at once
        if pid is None and (cdir / "started").exists():
            pid = running(netns).get(container.name)
        if pid is not None and (not wait_port or listening(pid, image.port)):
            return
        ended = read_status(state_dir, pod, container.name)
        if ended is not None and ended.state in ("waiting", "exited"):
            if container.command and restart == supervise.NEVER:
                return  # a command that ran and ended, as `kubectl run x -- true` does: Completed or Error
            how = supervise.describe_exit(ended.last_exit) if ended.last_exit is not None else "ended"
            raise CommandFailedError(f"container {container.name} ({image.name}) exited at once ({how}): "
                                     f"{log_tail(cdir)}")
        if time.monotonic() > deadline:
            raise CommandFailedError(f"container {container.name} ({image.name}) did not start in "
                                     f"{START_TIMEOUT:.0f} s: {log_tail(cdir)}")
        time.sleep(0.005)


def log_tail(cdir: Path) -> str:
    try:
        lines = (cdir / "log").read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "no output"
    return " | ".join(lines[-LOG_TAIL:]) or "no output"


def running(netns: Path) -> dict[str, int]:
    """Container name -> PID (this machine's) of its PID 1, for the containers running in this pod."""
    return running_in([netns]).get(str(netns), {})


def running_in(netns_paths: list[Path]) -> dict[str, dict[str, int]]:
    """One pass over /proc for many pods: netns path -> {container name: PID of its PID 1}."""
    wanted = {}
    for path in netns_paths:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        wanted[(st.st_dev, st.st_ino)] = str(path)
    found: dict[str, dict[str, int]] = {}
    if not wanted:
        return found
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
            key = (st.st_dev, st.st_ino)
            if key not in wanted:
                continue
            name = _init_of_container(int(entry))
        except OSError:
            continue  # gone meanwhile
        if name is not None:
            found.setdefault(wanted[key], {})[name] = int(entry)
    return found


def _init_of_container(pid: int) -> str | None:
    """The container name if pid is a live container's PID 1 (1 in its own PID namespace), else None."""
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    if fields.get("State", "").strip().startswith("Z") or fields.get("NSpid", "").split()[-1:] != ["1"]:
        return None
    with open(f"/proc/{pid}/environ", "rb") as f:
        for item in f.read().split(b"\0"):
            if item.startswith(MARK.encode() + b"="):
                return item.split(b"=", 1)[1].decode(errors="replace")
    return None


def pids_under(top: Path) -> list[int]:
    """Processes a container of the lab started (they inherit K8SLAB_DIR from its PID 1), also those whose
    pod namespace was unbound behind the lab's back, which a search by namespace no longer finds."""
    prefix = f"K8SLAB_DIR={top}/".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if any(item.startswith(prefix) for item in f.read().split(b"\0")):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def listening(pid: int, port: int) -> bool:
    """Whether a TCP socket listens on port in pid's network namespace (/proc/PID/net/tcp is per namespace)."""
    want = f":{port:04X}"
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[1].endswith(want) and cols[3] == "0A":  # 0A: TCP_LISTEN
                        return True
        except (FileNotFoundError, ProcessLookupError):
            return False
    return False


def children(pid: int) -> list[int]:
    """The processes pid started (a container's command is the child of its PID 1)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def read_status(state_dir: Path, pod: str, container: str) -> supervise.Status | None:
    """How the container stands as its PID 1 last wrote it (None before it wrote anything): read as every
    state file is (state.read_json: ours, 0600, no symlink) and checked field by field (supervise.status_from)."""
    try:
        data = state.read_json(state_dir.parent, container_dir(state_dir, pod, container) / "status")
    except FileNotFoundError:
        return None
    return supervise.status_from(data)


def exec_argv(pid: int, state_dir: Path) -> list[str]:
    """Enter a running container: its mount, PID, UTS and network namespaces (kubectl exec), with its PATH."""
    return ["nsenter", f"--target={pid}", "--mount", "--pid", "--uts", "--net", "--wd=/", "--",
            "env", f"PATH={search_path(state_dir)}"]
