"""The emulated lab's state files (labs/netns/state.py): private whatever the umask, written through fresh
temp files, and refused on read when anyone else could have written them. Runs as any user; the cases
that need a file owned by another uid need root to chown it."""

from __future__ import annotations

import os
import stat
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from k8slab.labs.netns import state
from k8slab.labs.netns.state import UnsafeStateError

NOBODY = 65534


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "k8slab"


@pytest.fixture
def umask_000():
    old = os.umask(0)
    yield
    os.umask(old)


def test_dirs_0700_and_files_0600_whatever_the_umask(root, umask_000):
    path = root / "lab" / "pods" / "web.json"
    state.write_json(root, path, {"a": 1})
    assert [mode(p) for p in (root, root / "lab", root / "lab" / "pods")] == [0o700] * 3
    assert mode(path) == 0o600
    assert state.read_json(root, path) == {"a": 1}
    with state.locked(root, root / "lab" / "lock", "lab 'x'", create=True):
        assert mode(root / "lab" / "lock") == 0o600
    assert [p.name for p in (root / "lab" / "pods").iterdir()] == ["web.json"]  # no temp file left


def test_a_dir_others_can_write_is_refused_on_read(root):
    path = root / "lab" / "lab.json"
    state.write_json(root, path, {})
    os.chmod(root / "lab", 0o777)  # as an older k8slab left it under umask 000
    with pytest.raises(UnsafeStateError, match=r"lab: its mode 0777 lets others write to it.*k8slab destroy"):
        state.read_json(root, path)
    with pytest.raises(UnsafeStateError):
        state.write_json(root, path, {})
    with pytest.raises(UnsafeStateError), state.locked(root, root / "lab" / "lock", "lab", create=False):
        pass


def test_a_file_others_can_write_is_refused(root):
    path = root / "lab" / "pods" / "web.json"
    state.write_json(root, path, {})
    os.chmod(path, 0o666)
    with pytest.raises(UnsafeStateError, match="mode 0666"):
        state.read_json(root, path)


