"""The playbook's structure, read as YAML: plays that must move together stop everyone on a failure, and
no task that touches a bootstrap token can print it (issue 10: a token in a task's output lands in
ansible-runner's artefacts under build/)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "ansible" / "site.yml"
ROLES = ROOT / "roles"
# What a task touching a token mentions: kubeadm's token command, the Secrets bootstrap tokens are stored
# as, or a variable that holds one (the control plane's join fact, a worker's copy of it, a token's register).
TOKEN = re.compile(r"kubeadm\W+token|bootstrap\.kubernetes\.io/token|\bcontrol_plane_join\w*|\bworker_join\b"
                   r"|--token\b|bootstrapTokens", re.IGNORECASE)
BLOCK_KEYS = ("block", "rescue", "always")


def tasks_in(items: list[dict[str, Any]] | None) -> Iterator[dict[str, Any]]:
    """Every task of a task list, blocks opened (a block's own no_log covers its tasks, as in Ansible)."""
    for task in items or []:
        if any(key in task for key in BLOCK_KEYS):
            inherited = {"no_log": True} if task.get("no_log") else {}
            for key in BLOCK_KEYS:
                for inner in tasks_in(task.get(key)):
                    yield {**inner, **inherited} if inherited else inner
        else:
            yield task


def role_tasks() -> dict[str, dict[str, Any]]:
    """'role/file.yml: task name' -> task, for every task file of every role (and handlers)."""
    found = {}
    for path in sorted(ROLES.glob("*/*/*.yml")):
        if path.parent.name not in ("tasks", "handlers"):
            continue
        for task in tasks_in(yaml.safe_load(path.read_text())):
            found[f"{path.relative_to(ROLES)}: {task.get('name', '?')}"] = task
    return found


def touches_token(task: dict[str, Any]) -> bool:
    body = yaml.safe_dump({k: v for k, v in task.items() if k not in ("name", "fail_msg")})
    # kubeadm init prints a join command with its token unless told not to.
    module = task.get("ansible.builtin.command")
    argv = module.get("argv") or [] if isinstance(module, dict) else []
    prints_init_token = argv[:2] == ["kubeadm", "init"] and "--skip-token-print" not in argv
    return bool(TOKEN.search(body) or prints_init_token)


def unguarded(tasks: dict[str, dict[str, Any]]) -> list[str]:
    return [where for where, task in tasks.items() if touches_token(task) and task.get("no_log") is not True]


def test_every_task_touching_a_token_has_no_log():
    tasks = role_tasks()
    token_tasks = [where for where, task in tasks.items() if touches_token(task)]
    # The tasks known to carry a token are found (so the pattern is not matching nothing)...
    for known in ("control_plane/tasks/join-token.yml: Create a join token for the workers still to join",
                  "control_plane/tasks/join-token.yml: Keep the join token for the workers",
                  "worker/tasks/join.yml: Render the kubeadm join config",
                  "control_plane/tasks/revoke-tokens.yml: Revoke every bootstrap token"):
        assert known in token_tasks, (known, token_tasks)
    # ...and each of them hides its output.
    assert unguarded(tasks) == []


def test_the_check_finds_a_token_task_without_no_log():
    leaky = {"name": "print the join command",
             "ansible.builtin.command": {"argv": ["kubeadm", "token", "create", "--print-join-command"]}}
    init = {"name": "init", "ansible.builtin.command": {"argv": ["kubeadm", "init", "--config", "x.yaml"]}}
    quiet_init = {"name": "init", "ansible.builtin.command": {"argv": ["kubeadm", "init", "--skip-token-print"]}}
    assert touches_token(init) and not touches_token(quiet_init)
    inside_block = {"name": "join", "block": [{"name": "render", "ansible.builtin.template": {"src": "x"},
                                                "vars": {"worker_join": "{{ hostvars.cp.control_plane_join }}"}}]}
    tasks = {f"t{i}": t for i, t in enumerate(tasks_in([leaky, inside_block]))}
    assert unguarded(tasks) == ["t0", "t1"]
    guarded = {"name": "join", "no_log": True, "block": inside_block["block"]}
    assert unguarded({f"t{i}": t for i, t in enumerate(tasks_in([guarded]))}) == []


def test_every_play_stops_all_hosts_on_a_failure():
    plays = yaml.safe_load(PLAYBOOK.read_text())
    assert len(plays) >= 4
    for play in plays:
        assert play.get("any_errors_fatal") is True, play["name"]


def test_workers_join_one_at_a_time_in_lab_order():
    (join,) = [p for p in yaml.safe_load(PLAYBOOK.read_text()) if "worker" in p.get("roles", [])]
    assert join["serial"] == 1 and "k8slab_workers" in join["hosts"]
    tasks = role_tasks()
    asserts = [t for w, t in tasks.items() if w.startswith("worker/") and "ansible.builtin.assert" in t]
    # Before joining, a worker checks the earlier workers of k8slab_workers are registered.
    assert any("k8slab_workers.index(inventory_hostname)" in str(t.get("vars", {})) for t in asserts)


def test_init_and_join_are_detected_by_stamps_and_reset_when_unfinished():
    tasks = role_tasks()
    text = {where: yaml.safe_dump(task) for where, task in tasks.items()}
    for role, stamp in (("control_plane", "k8slab_init_stamp"), ("worker", "k8slab_join_stamp")):
        writes = [w for w, t in tasks.items() if w.startswith(role) and "ansible.builtin.copy" in t
                  and stamp in str(t["ansible.builtin.copy"].get("dest"))]
        assert writes, f"{role} never writes {stamp}"
        resets = [w for w in text if w.startswith(role) and "- reset" in text[w] and "- -f" in text[w]]
        assert len(resets) >= 2, f"{role}: a leftover and a failed attempt are both reset: {resets}"
    # admin.conf no longer proves a finished init (kubeadm writes it before the later phases).
    assert not any("creates" in str(t) and "admin" in str(t) for t in tasks.values())


def test_the_first_play_pulls_the_cni_images_before_any_node_joins():
    first = yaml.safe_load(PLAYBOOK.read_text())[0]
    pulls = [t for t in first.get("tasks", []) if t.get("ansible.builtin.include_role", {}).get("name") == "flannel"]
    assert pulls and pulls[0]["ansible.builtin.include_role"]["tasks_from"] == "images.yml"
    (task,) = yaml.safe_load((ROLES / "flannel" / "tasks" / "images.yml").read_text())
    assert task["loop"] == ["{{ flannel_image }}", "{{ flannel_cni_plugin_image }}"]
    assert "kubernetes_done_stamp" in task["when"]  # only on a node that has not joined yet
