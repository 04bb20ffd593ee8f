"""provision: real ansible-runner runs of a tiny playbook on local hosts named after the lab's nodes;
the progress lines, the recap, and the messages for a failed task, an unreachable host and a
missing ansible-playbook."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from k8slab.errors import CommandFailedError, ToolMissingError
from k8slab.provision.runner import (
    check,
    phase_durations,
    phases_text,
    progress_line,
    recap,
    run_playbook,
    task_failure,
)
from k8slab.spec.load import load_spec

ROOT = Path(__file__).resolve().parents[2]
SPEC = load_spec(ROOT / "lab.yaml")
HOSTS = [n.name for n in SPEC.nodes]
WORKER = SPEC.workers[0].name

ROLE_TASKS = [
    {"name": "report the node", "ansible.builtin.debug": {"msg": "{{ inventory_hostname }}"}},
    {"name": "write a marker",
     "ansible.builtin.copy": {"content": "x", "dest": "{{ marker_dir }}/{{ inventory_hostname }}"}},
    {"name": "only on the control plane", "ansible.builtin.debug": {"msg": "cp"},
     "when": "inventory_hostname == control_plane_name"},
]


def make_playbook(tmp_path: Path, extra_tasks: list[dict] | None = None) -> Path:
    role = tmp_path / "roles" / "demo" / "tasks"
    role.mkdir(parents=True)
    (role / "main.yml").write_text(yaml.safe_dump(ROLE_TASKS + (extra_tasks or []), sort_keys=False))
    play = tmp_path / "site.yml"
    play.write_text(yaml.safe_dump([{"name": "Demo play", "hosts": "k8s_nodes", "gather_facts": False,
                                     "roles": ["demo"]}]))
    return play


def local_inventory(tmp_path: Path, hostvars: dict[str, dict] | None = None) -> Path:
    def host(name: str) -> dict:
        return {"ansible_connection": "local", "ansible_python_interpreter": shutil.which("python3") or "python3",
                **(hostvars or {}).get(name, {})}

    data = {"all": {"children": {"k8s_nodes": {"children": {
        "control_plane": {"hosts": {SPEC.control_plane.name: host(SPEC.control_plane.name)}},
        "workers": {"hosts": {n.name: host(n.name) for n in SPEC.workers}}}}}}}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def run(tmp_path: Path, extra_tasks=None, hostvars=None, **kwargs):
    lines: list[str] = []
    markers = tmp_path / "markers"
    markers.mkdir()
    result = run_playbook(local_inventory(tmp_path, hostvars), {"marker_dir": str(markers),
                          "control_plane_name": SPEC.control_plane.name}, HOSTS,
                          playbook=make_playbook(tmp_path, extra_tasks), progress=lines.append,
                          run_dir=tmp_path / "runner", **kwargs)
    return result, lines


def test_every_task_result_becomes_a_progress_line_per_host(tmp_path):
    result, lines = run(tmp_path)
    check(result, tmp_path / "hosts.yml", HOSTS, "k8slab provision")  # must not raise

    expected = []
    for task in ROLE_TASKS:
        for host in HOSTS:
            if "when" in task and host != SPEC.control_plane.name:
                status = "skipped"
            else:
                status = "changed" if "ansible.builtin.copy" in task else "ok"
            expected.append(f"{host}  demo : {task['name']}  {status}")
    # hosts run in parallel (forks = node count), so only the set of lines per task is fixed
    assert sorted(lines) == sorted(expected)
    first_of_each_task = [lines.index(next(l for l in lines if t["name"] in l)) for t in ROLE_TASKS]
    assert first_of_each_task == sorted(first_of_each_task)

    summary = recap(result.stats, HOSTS).splitlines()
    assert summary[0] == f"{SPEC.control_plane.name}  ok=3 changed=1 failed=0 unreachable=0 skipped=0"
    for host, line in zip(HOSTS[1:], summary[1:]):
        assert line == f"{host}  ok=2 changed=1 failed=0 unreachable=0 skipped=1"
    assert sorted(p.name for p in (tmp_path / "markers").iterdir()) == sorted(HOSTS)
    # Each play's wall time is measured for the progress summary.
    assert [name for name, _ in result.phases] == [play["name"] for play in yaml.safe_load(
        (tmp_path / "site.yml").read_text())] and all(s >= 0 for _, s in result.phases)


def test_phase_durations_from_recorded_runner_marks():
    marks = [("Prepare every node", "2026-11-23T09:00:00.000000"), ("Initialise the control plane",
             "2026-11-23T09:04:12.500000"), ("Join the workers in lab.yaml order", "2026-11-23T09:05:15.000000"),
             ("", "2026-11-23T09:06:00.000000")]
    phases = phase_durations(marks)
    assert phases == [("Prepare every node", 252.5), ("Initialise the control plane", 62.5),
                      ("Join the workers in lab.yaml order", 45.0)]
    assert phases_text(phases) == ("Prepare every node 4m12s · Initialise the control plane 1m02s · "
                                   "Join the workers in lab.yaml order 0m45s")
    assert phase_durations(marks[:1]) == []  # a run that stopped before its stats: nothing to measure


def test_failed_task_names_host_role_task_and_the_module_message(tmp_path):
    boom = {"name": "install packages", "ansible.builtin.fail": {"msg": "no package kubeadm=1.31.*"},
            "when": f"inventory_hostname == '{WORKER}'"}
    result, lines = run(tmp_path, extra_tasks=[boom])
    assert f"{WORKER}  demo : install packages  FAILED" in lines
    assert [f.host for f in result.failures] == [WORKER]
    with pytest.raises(CommandFailedError) as err:
        check(result, tmp_path / "hosts.yml", HOSTS, "k8slab provision")
    message = str(err.value)
    assert f"{WORKER}: task 'demo : install packages' failed: no package kubeadm=1.31.*" in message
    assert f"{WORKER}  ok=2 changed=1 failed=1" in message
    assert "run `k8slab provision` again" in message
    assert str(result.artifacts / "stdout") in message and (result.artifacts / "stdout").exists()


def test_command_failure_carries_its_stderr(tmp_path):
    cmd = {"name": "run kubeadm", "ansible.builtin.command": "sh -c 'echo preflight: swap is on >&2; exit 3'",
           "when": f"inventory_hostname == '{WORKER}'"}
    result, _ = run(tmp_path, extra_tasks=[cmd])
    (failure,) = result.failures
    assert failure.role == "demo" and failure.task == "run kubeadm"
    assert "non-zero return code" in failure.message and "stderr: preflight: swap is on" in failure.message


def test_unreachable_host_is_named_with_a_hint(tmp_path):
    # ProxyCommand=/bin/false: ssh gives up at once, without any packet leaving the machine.
    bad = {WORKER: {"ansible_connection": "ssh", "ansible_host": WORKER,
                    "ansible_ssh_common_args": "-o ProxyCommand=/bin/false"}}
    result, lines = run(tmp_path, hostvars=bad)
    # debug runs on the controller; the copy is the first task that needs the host
    assert f"{WORKER}  demo : write a marker  UNREACHABLE" in lines
    with pytest.raises(CommandFailedError) as err:
        check(result, tmp_path / "hosts.yml", HOSTS, "k8slab provision")
    assert f"could not reach {WORKER} over SSH" in str(err.value)
    assert "`k8slab status`" in str(err.value)


def test_missing_ansible_playbook_is_detected_from_rc_127(tmp_path):
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    assert shutil.which("ansible-playbook", path=str(empty_bin)) is None
    result, lines = run(tmp_path, path=str(empty_bin))
    assert (result.status, result.rc, lines) == ("failed", 127, [])
    with pytest.raises(ToolMissingError) as err:
        check(result, tmp_path / "hosts.yml", HOSTS, "k8slab provision")
    assert "pip install ansible" in str(err.value) and "make setup" in str(err.value)


def test_events_that_are_not_task_results_make_no_line():
    assert progress_line({"event": "playbook_on_task_start", "event_data": {"task": "x"}}) is None
    assert task_failure({"event": "runner_on_ok", "event_data": {"host": "a"}}) is None
    ignored = {"event": "runner_on_failed", "event_data": {"host": "a", "task": "t", "ignore_errors": True,
                                                            "res": {"msg": "m"}}}
    assert task_failure(ignored) is None
    assert progress_line(ignored) == "a  t  failed (ignored)"
