"""scripts/setup.sh on simulated hosts: the commands it can meet (uname, vagrant, VBoxManage, dpkg-query,
apt-get, id, python3.x) are stubs in a PATH that holds nothing else, so each case is the host it names.
A stub that must not run (dpkg off Debian, apt-get as a user) leaves a mark and fails the case."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "scripts" / "setup.sh"
TOOLS = ("dirname", "grep", "cmp", "cp", "cat")  # what the script runs besides the stubs
OLD_PYTHON = 'case "$1" in --version) echo "Python 3.9.6";; *) exit 1;; esac'
NEW_PYTHON_NO_VENV = ('case "$1" in --version) echo "Python 3.12.3";; -c) case "$2" in *ensurepip*) exit 1;; '
                      '*) exit 0;; esac;; esac')


def host(tmp_path: Path, *, system: str, stubs: dict[str, str], uid: int = 0) -> Path:
    """A checkout copy whose setup.sh sees only the given commands (plus basic tools)."""
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(SETUP, checkout / "scripts" / "setup.sh")
    (checkout / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        (bin_dir / tool).symlink_to(shutil.which(tool))
    marks = tmp_path / "marks"
    marks.mkdir()
    scripts = {"uname": f"echo {system}", "id": f"echo {uid}", **stubs}
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\necho \"$0 $*\" >> {marks}/{name}\n{body}\n")
        path.chmod(0o755)
    return checkout


def run(checkout: Path, mode: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(checkout.parent / "bin"), "HOME": str(checkout.parent)}
    return subprocess.run(["/bin/bash", str(checkout / "scripts" / "setup.sh"), mode], capture_output=True,
                          text=True, env=env, timeout=60, check=False)


def ran(checkout: Path, command: str) -> bool:
    return (checkout.parent / "marks" / command).exists()


def test_macos_without_vagrant_says_what_to_install(tmp_path):
    checkout = host(tmp_path, system="Darwin", stubs={"python3": OLD_PYTHON})
    result = run(checkout, "lab")
    assert result.returncode == 1
    assert "Vagrant (2.4.9 or later) and VirtualBox 7.1 or 7.2 on Darwin" in result.stderr
    assert not ran(checkout, "python3")


def test_macos_with_virtualbox_checks_only_python(tmp_path):
    stubs = {"vagrant": "echo 'Vagrant 2.4.9'", "VBoxManage": "echo 7.2.4r170995", "ssh": "true",
             "python3": OLD_PYTHON}
    checkout = host(tmp_path, system="Darwin", stubs=stubs)
    result = run(checkout, "lab")
    assert result.returncode == 1
    assert "needs Python 3.11 or later; found: Python 3.9.6" in result.stderr and "brew install" in result.stderr
    assert not (checkout / ".venv").exists()


def test_linux_with_virtualbox_never_touches_dpkg(tmp_path):
    stubs = {"vagrant": "echo 'Vagrant 2.4.9'", "VBoxManage": "echo 7.1.4r165100", "ssh": "true",
             "dpkg-query": "exit 1", "apt-get": "exit 1", "python3.12": NEW_PYTHON_NO_VENV}
    checkout = host(tmp_path, system="Linux", stubs=stubs, uid=1000)
    result = run(checkout, "lab")
    # It went as far as the virtualenv (this python has none) without a Debian package in sight.
    assert result.returncode == 1 and "apt install python3-venv" in result.stderr
    assert not ran(checkout, "dpkg-query") and not ran(checkout, "apt-get")


def test_linux_off_debian_without_virtualbox_names_both_ways(tmp_path):
    checkout = host(tmp_path, system="Linux", stubs={"python3": OLD_PYTHON})
    result = run(checkout, "lab")
    assert result.returncode == 1
    assert "emulated lab needs Debian/Ubuntu packages" in result.stderr and "Vagrant and VirtualBox" in result.stderr


def test_debian_user_gets_the_apt_command_for_the_emulated_lab_only(tmp_path):
    stubs = {"dpkg-query": "exit 1", "apt-get": "exit 1", "python3": OLD_PYTHON}
    checkout = host(tmp_path, system="Linux", stubs=stubs, uid=1000)
    result = run(checkout, "lab")
    assert result.returncode == 1 and "sudo apt-get install containernetworking-plugins" in result.stderr
    for test_only in ("debootstrap", "chromium", "graphviz", "vagrant"):
        assert test_only not in result.stderr
    assert not ran(checkout, "apt-get")


def test_make_test_off_debian_is_refused_clearly(tmp_path):
    checkout = host(tmp_path, system="Darwin", stubs={"python3": OLD_PYTHON})
    result = run(checkout, "test")
    assert result.returncode == 1 and "Debian/Ubuntu as root" in result.stderr


def test_debian_root_installs_the_test_packages_and_vagrant_without_recommends(tmp_path):
    stubs = {"dpkg-query": "exit 1", "apt-get": "exit 0", "python3": OLD_PYTHON}
    checkout = host(tmp_path, system="Linux", stubs=stubs, uid=0)
    run(checkout, "test")
    calls = (tmp_path / "marks" / "apt-get").read_text().splitlines()
    assert any("--no-install-recommends vagrant" in c for c in calls)
    assert any("debootstrap" in c and "busybox" in c and "vagrant" not in c for c in calls)
