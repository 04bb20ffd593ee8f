"""One name check for pods and nodes at every entry point (labs.base.check_name): an ASCII DNS label matched
whole, so a name is never a path, and a bad one is a clear usage error before any lab is looked at."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from k8slab.labs.base import InvalidNameError, check_name

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("bad", ["../lab", "../../../../any/dir/evil", "web\n", "wéb", "w\u0663b", "WEB", "-web",
                                 "web-", "", "a" * 64, "web.default", "web/x"])
def test_names_that_are_not_ascii_dns_labels_are_refused(bad):
    with pytest.raises(InvalidNameError, match="is not a DNS label"):
        check_name("pod", bad)


def test_a_huge_name_is_quoted_cut():
    with pytest.raises(InvalidNameError) as caught:
        check_name("pod", "x" * 1_000_000)
    assert len(str(caught.value)) < 400 and "1000000 characters" in str(caught.value)


@pytest.mark.parametrize("argv, name", [
    (["pod", "exec", "../lab", "--", "id"], "../lab"), (["pod", "delete", "../lab"], "../lab"),
    (["pod", "run", "../lab"], "../lab"), (["pod", "run", "web", "--node", "../n"], "../n"),
    (["node", "exec", "../n", "--", "id"], "../n"), (["trace", "../lab", "10.244.1.2"], "../lab"),
    (["diagram", "-o", "x.svg", "--trace", "a", "../lab"], "../lab")])
def test_every_command_refuses_a_path_as_a_name(argv, name):
    out = subprocess.run([sys.executable, "-m", "k8slab", "--spec", str(ROOT / "lab.yaml"), *argv],
                         capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert out.returncode == 2 and f"name {name!r} is not a DNS label" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
