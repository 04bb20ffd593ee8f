"""The emulated lab's lifecycle: nothing left after destroy, a crash or Ctrl-C; `up` twice changes
nothing; pods free their address; wrong names get errors that say what exists."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import time

import pytest

from k8slab.errors import CommandFailedError, LabSpecError, LabStateError, UsageError
from k8slab.labs.netns import NetnsLab, names, nsfs

from .labtools import (
    K8SLAB,
    ROOT,
    default_spec,
    host_snapshot,
    leftovers,
    many_node_data,
    run_cli,
    spec_data,
    spec_from,
    unique_name,
    write_spec,
)


def test_destroy_leaves_the_default_namespace_exactly_as_before(labs):
    before = host_snapshot()
    spec = default_spec(unique_name())
    lab = labs(spec)
    lab.up()
    assert host_snapshot()["ip route"] == before["ip route"]  # up itself never touches it
    assert host_snapshot()["ip link"] == before["ip link"]
    lab.pod_start("a", spec.workers[0].name)
    lab.pod_start("b", spec.workers[-1].name)
    sleeper = subprocess.Popen([*lab.pod_argv("a"), "sleep", "300"])  # a process destroy must end
    pod_ns = nsfs.netns_path(names.pod_netns(spec.name, "a"))
    deadline = time.monotonic() + 10
    while sleeper.pid not in nsfs.pids_in([pod_ns]) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sleeper.pid in nsfs.pids_in([pod_ns])
    lab.destroy()
    assert sleeper.wait(timeout=5) != 0
    assert leftovers(spec.name) == []
    assert host_snapshot() == before


def test_up_twice_says_so_and_changes_nothing(tmp_path, cli_labs):
    name = unique_name()
    path = write_spec(tmp_path / "lab.yaml", spec_data(), name)
    cli_labs(default_spec(name))
    first = run_cli(path, "up", "--backend", "netns")
    assert first.returncode == 0, first.stderr
    lab = NetnsLab(default_spec(name))
    pod = lab.pod_start("keep", lab.spec.workers[0].name)
    netns_before = leftovers(name)
    built_before = lab.paths.lab_file.read_text()
    routes_before = lab.node_run(lab.spec.workers[0].name, ["ip", "route"]).stdout

    again = run_cli(path, "up", "--backend", "netns")
    assert again.returncode == 2
    assert "already up" in again.stderr
    with pytest.raises(LabStateError, match="already up"):
        lab.up()
    assert leftovers(name) == netns_before
    assert lab.paths.lab_file.read_text() == built_before
    assert lab.node_run(lab.spec.workers[0].name, ["ip", "route"]).stdout == routes_before
    assert lab.pods() == [pod]

    gone = run_cli(path, "destroy", "--yes")
    assert gone.returncode == 0, gone.stderr
    assert leftovers(name) == []


def _interrupt_up(tmp_path, sig: int) -> tuple[str, subprocess.Popen, str]:
    """Start `k8slab up` on a big lab and send sig once it has made its namespaces."""
    name = unique_name("big-")
    path = write_spec(tmp_path / "lab.yaml", many_node_data(100), name)
    proc = subprocess.Popen([*K8SLAB, "--spec", str(path), "up", "--backend", "netns"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stdout:  # type: ignore[union-attr]
        seen.append(line)
        if "network namespaces" in line:
            proc.send_signal(sig)
            break
    out, err = proc.communicate(timeout=60)
    return name, proc, "".join(seen) + out + err


def test_ctrl_c_during_up_leaves_nothing(tmp_path, cli_labs):
    name, proc, output = _interrupt_up(tmp_path, signal.SIGINT)
    cli_labs(spec_from(many_node_data(100), name))
    assert proc.returncode == 130, output  # interrupted during up, not after it
    assert "interrupted" in output
    assert leftovers(name) == []


def test_destroy_cleans_up_after_a_crash(tmp_path, cli_labs):
    name, proc, output = _interrupt_up(tmp_path, signal.SIGKILL)
    spec = spec_from(many_node_data(100), name)
    cli_labs(spec)
    assert proc.returncode == -signal.SIGKILL, output
    lab = NetnsLab(spec)
    assert leftovers(name), "the crashed run should have left namespaces behind"
    assert not lab.is_up()
    assert lab.has_leftovers()
    result = run_cli(tmp_path / "lab.yaml", "destroy", "--yes")
    assert result.returncode == 0, result.stderr
    assert leftovers(name) == []


def test_up_after_a_crash_clears_the_leftovers_first(labs):
    spec = default_spec(unique_name())
    lab = labs(spec)
    lab.up()
    lab.pod_start("old", spec.workers[0].name)
    lab.paths.lab_file.unlink()  # what a crash before the end of `up` leaves: namespaces, no lab.json
    lines: list[str] = []
    lab.up(lines.append)
    assert any("leftovers" in line for line in lines)
    assert lab.pods() == []
    assert lab.pod_start("new", spec.workers[0].name).ip == spec.workers[0].pod_gateway + 1


def test_pod_delete_frees_the_address_for_a_new_pod(labs):
    """host-local hands addresses out round-robin: a freed one comes back once the allocator wraps
    around the node's subnet, which this test drives it to do."""
    spec = default_spec(unique_name())
    lab = labs(spec)
    lab.up()
    node = spec.workers[0]
    first = lab.pod_start("first", node.name)
    second = lab.pod_start("second", node.name)
    assert (first.ip, second.ip) == (node.pod_gateway + 1, node.pod_gateway + 2)
    leases = lab.paths.ipam_dir(node.name) / "cbr0"
    assert (leases / str(first.ip)).exists()

    lab.pod_delete("first")
    assert not (leases / str(first.ip)).exists()
    assert names.pod_netns(spec.name, "first") not in leftovers(spec.name)
    assert [p.name for p in lab.pods()] == ["second"]
    assert lab.pod_run("second", ["ping", "-c", "1", "-W", "1", str(node.pod_gateway)]).ok

    # Every other address of the subnet (gateway and broadcast aside), then the freed one.
    usable = node.pod_subnet.num_addresses - 3
    fill = [(f"fill-{i}", node.name) for i in range(usable - 2)]
    lab.pods_start(fill)
    again = lab.pod_start("again", node.name)
    assert again.ip == first.ip
    with pytest.raises(CommandFailedError, match="no IP addresses available"):
        lab.pod_start("one-too-many", node.name)
    assert "one-too-many" not in {p.name for p in lab.pods()}
    assert names.pod_netns(spec.name, "one-too-many") not in leftovers(spec.name)


