"""A throwaway Debian 12 root filesystem for applying the roles through Ansible's chroot connection.

Built once per test session with debootstrap from the Debian mirror this machine's apt uses, and
removed at the end. Nothing is mounted in the host's mount namespace: every run that needs /proc
and /sys inside the rootfs does it in a private mount namespace (unshare --mount), so the mounts
vanish with the process, also when it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SUITE = "bookworm"
# What the lab's Vagrant box (debian/bookworm64) has and a minbase rootfs lacks: the roles rely on
# python3 (Ansible), iproute2 (network facts), systemd (systemctl), kmod and procps (modprobe, sysctl).
# python3-apt backs Ansible's apt module; where it is missing Ansible installs it on the fly, which
# needs the network the playbook's namespace does not have.
BOX_PACKAGES = ("python3", "python3-apt", "iproute2", "systemd", "kmod", "procps")


def apt_sources_text() -> list[tuple[str, str]]:
    """(file name, text) of every active apt source file of this machine."""
    paths = [Path("/etc/apt/sources.list")] + sorted(Path("/etc/apt/sources.list.d").glob("*"))
    return [(p.name, p.read_text()) for p in paths if p.is_file() and p.suffix in (".list", ".sources")]


def debian_mirror(sources: list[tuple[str, str]], suite: str = SUITE) -> str | None:
    """The first mirror serving `suite` in one-line (.list) or deb822 (.sources) apt sources."""
    for name, text in sources:
        if name.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.MULTILINE))
                if "deb" in fields.get("Types", "").split() and suite in fields.get("Suites", "").split():
                    return fields.get("URIs", "").split()[0]
        else:
            for line in text.splitlines():
                m = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)\s", line)
                if m and m.group(2) == suite:
                    return m.group(1)
    return None


def mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


@pytest.fixture(scope="session")
def debian_rootfs() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root: debootstrap, chroot and network namespaces (run the suite as root, as CI does)")
    for program in ("debootstrap", "unshare", "chroot", "ip"):
        if shutil.which(program) is None:
            pytest.skip(f"{program} is not installed (`make setup` installs debootstrap)")
    mirror = debian_mirror(apt_sources_text())
    if mirror is None:
        pytest.fail(f"no apt source of this machine serves Debian {SUITE}; debootstrap needs a mirror")
    workdir = Path(tempfile.mkdtemp(prefix="k8slab-rootfs-"))
    root = workdir / SUITE
    try:
        result = subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(BOX_PACKAGES)}",
                                 SUITE, str(root), mirror], capture_output=True, text=True, timeout=600,
                                check=False)
        assert result.returncode == 0, f"debootstrap from {mirror} failed:\n{result.stdout[-3000:]}{result.stderr}"
        yield root
    finally:
        leftover = mounts_under(workdir)
        assert not leftover, f"still mounted under the rootfs, not removing it: {leftover}"
        shutil.rmtree(workdir)
