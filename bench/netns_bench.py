#!/usr/bin/env python3
"""How fast the emulated lab comes up and goes away: 3 nodes x 2 pods and 50 nodes x 4 pods.

Prints the median of a few runs for: the lab (namespaces, links, routes, masquerade), starting
the pods (real CNI plugins), the two together, and destroy. Needs root. Run:

    sudo .venv/bin/python bench/netns_bench.py [--runs 5] [--sizes 3x2,50x4]

The labs are named <prefix><nodes>x<pods> and are destroyed after each run, also on failure.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from ipaddress import IPv4Network

from k8slab.labs.netns import NetnsLab
from k8slab.spec.load import parse_spec

TARGETS = {(3, 2): 1.0, (50, 4): 5.0}  # seconds for "up", from the issue


def spec_text(name: str, nodes: int, host_only: str = "192.168.56.0/24", pod_cidr: str = "10.244.0.0/16") -> str:
    net = IPv4Network(host_only)
    lines = [f"name: {name}", "box: {name: debian/bookworm64, version: '12.20240905.1'}",
             f"network: {{host_only: {net}}}",
             f"kubernetes: {{version: '1.31', pod_cidr: {pod_cidr}, service_cidr: 10.96.0.0/12}}",
             "cni: {plugin: flannel, backend: host-gw}", "nodes:"]
    for i in range(nodes):
        role, extra = ("control-plane", ", cpus: 2, memory: 2048") if i == 0 else ("worker", "")
        lines.append(f"  - {{name: {'controlplane' if i == 0 else f'node-{i}'}, role: {role}, "
                     f"ip: {net.network_address + 10 + i}{extra}}}")
    return "\n".join(lines) + "\n"


def one_run(name: str, nodes: int, pods: int) -> dict[str, float]:
    lab = NetnsLab(parse_spec(spec_text(name, nodes), source=f"<bench {nodes}x{pods}>"))
    wanted = [(f"pod-{n.index}-{k}", n.name) for n in lab.spec.nodes for k in range(pods)]
    try:
        t0 = time.perf_counter()
        lab.up()
        t1 = time.perf_counter()
        started = lab.pods_start(wanted)
        t2 = time.perf_counter()
        assert len(started) == len(wanted)
        lab.destroy()
        t3 = time.perf_counter()
    finally:
        lab.destroy()
    return {"lab": t1 - t0, "pods": t2 - t1, "up": t2 - t0, "destroy": t3 - t2}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="3x2,50x4", help="NODESxPODS, comma separated")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds between runs: the kernel frees destroyed namespaces in the background")
    parser.add_argument("--prefix", default="bench", help="lab name prefix (lab names must be unique on the machine)")
    args = parser.parse_args()
    problem = NetnsLab.unavailable_reason()
    if problem:
        print(f"netns_bench: cannot run: {problem}", file=sys.stderr)
        return 2
    print(f"{'size':>8} {'lab':>8} {'pods':>8} {'up':>8} {'destroy':>8}  target(up)  (median of {args.runs} runs, s)")
    for size in args.sizes.split(","):
        nodes, pods = (int(x) for x in size.split("x"))
        runs = []
        for _ in range(args.runs):
            time.sleep(args.settle)
            runs.append(one_run(f"{args.prefix}{nodes}x{pods}", nodes, pods))
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        target = TARGETS.get((nodes, pods))
        verdict = f"< {target:g} s {'met' if med['up'] < target else 'MISSED'}" if target else ""
        print(f"{size:>8} {med['lab']:8.3f} {med['pods']:8.3f} {med['up']:8.3f} {med['destroy']:8.3f}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
