"""Inventory rendering from a recorded `vagrant ssh-config` (the real template of Vagrant 2.3.4, for the
three default nodes): groups, host names = node names, the connection of each node, nothing else."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import paramiko
import pytest
import yaml

from k8slab.errors import CommandFailedError, LabStateError
from k8slab.provision.inventory import (
    SshEndpoint,
    endpoints_from_inventory,
    parse_ssh_config,
    render_inventory,
    ssh_config_text,
    write_inventory,
)
from k8slab.provision.runner import ansible_path
from k8slab.spec.load import load_spec

ROOT = Path(__file__).resolve().parents[2]
SPEC = load_spec(ROOT / "lab.yaml")
RECORDED = (Path(__file__).parent / "data" / "vagrant-ssh-config.txt").read_text()
# The recorded sample, read by paramiko's own ssh_config parser: what our parser must agree with.
REFERENCE = paramiko.SSHConfig.from_text(RECORDED)


def test_ssh_config_is_parsed_like_ssh_would():
    endpoints = parse_ssh_config(RECORDED)
    assert list(endpoints) == [n.name for n in SPEC.nodes]
    for name, e in endpoints.items():
        ref = REFERENCE.lookup(name)
        assert (e.hostname, e.port, e.user) == (ref["hostname"], int(ref["port"]), ref["user"])
        assert e.identity_file == ref["identityfile"][0]  # also the quoted path with a space in it
    assert len({e.port for e in endpoints.values()}) == len(endpoints)


def test_rendered_inventory_groups_and_connections(tmp_path):
    endpoints = parse_ssh_config(RECORDED)
    path = write_inventory(SPEC, endpoints, tmp_path / "hosts.yml")
    data = yaml.safe_load(path.read_text())
    groups = data["all"]["children"]["k8s_nodes"]["children"]
    assert set(groups) == {"control_plane", "workers"}
    assert list(groups["control_plane"]["hosts"]) == [SPEC.control_plane.name]
    assert list(groups["workers"]["hosts"]) == [n.name for n in SPEC.workers]
    hosts = {**groups["control_plane"]["hosts"], **groups["workers"]["hosts"]}
    for node in SPEC.nodes:
        ref = REFERENCE.lookup(node.name)
        hv = hosts[node.name]
        assert hv["ansible_host"] == ref["hostname"] and hv["ansible_port"] == int(ref["port"])
        assert hv["ansible_user"] == ref["user"]
        assert hv["ansible_ssh_private_key_file"] == ref["identityfile"][0]
        args = shlex.split(hv["ansible_ssh_common_args"])
        assert "StrictHostKeyChecking=no" in args and "UserKnownHostsFile=/dev/null" in args
        # connection variables only: the roles get everything else from the spec as extravars
        assert all(k.startswith("ansible_") for k in hv)


def test_ansible_reads_the_rendered_inventory(tmp_path):
    path = write_inventory(SPEC, parse_ssh_config(RECORDED), tmp_path / "hosts.yml")
    exe = shutil.which("ansible-inventory", path=ansible_path())
    if exe is None:
        pytest.skip("ansible-inventory not installed (make setup)")
    listed = json.loads(subprocess.run([exe, "-i", str(path), "--list"], capture_output=True, text=True,
                                       check=True, timeout=60).stdout)
    assert sorted(listed["k8s_nodes"]["children"]) == ["control_plane", "workers"]
    assert listed["control_plane"]["hosts"] == [SPEC.control_plane.name]
    assert sorted(listed["workers"]["hosts"]) == sorted(n.name for n in SPEC.workers)
    # and back: the endpoints k8slab reads from any inventory are the ones it wrote
    assert endpoints_from_inventory(listed) == parse_ssh_config(RECORDED)


def test_a_node_missing_from_ssh_config_is_named():
    lost = SPEC.workers[-1].name
    partial = {k: v for k, v in parse_ssh_config(RECORDED).items() if k != lost}
    with pytest.raises(LabStateError) as err:
        render_inventory(SPEC, partial)
    assert lost in str(err.value) and "vagrant ssh-config" in str(err.value)


def test_ssh_config_written_for_paramiko_round_trips():
    endpoints = parse_ssh_config(RECORDED)
    endpoints["extra"] = SshEndpoint("extra", "10.9.9.9", 2022, "root", None, "ip netns exec ns nc %h %p")
    text = ssh_config_text(endpoints)
    assert parse_ssh_config(text) == endpoints
    looked_up = paramiko.SSHConfig.from_text(text).lookup("extra")
    assert looked_up["proxycommand"] == "ip netns exec ns nc 10.9.9.9 2022"
    assert endpoints["extra"].expanded_proxy_command() == looked_up["proxycommand"]


def test_garbage_before_any_host_is_refused():
    with pytest.raises(CommandFailedError, match="before any 'Host'"):
        parse_ssh_config("HostName 127.0.0.1\n")
    with pytest.raises(CommandFailedError, match="not a number"):
        parse_ssh_config("Host a\n  Port twenty\n")
