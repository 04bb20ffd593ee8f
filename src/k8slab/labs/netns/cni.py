"""Running the real CNI plugins (containernetworking-plugins) the way a container runtime does:
the config as JSON on stdin, the CNI_* variables in the environment, and the process started in
the node's network namespace so that the bridge plugin makes cni0 there."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from k8slab.errors import CommandFailedError
from k8slab.labs.netns import nsfs

CNI_DIRS = (Path("/usr/lib/cni"), Path("/opt/cni/bin"))  # Debian's package, then the upstream tarball's place
NEEDED_PLUGINS = ("loopback", "bridge", "host-local")
ALLOWED_TYPES = frozenset({"loopback", "bridge"})  # the plugins k8slab itself invokes (host-local via bridge)


def find_plugin_dir() -> Path | None:
    for d in CNI_DIRS:
        if all(os.access(d / p, os.X_OK) for p in NEEDED_PLUGINS):
            return d
    return None


def invoke(plugin_dir: Path, command: str, config: dict[str, Any], *, container_id: str, netns: Path,
           ifname: str, run_in: Path, what: str, timeout: float = 60) -> dict[str, Any]:
    """Run config's plugin with CNI_COMMAND=command; returns its parsed result ({} for DEL)."""
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": str(netns),
        "CNI_IFNAME": ifname,
        "CNI_PATH": str(plugin_dir),
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    }
    if config.get("type") not in ALLOWED_TYPES:  # a config is data: it names one of the lab's plugins or nothing
        raise CommandFailedError(f"refusing to run CNI plugin {str(config.get('type'))[:80]!r} for {what}: the lab "
                                 f"uses only {', '.join(sorted(ALLOWED_TYPES))}")
    argv = [str(plugin_dir / config["type"])]
    with nsfs.entered(run_in):
        # A session of its own: a Ctrl-C on the terminal must not cut a plugin short (a DEL half done leaks an
        # address); k8slab itself decides when to stop, after the plugin has finished.
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                start_new_session=True)
    try:
        out, err = proc.communicate(json.dumps(config).encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise CommandFailedError(f"CNI {config['type']} {command} for {what} did not finish in {timeout:.0f} s") \
            from None
    if proc.returncode != 0:
        raise CommandFailedError(f"CNI {config['type']} {command} for {what} failed: {_error_text(out, err)}")
    text = out.decode().strip()
    return json.loads(text) if text else {}


def _error_text(out: bytes, err: bytes) -> str:
    """CNI plugins report errors as JSON ({code, msg, details}) on stdout."""
    try:
        data = json.loads(out)
        msg = data.get("msg", "")
        details = data.get("details", "")
        return f"{msg} ({details})" if details else msg
    except (ValueError, AttributeError):
        return (err or out).decode(errors="replace").strip() or "no message"


def result_ip(result: dict[str, Any]) -> str:
    """The pod's address from a CNI 0.3.x/1.0 result: the first IPv4 of the container's interface."""
    for ip in result.get("ips", []):
        address = ip.get("address", "")
        if "." in address:
            return address.split("/")[0]
    raise CommandFailedError(f"the CNI bridge plugin returned no IPv4 address: {json.dumps(result)}")
