"""Packet captures to a pcap file: tcpdump writes the capture to its stdout (`-w -`, flushed per packet
with `-U`) and k8slab saves the stream. On the emulated lab tcpdump runs in the node's or the pod's
namespaces on this machine; on an SSH lab (VirtualBox) it runs on the node over `ssh`, which carries
the bytes back unchanged (no terminal, so nothing rewrites them). The argv is computed here, pure."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PCAP_MAGIC = {b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"}

# On a containerd node a pod's network namespace is one of `ip netns`'s cni-* entries; the one that holds
# the pod's address is the pod's. $1 is that address, the rest the command to run there.
IN_POD_NETNS = ('ip="$1"; shift; for ns in $(ip netns list | cut -d" " -f1); do '
                'if ip -n "$ns" -4 -o addr show | grep -qF " $ip/"; then exec ip netns exec "$ns" "$@"; fi; done; '
                'echo "no network namespace on $(hostname) holds $ip" >&2; exit 1')


@dataclass(frozen=True)
class Capture:
    iface: str
    count: int | None = None
    seconds: float | None = None
    bpf: tuple[str, ...] = ()

    def tcpdump(self) -> list[str]:
        """tcpdump writing pcap to stdout; --seconds sends it SIGINT, after which it flushes and exits.
        --immediate-mode: without it the kernel hands packets over a buffer block at a time (TPACKET_V3, up to
        a second late), and the packets of the last block when SIGINT comes are never written."""
        argv = ["tcpdump", "-n", "-i", self.iface, "--immediate-mode", "-U", "-w", "-"]
        if self.count:
            argv += ["-c", str(self.count)]
        argv += list(self.bpf)
        return ["timeout", "-s", "INT", f"{self.seconds:g}", *argv] if self.seconds else argv


def in_pod_by_address(ip: str, argv: Sequence[str]) -> list[str]:
    return ["sh", "-c", IN_POD_NETNS, "k8slab-capture", ip, *argv]


def over_ssh(ssh_config: Path, node: str, user: str, remote: Sequence[str]) -> list[str]:
    """ssh without a terminal (-T), as root on the node (sudo -n when the login user is not root)."""
    command = shlex.join(remote)
    if user != "root":
        command = f"sudo -n -- {command}"
    return ["ssh", "-F", str(ssh_config), "-T", "-o", "BatchMode=yes", node, command]


def is_pcap(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) in PCAP_MAGIC
