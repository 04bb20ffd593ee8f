"""The issue's attacks on the emulated lab's state directory, planted as a local non-root user could plant
them if the directory ever let them (files owned by another uid, modes an older k8slab left under umask
000): root must refuse, and never run, write, unmount or signal anything outside the lab."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from k8slab.labs.base import InvalidNameError
from k8slab.labs.netns import NetnsLab, names, nsfs, state
from k8slab.labs.netns.state import UnsafeStateError

from .labtools import default_spec, run_cli, spec_data, unique_name, write_spec

NOBODY = 65534


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def lab(labs) -> NetnsLab:
    old = os.umask(0)  # the umask that made the state world-writable
    try:
        lab = labs(default_spec(unique_name("s")))
        lab.up()
        lab.pod_start("web", lab.spec.workers[0].name)
    finally:
        os.umask(old)
    return lab


def plant(lab: NetnsLab, pod: str, **changes) -> Path:
    """Rewrite a pod's record as an attacker would: changed fields, the file given to uid 65534."""
    path = lab.paths.pod_file(pod)
    data = {**json.loads(path.read_text()), **changes}
    path.write_text(json.dumps(data))
    os.chown(path, NOBODY, NOBODY)
    return path


def test_state_is_private_whatever_the_umask(lab):
    p = lab.paths
    for d in (p.dir, p.pods_dir, p.uts_dir):
        assert (mode(d), os.lstat(d).st_uid) == (0o700, 0), d
    for f in (p.lab_file, p.lock, p.pod_file("web"), p.cni_conf(lab.spec.nodes[0].name)):
        assert (mode(f), os.lstat(f).st_uid) == (0o600, 0), f


def test_a_planted_plugin_type_is_never_run(lab, tmp_path):
    marker = tmp_path / "ran-as-root"
    evil = tmp_path / "evil"
    evil.write_text(f"#!/bin/sh\nid > {marker}\n")
    evil.chmod(0o755)
    relative = os.path.relpath(evil, "/usr/lib/cni")
    path = plant(lab, "web", cni_config={"type": relative})
    with pytest.raises(UnsafeStateError, match=f"owned by uid {NOBODY}"):
        lab.pod_delete("web")
    os.chown(path, 0, 0)  # even root's own file naming another program is refused, field by field
    with pytest.raises(UnsafeStateError, match="CNI plugin type"):
        lab.pod_delete("web")
    assert not marker.exists()


def test_a_netns_pointing_at_the_host_signals_nothing(lab):
    bystander = subprocess.Popen(["sleep", "60"])  # a process of the host's own network namespace
    try:
        path = plant(lab, "web", netns="../../proc/1/ns/net")
        os.chown(path, 0, 0)
        os.chmod(path, 0o600)
        with pytest.raises(UnsafeStateError, match="namespace"):
            lab.pod_delete("web")
        with pytest.raises(UnsafeStateError):
            lab.pods()
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_a_planted_tmp_symlink_makes_root_write_nothing(lab, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    os.chmod(lab.paths.pods_dir, 0o777)  # as an older k8slab left it
    tmp = lab.paths.pods_dir / ".client.json.tmp"
    tmp.symlink_to(victim)
    os.lchown(tmp, NOBODY, NOBODY)
    with pytest.raises(UnsafeStateError, match="pods: its mode 0777"):
        lab.pod_start("client", lab.spec.workers[0].name)
    assert victim.read_text() == "keep me"
    assert names.pod_netns(lab.spec.name, "client") not in nsfs.list_netns(lab.prefix)


def test_a_planted_uts_symlink_makes_destroy_unmount_nothing(lab, tmp_path):
    target = tmp_path / "mounted"
    target.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(target)], check=True)
    try:
        os.chmod(lab.paths.uts_dir, 0o777)
        link = lab.paths.uts_dir / "evil"
        link.symlink_to(target)
        os.lchown(link, NOBODY, NOBODY)
        lab.destroy()
        assert os.path.ismount(target), "destroy unmounted what a planted symlink pointed at"
        assert not lab.paths.dir.exists()
    finally:
        subprocess.run(["umount", str(target)], check=False)


def test_destroy_removes_a_lab_whose_state_it_cannot_trust(lab):
    os.chown(lab.paths.dir, NOBODY, NOBODY)
    with pytest.raises(UnsafeStateError):
        lab.pods()
    lab.destroy()
    assert not lab.paths.dir.exists() and not lab.has_leftovers()


def test_pod_names_are_checked_before_any_path_is_made(lab, tmp_path):
    for bad in ("../lab", "../../../../any/dir/evil", "web\n", "wéb", "WEB"):
        with pytest.raises(InvalidNameError, match="not a DNS label"):
            lab.pod_argv(bad)
        with pytest.raises(InvalidNameError):
            lab.pod_delete(bad)
    spec_path = write_spec(tmp_path / "lab.yaml", spec_data(), lab.spec.name)
    for argv in (("pod", "exec", "../lab", "--", "id"), ("pod", "delete", "../lab"),
                 ("pod", "run", "../lab"), ("trace", "../lab", "web"), ("node", "exec", "../x", "--", "id")):
        out = run_cli(spec_path, *argv)
        assert out.returncode == 2, (argv, out.stderr)
        assert "'../lab' is not a DNS label" in out.stderr or "'../x' is not a DNS label" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr


def test_the_lock_file_is_not_recreated_after_destroy(lab):
    lab.destroy()
    with pytest.raises(state.LabStateError, match="not up"):
        lab.pod_delete("web")
    assert not lab.paths.dir.exists()


def test_status_warns_when_the_lab_was_built_from_another_spec(lab, tmp_path):
    data = spec_data()
    data["nodes"][-1]["ip"] = "192.168.56.99"
    out = run_cli(write_spec(tmp_path / "lab.yaml", data, lab.spec.name), "status", "--backend", "netns")
    assert out.returncode == 0, out.stderr
    assert "built from a different spec" in out.stdout + out.stderr
