"""What the VirtualBox lab needs from the host, as pure functions: which Vagrant a VirtualBox needs, which
host platforms cannot run the lab at all, the hints for vagrant's known failures, and vagrant's output
turned into progress lines (a box download redraws one line with carriage returns)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from ipaddress import IPv4Network

from k8slab.spec.facts import VBOX_HOST_ONLY_RANGE

Version = tuple[int, ...]

# VirtualBox minor -> the first Vagrant whose VirtualBox provider accepts it; an older Vagrant refuses with
# "a version of VirtualBox installed that is not supported". From Vagrant's CHANGELOG: 7.0 in 2.3.2,
# 7.1 in 2.4.2 (hashicorp/vagrant#13513), 7.2 in 2.4.9 (hashicorp/vagrant#13709).
VAGRANT_FOR_VIRTUALBOX: dict[Version, Version] = {(7, 0): (2, 3, 2), (7, 1): (2, 4, 2), (7, 2): (2, 4, 9)}
# Without VirtualBox (libvirt, or only `vagrant validate` in the tests) any Vagrant of the last years works.
MIN_VAGRANT: Version = (2, 3)
VAGRANT_DOWNLOAD = "https://developer.hashicorp.com/vagrant/install"
VIRTUALBOX_DOWNLOAD = "https://www.virtualbox.org/wiki/Downloads"
INSTALL_VAGRANT = f"install Vagrant 2.4.9 or later ({VAGRANT_DOWNLOAD})"
INSTALL_VIRTUALBOX = (f"install VirtualBox 7.1 or 7.2 ({VIRTUALBOX_DOWNLOAD}); on Linux, libvirt/KVM with the "
                      "vagrant-libvirt plugin (`vagrant plugin install vagrant-libvirt`) works too")
SECURE_BOOT = ("VirtualBox's kernel driver (vboxdrv) is not loaded. With Secure Boot on, Linux refuses the "
               "unsigned module: sign it (`sudo /sbin/vboxconfig` prints the mokutil steps) or turn Secure Boot off, "
               "then run `sudo /sbin/vboxconfig`")


def dotted(version: Version) -> str:
    return ".".join(map(str, version))


def vagrant_version(text: str) -> Version | None:
    """(2, 3, 4) from `vagrant --version` output ("Vagrant 2.3.4")."""
    match = re.search(r"Vagrant (\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(g) for g in match.groups() if g is not None) if match else None


def virtualbox_version(text: str) -> Version | None:
    """(7, 1, 4) from `VBoxManage --version` ("7.1.4r165100"); warnings may come before it."""
    for line in reversed(text.splitlines()):
        match = re.match(r"^(\d+)\.(\d+)\.(\d+)", line.strip())
        if match:
            return tuple(int(g) for g in match.groups())
    return None


def vagrant_floor(virtualbox: Version) -> Version | None:
    """The oldest Vagrant that drives this VirtualBox; None when k8slab's table does not know it."""
    return VAGRANT_FOR_VIRTUALBOX.get(virtualbox[:2])


def compatibility_problem(vagrant: Version, virtualbox: Version) -> str | None:
    """Why this Vagrant cannot drive this VirtualBox, with what to install; None when it can."""
    newest = max(VAGRANT_FOR_VIRTUALBOX)
    if virtualbox[:2] < min(VAGRANT_FOR_VIRTUALBOX):
        return (f"VirtualBox {dotted(virtualbox)} is too old for the lab; install VirtualBox "
                f"{dotted(newest)} ({VIRTUALBOX_DOWNLOAD})")
    floor = vagrant_floor(virtualbox)
    if floor is None:
        floor = VAGRANT_FOR_VIRTUALBOX[newest]
        if vagrant < floor:
            return (f"VirtualBox {dotted(virtualbox)} is newer than any Vagrant k8slab knows, and Vagrant "
                    f"{dotted(vagrant)} predates even VirtualBox {dotted(newest)}; install the newest Vagrant "
                    f"({VAGRANT_DOWNLOAD})")
        return None  # newer than the table: let vagrant judge (its error gets the 'unsupported' hint)
    if vagrant < floor:
        usable = max((v for v, f in VAGRANT_FOR_VIRTUALBOX.items() if f <= vagrant), default=None)
        return (f"Vagrant {dotted(vagrant)} does not support VirtualBox {dotted(virtualbox)} (Vagrant "
                f"{dotted(floor)} is the first that does); install Vagrant {dotted(floor)} or later "
                f"({VAGRANT_DOWNLOAD})" + (f", or use VirtualBox {dotted(usable)}" if usable else ""))
    return None


def platform_problem(system: str, machine: str, release: str) -> str | None:
    """Why the VirtualBox lab cannot run on this host at all (platform.system/machine/release); None if it can."""
    if system == "Windows":
        return ("k8slab does not run on Windows itself: Ansible has no Windows controller, and the Makefile, "
                "setup script and .venv/bin are POSIX. Use WSL2 (Debian or Ubuntu) for the emulated lab (`sudo make "
                "lab` inside WSL2), or a Linux machine for the VirtualBox lab")
    if system == "Linux" and "microsoft" in release.lower():
        return ("this is WSL: the VirtualBox lab's VMs run on Windows, where the SSH ports Vagrant forwards on "
                "127.0.0.1 are not reachable from WSL2, and VirtualBox conflicts with WSL2's Hyper-V. Use the "
                "emulated lab here (`sudo make lab`)")
    if system == "Darwin" and machine == "arm64":
        return ("Apple Silicon: VirtualBox runs only arm64 guests there and the lab's box (lab.yaml box.name) is "
                "amd64. Use the emulated lab inside a Debian arm64 VM (UTM, Lima) instead")
    return None


