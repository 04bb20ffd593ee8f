"""Helpers of the emulated lab's root tests: specs with unique h3-* names, leftovers, snapshots."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import yaml

from k8slab.labs.netns import names
from k8slab.spec.load import load_spec, parse_spec
from k8slab.spec.model import LabSpec

ROOT = Path(__file__).resolve().parents[2]
K8SLAB = [sys.executable, "-m", "k8slab"]


def unique_name(tag: str = "") -> str:
    return f"h3-{tag}{secrets.token_hex(3)}"[:20]


def spec_data() -> dict:
    return yaml.safe_load((ROOT / "lab.yaml").read_text())


def four_node_data(backend: str = "host-gw") -> dict:
    """Another lab shape: 4 nodes, another host-only network and another pod CIDR."""
    data = spec_data()
    data["network"]["host_only"] = "192.168.57.0/24"
    data["kubernetes"]["pod_cidr"] = "10.32.0.0/16"
    data["cni"]["backend"] = backend
    data["nodes"] = [
        {"name": "cp", "role": "control-plane", "ip": "192.168.57.20", "cpus": 2, "memory": 2048},
        *({"name": f"worker-{i}", "role": "worker", "ip": f"192.168.57.{20 + i}"} for i in (1, 2, 3)),
    ]
    return data


def many_node_data(count: int) -> dict:
    data = spec_data()
    data["nodes"] = [data["nodes"][0]] + [
        {"name": f"node-{i}", "role": "worker", "ip": f"192.168.56.{10 + i}"} for i in range(1, count)]
    return data


def write_spec(path: Path, data: dict, name: str) -> Path:
    data = {**data, "name": name}
    path.write_text(yaml.safe_dump(data))
    return path


def default_spec(name: str) -> LabSpec:
    return load_spec(ROOT / "lab.yaml").renamed(name)


def spec_from(data: dict, name: str) -> LabSpec:
    return parse_spec(yaml.safe_dump({**data, "name": name}), source=f"<{name}>")


def leftovers(name: str) -> list[str]:
    found = [n for n in _netns_list() if n.startswith(names.prefix(name))]
    state = names.StatePaths(name).dir
    return found + ([str(state)] if state.exists() else [])


def _netns_list() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def host_snapshot() -> dict[str, list[str]]:
    """The default namespace as `ip` shows it. Namespaces of other k8slab labs (other people's tests
    running at the same time on a shared machine) are left out; in CI there are none."""
    def ip(*args: str) -> list[str]:
        return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout.splitlines()

    netns = [n for n in _netns_list() if not n.startswith("k8slab-") or n.startswith("k8slab-h3-")]
    return {"ip netns list": sorted(netns), "ip route": ip("route"), "ip link": ip("link"),
            "ip addr": ip("addr")}


def run_cli(spec_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*K8SLAB, "--spec", str(spec_path), *args], check=False, capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def up_through_cli(tmp_path: Path, register, tag: str = "") -> tuple[Path, LabSpec]:
    """A lab with a unique name brought up by `k8slab up` from a spec file in tmp_path; register (the
    cli_labs fixture) makes sure it is destroyed. Returns the spec file and the spec."""
    name = unique_name(tag)
    path = write_spec(tmp_path / "lab.yaml", spec_data(), name)
    spec = default_spec(name)
    register(spec)
    done = run_cli(path, "up", "--backend", "netns")
    assert done.returncode == 0, done.stderr
    return path, spec
