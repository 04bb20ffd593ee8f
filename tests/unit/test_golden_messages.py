"""The messages a user reads, kept as files a newcomer can read without running anything (netlab's
tests/errors idea): every lab.yaml mistake the validation knows, and the CLI's main refusals.

  tests/golden/spec/NAME.yaml   a spec with one mistake (its first line says which)
  tests/golden/spec/NAME.txt    the full LabSpecError message k8slab prints for it
  tests/golden/cli/NAME.cmd     a command line, as typed: `[VAR=VALUE ...] k8slab ARGS`, run in tests/golden/cli
                                (whose lab.yaml is a valid lab that is never up)
  tests/golden/cli/NAME.txt     what the terminal shows: the command, stdout, stderr, the exit status

A new case is two files. To write (or rewrite) the .txt files from what k8slab says now, run

  K8SLAB_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_golden_messages.py

then read `git diff tests/golden` before committing: an update run fails on purpose, so it never passes
unread. Without the variable, any difference fails with the diff.
"""

from __future__ import annotations

import difflib
import os
import shlex
from pathlib import Path

import pytest

from k8slab.cli import main
from k8slab.errors import LabSpecError
from k8slab.spec.load import parse_spec

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
UPDATE = os.environ.get("K8SLAB_UPDATE_GOLDEN") == "1"


def compare(expected_file: Path, actual: str) -> None:
    if UPDATE:
        old = expected_file.read_text() if expected_file.exists() else None
        expected_file.write_text(actual)
        pytest.fail(f"{'rewrote' if old != actual else 'unchanged:'} {expected_file.name}; review `git diff "
                    "tests/golden` and run again without K8SLAB_UPDATE_GOLDEN")
    assert expected_file.exists(), (f"{expected_file} is missing; write it with K8SLAB_UPDATE_GOLDEN=1 (see this "
                                    "file's docstring)")
    expected = expected_file.read_text()
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                            str(expected_file.name), "k8slab now says"))
        pytest.fail(f"the message differs from {expected_file}:\n{diff}", pytrace=False)


@pytest.mark.parametrize("case", sorted(p.stem for p in (GOLDEN / "spec").glob("*.yaml")))
def test_spec_error_message(case):
    source = GOLDEN / "spec" / f"{case}.yaml"
    with pytest.raises(LabSpecError) as err:
        parse_spec(source.read_text(), source=source.name)
    compare(source.with_suffix(".txt"), f"{err.value}\n")


@pytest.mark.parametrize("case", sorted(p.stem for p in (GOLDEN / "vagrant").glob("*.yaml")))
def test_virtualbox_lab_refusal(case, tmp_path):
    """A spec that is valid (the emulated lab takes it) but that VirtualBox would refuse: `up` on the
    VirtualBox lab says why before any VM is made (no /etc/vbox/networks.conf here: VirtualBox's default)."""
    from k8slab.errors import UsageError
    from k8slab.labs.vagrant import VagrantLab

    source = GOLDEN / "vagrant" / f"{case}.yaml"
    spec = parse_spec(source.read_text(), source=source.name)
    with pytest.raises(UsageError) as err:
        VagrantLab(spec).check_host_only(tmp_path / "no-networks.conf")
    compare(source.with_suffix(".txt"), f"{err.value}\n")


@pytest.mark.parametrize("case", sorted(p.stem for p in (GOLDEN / "cli").glob("*.cmd")))
def test_cli_message(case, monkeypatch, capsys):
    line = (GOLDEN / "cli" / f"{case}.cmd").read_text().strip()
    words = shlex.split(line)
    env = {}
    while words and "=" in words[0]:
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    assert words[:1] == ["k8slab"], f"{case}.cmd must read `[VAR=VALUE ...] k8slab ARGS`, not {line!r}"
    for name in [v for v in os.environ if v.startswith("K8SLAB_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.chdir(GOLDEN / "cli")
    rc = main(words[1:])
    out, err = capsys.readouterr()
    compare(GOLDEN / "cli" / f"{case}.txt", f"$ {line}\n{out}{err}[exit {rc}]\n")