def test_unknown_and_taken_names_are_refused_with_what_exists(labs, tmp_path):
    spec = default_spec(unique_name())
    lab = labs(spec)
    with pytest.raises(LabStateError, match="not up"):
        lab.pod_start("early", spec.workers[0].name)
    lab.up()
    lab.pod_start("web", spec.workers[0].name)
    with pytest.raises(UsageError, match=f"no-such-node.*{spec.workers[0].name}"):
        lab.pod_start("x", "no-such-node")
    with pytest.raises(LabStateError, match="already exists.*web"):
        lab.pod_start("web", spec.workers[-1].name)
    with pytest.raises(LabStateError, match="pods: web"):
        lab.pod_delete("nope")
    with pytest.raises(LabStateError, match="pods: web"):
        lab.pod_run("nope", ["true"])
    with pytest.raises(UsageError, match=f"no-such-node.*{spec.control_plane.name}"):
        lab.node_run("no-such-node", ["true"])
    assert [p.name for p in lab.pods()] == ["web"]

    path = write_spec(tmp_path / "lab.yaml", spec_data(), spec.name)
    result = run_cli(path, "pod", "exec", "nope", "--", "true")
    assert result.returncode == 2 and "no pod named 'nope'" in result.stderr
    result = run_cli(path, "pod", "run", "Bad_Name", "--node", spec.workers[0].name)
    assert result.returncode == 2 and "DNS label" in result.stderr


def test_cli_pod_commands_show_what_kubectl_would(labs, tmp_path):
    spec = default_spec(unique_name())
    lab = labs(spec)
    lab.up()
    path = write_spec(tmp_path / "lab.yaml", spec_data(), spec.name)
    node = spec.workers[0]
    assert run_cli(path, "pod", "run", "httpd", "--node", node.name).returncode == 0
    listing = run_cli(path, "pod", "list").stdout.splitlines()
    assert listing[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "IP", "NODE"]
    assert listing[1].split() == ["httpd", "1/1", "Running", "0", str(node.pod_gateway + 1), node.name]
    hostname = run_cli(path, "node", "exec", node.name, "--", "hostname")
    assert (hostname.returncode, hostname.stdout.strip()) == (0, node.name)
    failing = run_cli(path, "pod", "exec", "httpd", "--", "sh", "-c", "exit 7")
    assert failing.returncode == 7
    assert run_cli(path, "pod", "delete", "httpd").returncode == 0
    assert lab.pods() == []


def test_bad_spec_is_refused_before_anything_is_built(labs):
    data = spec_data()
    data["nodes"][1]["name"] = "hostonly"
    with pytest.raises(LabSpecError, match="hostonly"):  # lab.yaml itself is refused ...
        spec_from(data, unique_name())
    good = default_spec(unique_name())  # ... and so is a spec made in code, by the emulated lab's plan
    spec = dataclasses.replace(good, nodes=(good.nodes[0], dataclasses.replace(good.nodes[1], name="hostonly"),
                                            *good.nodes[2:]))
    lab = labs(spec)
    with pytest.raises(LabSpecError, match="hostonly"):
        lab.up()
    assert leftovers(spec.name) == []
