"""The emulated lab's files under /run/k8slab/<lab>/: a lock, lab.json, one JSON record per pod.

Root reads these files back and acts on them (runs CNI plugins, unmounts, signals), so they are
trusted only as far as no one else could have written them: every directory from /run/k8slab down
is created 0700 and every file 0600 whatever the umask, and every read checks that the chain is
root's (this process's owner), writable by no one else and free of symlinks. What a record holds
is then validated field by field (validate_record): a record is data, never a path or a program.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from k8slab.errors import LabStateError
from k8slab.labs.netns import names

MAX_STATE_FILE = 1 << 20  # a record is a few hundred bytes; anything bigger was not written by k8slab
DIR_MODE = 0o700
FILE_MODE = 0o600
# The only CNI plugins the lab's own configs name; a record naming another program is refused.
CNI_TYPES = frozenset({"bridge", "loopback", "calico"})
IPAM_TYPES = frozenset({"host-local", "calico-ipam"})
PHASES = ("creating", "ready")  # a record is written before the pod's namespace exists, so a crash leaves a trace


class UnsafeStateError(LabStateError):
    """A file or directory of the lab's state could have been written by someone else: nothing in it is trusted."""


class LabGoneError(LabStateError):
    """The lab's state directory vanished (destroyed meanwhile) while a command waited for its lock."""


def _unsafe(path: Path, why: str) -> UnsafeStateError:
    return UnsafeStateError(f"refusing to use {path}: {why}, so another user could have planted what it holds; "
                            f"check who changed it, then `k8slab destroy` removes the lab without reading it")


def _check_stat(path: Path, st: os.stat_result, want_dir: bool) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise _unsafe(path, "it is a symlink")
    if want_dir and not stat.S_ISDIR(st.st_mode):
        raise _unsafe(path, "it is not a directory")
    if not want_dir and not stat.S_ISREG(st.st_mode):
        raise _unsafe(path, "it is not a regular file")
    if st.st_uid != os.geteuid():
        raise _unsafe(path, f"it is owned by uid {st.st_uid}, not {os.geteuid()}")
    if st.st_mode & 0o022:
        raise _unsafe(path, f"its mode {stat.S_IMODE(st.st_mode):04o} lets others write to it")


def _chain(root: Path, path: Path) -> list[Path]:
    """root and every directory below it down to path (path must lie under root)."""
    rel = path.relative_to(root)
    dirs = [root]
    for part in rel.parts:
        if part in ("", ".", ".."):
            raise _unsafe(path, "its path leaves the lab's state directory")
        dirs.append(dirs[-1] / part)
    return dirs


def check_dirs(root: Path, directory: Path) -> None:
    """Every directory from root down to directory exists, is ours and is writable by no one else."""
    for d in _chain(root, directory):
        _check_stat(d, os.lstat(d), want_dir=True)


def make_dirs(root: Path, directory: Path) -> None:
    """Create what is missing from root down to directory, each 0700 (mkdir's mode is umask-proof only
    downwards, so 0700 stays 0700), and check what was already there."""
    for d in _chain(root, directory):
        with suppress(FileExistsError):
            os.mkdir(d, DIR_MODE)
        _check_stat(d, os.lstat(d), want_dir=True)


