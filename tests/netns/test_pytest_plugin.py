"""A teacher's own checks, outside this repository: the README's assignment file run by pytest as a
subprocess in a temporary folder, against an emulated lab, through k8slab's installed pytest plugin."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from .labtools import ROOT, default_spec, spec_data, unique_name, write_spec

ASSIGNMENT = ROOT / "docs" / "examples" / "my_checks.py"


def teacher_pytest(folder, *args: str) -> subprocess.CompletedProcess:
    # Not this repository's conftest, ini or environment: only what an installed k8slab gives a teacher.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("K8SLAB_", "PYTEST_")) and k != "CI"}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_a_teachers_file_anywhere_gets_the_lab_its_hosts_and_expectations(labs, tmp_path):
    spec = default_spec(unique_name("pt"))
    lab = labs(spec)
    lab.up()
    folder = tmp_path / "class"
    folder.mkdir()
    assert ROOT not in folder.parents
    write_spec(folder / "lab.yaml", spec_data(), spec.name)
    shutil.copy(ASSIGNMENT, folder / "my_checks.py")
    n1, n2 = spec.workers[0], spec.workers[1]

    # Nothing started yet: the pod checks fail with the assignment's own message.
    res = teacher_pytest(folder, "--k8slab-spec", "lab.yaml", "my_checks.py")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "1 passed" in res.stdout and "start the two pods first" in res.stdout
    assert f"k8slab lab {spec.name!r}" in res.stdout and "netns backend, already up" in res.stdout

    lab.pod_start("httpd", n1.name)
    lab.pod_start("busybox", n2.name)
    res = teacher_pytest(folder, "--k8slab-spec", "lab.yaml", "my_checks.py")
    assert res.returncode == 0 and "3 passed" in res.stdout, res.stdout + res.stderr

    # A student who breaks flannel's route fails exactly the checks that see it.
    lab.node_run(n2.name, ["ip", "route", "del", str(n1.pod_subnet)])
    res = teacher_pytest(folder, "my_checks.py", "--k8slab-spec", str(folder / "lab.yaml"))
    assert res.returncode == 1 and "2 failed, 1 passed" in res.stdout, res.stdout
    assert f"{n2.name}: missing {n2.name} routes {n1.pod_subnet} via {n1.ip} on eth1" in res.stdout


def test_the_plugin_is_registered_once_when_named_again(tmp_path):
    (tmp_path / "test_x.py").write_text("def test_spec_option(pytestconfig):\n"
                                        "    assert pytestconfig.getoption('lab_spec') == 'x.yaml'\n")
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["k8slab.pytest_plugin"]\n')
    res = teacher_pytest(tmp_path, "-p", "k8slab.pytest_plugin", "--k8slab-spec", "x.yaml", "test_x.py")
    assert res.returncode == 0 and "1 passed" in res.stdout, res.stdout + res.stderr
    # a test that uses no lab fixture never probes for a lab
    assert "k8slab lab" not in res.stdout
