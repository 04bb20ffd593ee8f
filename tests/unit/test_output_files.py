"""Reports, diagrams and captures never follow a symlink planted at their target (the issue: verify --html/
--junit and diagram -o overwrote the link's target as root): a fresh temp file beside the target, renamed
onto it, so the link itself is replaced; a failed write leaves neither a temp file nor half a target."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from k8slab.errors import OutputPathError
from k8slab.render.output_files import output_file, write_output

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534


@pytest.fixture
def victim(tmp_path) -> Path:
    path = tmp_path / "victim"
    path.write_text("keep me")
    return path


def test_a_symlink_at_the_target_is_replaced_not_followed(tmp_path, victim):
    out = tmp_path / "report.html"
    out.symlink_to(victim)
    write_output(out, "<html>", "HTML report")
    assert victim.read_text() == "keep me"
    assert not out.is_symlink() and out.read_text() == "<html>"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "victim"]  # no temp file left


def test_a_planted_temp_name_is_not_used(tmp_path, victim):
    """The old fixed names (.NAME.tmp, .NAME.partial) are not the ones written: the temp name is random."""
    out = tmp_path / "cap.pcap"
    for name in (f".{out.name}.tmp", f".{out.name}.partial"):
        (tmp_path / name).symlink_to(victim)
    write_output(out, b"data", "capture")
    assert victim.read_text() == "keep me" and out.read_bytes() == b"data"


def test_the_file_gets_the_mode_a_plain_write_would(tmp_path):
    old = os.umask(0o022)
    try:
        out = write_output(tmp_path / "junit.xml", "<x/>", "JUnit XML")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_a_failed_write_leaves_the_old_target_and_no_temp_file(tmp_path):
    out = tmp_path / "diagram.svg"
    out.write_text("old")
    with pytest.raises(RuntimeError), output_file(out, "diagram") as f:
        f.write(b"half")
        raise RuntimeError("rendering failed")
    assert out.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["diagram.svg"]


def test_a_directory_target_is_refused_before_any_work(tmp_path):
    with pytest.raises(OutputPathError, match="it is a directory"):
        write_output(tmp_path, "x", "HTML report")


@pytest.mark.skipif(os.geteuid() != 0, reason="a link owned by another user in a sticky directory needs root to plant")
def test_root_never_follows_a_link_another_user_planted_in_a_sticky_directory(tmp_path, victim):
    """The issue's case (/tmp, fs.protected_symlinks=0 makes no difference): the link is replaced, not followed."""
    shared = tmp_path / "tmp"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    out = shared / "report.html"
    out.symlink_to(victim)
    os.lchown(out, NOBODY, NOBODY)
    write_output(out, "<html>", "HTML report")
    assert victim.read_text() == "keep me"
    assert not out.is_symlink() and out.read_text() == "<html>" and out.stat().st_uid == 0


def test_diagram_o_through_the_cli_replaces_a_planted_link(tmp_path, victim):
    out = tmp_path / "lab.svg"
    out.symlink_to(victim)
    res = subprocess.run([sys.executable, "-m", "k8slab", "--spec", str(ROOT / "lab.yaml"), "diagram", "-o", str(out),
                          "--backend", "netns"], capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert res.returncode == 0, res.stderr
    assert victim.read_text() == "keep me"
    assert not out.is_symlink() and out.read_text().lstrip().startswith("<")
