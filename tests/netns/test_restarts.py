"""Servers supervised as the kubelet supervises a restartPolicy Always pod, on the real emulated lab: a server
killed with SIGKILL answers again after the back-off, `pod list` counts the restart, the next back-off is
doubled (read from what the lab records, never from the clock), and pod delete, destroy and the command after
a SIGKILLed k8slab leave no process in any of the lab's namespaces. The labs here record a short first delay
(the kubelet's is 10 s) so the suite waits well under a second per restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from k8slab.labs.base import Container
from k8slab.labs.netns import NetnsLab, containers, names, nsfs, supervise

from .labtools import ROOT, default_spec, leftovers, run_cli, spec_data, unique_name, write_spec

QUICK = supervise.Backoff(initial_ms=300, max_ms=300_000, reset_ms=600_000)
SLOW = supervise.Backoff(initial_ms=120_000, max_ms=300_000, reset_ms=600_000)  # stays in back-off for the test


def wait_for(predicate, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def make_lab():
    """Labs that record a chosen back-off at `up`; each destroyed at the end, leaving nothing."""
    made: list[NetnsLab] = []

    def make(backoff: supervise.Backoff) -> NetnsLab:
        lab = NetnsLab(default_spec(unique_name("r")), restart_backoff=backoff)
        made.append(lab)
        lab.up()
        return lab

    yield make
    for lab in made:
        lab.destroy()
    assert not any(leftovers(lab.spec.name) for lab in made)


def init_of(lab: NetnsLab, pod: str, container: str | None = None) -> int:
    return containers.running(nsfs.netns_path(names.pod_netns(lab.spec.name, pod)))[container or pod]


def status(lab: NetnsLab, pod: str, container: str | None = None) -> supervise.Status | None:
    return containers.read_status(lab.paths.dir, pod, container or pod)


def server_of(lab: NetnsLab, pod: str) -> int:
    """The container's main process: the child of its PID 1 (the supervisor), once it listens on port 80."""
    init = init_of(lab, pod)
    wait_for(lambda: containers.listening(init, 80) and status(lab, pod).state == "running", f"{pod} to listen")
    (server,) = [p for p in containers.children(init) if Path(f"/proc/{p}/comm").read_text().strip() == "busybox"]
    return server


@pytest.fixture
def hold():
    """Open (and keep open until the test ends) the namespace files at the paths given, returning their keys:
    a namespace held open is never freed, so its inode number cannot pass to another lab's new namespace
    (the kernel reuses the lowest free one at once) while the test looks for processes still in it."""
    fds: list[int] = []

    def keys(paths) -> set[tuple[int, int]]:
        found = set()
        for path in paths:
            fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
            st = os.fstat(fds[-1])
            found.add((st.st_dev, st.st_ino))
        return found

    yield keys
    for fd in fds:
        os.close(fd)


def lab_namespaces(lab: NetnsLab, hold) -> set[tuple[int, int]]:
    """Every network namespace of the lab and the PID namespace of every container running in it."""
    paths = [nsfs.netns_path(n) for n in nsfs.list_netns(lab.prefix)]
    inits = [pid for found in containers.running_in(paths).values() for pid in found.values()]
    return hold([*paths, *(f"/proc/{p}/ns/pid" for p in inits)])


def pod_namespaces(lab: NetnsLab, pod: str, hold) -> set[tuple[int, int]]:
    """The pod's network namespace and the PID namespace of each of its containers."""
    path = nsfs.netns_path(names.pod_netns(lab.spec.name, pod))
    return hold([path, *(f"/proc/{p}/ns/pid" for p in containers.running(path).values())])