def write_bytes(root: Path, path: Path, data: bytes) -> None:
    """Atomic and symlink-proof: a fresh temp file (O_EXCL|O_NOFOLLOW, a random name, 0600) in the same
    directory, then rename, which replaces whatever was at path (a planted symlink included) without following it."""
    make_dirs(root, path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(root: Path, path: Path, data: Any) -> None:
    write_bytes(root, path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def read_bytes(root: Path, path: Path) -> bytes:
    """The file's content after checking the directories above it and the file itself (O_NOFOLLOW, fstat)."""
    check_dirs(root, path.parent)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: path is a symlink
            raise _unsafe(path, "it is a symlink") from None
        raise
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        _check_stat(path, st, want_dir=False)
        data = f.read(MAX_STATE_FILE + 1)
    if len(data) > MAX_STATE_FILE:
        raise _unsafe(path, f"it is larger than {MAX_STATE_FILE} bytes")
    return data


def read_json(root: Path, path: Path) -> Any:
    data = read_bytes(root, path)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise LabStateError(f"{path} is not the JSON k8slab writes ({str(exc)[:120]}); "
                            "`k8slab destroy` removes the lab") from None


@contextmanager
def locked(root: Path, path: Path, what: str, create: bool, timeout: float = 120,
           waiting: Any = None) -> Iterator[None]:
    """Hold the lab's lock (flock on path). destroy deletes the lock file while holding it, so a waiter
    re-checks that the file it locked is still the one at path; if the directory is gone meanwhile, it is
    made again only when create is set (by up and destroy): any other command raises LabGoneError."""
    deadline = time.monotonic() + timeout
    told = False
    while True:
        if create:
            make_dirs(root, path.parent)
        elif not path.parent.exists():
            raise LabGoneError(f"{what} is not up (its state directory {path.parent} is gone)")
        else:
            check_dirs(root, path.parent)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
        except FileNotFoundError:
            continue  # the directory went away between the check and the open: look again
        try:
            _check_stat(path, os.fstat(fd), want_dir=False)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LabStateError(f"another k8slab command is still changing {what} "
                                            f"(lock {path} held for over {timeout:.0f} s)") from None
                    if waiting is not None and not told:
                        waiting(f"waiting for another k8slab command to finish with {what}")
                        told = True
                    time.sleep(0.05)
            held = os.fstat(fd)
            try:
                now = os.lstat(path)
                same = (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        os.close(fd)


# ---- records


@dataclass(frozen=True)
class RunMark:
    """Which process made a pod: its pid and start time (clock ticks since boot, /proc/PID/stat field 22),
    so a pid reused by another program is not mistaken for the owner."""
    pid: int
    start: int

    @classmethod
    def of_this_process(cls) -> RunMark:
        pid = os.getpid()
        return cls(pid, process_start(pid) or 0)

    def alive(self) -> bool:
        return process_start(self.pid) == self.start


def process_start(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19]) if len(fields) > 19 and fields[0] != "Z" else None


@dataclass(frozen=True)
class PodRecord:
    name: str
    node: str
    ip: str
    netns: str
    uts: str
    container_id: str
    cni_config: dict[str, Any]
    # [{name, image, command}] as asked for; a record of an older k8slab has none (a pod without processes)
    containers: list[dict[str, Any]] = field(default_factory=list)
    phase: str = "ready"  # "creating" until the pod has its address and containers
    # who made it; `run` names a verify or walkthrough whose pods go with it ("" for `pod run`'s pods, which stay)
    owner_pid: int = 0
    owner_start: int = 0
    run: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PodRecord:
        return cls(**data)

    @property
    def owner(self) -> RunMark:
        return RunMark(self.owner_pid, self.owner_start)

    def orphaned(self) -> bool:
        """Left by a command that died: half made, or a verify's or walkthrough's pod whose run is over."""
        return (self.phase != "ready" or bool(self.run)) and not self.owner.alive()


_TYPES = {"name": str, "node": str, "ip": str, "netns": str, "uts": str, "container_id": str, "cni_config": dict,
          "containers": list, "phase": str, "owner_pid": int, "owner_start": int, "run": str}


def validate_record(data: Any, *, expect_name: str, nodes: dict[str, IPv4Network], netns: str, uts: str,
                    ipam_dir: Any) -> PodRecord:
    """The record as a PodRecord if every field is what this lab itself would have written, else
    UnsafeStateError. nodes: node name -> its pod subnet; ipam_dir(node) -> host-local's dataDir."""
    def bad(why: str) -> UnsafeStateError:
        return UnsafeStateError(f"the record of pod {expect_name!r} is not one this lab wrote ({why}); refusing "
                                "to act on it. `k8slab destroy` removes the lab without reading it")

    if not isinstance(data, dict):
        raise bad("not a JSON object")
    unknown = sorted(set(data) - set(_TYPES))
    if unknown:
        raise bad(f"unknown fields {', '.join(map(repr, unknown))[:200]}")
    for key, kind in _TYPES.items():
        if key in data and (not isinstance(data[key], kind) or (kind is int and isinstance(data[key], bool))):
            raise bad(f"{key} is not a {kind.__name__}")
    missing = [k for k in ("name", "node", "ip", "netns", "uts", "container_id", "cni_config") if k not in data]
    if missing:
        raise bad(f"missing {', '.join(missing)}")
    if data["name"] != expect_name:
        raise bad(f"it names pod {str(data['name'])[:80]!r}")
    if data["node"] not in nodes:
        raise bad(f"node {str(data['node'])[:80]!r} is not one of the lab's")
    if data["netns"] != netns or data["container_id"] != netns:
        raise bad(f"its namespace {str(data['netns'])[:120]!r} is not {netns!r}")
    if data["uts"] != uts:
        raise bad(f"its UTS namespace file {str(data['uts'])[:120]!r} is not {uts!r}")
    if data["ip"]:
        try:
            if IPv4Address(data["ip"]) not in nodes[data["node"]]:
                raise ValueError
        except ValueError:
            raise bad(f"address {str(data['ip'])[:60]!r} is not in node {data['node']}'s pod subnet") from None
    if data.get("phase", "ready") not in PHASES:
        raise bad("unknown phase")
    cfg = data["cni_config"]
    if cfg.get("type") not in CNI_TYPES:
        raise bad(f"CNI plugin type {str(cfg.get('type'))[:80]!r} is not one of {', '.join(sorted(CNI_TYPES))}")
    ipam = cfg.get("ipam")
    if ipam is not None:
        if not isinstance(ipam, dict) or ipam.get("type") not in IPAM_TYPES:
            raise bad("its IPAM plugin is not host-local or calico-ipam")
        if ipam["type"] == "calico-ipam" and ipam.get("block") != str(nodes[data["node"]]):
            raise bad(f"its Calico block {str(ipam.get('block'))[:60]!r} is not node {data['node']}'s")
        if "dataDir" in ipam and ipam["dataDir"] != str(ipam_dir(data["node"])):
            raise bad(f"its IPAM data directory {str(ipam['dataDir'])[:120]!r} is not the lab's")
    for c in data.get("containers", []):
        if not (isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("image"), str)
                and isinstance(c.get("command", []), list) and all(isinstance(a, str) for a in c.get("command", []))):
            raise bad("a container entry is not {name, image, command}")
        if names.pod_name_problem(c["name"]):
            raise bad(f"container name {c['name'][:80]!r} is not a DNS label")
    return PodRecord.from_json(data)