def test_a_symlink_is_never_followed_on_read(root, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text('{"type": "../../evil"}')
    pods = root / "lab" / "pods"
    state.make_dirs(root, pods)
    (pods / "web.json").symlink_to(secret)
    with pytest.raises(UnsafeStateError, match="symlink"):
        state.read_json(root, pods / "web.json")
    (root / "lab" / "uts").symlink_to(tmp_path)  # a symlinked directory in the chain
    with pytest.raises(UnsafeStateError, match="uts: it is a symlink"):
        state.read_json(root, root / "lab" / "uts" / "secret.json")


def test_writes_replace_a_planted_symlink_instead_of_following_it(root, tmp_path):
    """The issue's `.web.json.tmp` attack: the temp name is random and made O_EXCL, and the rename replaces
    a symlink at the target itself, so the file it pointed to is never written."""
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    pods = root / "lab" / "pods"
    state.make_dirs(root, pods)
    (pods / ".web.json.tmp").symlink_to(victim)
    (pods / "web.json").symlink_to(victim)
    state.write_json(root, pods / "web.json", {"name": "web"})
    assert victim.read_text() == "keep me"
    assert not (pods / "web.json").is_symlink() and state.read_json(root, pods / "web.json") == {"name": "web"}


def test_a_huge_or_non_json_state_file_is_a_clear_error(root):
    path = root / "lab" / "lab.json"
    state.write_bytes(root, path, b"\xff\xfe")
    with pytest.raises(state.LabStateError, match="not the JSON k8slab writes"):
        state.read_json(root, path)
    state.write_bytes(root, path, b" " * (state.MAX_STATE_FILE + 1))
    with pytest.raises(UnsafeStateError, match="larger than"):
        state.read_json(root, path)


@pytest.mark.skipif(os.geteuid() != 0, reason="planting a file owned by another uid needs root (chown)")
def test_a_file_or_dir_owned_by_another_user_is_refused(root):
    path = root / "lab" / "pods" / "web.json"
    state.write_json(root, path, {})
    os.chown(path, NOBODY, NOBODY)
    with pytest.raises(UnsafeStateError, match=f"owned by uid {NOBODY}"):
        state.read_json(root, path)
    os.chown(path, 0, 0)
    os.chown(root / "lab", NOBODY, NOBODY)
    with pytest.raises(UnsafeStateError, match=f"lab: it is owned by uid {NOBODY}"):
        state.read_json(root, path)


def test_a_lock_waiter_does_not_recreate_a_destroyed_lab(root):
    lock = root / "lab" / "lock"
    with state.locked(root, lock, "lab", create=True):
        pass
    (lock).unlink()
    (root / "lab").rmdir()
    with pytest.raises(state.LabGoneError, match="not up"), state.locked(root, lock, "lab", create=False):
        pass
    assert not (root / "lab").exists()


# ---- records: data, never a path or a program


def good_record(**changes) -> dict:
    data = {"name": "web", "node": "node-1", "ip": "10.244.1.2", "netns": "k8slab-d_pod-web",
            "uts": "/run/k8slab/d/uts/pod-web", "container_id": "k8slab-d_pod-web",
            "cni_config": {"type": "bridge", "ipam": {"type": "host-local", "dataDir": "/run/k8slab/d/ipam/node-1"}},
            "containers": [{"name": "web", "image": "httpd", "command": []}]}
    return {**data, **changes}


def validate(data: dict) -> state.PodRecord:
    return state.validate_record(data, expect_name="web", nodes={"node-1": IPv4Network("10.244.1.0/24")},
                                 netns="k8slab-d_pod-web", uts="/run/k8slab/d/uts/pod-web",
                                 ipam_dir=lambda node: f"/run/k8slab/d/ipam/{node}")


def test_the_lab_s_own_record_is_accepted():
    rec = validate(good_record())
    assert (rec.name, rec.ip, rec.phase) == ("web", "10.244.1.2", "ready")


@pytest.mark.parametrize("changes, why", [
    ({"cni_config": {"type": "../../../tmp/evil"}}, "CNI plugin type"),
    ({"cni_config": {"type": "bridge", "ipam": {"type": "../evil"}}}, "not host-local"),
    ({"cni_config": {"type": "bridge", "ipam": {"type": "host-local", "dataDir": "/etc"}}}, "IPAM data directory"),
    ({"netns": "../../proc/1/ns/net"}, "namespace"),
    ({"container_id": "other"}, "namespace"),
    ({"uts": "/proc/1/ns/uts"}, "UTS namespace file"),
    ({"name": "other"}, "names pod 'other'"),
    ({"node": "../node"}, "not one of the lab's"),
    ({"ip": "192.168.56.1"}, "pod subnet"),
    ({"owner_pid": "1"}, "owner_pid is not a int"),
    ({"evil": 1}, "unknown fields"),
    ({"containers": [{"name": "../x", "image": "busybox", "command": []}]}, "container name"),
])
def test_a_planted_record_is_refused(changes, why):
    with pytest.raises(UnsafeStateError, match=why):
        validate(good_record(**changes))


def test_the_run_mark_tells_a_live_owner_from_a_dead_or_reused_pid():
    me = state.RunMark.of_this_process()
    assert me.alive()
    assert not state.RunMark(me.pid, me.start + 1).alive()  # the pid reused by a later process
    assert not state.RunMark(2 ** 22 + 1, 1).alive()  # above pid_max: no such process
    creating = state.PodRecord(**{**good_record(), "phase": "creating", "owner_pid": me.pid, "owner_start": me.start})
    assert not creating.orphaned()
    assert state.PodRecord(**{**creating.to_json(), "owner_start": me.start + 1}).orphaned()
    ran = state.PodRecord(**{**good_record(), "run": "verify", "owner_pid": me.pid, "owner_start": me.start + 1})
    assert ran.orphaned()
    assert not state.PodRecord(**good_record()).orphaned()  # `pod run`'s pods outlive their command
