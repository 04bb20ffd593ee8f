"""Run the Ansible roles (ansible/site.yml) on every node at once with ansible-runner, showing each
host's tasks live, then one summary line per host. Turning runner events into lines and messages
is pure (progress_line, task_failure, recap); run_playbook is the side effect around them.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from k8slab.errors import CommandFailedError, ToolMissingError
from k8slab.labs.base import Progress, quiet
from k8slab.provision.inventory import PROJECT_ROOT
from k8slab.spec.model import LabSpec

PLAYBOOK = PROJECT_ROOT / "ansible" / "site.yml"
ANSIBLE_CFG = PROJECT_ROOT / "ansible" / "ansible.cfg"
# ansible-runner keeps each run's events and full stdout here (build/ is git-ignored).
RUNNER_DIR = PROJECT_ROOT / "build" / "ansible-runner"
# What a shell answers when the program is not on PATH; ansible-runner reports it as rc, it does not raise.
RC_NOT_FOUND = 127

_STATUS = {"runner_on_ok": "ok", "runner_on_failed": "FAILED", "runner_on_unreachable": "UNREACHABLE",
           "runner_on_skipped": "skipped"}


@dataclass(frozen=True)
class TaskFailure:
    host: str
    role: str | None
    task: str
    message: str
    unreachable: bool = False

    def describe(self) -> str:
        where = f"{self.role} : {self.task}" if self.role else self.task
        if self.unreachable:
            return f"{self.host} is unreachable over SSH (at '{where}'): {self.message}"
        return f"{self.host}: task '{where}' failed: {self.message}"


@dataclass
class PlaybookResult:
    status: str
    rc: int
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: list[TaskFailure] = field(default_factory=list)
    artifacts: Path | None = None
    phases: list[tuple[str, float]] = field(default_factory=list)  # (play name, seconds), in run order


def phase_durations(marks: list[tuple[str, str]]) -> list[tuple[str, float]]:
    """(play name, seconds) from the runner's play-start marks [(play name, ISO time)] and a final
    ("", ISO time) mark at the stats event: each play lasts until the next mark."""
    times = [(name, datetime.fromisoformat(created)) for name, created in marks]
    return [(name, max((end - start).total_seconds(), 0.0))
            for (name, start), (_, end) in itertools.pairwise(times) if name]


def phases_text(phases: list[tuple[str, float]]) -> str:
    """'Prepare every node 4m12s · Initialise the control plane 1m03s ...' for the progress summary."""
    return " · ".join(f"{name} {int(s) // 60}m{int(s) % 60:02d}s" for name, s in phases)


def task_label(event_data: Mapping[str, Any]) -> str:
    role, task = event_data.get("role"), event_data.get("task", "")
    return f"{role} : {task}" if role else str(task)


def progress_line(event: Mapping[str, Any]) -> str | None:
    """"node-1  containerd : install packages  changed" for a host's task result; None for other events."""
    kind = event.get("event", "")
    if kind not in _STATUS:
        return None
    data = event.get("event_data", {})
    status = _STATUS[kind]
    res = data.get("res") or {}
    if kind == "runner_on_ok" and res.get("changed"):
        status = "changed"
    if kind == "runner_on_failed" and data.get("ignore_errors"):
        status = "failed (ignored)"
    return f"{data.get('host', '?')}  {task_label(data)}  {status}"


def task_failure(event: Mapping[str, Any]) -> TaskFailure | None:
    """What went wrong, from a runner_on_failed/unreachable event (None for anything else or ignored errors)."""
    kind = event.get("event")
    data = event.get("event_data", {})
    if kind not in ("runner_on_failed", "runner_on_unreachable") or data.get("ignore_errors"):
        return None
    return TaskFailure(host=str(data.get("host", "?")), role=data.get("role"), task=str(data.get("task", "")),
                       message=module_message(data.get("res") or {}),
                       unreachable=kind == "runner_on_unreachable")


def module_message(res: Mapping[str, Any]) -> str:
    """The most useful part of a module's result: its msg, plus stderr/stdout tails for commands."""
    parts = []
    msg = str(res.get("msg", "")).strip()
    if msg:
        parts.append(msg)
    for stream in ("stderr", "stdout", "module_stderr", "module_stdout"):
        text = str(res.get(stream, "") or "").strip()
        if text and text not in msg:
            tail = "\n".join(text.splitlines()[-5:])
            parts.append(f"{stream}: {tail}")
    if "results" in res and not parts:  # a loop: report the first failed item
        for item in res["results"]:
            if isinstance(item, dict) and item.get("failed"):
                return module_message(item)
    return "\n".join(parts) or "no message from the module"


def recap(stats: Mapping[str, Mapping[str, int]], hosts: list[str]) -> str:
    """One line per host like Ansible's PLAY RECAP, from the playbook_on_stats event data."""
    lines = []
    for host in hosts:
        counts = {label: stats.get(key, {}).get(host, 0)
                  for key, label in (("ok", "ok"), ("changed", "changed"), ("failures", "failed"),
                                     ("dark", "unreachable"), ("skipped", "skipped"))}
        lines.append(f"{host}  " + " ".join(f"{k}={v}" for k, v in counts.items()))
    return "\n".join(lines)


