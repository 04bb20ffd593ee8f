"""Record what FakeLab (tests/unit/fakelab.py) replays: run by hand as root, it builds an emulated lab of the
project's lab.yaml under a random name, starts two pods for a trace, records every (where, argv) -> Result of
one run_checks, one pod-to-pod trace and
the tutorial walkthrough's step 2 (node to node), writes tests/unit/data/fakelab-<dataplane>.json and destroys the lab.

    sudo .venv/bin/python tests/unit/record_fakelab.py [lab.yaml]
"""

from __future__ import annotations

import secrets
import sys
import threading
from ipaddress import IPv4Address
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakelab import DATA, TOKEN, dump_recording, where_pod

from k8slab.labs.base import Result
from k8slab.labs.netns.lab import NetnsLab
from k8slab.spec.load import load_spec
from k8slab.teach.explain import Endpoint
from k8slab.teach.trace import observe_trace
from k8slab.teach.walkthroughs.runner import run_walkthrough
from k8slab.teach.walkthroughs.tutorial import TUTORIAL
from k8slab.verify.run import run_checks

TRACE_PODS = ("rec-src", "rec-dst")  # the trace's pods: on the first and the second worker
WALK_STEP = 2  # the tutorial's node-to-node step: no pods of its own, no capture


def main(spec_path: Path) -> int:
    name = f"rec{secrets.token_hex(2)}"
    tmp = Path(f"/tmp/{name}.yaml")
    tmp.write_text(spec_path.read_text().replace("name: tutorial", f"name: {name}", 1))
    spec = load_spec(tmp)
    lab = NetnsLab(spec)
    runs: dict[tuple[str, tuple[str, ...]], Result] = {}
    lock = threading.Lock()
    node_run, pod_run = lab.node_run, lab.pod_run

    def record(where: str, argv, res: Result) -> Result:
        with lock:
            runs[(where, tuple(argv))] = res
        return res

    lab.up(print)
    try:
        a, b = spec.workers[0], spec.workers[1]
        src, dst = lab.pods_start([(TRACE_PODS[0], a.name), (TRACE_PODS[1], b.name)])
        listed = lab.pods()
        held = [IPv4Address(r.ip) for r in lab._pod_records(None)]  # the DNS pod's too, which pods() hides
        lab.node_run = lambda node, argv, timeout=30: record(node, argv, node_run(node, argv, timeout))
        lab.pod_run = lambda pod, argv, timeout=30, container=None: record(
            where_pod(pod), argv, pod_run(pod, argv, timeout, container))
        with mock.patch("k8slab.verify.pods.secrets.token_hex", return_value=TOKEN):
            failed = [r for r in run_checks(lab, progress=print) if not r.ok]
        trace = observe_trace(lab, Endpoint(src.ip, a.name, src.name), Endpoint(dst.ip, b.name, dst.name),
                              capture=False, pods=listed)
        steps, _ = run_walkthrough(lab, TUTORIAL, [WALK_STEP], show=lambda r: None, progress=print)
        if failed or not trace.explanation.ok or not steps[0].ok:
            print(f"not written: {len(failed)} check(s) failed, trace ok={trace.explanation.ok}, walkthrough step "
                  f"{WALK_STEP} ok={steps[0].ok}", file=sys.stderr)
            return 1
        out = DATA / f"fakelab-{spec.cni_backend}.json"
        dump_recording(out, runs, listed, held)
        print(f"wrote {out}: {len(runs)} commands")
        return 0
    finally:
        lab.destroy(print)
        tmp.unlink()


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "lab.yaml")))
