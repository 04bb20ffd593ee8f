#!/usr/bin/env python3
"""How long `k8slab verify` takes on healthy emulated labs of growing size, and that it passes them.

For each size: build a lab of its own (a random name, destroyed after, also on failure), run verify the way
the CLI does (verify/run.py), and print the checks, the failures and the seconds verify took. The nodes keep
the kernel's default ICMP rate limits: verify paces its traces for them (verify/schedule.py). Needs root:

    sudo .venv/bin/python bench/verify_bench.py [--sizes 3,12,20,50] [--prefix vb]

Other work on the machine (other labs, tests) slows the pods' start and the traces: note the load printed.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time

from k8slab.labs.netns import NetnsLab
from k8slab.spec.load import parse_spec

sys.path.insert(0, os.path.dirname(__file__))
from netns_bench import spec_text  # the benches share one spec generator

TARGET_S = {50: 30.0}  # from issue 13


def one(nodes: int, prefix: str = "vb") -> tuple[int, list[str], float, list[str]]:
    from k8slab.verify.run import verify_lab

    name = f"{prefix}{secrets.token_hex(2)}"
    lab = NetnsLab(parse_spec(spec_text(name, nodes), source=f"<verify bench {nodes}>"))
    try:
        lab.up()
        t0 = time.perf_counter()
        verification = verify_lab(lab)
        took = time.perf_counter() - t0
    finally:
        lab.destroy()
    failed = [r.message for r in verification.results if not r.ok]
    return len(verification.results), failed, took, verification.notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="3,12,20,50", help="node counts, comma separated")
    parser.add_argument("--prefix", default="vb", help="the labs' names start with it (a random suffix follows)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'nodes':>6} {'checks':>7} {'failed':>7} {'seconds':>8}  target")
    bad = 0
    for n in (int(s) for s in args.sizes.split(",")):
        checks, failed, took, notes = one(n, args.prefix)
        target = TARGET_S.get(n)
        mark = "" if target is None else f"< {target:g} s {'ok' if took < target else 'MISSED'}"
        print(f"{n:>6} {checks:>7} {len(failed):>7} {took:>8.1f}  {mark}  (load {os.getloadavg()[0]:.1f})",
              flush=True)
        for line in failed[:5] + notes:
            print(f"         {line}")
        bad += bool(failed) or notes != []
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