def processes_in(keys: set[tuple[int, int]]) -> list[int]:
    """Processes of this machine in any of those namespaces, found by a scan of /proc (zombies have none)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        for ns in ("net", "pid"):
            try:
                st = os.stat(f"/proc/{entry}/ns/{ns}")
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in keys:
                found.append(int(entry))
                break
    return found


def gone(keys: set[tuple[int, int]]) -> bool:
    """No process left in those namespaces. SIGKILL is delivered at once but a process takes a moment to leave:
    the wait is bounded, never judged."""
    deadline = time.monotonic() + 5
    while left := processes_in(keys):
        if time.monotonic() > deadline:
            raise AssertionError(f"still running: {[(p, described(p)) for p in left]}")
        time.sleep(0.02)
    return True


def described(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")[:80]
    except OSError:
        return "(gone)"


def test_a_killed_server_is_restarted_after_a_doubling_back_off(make_lab, tmp_path):
    lab = make_lab(QUICK)
    assert lab.restart_backoff() == QUICK  # recorded at up, read back from lab.json
    server_node, client_node = lab.spec.workers[0].name, lab.spec.workers[-1].name
    httpd = lab.pod_start("httpd", server_node)
    lab.pod_start("client", client_node, (Container("client", "busybox"),))
    first, second = curve = [supervise.next_delay(0, 0, QUICK), supervise.next_delay(QUICK.initial_ms, 0, QUICK)]
    assert curve == [QUICK.initial_ms, 2 * QUICK.initial_ms]

    old = server_of(lab, "httpd")
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: status(lab, "httpd").last_exit is not None, "the supervisor to see the exit")
    assert status(lab, "httpd") in (supervise.Status("waiting", 0, 137, first),  # still backing off
                                    supervise.Status("running", 1, 137, first))  # or restarted already
    wait_for(lambda: lab.pod_run("client", ["wget", "-qO-", "-T", "2", f"http://{httpd.ip}/"]).ok,
             "httpd to answer again")
    assert status(lab, "httpd") == supervise.Status("running", 1, 137, first)
    new = server_of(lab, "httpd")
    assert new != old and init_of(lab, "httpd")  # a new server under the same supervisor
    spec_path = write_spec(tmp_path / "lab.yaml", spec_data(), lab.spec.name)
    listing = run_cli(spec_path, "pod", "list")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "IP", "NODE"]
    rows = {line.split()[0]: line.split() for line in lines[1:] if line.strip()}
    assert rows["httpd"] == ["httpd", "1/1", "Running", "1", str(httpd.ip), server_node]
    assert rows["client"][3] == "0"
    assert "httpd: httpd: exit 137 (killed by SIGKILL); restarted 1 time(s)" in listing.stdout

    os.kill(new, signal.SIGKILL)
    wait_for(lambda: status(lab, "httpd").restarts == 2 or status(lab, "httpd").state == "waiting", "second exit")
    assert status(lab, "httpd").backoff_ms == second  # doubled: what the supervisor waits, as it records it
    wait_for(lambda: lab.pod_states()["httpd"].restarts == 2 and lab.pod_states()["httpd"].status == "Running",
             "the second restart")
    assert lab.pod_run("client", ["wget", "-qO-", "-T", "5", f"http://{httpd.ip}/"]).ok


def test_a_container_backing_off_shows_crash_loop_and_its_files_stay_private(make_lab):
    old = os.umask(0)  # the umask that once made the lab's state world-writable
    try:
        lab = make_lab(SLOW)
        lab.pod_start("web", lab.spec.workers[0].name, (Container("web", "nginx"), Container("side", "busybox")))
    finally:
        os.umask(old)
    os.kill(server_of(lab, "web"), signal.SIGKILL)
    wait_for(lambda: status(lab, "web").state == "waiting", "the back-off")
    assert status(lab, "web") == supervise.Status("waiting", 0, 137, SLOW.initial_ms)
    state = lab.pod_states()["web"]
    assert (state.ready, state.total, state.status, state.restarts) == (1, 2, "CrashLoopBackOff", 0)
    assert f"back-off of {SLOW.initial_ms / 1000:g} s" in state.last_state
    path = containers.container_dir(lab.paths.dir, "web", "web") / "status"
    assert (os.stat(path).st_mode & 0o777, os.stat(path).st_uid) == (0o600, 0)
    # killing the supervisor itself kills the container; nothing is left to restart it, and the pod says so
    os.kill(init_of(lab, "web", "side"), signal.SIGKILL)
    wait_for(lambda: "side" not in containers.running(nsfs.netns_path(names.pod_netns(lab.spec.name, "web"))),
             "the sidecar to end")
    assert "side: its PID 1 (the container's supervisor) was killed" in lab.pod_states()["web"].last_state


def test_pod_delete_and_destroy_leave_no_process_of_a_supervised_container(make_lab, hold):
    lab = make_lab(SLOW)
    node = lab.spec.workers[0].name
    lab.pod_start("httpd", node)
    lab.pod_start("nginx", node)
    os.kill(server_of(lab, "httpd"), signal.SIGKILL)
    wait_for(lambda: status(lab, "httpd").state == "waiting", "the back-off")
    one, mine = lab_namespaces(lab, hold), pod_namespaces(lab, "httpd", hold)
    assert processes_in(mine)  # the supervisor, backing off
    lab.pod_delete("httpd")
    assert gone(mine)
    assert processes_in(one)  # the rest of the lab still runs
    lab.destroy()
    assert gone(one) and containers.pids_under(lab.paths.dir) == []


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    from k8slab.labs.netns import NetnsLab, containers, names, nsfs
    from k8slab.spec.load import load_spec

    spec_file, point = sys.argv[1], sys.argv[2]
    lab = NetnsLab(load_spec(spec_file))
    node = lab.spec.workers[0].name
    deadline = time.monotonic() + 20

    def until(predicate):
        while not predicate():
            assert time.monotonic() < deadline, "gave up"
            time.sleep(0.01)

    def kill_server_and_die(pod, container):
        # its server killed, so the container is restarting; then this k8slab dies without any cleanup
        init = containers.running(nsfs.netns_path(names.pod_netns(lab.spec.name, pod)))[container]
        until(lambda: containers.listening(init, 80))
        for child in containers.children(init):
            os.kill(child, signal.SIGKILL)
        until(lambda: containers.read_status(lab.paths.dir, pod, container).state == "waiting")
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "pod run":
        real = containers.start
        def start(*args, **kwargs):
            real(*args, **kwargs)
            kill_server_and_die(kwargs["pod"], kwargs["container"].name)
        containers.start = start
        lab.pod_start("httpd", node)
    elif point == "pod delete":
        lab.pod_start("httpd", node)
        nsfs.kill_all = lambda pids, grace=1.0: kill_server_and_die("httpd", "httpd")
        lab.pod_delete("httpd")
""")


@pytest.mark.parametrize("point", ["pod run", "pod delete"])
def test_the_command_after_a_sigkilled_k8slab_leaves_no_restarting_container(make_lab, hold, tmp_path, point):
    lab = make_lab(SLOW)
    spec_path = write_spec(tmp_path / "lab.yaml", spec_data(), lab.spec.name)
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(spec_path), point], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert status(lab, "httpd").state == "waiting"  # the kill left a supervisor backing off: the test proves something
    keys, pod = lab_namespaces(lab, hold), pod_namespaces(lab, "httpd", hold)
    if point == "pod run":  # half made: the next command of any kind removes it, and says so
        out = run_cli(spec_path, "pod", "list")
        assert out.returncode == 0 and "removing pod httpd" in out.stdout, out.stdout + out.stderr
    else:  # a pod whose delete was cut short is still a pod: deleting it again finishes the job
        out = run_cli(spec_path, "pod", "delete", "httpd")
        assert out.returncode == 0, out.stderr
    assert gone(pod) and not os.path.lexists(lab.paths.pod_file("httpd"))
    out = run_cli(spec_path, "destroy", "--yes")
    assert out.returncode == 0, out.stderr
    assert gone(keys) and leftovers(lab.spec.name) == []

