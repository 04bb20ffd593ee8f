"""Signals at several points of a pod's start leave nothing; SIGKILL (which runs no cleanup) leaves traces the
next command reaps and names; one lock makes parallel pod commands, verifies and a destroy meet in order.
Real lab, real CNI plugins; every signal is sent by the test at a chosen point, never by timing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from k8slab.errors import LabStateError
from k8slab.labs.netns import NetnsLab, cni, dns, names, nsfs, pods

from .labtools import K8SLAB, ROOT, default_spec, run_cli, spec_data, unique_name, write_spec

SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


@pytest.fixture
def lab(labs) -> NetnsLab:
    lab = labs(default_spec(unique_name("g")))
    lab.up()
    return lab


@pytest.fixture
def spec_path(lab, tmp_path):
    return write_spec(tmp_path / "lab.yaml", spec_data(), lab.spec.name)


def pod_namespaces(lab: NetnsLab) -> list[str]:
    """The pods' namespaces, the lab's own kube-dns pod aside."""
    return [n for n in nsfs.list_netns(lab.prefix) if "_pod-" in n and not n.endswith(f"_pod-{dns.POD}")]


def pod_traces(lab: NetnsLab, pod: str) -> list[str]:
    """Everything a pod leaves on the machine: its namespace, its UTS file, its record."""
    found = [n for n in nsfs.list_netns(lab.prefix) if n.endswith(f"_pod-{pod}")]
    return found + [str(p) for p in (lab.paths.pod_uts(pod), lab.paths.pod_file(pod)) if os.path.lexists(p)]


def signal_after(monkeypatch, module, name: str, signum: int, when=lambda *a, **k: True) -> None:
    """Wrap module.name: once it has done its real work (and when() holds), send signum to this process."""
    real = getattr(module, name)

    def wrapped(*args, **kwargs):
        result = real(*args, **kwargs)
        if when(*args, **kwargs):
            # To the main thread, as the kernel delivers a signal from outside (a terminal, kill): the step may
            # run in a worker thread, and CPython notices a signal caught by another thread only later.
            signal.pthread_kill(threading.main_thread().ident, signum)
        return result
    monkeypatch.setattr(module, name, wrapped)


POINTS = {
    "namespace made": (nsfs, "create_netns", lambda *a, **k: True),
    "address given": (cni, "invoke", lambda plugin_dir, command, config, **k: command == "ADD"
                      and config.get("type") == "bridge"),
    "containers started": (pods, "start_all", lambda *a, **k: True),
}


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_a_signal_during_pod_start_leaves_nothing(lab, interrupt_handlers, monkeypatch, signum, point):
    node = lab.spec.workers[0].name
    lab.pod_start("before", node)
    module, name, when = POINTS[point]
    with monkeypatch.context() as m:
        signal_after(m, module, name, signum, when)
        with pytest.raises(KeyboardInterrupt):
            lab.pod_start("web", node)
    assert pod_traces(lab, "web") == [], lab.paths.pod_file("web").read_text()
    assert [p.name for p in lab.pods()] == ["before"]
    assert ipam_holders(lab, node) == [names.pod_netns(lab.spec.name, "before")]  # its address was given back
    lab.pod_start("web", node)  # and the name is free


def ipam_holders(lab: NetnsLab, node: str) -> list[str]:
    """The container ids host-local has handed addresses to on node (one file per address it reserved)."""
    found = []
    for path in lab.paths.ipam_dir(node).rglob("*"):
        if path.is_file() and path.name[:1].isdigit():
            found.append(path.read_text().split()[0])
    return sorted(found)


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from k8slab.labs.netns import NetnsLab, cni, dns, names, nsfs, pods
    from k8slab.spec.load import load_spec
    from k8slab.verify.pods import start_pods

    spec_file, point = sys.argv[1], sys.argv[2]
    lab = NetnsLab(load_spec(spec_file))

    def after(module, name, when=lambda *a, **k: True):
        real = getattr(module, name)
        def wrapped(*args, **kwargs):
            result = real(*args, **kwargs)
            if when(*args, **kwargs):
                os.kill(os.getpid(), signal.SIGKILL)
            return result
        setattr(module, name, wrapped)

    if point == "verify":
        with lab.session("verify"):
            start_pods(lab)
            os.kill(os.getpid(), signal.SIGKILL)
    if point == "namespace made":
        after(nsfs, "create_netns")
    elif point == "address given":
        after(cni, "invoke", lambda d, command, config, **k: command == "ADD" and config.get("type") == "bridge")
    lab.pod_start("web", lab.spec.workers[0].name)
""")


