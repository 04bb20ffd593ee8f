"""`k8slab capture` without a lab: the tcpdump and ssh command lines, and arguments refused up front."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from k8slab.cli import build_parser
from k8slab.cli.capture_cmds import request
from k8slab.errors import UsageError
from k8slab.labs.capture import IN_POD_NETNS, Capture, in_pod_by_address, is_pcap, over_ssh


def test_tcpdump_writes_pcap_to_stdout_and_stops_as_asked():
    assert Capture("eth1").tcpdump() == ["tcpdump", "-n", "-i", "eth1", "--immediate-mode", "-U", "-w", "-"]
    argv = Capture("cni0", count=5, seconds=2.5, bpf=("icmp", "or", "arp")).tcpdump()
    assert argv[:4] == ["timeout", "-s", "INT", "2.5"]  # SIGINT: tcpdump flushes the file before it exits
    assert argv[4:] == ["tcpdump", "-n", "-i", "cni0", "--immediate-mode", "-U", "-w", "-", "-c", "5", "icmp",
                         "or", "arp"]


def test_over_ssh_no_terminal_and_root():
    remote = Capture("eth1", count=3).tcpdump()
    argv = over_ssh(Path("/tmp/cfg"), "node-1", "vagrant", remote)
    assert argv[:7] == ["ssh", "-F", "/tmp/cfg", "-T", "-o", "BatchMode=yes", "node-1"]
    assert shlex.split(argv[7]) == ["sudo", "-n", "--", *remote]
    assert shlex.split(over_ssh(Path("/c"), "n", "root", remote)[-1]) == remote


def test_a_pod_on_a_node_is_found_by_its_address():
    argv = in_pod_by_address("10.244.1.2", ["tcpdump", "-i", "eth0"])
    assert argv == ["sh", "-c", IN_POD_NETNS, "k8slab-capture", "10.244.1.2", "tcpdump", "-i", "eth0"]


def parse(tmp_path: Path, *argv: str):
    return build_parser().parse_args(["capture", "-o", str(tmp_path / "x.pcap"), *argv])


@pytest.mark.parametrize(("argv", "message"), [
    ((), "say where"), (("--node", "node-1"), "needs --iface"), (("--pod", "a", "--node", "node-1"), "say where"),
    (("--pod", "a", "--iface", "cni0"), "eth0"), (("--pod", "a", "--count", "0"), "positive")])
def test_arguments_that_do_not_fit_are_refused(tmp_path, argv, message):
    with pytest.raises(UsageError, match=message):
        request(parse(tmp_path, *argv))


def test_output_must_be_a_file_in_an_existing_folder(tmp_path):
    args = build_parser().parse_args(["capture", "--pod", "a", "-o", str(tmp_path / "no" / "x.pcap")])
    with pytest.raises(UsageError, match="existing folder"):
        request(args)
    assert request(parse(tmp_path, "--pod", "a", "--filter", "tcp port 80")).bpf == ("tcp", "port", "80")


def test_pcap_magic(tmp_path):
    (tmp_path / "a").write_bytes(b"\xd4\xc3\xb2\xa1rest")
    (tmp_path / "b").write_bytes(b"tcpdump: error")
    assert is_pcap(tmp_path / "a") and not is_pcap(tmp_path / "b")
