"""Real sshd servers standing in for a lab's machines: one network namespace per node, holding the node's
spec address on its loopback, with Debian's sshd listening there. Clients reach them through
`ip netns exec NS nc %h %p` as ProxyCommand, so no traffic touches the default namespace."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from k8slab.provision.inventory import SshEndpoint
from k8slab.spec.model import LabSpec

NS_PREFIX = "k8slab-h2-"
TOOLS = ("sshd", "ssh-keygen", "nc", "ip", "unshare")


def missing_tools() -> list[str]:
    found = {t: shutil.which(t) or (Path("/usr/sbin") / t).exists() for t in TOOLS}
    return [t for t, ok in found.items() if not ok]


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


@contextmanager
def sshd_nodes(spec: LabSpec, workdir: Path, bin_dir: Path | None = None) -> Iterator[dict[str, SshEndpoint]]:
    """Endpoints (as root, by key) of one sshd per spec node; everything is removed on exit. bin_dir comes
    first on the sessions' PATH (stand-ins for programs a real node has, such as kubectl)."""
    tag = f"{NS_PREFIX}{os.getpid()}"
    key = workdir / "id_ed25519"
    hostkey = workdir / "ssh_host_ed25519_key"
    _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
    _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey))
    (workdir / "authorized_keys").write_text(Path(f"{key}.pub").read_text())
    namespaces: list[str] = []
    servers: list[subprocess.Popen] = []
    try:
        endpoints = {}
        for node in spec.nodes:
            ns = f"{tag}-{node.index}"
            _sh("ip", "netns", "add", ns)
            namespaces.append(ns)
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
            _sh("ip", "-n", ns, "addr", "add", f"{node.ip}/32", "dev", "lo")
            config = workdir / f"sshd_config-{node.name}"
            config.write_text("\n".join([
                f"ListenAddress {node.ip}", "Port 22", f"HostKey {hostkey}",
                f"AuthorizedKeysFile {workdir / 'authorized_keys'}", "PermitRootLogin prohibit-password",
                "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
                # pytest's tmp dirs sit under the world-writable /tmp, which StrictModes refuses
                "StrictModes no", "PidFile none", "Subsystem sftp internal-sftp",
                *([f"SetEnv PATH={bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
                  if bin_dir else []), ""]))
            # sshd needs /run/sshd; a tmpfs /run in a private mount namespace gives it one without
            # creating anything on the host.
            servers.append(subprocess.Popen(
                ["ip", "netns", "exec", ns, "unshare", "--mount", "--propagation", "private", "sh", "-c",
                 (f"mount -t tmpfs k8slab-h2 /run && mkdir -m 755 /run/sshd && exec /usr/sbin/sshd -D -f {config} "
                 f"-E {workdir / f'sshd-{node.name}.log'}")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            endpoints[node.name] = SshEndpoint(name=node.name, hostname=str(node.ip), port=22, user="root",
                                               identity_file=str(key), proxy_command=f"ip netns exec {ns} nc %h %p")
        for node, ns in zip(spec.nodes, namespaces):
            _wait_listening(ns, str(node.ip), workdir / f"sshd-{node.name}.log")
        yield endpoints
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        for ns in namespaces:
            subprocess.run(["ip", "netns", "delete", ns], check=False, capture_output=True)


def _wait_listening(ns: str, ip: str, log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if subprocess.run(["ip", "netns", "exec", ns, "nc", "-z", "-w", "1", ip, "22"], check=False,
                          capture_output=True).returncode == 0:
            return
        time.sleep(0.05)
    raise RuntimeError(f"sshd in {ns} did not listen on {ip}:22: {log.read_text()}")


@contextmanager
def stand_in_cluster(spec: LabSpec, workdir: Path, kubectl: str, files: dict[str, str]) -> Iterator[Path]:
    """The inventory file of a lab whose nodes are sshds and whose `kubectl` is the given shell script, with
    the files it prints (recorded cluster output) beside it; skips where the tools are missing."""
    import pytest

    from k8slab.provision.inventory import write_inventory

    missing = missing_tools()
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (make setup installs openssh-server, netcat-openbsd)")
    bin_dir = workdir / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(kubectl)
    (bin_dir / "kubectl").chmod(0o755)
    for name, text in files.items():
        (bin_dir / name).write_text(text)
    (workdir / "sshd").mkdir()
    with sshd_nodes(spec, workdir / "sshd", bin_dir) as endpoints:
        yield write_inventory(spec, endpoints, workdir / "hosts.yml")
