"""Can the emulated lab run here? Every missing piece, each with the command that installs it."""

from __future__ import annotations

import os
import shutil
import sys

from k8slab.labs.netns import cni

# program -> Debian package that ships it
TOOLS = {
    "ip": "iproute2",
    "nsenter": "util-linux",
    "iptables-restore": "iptables",
    "traceroute": "traceroute",
    "ping": "iputils-ping",
    # containers (containers.py) and the images' programs (images.py)
    "unshare": "util-linux",
    "setsid": "util-linux",
    "busybox": "busybox",
    # the cluster DNS pod (dns.py)
    "dnsmasq": "dnsmasq-base",
}


SBIN = "/usr/sbin:/sbin"


def tool_problems(path: str, root: bool) -> list[str]:
    """The tools missing from PATH. The lab runs them through this very PATH (`ip netns exec` looks them
    up there), so one installed in /usr/sbin but not on PATH is a problem too, named with its fix.
    Without root, sudo's PATH (which has the sbin directories) is the one that will count."""
    look_in = path if root else f"{path}:{SBIN}"
    missing = [(tool, pkg) for tool, pkg in TOOLS.items() if shutil.which(tool, path=look_in) is None]
    off_path = [tool for tool, _ in missing if shutil.which(tool, path=SBIN)]
    absent = [(tool, pkg) for tool, pkg in missing if tool not in off_path]
    found = []
    if off_path:
        found.append(f"{', '.join(off_path)} installed but not on PATH: "
                     f"export PATH=$PATH:{SBIN} (or run with sudo, whose PATH has them)")
    if absent:
        packages = " ".join(dict.fromkeys(p for _, p in absent))
        found.append(f"{', '.join(t for t, _ in absent)} missing: apt-get install {packages}")
    return found


def teardown_problems() -> list[str]:
    """What removing a lab needs: root on Linux, no tools (a lab must stay removable after one is uninstalled)."""
    if sys.platform != "linux":
        return ["needs Linux network namespaces (use a Linux machine or WSL2)"]
    if os.geteuid() != 0:
        return ["needs root (network namespaces): run with sudo"]
    return []


def problems() -> list[str]:
    if sys.platform != "linux":
        return teardown_problems()
    found = teardown_problems()
    if not os.path.exists("/proc/thread-self/ns/net"):
        found.append("this kernel has no network namespaces (/proc/thread-self/ns/net is missing)")
    if cni.find_plugin_dir() is None:
        where = " or ".join(str(d) for d in cni.CNI_DIRS)
        found.append(f"CNI plugins ({', '.join(cni.NEEDED_PLUGINS)}) missing in {where}: "
                     "apt-get install containernetworking-plugins")
    found += tool_problems(os.environ.get("PATH", ""), root=os.geteuid() == 0)
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        found.append("the Python package pyroute2 is missing: run `make setup` (or pip install pyroute2)")
    return found


def unavailable_reason() -> str | None:
    found = problems()
    return "; ".join(found) if found else None


def teardown_unavailable_reason() -> str | None:
    found = teardown_problems()
    return "; ".join(found) if found else None
