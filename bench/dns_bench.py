#!/usr/bin/env python3
"""How fast the emulated lab's cluster DNS answers, seen from a pod on another node than the DNS pod:
node, pod, service and A-B-C-D.default.pod names, and names it does not know (which must fail at
once, not after a resolver timeout). Each name is looked up --runs times with getaddrinfo (glibc,
the pod's resolv.conf: the search path and ndots:5 included) in one process inside the pod.

    sudo .venv/bin/python bench/dns_bench.py [--runs 20] [--name dnsbench]

Prints the median and worst time per kind of name in milliseconds. The lab is destroyed afterwards.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import Path

from k8slab.labs.base import Container
from k8slab.labs.netns import NetnsLab
from k8slab.spec.load import load_spec

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 100  # from the issue: answers and refusals under 100 ms

# Runs in the pod: times getaddrinfo for each name, prints JSON {name: [ms, ...]}.
PROBE = r"""
import json, socket, sys, time
names, runs = json.loads(sys.argv[1]), int(sys.argv[2])
out = {}
for name in names:
    times, answers = [], []
    for _ in range(runs):
        t = time.perf_counter()
        try:
            answers.append(socket.getaddrinfo(name, None, socket.AF_INET)[0][4][0])
        except socket.gaierror as exc:
            answers.append(exc.errno)  # EAI_NONAME: the server said no; EAI_AGAIN: no answer in time
        times.append((time.perf_counter() - t) * 1000)
    out[name] = [times, answers]
print(json.dumps(out))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--name", default="dnsbench", help="lab name (its namespaces are k8slab-NAME_*)")
    args = parser.parse_args()
    lab = NetnsLab(load_spec(ROOT / "lab.yaml").renamed(args.name))
    lab.up()
    try:
        spec = lab.spec
        web = lab.pod_start("web", spec.workers[0].name, (Container("web", "nginx"),))
        lab.pod_start("client", spec.workers[-1].name)
        lab.service_expose("web", 80, 80, ["web"])
        names = {"node": spec.workers[0].name, "pod": "web", "service": "web.default.svc.cluster.local",
                 "pod A-B-C-D": str(web.ip).replace(".", "-") + ".default.pod.cluster.local",
                 "unknown (5 tries through the search path)": "no-such-name", "unknown FQDN": "no-such.example."}
        res = lab.pod_run("client", ["python3", "-c", PROBE, json.dumps(list(names.values())), str(args.runs)],
                          timeout=600)
        if not res.ok:
            print(res.stderr, file=sys.stderr)
            return 1
        times = json.loads(res.stdout)
        print(f"cluster DNS from a pod on {spec.workers[-1].name} ({args.runs} lookups each, target < {TARGET_MS} ms)")
        failed = False
        for kind, name in names.items():
            t, answers = sorted(times[name][0]), times[name][1]
            wanted = "a name error" if kind.startswith("unknown") else "an address"
            right = sum((a == socket.EAI_NONAME) if kind.startswith("unknown") else isinstance(a, str) for a in answers)
            failed |= right != len(answers)
            print(f"  {kind:<42} median {t[len(t) // 2]:7.2f} ms   worst {t[-1]:7.2f} ms   "
                  f"{right}/{len(answers)} got {wanted}")
        return 1 if failed else 0
    finally:
        lab.destroy()


if __name__ == "__main__":
    sys.exit(main())