# VirtualBox's own rule (manual ch06, "Host-Only Networking", quoted in cilium/cilium#17733): on Linux, macOS
# and Solaris only 192.168.56.0/21 is allowed for host-only adapters unless /etc/vbox/networks.conf lists
# other ranges, one or more per line after a `*` (`* 10.0.0.0/8 192.168.0.0/16`); lines starting with #
# are ignored. It binds the VirtualBox lab only: the emulated lab has no VirtualBox, so the articles' own
# 192.168.16.0/24 (Calico) and 192.168.64.0/24 (Linux from scratch) are fine there.
VBOX_NETWORKS_CONF = "/etc/vbox/networks.conf"


def allowed_host_only_ranges(networks_conf: str | None) -> list[IPv4Network]:
    """The IPv4 ranges VirtualBox allows for host-only adapters: those networks.conf lists, else the default."""
    if networks_conf is None:
        return [VBOX_HOST_ONLY_RANGE]
    ranges: list[IPv4Network] = []
    for line in networks_conf.splitlines():
        words = line.split()
        if not words or words[0] != "*":
            continue
        for word in words[1:]:
            try:
                net = ipaddress.ip_network(word, strict=False)
            except ValueError:
                continue
            if isinstance(net, IPv4Network):
                ranges.append(net)
    return ranges


def host_only_refusal(host_only: IPv4Network, networks_conf: str | None) -> str | None:
    """Why VirtualBox would refuse the lab's host-only network, or None when it allows it."""
    ranges = allowed_host_only_ranges(networks_conf)
    if any(host_only.subnet_of(r) for r in ranges):
        return None
    if networks_conf is None:
        return (f"network.host_only: {host_only} is outside {VBOX_HOST_ONLY_RANGE}, the only host-only range "
                f"VirtualBox 6.1.28+ allows; use a network inside it, or allow yours in {VBOX_NETWORKS_CONF} on "
                "the host (a line `* " f"{host_only}`), or use the emulated lab (--backend netns), where any "
                "private range works")
    listed = ", ".join(map(str, ranges)) or "no IPv4 range"
    return (f"network.host_only: {host_only} is outside the host-only ranges {VBOX_NETWORKS_CONF} allows "
            f"({listed}); add a line `* {host_only}` there, or use the emulated lab (--backend netns)")


def matches(needles: tuple[str, ...], text: str) -> bool:
    return any(needle in text for needle in needles)


# Known vagrant failures (matched against its own output) and what to do about them.
HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("not within the allowed ranges",),
     (f"VirtualBox refuses this host-only address: keep network.host_only inside {VBOX_HOST_ONLY_RANGE} in lab.yaml "
      "or allow your range in /etc/vbox/networks.conf")),
    (("could not be found", "Failed to connect to", "box could not be downloaded"),
     "the box could not be downloaded: check the internet connection, or add it by hand with `vagrant box add`"),
    (("VirtualBox installed that is not supported", "version of VirtualBox installed"),
     ("this Vagrant is older than your VirtualBox: Vagrant 2.4.2 is the first for VirtualBox 7.1, 2.4.9 the first for "
      f"7.2 ({VAGRANT_DOWNLOAD})")),
    (("vboxdrv", "kernel driver not installed", "rc=-1908"), SECURE_BOOT),
    (("VT-x is not available", "VERR_VMX_NO_VMX", "AMD-V is not available", "VERR_SVM_NO_SVM"),
     ("enable hardware virtualization (VT-x/AMD-V) in the firmware, and make sure no other hypervisor holds it")),
    (("VT-x is being used by another hypervisor", "VERR_VMX_IN_VMX_ROOT_MODE", "VERR_SVM_IN_USE"),
     ("another hypervisor holds VT-x/AMD-V: on Linux unload KVM (`sudo modprobe -r kvm_intel kvm_amd`; Linux 6.12+ "
      "needs kvm.enable_virt_at_load=0 on the kernel command line), on Windows turn off Hyper-V")),
    (("Timed out while waiting for the machine to boot",),
     "the VM did not boot in time: close other VMs, check `VBoxManage list runningvms`, then `k8slab up` again"),
)


def hint_for(output: str) -> str:
    return "; ".join(hint for needles, hint in HINTS if matches(needles, output))


_PERCENT = re.compile(r"Progress: (\d+)%")


def progress_lines(chunks: Iterable[str], step: int = 10) -> Iterator[str]:
    """Lines of vagrant's output as they come. A box download redraws one line with '\\r' for minutes;
    those redraws come out once every `step` percent, so a progress printer shows them without a flood."""
    pending, last_bucket = "", -1
    for chunk in chunks:
        pending += chunk
        while True:
            match = re.search(r"[\r\n]", pending)
            if not match:
                break
            segment, pending = pending[:match.start()], pending[match.end():]
            text = segment.strip()
            if not text:
                continue
            percent = _PERCENT.search(text)
            if percent:
                bucket = int(percent[1]) // step
                if bucket == last_bucket:
                    continue
                last_bucket = bucket
            yield text.rstrip()
    if pending.strip():
        yield pending.strip()
