"""lab.yaml cannot be turned against its user: what is not a small UTF-8 regular file, YAML aliases, duplicate
keys, deep nesting and every unusable value the issue's 105 bad specs found are refused with a clear, bounded
message, before anything is built. Expected ranges and limits come from spec/facts.py and spec/load.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from k8slab.errors import LabSpecError
from k8slab.spec import load
from k8slab.spec.facts import MAX_CPUS, MAX_MEMORY_MB, NAT_NETWORK
from k8slab.spec.load import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]


def data() -> dict:
    return yaml.safe_load((ROOT / "lab.yaml").read_text())


def refused(spec: dict | str, match: str) -> LabSpecError:
    text = spec if isinstance(spec, str) else yaml.safe_dump(spec)
    with pytest.raises(LabSpecError, match=match) as caught:
        parse_spec(text)
    return caught.value


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "k8slab", *args], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, check=False)


# ---- the file itself


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "lab.yaml"
    os.mkfifo(fifo)
    out = cli("--spec", str(fifo), "spec")  # the timeout would fire if it waited
    assert out.returncode == 2 and "FIFO (named pipe), not a regular file" in out.stderr, out.stderr


@pytest.mark.parametrize("path, kind", [("/dev/zero", "a character device"), ("/", "a directory")])
def test_devices_and_directories_are_refused(path, kind):
    with pytest.raises(LabSpecError, match=f"it is {kind}, not a regular file"):
        load_spec(path)


def test_a_huge_file_is_refused_before_it_is_read(tmp_path):
    big = tmp_path / "lab.yaml"
    big.write_bytes(b"#" * (load.MAX_SPEC_BYTES + 1))
    with pytest.raises(LabSpecError, match=f"a lab spec is at most {load.MAX_SPEC_BYTES} bytes"):
        load_spec(big)


def test_non_utf8_is_a_clear_error(tmp_path):
    bad = tmp_path / "lab.yaml"
    bad.write_bytes(b"name: x\nbox: \xff\xfe\n")
    with pytest.raises(LabSpecError, match=r"not UTF-8 text: byte 0xff at line 2"):
        load_spec(bad)


# ---- YAML that would turn against its reader


def test_an_alias_bomb_is_refused_at_once():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    start = time.monotonic()
    refused(bomb + "name: *i\n", "anchors and aliases")
    assert time.monotonic() - start < 5


def test_a_duplicate_key_is_refused_naming_both_lines():
    spec = data()
    spec["name"] = "mine"
    text = yaml.safe_dump(spec) + "name: tutorial\n"
    refused(text, r"duplicate key 'name' \(first at line \d+\)")


def test_deep_nesting_is_a_clear_error_not_a_recursion_error():
    refused("[" * 100_000, f"nested more than {load.MAX_DEPTH} levels")
    refused("a:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 200)), f"nested more than {load.MAX_DEPTH}")


def test_every_message_is_bounded():
    spec = data()
    spec["nodes"][1]["name"] = "x" * 100_000
    spec["nodes"] += [{"name": f"n{i}", "role": "boss", "ip": "1.2.3.4"} for i in range(200)]
    err = refused(spec, "is not a valid hostname")
    assert all(len(p) <= load.MAX_PROBLEM_CHARS + 40 for p in err.problems)
    assert len(err.problems) == load.MAX_PROBLEMS + 1 and "more problems" in err.problems[-1]
    assert len(str(err)) < (load.MAX_PROBLEMS + 1) * (load.MAX_PROBLEM_CHARS + 50)


# ---- values no lab can use


SPECIAL = ["0.0.0.0/16", "127.0.0.0/16", "169.254.0.0/16", "224.0.0.0/16", "239.1.0.0/16", "240.0.0.0/16",
           "255.0.0.0/16"]


@pytest.mark.parametrize("cidr", SPECIAL)
def test_unusable_pod_cidrs_are_refused(cidr):
    spec = data()
    spec["kubernetes"]["pod_cidr"] = cidr
    refused(spec, rf"kubernetes.pod_cidr: {cidr} overlaps .*no pod or service address may use")


@pytest.mark.parametrize("cidr", SPECIAL)
def test_unusable_service_cidrs_are_refused(cidr):
    spec = data()
    spec["kubernetes"]["service_cidr"] = cidr
    refused(spec, rf"kubernetes.service_cidr: {cidr} overlaps .*no pod or service address may use")


def test_a_service_cidr_over_the_nat_network_is_refused():
    spec = data()
    spec["kubernetes"]["service_cidr"] = str(NAT_NETWORK.supernet(new_prefix=16))
    refused(spec, rf"service_cidr: .* overlaps VirtualBox's NAT network {NAT_NETWORK}")


@pytest.mark.parametrize("key, value", [("cpus", 10 ** 30), ("cpus", MAX_CPUS + 1), ("cpus", 0),
                                        ("memory", 10 ** 30), ("memory", MAX_MEMORY_MB + 1), ("memory", 256)])
def test_cpus_and_memory_outside_what_virtualbox_gives_are_refused(key, value):
    spec = data()
    spec["nodes"][1][key] = value
    refused(spec, rf"nodes\[1\] \(\S+\)\.{key}: must be")


@pytest.mark.parametrize("version", ["1.31\n", "1.\u0663\u0661", "1.31 ", " 1.31", "1.3"])
def test_versions_are_ascii_and_whole(version):
    spec = data()
    spec["kubernetes"]["version"] = version
    refused(spec, "kubernetes.version")


@pytest.mark.parametrize("name", ["node-1\n", "n\u00f8de", "NODE"])
def test_node_names_are_ascii_and_whole(name):
    spec = data()
    spec["nodes"][1]["name"] = name
    refused(spec, "is not a valid hostname")


@pytest.mark.parametrize("name", ["hostonly", "nat-x", "pod-x"])
def test_names_the_emulated_lab_reserves_are_refused_by_spec_too(tmp_path, name):
    spec = data()
    spec["nodes"][1]["name"] = name
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = cli("--spec", str(path), "spec")
    assert out.returncode == 2 and f"'{name}'" in out.stderr and "emulated lab" in out.stderr, out.stderr


@pytest.mark.parametrize("nodes", ["nodes:\n", "nodes: []\n"])
def test_a_lab_needs_at_least_one_node(nodes):
    spec = data()
    del spec["nodes"]
    refused(yaml.safe_dump(spec) + nodes, "nodes: ")


def test_the_shipped_spec_still_loads():
    assert load_spec(ROOT / "lab.yaml").nodes