def failure_message(result: PlaybookResult, inventory: Path, hosts: list[str], next_step: str) -> str:
    """The error a person acts on, for a run that did not succeed."""
    log = f"\nfull log: {result.artifacts / 'stdout'}" if result.artifacts else ""
    if result.rc == RC_NOT_FOUND and not result.stats:
        return ("ansible-playbook was not found on PATH, so the roles did not run; install ansible "
                "(`pip install ansible`, or `make setup` for the project venv) and run "
                f"`k8slab provision` again{log}")
    unreachable = [f for f in result.failures if f.unreachable]
    failed = [f for f in result.failures if not f.unreachable]
    lines = [f.describe() for f in failed]
    if unreachable:
        names = ", ".join(sorted({f.host for f in unreachable}))
        lines.append(f"could not reach {names} over SSH ({unreachable[0].message}); check the machines run "
                     f"(`k8slab status`) and that {inventory} points at them")
    if not lines:
        lines.append(f"ansible-playbook ended with status {result.status}, rc {result.rc}")
    recap_text = recap(result.stats, hosts) if result.stats else ""
    return "provisioning failed:\n  " + "\n  ".join("\n    ".join(l.splitlines()) for l in lines) + \
        (f"\n{recap_text}" if recap_text else "") + f"\nfix it, then run `{next_step}` again{log}"


def ansible_path(path: str | None = None) -> str:
    """PATH for ansible-playbook: path as given, else the caller's PATH plus the venv k8slab runs from
    (where `make setup` installs ansible, often not on the PATH of someone calling .venv/bin/k8slab)."""
    if path is not None:
        return path
    entries = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    venv_bin = str(Path(sys.executable).parent)
    return os.pathsep.join(entries if venv_bin in entries else [*entries, venv_bin])


def run_playbook(inventory: Path, extravars: Mapping[str, Any], hosts: list[str], *, playbook: Path = PLAYBOOK,
                 progress: Progress = quiet, run_dir: Path = RUNNER_DIR, path: str | None = None,
                 envvars: Mapping[str, str] | None = None) -> PlaybookResult:
    """Run playbook on every host of inventory at once, sending a progress line per task result.

    Returns the result whatever happened; the caller decides what a failure means (see provision).
    path is the PATH ansible-playbook is looked up in (see ansible_path).
    """
    import ansible_runner

    run_dir.mkdir(parents=True, exist_ok=True)
    failures: list[TaskFailure] = []
    stats: dict[str, dict[str, int]] = {}
    marks: list[tuple[str, str]] = []

    def on_event(event: dict[str, Any]) -> bool:
        line = progress_line(event)
        if line:
            progress(line)
        failure = task_failure(event)
        if failure:
            failures.append(failure)
        if event.get("event") == "playbook_on_play_start" and event.get("created"):
            marks.append((str(event.get("event_data", {}).get("play", "?")), str(event["created"])))
        if event.get("event") == "playbook_on_stats":
            data = event.get("event_data", {})
            stats.update({k: dict(data.get(k) or {}) for k in ("ok", "changed", "failures", "dark", "skipped")})
            if event.get("created"):
                marks.append(("", str(event["created"])))
        return True  # keep the event in the artifacts for the full log

    env = {"PATH": ansible_path(path), "ANSIBLE_NOCOLOR": "1", **(envvars or {})}
    if ANSIBLE_CFG.exists() and "ANSIBLE_CONFIG" not in env:
        env["ANSIBLE_CONFIG"] = str(ANSIBLE_CFG)
    runner = ansible_runner.run(
        private_data_dir=str(run_dir), playbook=str(playbook), inventory=str(inventory),
        extravars=dict(extravars), event_handler=on_event, quiet=True, envvars=env,
        forks=max(len(hosts), 1), rotate_artifacts=5,
    )
    artifacts = Path(runner.config.artifact_dir) if getattr(runner, "config", None) else None
    return PlaybookResult(status=runner.status, rc=int(runner.rc if runner.rc is not None else -1), stats=stats,
                          failures=failures, artifacts=artifacts, phases=phase_durations(marks))


def provision(spec: LabSpec, inventory: Path, progress: Progress = quiet, *,
              next_step: str = "k8slab provision", path: str | None = None) -> PlaybookResult:
    """Provision the lab's nodes from inventory with ansible/site.yml; CommandFailedError on any failure."""
    from k8slab.provision.ansible_vars import ansible_vars

    if not PLAYBOOK.exists():
        raise ToolMissingError(f"{PLAYBOOK} is missing; k8slab provisions from its own checkout, "
                               "run it from the project folder")
    hosts = [n.name for n in spec.nodes]
    progress(f"running {PLAYBOOK.relative_to(PROJECT_ROOT)} on {', '.join(hosts)} (inventory {inventory})")
    result = run_playbook(inventory, ansible_vars(spec), hosts, progress=progress,
                          run_dir=RUNNER_DIR / spec.name, path=path)
    if result.phases:  # where the minutes went, also when the run failed
        progress(f"time per play: {phases_text(result.phases)}")
    check(result, inventory, hosts, next_step)
    for line in recap(result.stats, hosts).splitlines():
        progress(line)
    return result


def check(result: PlaybookResult, inventory: Path, hosts: list[str], next_step: str) -> None:
    if result.status == "successful" and result.rc == 0:
        return
    message = failure_message(result, inventory, hosts, next_step)
    if result.rc == RC_NOT_FOUND and not result.stats:
        raise ToolMissingError(message)
    raise CommandFailedError(message)
