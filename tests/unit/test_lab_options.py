"""Which lab a command means: --spec, --backend and --inventory before or after any subcommand, the
K8SLAB_* variables behind them, the rules they obey together, and hints that name the lab in use.
No root and no lab: `k8slab spec` reads only the spec, the rest stops at the selection's answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from k8slab.cli import build_parser, main
from k8slab.errors import UsageError
from k8slab.labs.registry import BACKENDS, Selection, lab_class, start_hint
from k8slab.spec.load import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clean_env(monkeypatch):
    for var in ("K8SLAB_SPEC", "K8SLAB_BACKEND", "K8SLAB_INVENTORY"):
        monkeypatch.delenv(var, raising=False)


def lab_name(path: Path) -> str:
    return load_spec(path).name


@pytest.mark.parametrize("where", ["before", "after"])
def test_spec_is_accepted_before_or_after_the_subcommand(capsys, clean_env, spec_file, where):
    argv = ["--spec", str(spec_file), "spec"] if where == "before" else ["spec", "--spec", str(spec_file)]
    assert main(argv) == 0
    assert f"lab '{lab_name(spec_file)}' from {spec_file}" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["pod", "--spec", "S", "--backend", "netns", "list"],
    ["pod", "list", "--spec", "S", "--backend", "netns"],
    ["--spec", "S", "--backend", "netns", "pod", "list"],
    ["--spec", "S", "node", "exec", "node-1", "--backend", "netns"],
    ["--backend", "netns", "verify", "--spec", "S"],
])
def test_lab_options_parse_at_every_level_and_a_later_level_does_not_reset_them(argv):
    args = build_parser().parse_args(argv)
    assert (args.spec, args.backend) == ("S", "netns")


def test_every_subcommand_takes_the_lab_options():
    parser = build_parser()
    (subs,) = [a for a in parser._actions if a.dest == "command"]
    for name, sub in subs.choices.items():
        options = {s for a in sub._actions for s in a.option_strings}
        assert {"--spec", "--backend", "--inventory"} <= options, name


def test_the_environment_names_the_lab_and_an_option_wins_over_it(capsys, clean_env, monkeypatch, spec_file,
                                                                  tmp_path):
    monkeypatch.setenv("K8SLAB_SPEC", str(spec_file))
    assert main(["spec"]) == 0
    assert f"lab '{lab_name(spec_file)}'" in capsys.readouterr().out
    other = tmp_path / "other.yaml"
    other.write_text(spec_file.read_text().replace(f"name: {lab_name(spec_file)}", "name: a-other", 1))
    assert main(["spec", "--spec", str(other)]) == 0
    assert "lab 'a-other'" in capsys.readouterr().out


def test_a_bad_backend_in_the_environment_is_a_usage_error(capsys, clean_env, monkeypatch, spec_file):
    monkeypatch.setenv("K8SLAB_BACKEND", "virtualbox")
    assert main(["--spec", str(spec_file), "status"]) == 2
    err = capsys.readouterr().err
    assert "unknown backend 'virtualbox' (from K8SLAB_BACKEND)" in err and ", ".join(BACKENDS) in err


def test_selection_rules():
    assert Selection.resolve(env={}) == Selection(Path("lab.yaml"), None, None)
    env = {"K8SLAB_SPEC": "e.yaml", "K8SLAB_BACKEND": "netns"}
    assert Selection.resolve(env=env) == Selection(Path("e.yaml"), "netns", None)
    assert Selection.resolve("o.yaml", "vagrant", env=env) == Selection(Path("o.yaml"), "vagrant", None)
    # an inventory is an existing cluster: the ssh backend, and only that one
    assert Selection.resolve(inventory="hosts.yml", env={}).backend == "ssh"
    assert Selection.resolve(env={"K8SLAB_INVENTORY": "h.yml"}) == Selection(Path("lab.yaml"), "ssh", Path("h.yml"))
    with pytest.raises(UsageError, match="goes with --backend ssh, not --backend netns"):
        Selection.resolve(backend="netns", inventory="hosts.yml", env={})
    with pytest.raises(UsageError, match="--backend ssh needs --inventory FILE"):
        Selection.resolve(backend="ssh", env={})


def test_ssh_without_an_inventory_on_the_command_line_says_what_to_add(capsys, clean_env, spec_file):
    assert main(["--spec", str(spec_file), "status", "--backend", "ssh"]) == 2
    assert "--backend ssh needs --inventory FILE (K8SLAB_INVENTORY)" in capsys.readouterr().err


def test_registry_maps_every_backend_to_its_class():
    assert {b: lab_class(b).backend for b in BACKENDS} == {"vagrant": "vagrant", "netns": "netns", "ssh": "ssh"}
    assert [b for b in BACKENDS if lab_class(b).needs_inventory] == ["ssh"]
    with pytest.raises(UsageError, match="unknown backend 'kvm'"):
        lab_class("kvm")


def test_hints_name_the_spec_and_backend_in_use(spec_file):
    default = parse_spec((ROOT / "lab.yaml").read_text())
    mine = load_spec(spec_file)
    assert default.command("status") == "k8slab status"
    assert mine.command("pod list", backend="netns") == f"k8slab --spec {spec_file} --backend netns pod list"
    assert (mine.command("node exec node-1 -- ip r", backend="ssh", inventory="h.yml")
            == f"k8slab --spec {spec_file} --backend ssh --inventory h.yml node exec node-1 -- ip r")
    lab = lab_class("netns")(mine)
    assert lab.command("verify") == f"k8slab --spec {spec_file} --backend netns verify"
    # `make lab` builds lab.yaml's lab: offered only for it
    assert start_hint(default) == "`make lab` or `k8slab up`"
    assert start_hint(mine) == f"`k8slab --spec {spec_file} up`"
    assert start_hint(mine, "netns") == f"`k8slab --spec {spec_file} --backend netns up`"


def test_up_refuses_a_second_lab_of_the_spec_on_another_backend(capsys, clean_env, spec_file, monkeypatch):
    from k8slab.labs.netns import NetnsLab
    from k8slab.labs.vagrant import VagrantLab

    monkeypatch.setattr(NetnsLab, "unavailable_reason", classmethod(lambda cls: None))
    monkeypatch.setattr(NetnsLab, "is_up", lambda self: True)
    monkeypatch.setattr(VagrantLab, "unavailable_reason", classmethod(lambda cls: None))
    monkeypatch.setattr(VagrantLab, "is_up", lambda self: False)
    monkeypatch.setattr(VagrantLab, "has_leftovers", lambda self: False)
    monkeypatch.setattr(VagrantLab, "up", lambda self, progress=None: pytest.fail("built a second lab"))
    assert main(["--spec", str(spec_file), "up", "--backend", "vagrant"]) == 2
    err = capsys.readouterr().err
    name = lab_name(spec_file)
    assert f"lab '{name}' is already up on the netns backend" in err
    assert f"`k8slab --spec {spec_file} --backend netns destroy`" in err
