"""Linux namespaces from inside this process: create, enter, remove, and find who is in them.

`ip netns add` and `ip netns exec` cost one process each. Here the calling *thread* unshares or
enters a namespace (network and UTS namespaces are per thread), binds it to a file the way
iproute2 does, and goes back; a netlink socket or a child process made meanwhile stays in the
namespace. Nothing here touches the default namespace's links, routes or sysctls.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from k8slab.labs.netns.names import NETNS_DIR

CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000
_FLAGS = {"net": CLONE_NEWNET, "uts": CLONE_NEWUTS}
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8  # umount2: never follow a symlink planted where a namespace file should be

_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str, path: object = None) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", str(path) if path is not None else None)


def _setns(fd: int, kind: str) -> None:
    _check(_libc.setns(fd, _FLAGS[kind]), f"setns({kind})")


@contextmanager
def entered(path: str | Path, kind: str = "net") -> Iterator[None]:
    """Run the body (this thread only) in the namespace bound at path, then come back."""
    home = os.open(f"/proc/thread-self/ns/{kind}", os.O_RDONLY)
    try:
        target = os.open(path, os.O_RDONLY)
        try:
            _setns(target, kind)
        finally:
            os.close(target)
        try:
            yield
        finally:
            # If this failed the thread would go on in the lab's namespace; better to crash loudly.
            _setns(home, kind)
    finally:
        os.close(home)


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


def ensure_netns_dir() -> None:
    """Make /run/netns a shared mount of itself, as `ip netns add` does, so that a namespace removed
    here is also released in the mount namespaces `ip netns exec` makes."""
    NETNS_DIR.mkdir(parents=True, exist_ok=True)
    d = bytes(NETNS_DIR)
    if _libc.mount(b"", d, b"none", MS_SHARED | MS_REC, None) == 0:
        return
    _check(_libc.mount(d, d, b"none", MS_BIND | MS_REC, None), "bind-mount /run/netns on itself", d)
    _check(_libc.mount(b"", d, b"none", MS_SHARED | MS_REC, None), "make /run/netns shared", d)


def _bind_new(kind: str, path: Path, hostname: str | None = None) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
    os.close(fd)
    try:
        home = os.open(f"/proc/thread-self/ns/{kind}", os.O_RDONLY)
        try:
            _check(_libc.unshare(_FLAGS[kind]), f"unshare({kind})")
            try:
                if hostname is not None:
                    raw = hostname.encode()
                    _check(_libc.sethostname(raw, len(raw)), "sethostname")
                _check(_libc.mount(f"/proc/thread-self/ns/{kind}".encode(), bytes(path), b"none", MS_BIND, None),
                       f"bind the new {kind} namespace", path)
            finally:
                _setns(home, kind)
        finally:
            os.close(home)
    except BaseException:
        unbind(path)
        raise


def create_netns(name: str) -> Path:
    path = netns_path(name)
    _bind_new("net", path)
    return path


def create_uts(path: Path, hostname: str) -> Path:
    """A persistent UTS namespace whose hostname is `hostname` (what `hostname` prints on the node)."""
    _bind_new("uts", path, hostname)
    return path


def unbind(path: Path) -> None:
    """Release a namespace bound at path (the kernel frees it once nothing else holds it). A symlink at
    path is removed, never followed: umount2 refuses it (UMOUNT_NOFOLLOW) and unlink takes the link itself."""
    if (_libc.umount2(bytes(path), MNT_DETACH | UMOUNT_NOFOLLOW) != 0
            and ctypes.get_errno() not in (errno.EINVAL, errno.ENOENT)):
        err = ctypes.get_errno()
        raise OSError(err, f"umount {path}: {os.strerror(err)}")
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def list_netns(prefix: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def write_sysctl(key: str, value: str) -> None:
    """Set a net.* sysctl of the network namespace this thread is in."""
    with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
        f.write(value)


def pids_in(paths: list[Path]) -> list[int]:
    """Processes whose network namespace is one of those bound at paths (`ip netns pids`, at once)."""
    wanted = set()
    for p in paths:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            continue
        wanted.add((st.st_dev, st.st_ino))
    if not wanted:
        return []
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in wanted:
            found.append(int(entry))
    return found


def kill_all(pids: list[int], grace: float = 1.0) -> int:
    """SIGTERM, then SIGKILL what is left after `grace` seconds. Returns how many there were."""
    alive = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
            alive.append(pid)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [p for p in alive if _exists(p)]
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)


def _exists(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    # A process that exits between open() and read() makes the read fail with ESRCH.
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
