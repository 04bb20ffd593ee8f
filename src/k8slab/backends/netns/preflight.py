"""Can the emulated lab run here? Every missing piece, each with the command that installs it."""

from __future__ import annotations

import os
import shutil
import sys

from k8slab.backends.netns import cni

# program -> Debian package that ships it
TOOLS = {
    "ip": "iproute2",
    "nsenter": "util-linux",
    "iptables-restore": "iptables",
    "traceroute": "traceroute",
    "ping": "iputils-ping",
}


def problems() -> list[str]:
    if sys.platform != "linux":
        return ["needs Linux network namespaces (use a Linux machine or WSL2)"]
    found = []
    if os.geteuid() != 0:
        found.append("needs root (network namespaces): run with sudo")
    if not os.path.exists("/proc/thread-self/ns/net"):
        found.append("this kernel has no network namespaces (/proc/thread-self/ns/net is missing)")
    if cni.find_plugin_dir() is None:
        where = " or ".join(str(d) for d in cni.CNI_DIRS)
        found.append(f"CNI plugins ({', '.join(cni.NEEDED_PLUGINS)}) missing in {where}: "
                     "apt-get install containernetworking-plugins")
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    missing = [(tool, pkg) for tool, pkg in TOOLS.items() if shutil.which(tool, path=path) is None]
    if missing:
        tools = ", ".join(t for t, _ in missing)
        packages = " ".join(dict.fromkeys(p for _, p in missing))
        found.append(f"{tools} missing: apt-get install {packages}")
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        found.append("the Python package pyroute2 is missing: run `make setup` (or pip install pyroute2)")
    return found


def unavailable_reason() -> str | None:
    found = problems()
    return "; ".join(found) if found else None
