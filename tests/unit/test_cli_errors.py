"""The CLI's answers to a user's mistake or a missing piece of the machine: exit 2, a message that says
what to do, no traceback, and nothing started. No root and no lab needed (what cannot be arranged
without root is arranged by replacing the preflight's answer)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from k8slab.cli import main
from k8slab.labs.netns import NetnsLab, preflight

ROOT = Path(__file__).resolve().parents[2]


def k8slab(capsys, spec: Path, *args: str) -> tuple[int, str, str]:
    rc = main(["--spec", str(spec), *args])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def not_root(monkeypatch):
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 1000)


@pytest.fixture
def netns_lab_present(monkeypatch):
    """A netns lab of the spec exists (its state file is there), whoever runs the command."""
    monkeypatch.setattr(NetnsLab, "is_up", lambda self: True)
    monkeypatch.setattr(NetnsLab, "has_leftovers", lambda self: True)


@pytest.fixture
def no_lab_work(monkeypatch):
    """Any attempt to touch a lab or run checks fails the test: the error must come first."""
    def refuse(*_a, **_k):
        raise AssertionError("the command went on to the lab although its input was bad")

    monkeypatch.setattr("k8slab.cli.verify_cmds.verify_lab", refuse)
    monkeypatch.setattr("k8slab.cli.verify_cmds.running_lab", refuse)
    monkeypatch.setattr("k8slab.cli.tutorial_cmds.running_lab", refuse)


@pytest.mark.parametrize("option", ["--junit", "--html"])
def test_verify_refuses_an_unwritable_report_path_before_any_check(capsys, spec_file, tmp_path, no_lab_work, option):
    a_file = tmp_path / "plain-file"
    a_file.write_text("")
    rc, _, err = k8slab(capsys, spec_file, "verify", option, str(a_file / "report.out"))
    assert rc == 2
    assert f"cannot write the {'JUnit XML' if option == '--junit' else 'HTML report'}" in err
    assert f"{a_file} is not a directory" in err and "pick another path" in err


def test_verify_refuses_a_directory_as_report(capsys, spec_file, tmp_path, no_lab_work):
    rc, _, err = k8slab(capsys, spec_file, "verify", "--junit", str(tmp_path))
    assert rc == 2 and "it is a directory" in err


def test_diagram_refuses_an_unwritable_path_before_touching_the_lab(capsys, spec_file, tmp_path, no_lab_work):
    a_file = tmp_path / "plain-file"
    a_file.write_text("")
    rc, out, err = k8slab(capsys, spec_file, "diagram", "-o", str(a_file / "lab.svg"))
    assert rc == 2 and f"cannot write the diagram to '{a_file / 'lab.svg'}'" in err
    assert out == ""


def test_diagram_makes_the_missing_directories_of_its_output(capsys, spec_file, tmp_path):
    out_file = tmp_path / "new" / "dir" / "lab.svg"
    rc, out, err = k8slab(capsys, spec_file, "diagram", "-o", str(out_file))
    assert rc == 0, err
    assert out_file.read_text().lstrip().startswith(("<?xml", "<svg", "<!DOCTYPE svg"))
    assert f"wrote {out_file}" in out


def test_ssh_without_virtualbox_says_so_and_what_to_use_instead(capsys, spec_file, monkeypatch):
    from k8slab.labs.vagrant import VagrantLab

    monkeypatch.setattr(VagrantLab, "unavailable_reason", classmethod(lambda cls: "VirtualBox is not installed"))
    monkeypatch.setattr(os, "execve", lambda *a: pytest.fail(f"exec'd {a[1]} although VirtualBox is missing"))
    rc, _, err = k8slab(capsys, spec_file, "ssh", "node-1")
    assert rc == 2
    assert "VirtualBox is not installed" in err
    assert f"`k8slab --spec {spec_file} --backend netns node exec node-1 -- bash`" in err


@pytest.mark.parametrize("command", [["status"], ["pod", "list"], ["node", "exec", "node-1", "--", "ip", "r"],
                                     ["trace", "node-1", "node-2"], ["verify"]])
def test_a_lab_that_is_up_but_unusable_here_is_not_called_absent(capsys, spec_file, not_root, netns_lab_present,
                                                                 command):
    rc, _, err = k8slab(capsys, spec_file, *command)
    assert rc == 2
    assert "no lab" not in err
    assert "(netns) exists, but cannot be used from here: needs root" in err and "run with sudo" in err


def test_asking_for_a_backend_that_cannot_run_here_says_why(capsys, spec_file, not_root):
    rc, _, err = k8slab(capsys, spec_file, "pod", "list", "--backend", "netns")
    assert rc == 2 and "the netns backend cannot run here: needs root" in err


def test_destroy_without_root_does_not_claim_there_is_nothing(capsys, spec_file, not_root, netns_lab_present):
    rc, out, err = k8slab(capsys, spec_file, "destroy", "--yes")
    assert rc == 2 and "nothing to destroy" not in out
    assert "exists, but cannot be used from here: needs root" in err


def test_destroy_of_the_netns_backend_without_root_is_an_error_not_a_traceback(capsys, spec_file, not_root,
                                                                                 netns_lab_present, monkeypatch):
    monkeypatch.setattr(NetnsLab, "_teardown", lambda self, progress: pytest.fail("tore down without root"))
    rc, _, err = k8slab(capsys, spec_file, "destroy", "--yes", "--backend", "netns")
    assert rc == 2 and "needs root" in err and "run with sudo" in err


def test_a_missing_tool_does_not_stop_destroy(monkeypatch, tmp_path):
    # Removing a lab needs root only: uninstalling traceroute must not make a lab impossible to remove.
    monkeypatch.setattr(preflight, "TOOLS", {**preflight.TOOLS, "no-such-tool-r2": "r2-pkg"})
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 0)
    assert "no-such-tool-r2" in NetnsLab.unavailable_reason()
    assert NetnsLab.teardown_unavailable_reason() is None


def test_no_lab_up_hint_names_the_spec_given(capsys, spec_file, monkeypatch):
    monkeypatch.setattr(NetnsLab, "unavailable_reason", classmethod(lambda cls: None))
    monkeypatch.setattr(NetnsLab, "is_up", lambda self: False)
    rc, _, err = k8slab(capsys, spec_file, "pod", "list", "--backend", "netns")
    assert rc == 2 and f"`k8slab --spec {spec_file} --backend netns up`" in err


def _tools_dir(where: Path, tools: list[str]) -> str:
    where.mkdir()
    for tool in tools:
        exe = where / tool
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    return str(where)


def test_preflight_checks_the_path_the_lab_runs_its_tools_with(monkeypatch, tmp_path):
    # `ip netns exec NODE traceroute` finds traceroute on PATH, so a traceroute only in /usr/sbin
    # would let the lab build and every trace fail later.
    all_tools = list(preflight.TOOLS)
    sbin = _tools_dir(tmp_path / "sbin", all_tools)
    path = _tools_dir(tmp_path / "bin", [t for t in all_tools if t != "traceroute"])
    monkeypatch.setattr(preflight, "SBIN", sbin)
    found = preflight.tool_problems(path, root=True)
    assert found == [(f"traceroute installed but not on PATH: export PATH=$PATH:{sbin} "
                      "(or run with sudo, whose PATH has them)")]
    # Without root, sudo's PATH is the one that will count, and it has the sbin directories.
    assert preflight.tool_problems(path, root=False) == []


def test_preflight_names_the_package_of_a_tool_that_is_nowhere(monkeypatch, tmp_path):
    monkeypatch.setattr(preflight, "SBIN", _tools_dir(tmp_path / "sbin", []))
    path = _tools_dir(tmp_path / "bin", [t for t in preflight.TOOLS if t != "ping"])
    assert preflight.tool_problems(path, root=True) == ["ping missing: apt-get install iputils-ping"]
