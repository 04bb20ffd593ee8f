"""Calico's BGP daemon in the emulated lab: Debian's BIRD 2, one per node namespace, with the config
plan_calico.py wrote, its control socket and pid file in the lab's state dir.

BIRD daemonizes inside the node's namespace, so it belongs to the lab: destroy (also after a crash)
ends every process whose network namespace carries the lab's prefix. `up` waits until every
session is Established and every peer's block is in the kernel, as a node is ready on a real
cluster once `calicoctl node status` shows its mesh up.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from k8slab.errors import CommandFailedError
from k8slab.labs.base import Progress
from k8slab.labs.netns import nsfs, state
from k8slab.labs.netns.plan import BirdPlan
from k8slab.spec import calico

BIRD = "bird"
BIRDC = "birdc"
PACKAGE = "bird2"
ESTABLISHED = "Established"


def missing() -> str | None:
    """Why BIRD cannot run here, with the fix; None when it can."""
    absent = [tool for tool in (BIRD, BIRDC) if shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin") is None]
    if absent:
        return f"{', '.join(absent)} missing (Calico's BGP daemon): apt-get install {PACKAGE}"
    return None


def start(root: Path, plans: Sequence[BirdPlan], progress: Progress) -> None:
    """Write each node's config (0600 in the lab's 0700 state dir), check it with `bird -p`, then start
    every BIRD in its node's namespace."""
    for p in plans:
        state.write_bytes(root, Path(p.config_path), p.config.encode())
    for p in plans:
        _run_in(p.netns, [BIRD, "-p", "-c", p.config_path], f"BIRD rejected the config of {p.node}")
    for p in plans:
        _run_in(p.netns, [BIRD, "-c", p.config_path, "-s", p.socket, "-P", p.pidfile],
                f"BIRD did not start on {p.node}")
    progress(f"BIRD started on {len(plans)} nodes (full-mesh iBGP, {sum(len(p.peers) for p in plans)} sessions)")


def _run_in(netns: str, argv: list[str], what: str) -> None:
    with nsfs.entered(nsfs.netns_path(netns)):
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    out, err = proc.communicate(timeout=30)
    if proc.returncode != 0:
        raise CommandFailedError(f"{what}: {(err or out).strip()}")


def protocols(socket: str) -> dict[str, str] | None:
    """`birdc show protocols` as {name: state info}; None when BIRD does not answer on its socket."""
    proc = subprocess.run([BIRDC, "-s", socket, "show", "protocols"], capture_output=True, text=True,
                          timeout=10, check=False)
    if proc.returncode != 0 or "Unable to connect" in proc.stdout:
        return None
    return calico.parse_bird_protocols(proc.stdout)


def status(socket: str) -> tuple[str | None, str | None]:
    """(`birdc show status`, `birdc show protocols`), None for each BIRD does not answer."""
    def ask(*what: str) -> str | None:
        proc = subprocess.run([BIRDC, "-s", socket, *what], capture_output=True, text=True, timeout=10, check=False)
        return proc.stdout if proc.returncode == 0 and "Unable to connect" not in proc.stdout else None
    if not Path(socket).exists():
        return None, None
    return ask("show", "status"), ask("show", "protocols")


def wait_established(plans: Sequence[BirdPlan], progress: Progress, timeout: float | None = None) -> None:
    """Until every mesh session of every node is Established (polling the control sockets).

    A full mesh of n nodes on one segment needs n(n-1) ARP entries, and the kernel keeps one ARP table for
    all network namespaces, full at gc_thresh3 (1024 by default, settable only in the default namespace,
    which the lab leaves alone). Past about 32 nodes a connect then fails with "No route to host" until
    entries are garbage-collected, and BIRD waits 5, 10, 20... s before it tries again (Calico's `error wait
    time 5,60`): a 50-node Calico lab in a BGP mode takes minutes, not seconds, to converge here."""
    want = sum(len(p.peers) for p in plans)
    timeout = timeout if timeout is not None else 120 + 4 * len(plans)
    deadline = time.monotonic() + timeout
    shown = -1
    while True:
        with ThreadPoolExecutor(max_workers=8) as pool:
            states = list(pool.map(lambda p: protocols(p.socket), plans))
        up = sum(sum(ESTABLISHED in s for s in st.values()) for st in states if st)
        if up != shown:
            progress(f"BGP: {up}/{want} sessions Established")
            shown = up
        if up == want:
            return
        if time.monotonic() > deadline:
            down = [f"{p.node}: {name} {s}" for p, st in zip(plans, states) for name, s in (st or {}).items()
                    if ESTABLISHED not in s][:5]
            raise CommandFailedError(f"BGP sessions not Established after {timeout:.0f} s: {'; '.join(down)}")
        time.sleep(0.3)
