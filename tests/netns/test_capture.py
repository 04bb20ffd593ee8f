"""`k8slab capture` on the emulated lab: the pcap it writes opens with `tcpdump -r` and holds the packets
sent meanwhile, with the pods' own addresses; a failed capture leaves no file."""

from __future__ import annotations

import subprocess

from k8slab.labs.base import Container
from k8slab.labs.netns import NetnsLab

from .labtools import K8SLAB, ROOT, run_cli, up_through_cli


def read_pcap(path) -> str:
    proc = subprocess.run(["tcpdump", "-nr", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_capture_of_a_pod_opens_with_tcpdump(tmp_path, cli_labs):
    path, spec = up_through_cli(tmp_path, cli_labs, "cap")
    lab = NetnsLab(spec)
    web = lab.pod_start("web", spec.workers[0].name, (Container("web", "httpd"),))
    client = lab.pod_start("client", spec.workers[-1].name)
    out = tmp_path / "web.pcap"
    cap = subprocess.Popen([*K8SLAB, "--spec", str(path), "capture", "--pod", "web", "-o", str(out), "--count", "3",
                            "--filter", "tcp port 80"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        assert cap.stderr is not None
        for line in cap.stderr:  # tcpdump says when it listens; the traffic goes after that
            if "listening on" in line:
                break
        assert lab.pod_run("client", ["wget", "-qO-", "-T", "5", f"http://{web.ip}/"]).ok
        assert cap.wait(timeout=30) == 0
    finally:
        cap.kill()
    text = read_pcap(out)
    assert f"{client.ip}." in text and f"{web.ip}.80" in text  # addresses unchanged across nodes (host-gw)
    assert len(text.splitlines()) == 3
    assert not list(tmp_path.glob(".*partial"))
    failed = run_cli(path, "capture", "--node", spec.workers[0].name, "--iface", "nope", "-o",
                     str(tmp_path / "bad.pcap"), "--seconds", "1")
    assert failed.returncode == 2 and "nope" in failed.stderr and not (tmp_path / "bad.pcap").exists()


def test_capture_for_some_seconds_on_a_node(tmp_path, cli_labs):
    path, spec = up_through_cli(tmp_path, cli_labs, "cap")
    out = tmp_path / "eth1.pcap"
    done = run_cli(path, "capture", "--node", spec.workers[0].name, "--iface", "eth1", "-o", str(out),
                   "--seconds", "0.5")
    assert done.returncode == 0, done.stderr
    read_pcap(out)
