"""How the acceptance suite picks its lab, seen from the command line a user types (no root, no lab)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pytest_run(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("K8SLAB_") and k != "CI"}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=ROOT,
                          env={**clean, **env}, capture_output=True, text=True, timeout=120, check=False)


def spec_copy(tmp_path: Path, name: str) -> Path:
    text = (ROOT / "lab.yaml").read_text().replace("name: tutorial", f"name: {name}", 1)
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    return path


def test_no_lab_up_outside_ci_skips_with_the_command_to_start_one(tmp_path):
    spec = spec_copy(tmp_path, "h4-none")
    res = pytest_run("tests/acceptance/test_routes.py", "-rs", "--spec", str(spec), "--lab-backend", "netns")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "skipped" in res.stdout and "'h4-none'" in res.stdout
    # the command that starts this very lab: its spec and backend, not `make lab` (which builds lab.yaml's)
    assert f"`k8slab --spec {spec} --backend netns up`" in res.stdout and "make lab" not in res.stdout
    assert "passed" not in res.stdout


def test_options_work_from_the_project_root_run(tmp_path):
    # `pytest tests/...` must know the suite's options although tests/acceptance/conftest.py loads late.
    spec = spec_copy(tmp_path, "h4-none")
    res = pytest_run("tests/unit/test_traceroute.py", "--lab-backend", "netns", "--spec", str(spec),
                     "--lab-inventory", str(tmp_path / "none.yml"))
    assert res.returncode == 0, res.stdout + res.stderr


def test_a_bad_spec_fails_the_acceptance_collection_with_its_problems(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "lab.yaml").read_text().replace("pod_cidr: 10.244.0.0/16", "pod_cidr: 10.244.0.0/33"))
    res = pytest_run("tests/acceptance/test_routes.py", K8SLAB_SPEC=str(bad))
    assert res.returncode != 0
    assert "kubernetes.pod_cidr" in res.stdout
