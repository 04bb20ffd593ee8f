"""`k8slab capture`: save what crosses a node's or a pod's interface as a pcap file that Wireshark and
`tcpdump -r` open. The file appears only when the capture worked; Ctrl-C ends the capture, not the file."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

from k8slab.errors import CommandFailedError, UsageError
from k8slab.labs.base import Lab
from k8slab.labs.capture import PCAP_MAGIC, Capture, in_pod_by_address
from k8slab.labs.registry import running_lab
from k8slab.render import console
from k8slab.render.output_files import output_file
from k8slab.spec.facts import POD_IF
from k8slab.spec.load import load_spec

EXAMPLES = """examples:
  k8slab capture --node node-1 --iface eth1 -o eth1.pcap --count 20 --filter icmp
  k8slab capture --pod web -o web.pcap --seconds 10 --filter 'tcp port 80'
  tcpdump -nr web.pcap          # or open it in Wireshark
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("capture", help="capture packets on a node's or pod's interface to a pcap file",
                       description="capture packets on a node's or pod's interface to a pcap file (tcpdump -w)",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--node", help="capture on this node (e.g. --node node-1); needs --iface")
    p.add_argument("--iface", help="the node's interface (e.g. --iface eth1, cni0, flannel.1)")
    p.add_argument("--pod", help=f"capture on the pod's {POD_IF} instead (e.g. --pod web)")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="FILE.pcap",
                   help="where to write the pcap (e.g. -o trace.pcap)")
    p.add_argument("--count", type=int, metavar="N", help="stop after N packets (e.g. --count 20)")
    p.add_argument("--seconds", type=float, metavar="S", help="stop after S seconds (e.g. --seconds 10); "
                                                              "without --count or --seconds: at Ctrl-C")
    p.add_argument("--filter", default="", metavar="BPF", help="a tcpdump filter (e.g. --filter 'icmp or arp')")
    p.set_defaults(func=cmd_capture)


def request(args: argparse.Namespace) -> Capture:
    """The capture asked for, refused before anything runs when the arguments do not fit together."""
    if (args.pod is None) == (args.node is None):
        raise UsageError("say where to capture: --node NODE --iface IF, or --pod POD")
    if args.node is not None and not args.iface:
        raise UsageError(f"--node {args.node} needs --iface (e.g. --iface eth1)")
    if args.pod is not None and args.iface not in (None, POD_IF):
        raise UsageError(f"a pod is captured on its {POD_IF}; drop --iface {args.iface}")
    if args.count is not None and args.count <= 0 or args.seconds is not None and args.seconds <= 0:
        raise UsageError("--count and --seconds must be positive")
    out: Path = args.output
    if out.is_dir() or not out.parent.resolve().is_dir():
        raise UsageError(f"-o {out}: give a file in an existing folder, e.g. -o ./capture.pcap")
    return Capture(args.iface or POD_IF, args.count, args.seconds, tuple(args.filter.split()))


def capture_argv(lab: Lab, args: argparse.Namespace, cap: Capture) -> list[str]:
    """The command whose stdout is the pcap: local on the emulated lab, over ssh on an SSH lab."""
    if args.pod is not None:
        pod = lab.pod(args.pod)
        local = lab.pod_argv(pod.name)
        if local is not None:
            return [*local, *cap.tcpdump()]
        return lab.node_stream_argv(pod.node, in_pod_by_address(str(pod.ip), cap.tcpdump()))
    lab.spec.node(args.node)
    return lab.node_stream_argv(args.node, cap.tcpdump())


def cmd_capture(args: argparse.Namespace) -> int:
    cap = request(args)
    lab = running_lab(load_spec(args.spec), args.backend, args.inventory)
    argv = capture_argv(lab, args, cap)
    where = f"pod {args.pod}'s {cap.iface}" if args.pod else f"{args.node}'s {cap.iface}"
    until = " and ".join(x for x in (f"{cap.count} packets" if cap.count else "",
                                     f"{cap.seconds:g} s" if cap.seconds else "") if x) or "Ctrl-C"
    console.say(f"capturing on {where} until {until}{' (filter: ' + args.filter + ')' if args.filter else ''}")
    out: Path = args.output
    # A fresh temp file beside out, renamed onto it only when it holds a pcap (never following a symlink there)
    with output_file(out, "capture") as f:
        rc, said = _run(argv, f)
        # timeout(1) exits 124 when --seconds ended the capture: that is success
        f.flush()
        if rc not in (0, 124) or os.pread(f.fileno(), 4, 0) not in PCAP_MAGIC:
            raise CommandFailedError(f"the capture on {where} failed: {' '.join(said).strip() or f'exit {rc}'}")
    summary = next((line.strip() for line in said if "captured" in line), "")
    console.say(f"wrote {out} ({summary or 'capture ended'}); open it with `tcpdump -nr {out}` or Wireshark")
    return 0


def _run(argv: list[str], out: BinaryIO) -> tuple[int, list[str]]:
    """Run the capture with its pcap going to out; tcpdump's own lines ("listening on eth1") are shown as
    they come, so one knows when to send the traffic. Ctrl-C reaches tcpdump too, which then writes what
    it has and exits; k8slab waits for that."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE, text=True)
    said: list[str] = []
    assert proc.stderr is not None
    while True:
        try:
            for line in proc.stderr:
                said.append(line)
                sys.stderr.write(f"  {line}")
                sys.stderr.flush()
            return proc.wait(), said
        except KeyboardInterrupt:
            continue