def killed(spec_path, point: str) -> None:
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(spec_path), point], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


@pytest.mark.parametrize("point", ["namespace made", "address given"])
def test_after_sigkill_during_pod_run_the_next_command_reaps_and_says_so(lab, spec_path, point):
    killed(spec_path, point)
    assert pod_traces(lab, "web"), "the kill left nothing to reap: the test proves nothing"
    out = run_cli(spec_path, "pod", "list")
    assert out.returncode == 0, out.stderr
    assert "removing pod web: its process" in out.stdout and "ended without removing it" in out.stdout
    assert pod_traces(lab, "web") == []
    assert run_cli(spec_path, "pod", "run", "web", "--node", lab.spec.workers[0].name).returncode == 0


def test_after_sigkill_during_verify_its_pods_are_reaped_by_the_next_command(lab, spec_path):
    killed(spec_path, "verify")
    left = pod_namespaces(lab)
    assert len(left) == 2 * len(lab.spec.nodes)
    assert lab.pods() != []
    out = run_cli(spec_path, "verify", "--backend", "netns", timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("its verify process") == len(left), out.stdout
    assert lab.pods() == [] and pod_namespaces(lab) == []


def test_twenty_parallel_pod_deletes_never_crash(lab, spec_path):
    names = [f"p{i}" for i in range(10)]
    lab.pods_start([(n, lab.spec.workers[i % len(lab.spec.workers)].name) for i, n in enumerate(names)])

    def delete(name: str) -> subprocess.CompletedProcess:
        return run_cli(spec_path, "pod", "delete", name)

    with ThreadPoolExecutor(max_workers=20) as pool:
        outs = list(pool.map(delete, names + names))  # each pod deleted twice at once
    assert all("Traceback" not in o.stderr for o in outs), [o.stderr for o in outs if "Traceback" in o.stderr]
    for name in names:
        rcs = sorted(o.returncode for o, n in zip(outs, names + names) if n == name)
        assert rcs == [0, 2], (name, [o.stderr for o, n in zip(outs, names + names) if n == name])
    assert lab.pods() == [] and pod_namespaces(lab) == []


def test_a_second_verify_or_walkthrough_waits_then_refuses_clearly(lab):
    other = NetnsLab(lab.spec)
    said: list[str] = []
    inside = threading.Event()
    release = threading.Event()

    def first() -> None:
        with lab.session("walkthrough"):
            inside.set()
            release.wait(30)

    t = threading.Thread(target=first)
    t.start()
    try:
        assert inside.wait(30)
        with pytest.raises(LabStateError, match=r"a verify runs on it"), \
                other.session("verify", said.append, timeout=0.3):
            pass
        assert any("waiting for another k8slab command" in s for s in said), said
    finally:
        release.set()
        t.join()
    with other.session("verify"):  # free again once the first is over
        pass


def test_destroy_during_a_verify_is_a_clear_error_and_leaves_no_lock_file(lab):
    with pytest.raises(LabStateError, match="not up"), lab.session("verify"):
        lab.pod_start("t-x", lab.spec.workers[0].name)
        NetnsLab(lab.spec).destroy()
        lab.pod_delete("t-x")
    assert not lab.paths.dir.exists()
    assert not lab.has_leftovers()


def test_two_cli_verifies_at_once_both_pass(lab, spec_path):
    cmd = [*K8SLAB, "--spec", str(spec_path), "verify", "--backend", "netns"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert lab.pods() == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: signal.Signals(s).name)
def test_a_cli_verify_signalled_while_it_starts_its_pods_leaves_nothing(lab, spec_path, signum):
    """A closed terminal (SIGHUP), `kill` (SIGTERM) or Ctrl-C reaching `k8slab verify` as its pods start: exit
    128+signal, no traceback, no pod, namespace or record left."""
    proc = subprocess.Popen([*K8SLAB, "--spec", str(spec_path), "verify", "--backend", "netns"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "starting" in line and "pods:" in line:
            proc.send_signal(signum)
            break
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signum, out + err
    assert "Traceback" not in err and "k8slab: " in err
    assert lab.pods() == [] and pod_namespaces(lab) == []
    assert not [p for p in lab.paths.pods_dir.iterdir() if not p.name.startswith(f"{dns.POD}.")]
