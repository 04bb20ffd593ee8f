"""NetnsLab: the emulated lab behind the Lab interface. Plans come from plan.py, the kernel work
from kernel.py and nsfs.py, pods from the real CNI plugins (cni.py); this module holds the
lifecycle: locking, refusing what cannot be done, and leaving nothing behind."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address
from pathlib import Path
from typing import TYPE_CHECKING

from k8slab.errors import K8slabError, LabSpecError, LabStateError, ToolMissingError
from k8slab.interrupts import no_interrupts
from k8slab.labs.base import Container, Lab, Pod, PodState, Progress, Result, quiet
from k8slab.labs.netns import cni, containers, names, nsfs, pods, preflight, state
from k8slab.labs.netns.plan import POD_IF, LabPlan, build_plan, loopback_config
from k8slab.spec.model import LabSpec

if TYPE_CHECKING:
    import testinfra.host

TIMEOUT_RC = 124  # what coreutils' timeout returns, so a timed-out command reads the same everywhere


class InvalidPodNameError(K8slabError):
    """A pod name Kubernetes would refuse."""


class NetnsLab(Lab):
    backend = "netns"

    def __init__(self, spec: LabSpec, state_root: Path = names.STATE_ROOT):
        super().__init__(spec)
        self.paths = names.StatePaths(spec.name, state_root)
        self.prefix = names.prefix(spec.name)
        self._plan: LabPlan | None = None

    # ---- availability and the plan

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return preflight.unavailable_reason()

    @property
    def lab_plan(self) -> LabPlan:
        if self._plan is None:
            problems = [p for n in self.spec.nodes if (p := names.reserved_node_name_problem(n.name))]
            if problems:
                raise LabSpecError(self.spec.source, problems)
            self._plan = build_plan(self.spec, self.paths)
        return self._plan

    @classmethod
    def teardown_unavailable_reason(cls) -> str | None:
        return preflight.teardown_unavailable_reason()

    def plan(self) -> str:
        return self.lab_plan.render()

    def _require_usable(self) -> None:
        problem = self.unavailable_reason()
        if problem:
            raise ToolMissingError(f"the emulated lab cannot run here: {problem}")

    # ---- lifecycle

    def is_up(self) -> bool:
        return self.paths.lab_file.exists()

    def notes_dir(self) -> Path:
        return self.paths.dir / "notes"  # removed by destroy with the rest of the lab's state

    def has_leftovers(self) -> bool:
        return bool(nsfs.list_netns(self.prefix)) or self.paths.dir.exists()

    def _leftovers_under_lock(self) -> bool:
        """has_leftovers, minus the lock file this very command has just made."""
        extra = [p for p in self.paths.dir.iterdir() if p != self.paths.lock] if self.paths.dir.exists() else []
        return bool(nsfs.list_netns(self.prefix) or extra)

    def _lock(self):
        return state.locked(self.paths.lock, f"lab {self.spec.name!r}")

    def up(self, progress: Progress = quiet) -> None:
        plan = self.lab_plan  # bad spec: refused before anything is built
        self._require_usable()
        with self._lock():
            if self.is_up():
                raise LabStateError(f"lab {self.spec.name!r} is already up (netns); nothing changed. Use "
                                    f"`{self.spec.command('recreate')}` to rebuild it or "
                                    f"`{self.spec.command('destroy')}` to remove it")
            if self._leftovers_under_lock():
                progress("removing leftovers of an earlier run that did not finish")
                self._teardown(progress)
            start = time.monotonic()
            try:
                from k8slab.labs.netns import kernel

                kernel.build(plan, self.paths, progress)
                for node in plan.nodes:
                    state.write_json(self.paths.cni_conf(node.node.name), node.cni_config)
                self.paths.pods_dir.mkdir(parents=True, exist_ok=True)
                state.write_json(self.paths.lab_file, {
                    "name": self.spec.name, "backend": self.backend, "spec": self.spec.source,
                    "fingerprint": self._fingerprint(), "built_at": time.time(),
                    "nodes": [n.name for n in self.spec.nodes],
                })
            except BaseException:
                with no_interrupts():
                    progress("build failed or interrupted: removing what was made")
                    self._teardown(progress)
                    self._remove_empty_root()
                raise
            progress(f"emulated lab {self.spec.name!r} built in {time.monotonic() - start:.2f} s")

    def destroy(self, progress: Progress = quiet) -> None:
        problem = self.teardown_unavailable_reason()
        if problem:
            raise ToolMissingError(f"the emulated lab cannot be removed from here: {problem}")
        if not self.has_leftovers():
            progress(f"nothing of lab {self.spec.name!r} is left")
            return
        with no_interrupts():
            with self._lock():
                self._teardown(progress)
            self._remove_empty_root()

    def _teardown(self, progress: Progress) -> None:
        """Remove every namespace with the lab's prefix, the processes in them and the state dir."""
        netns = nsfs.list_netns(self.prefix)
        paths = [nsfs.netns_path(n) for n in netns]
        killed = nsfs.kill_all(sorted({*nsfs.pids_in(paths), *containers.pids_under(self.paths.dir)}))
        for path in paths:
            nsfs.unbind(path)
        if self.paths.uts_dir.exists():
            for uts in self.paths.uts_dir.iterdir():
                nsfs.unbind(uts)
        if self.paths.dir.exists():
            shutil.rmtree(self.paths.dir)
        progress(f"removed {len(netns)} namespaces, {killed} processes and {self.paths.dir}")

    def _remove_empty_root(self) -> None:
        try:
            self.paths.root.rmdir()
        except OSError:
            pass  # other labs are still there, or it was never made

    def _fingerprint(self) -> str:
        """What pods depend on: node names, addresses, subnets, the backend."""
        s = self.spec
        data = [str(s.host_only), str(s.pod_cidr), s.cni_backend,
                [(n.name, str(n.ip), str(n.pod_subnet)) for n in s.nodes]]
        return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:16]

    def _require_up(self) -> None:
        if not self.is_up():
            raise LabStateError(f"the emulated lab {self.spec.name!r} is not up; start it with "
                                f"`{self.spec.command('up --backend netns')}`")
        built = state.read_json(self.paths.lab_file).get("fingerprint")
        if built != self._fingerprint():
            raise LabStateError(f"lab {self.spec.name!r} is up, but was built from a different spec than "
                                f"{self.spec.source} (nodes, addresses or CIDRs differ); `{self.spec.command('recreate')}` rebuilds it")

    def status(self) -> list[dict[str, str]]:
        rows = super().status()
        pods = self.pods() if self.is_up() else []
        for row in rows:
            row["netns"] = names.node_netns(self.spec.name, row["node"])
            row["pods"] = str(sum(p.node == row["node"] for p in pods))
        return rows

    # ---- nodes

    def node_argv(self, node: str) -> list[str]:
        """The command prefix that runs a program on the node (`ip netns exec` mounts its /sys)."""
        self.spec.node(node)
        return ["nsenter", f"--uts={self.paths.node_uts(node)}", "--",
                "ip", "netns", "exec", names.node_netns(self.spec.name, node)]

    def node_run(self, node: str, argv: Sequence[str], timeout: float = 30) -> Result:
        self._require_up()
        return _run([*self.node_argv(node), *argv], timeout)

    def testinfra_host(self, node: str) -> testinfra.host.Host:
        from k8slab.labs.netns.testinfra_backend import host

        self._require_up()
        return host(node, self.node_argv(node))

    # ---- pods

    def pod_argv(self, name: str, container: str | None = None) -> list[str]:
        return pods.exec_argv(self.paths.dir, self._pod_record(name), container)

    def pod_run(self, name: str, argv: Sequence[str], timeout: float = 30, container: str | None = None) -> Result:
        return _run([*self.pod_argv(name, container), *argv], timeout)

    def pod_states(self) -> dict[str, PodState]:
        return pods.states(self.paths.dir, self._pod_records())

    def pods(self) -> list[Pod]:
        return [Pod(r.name, r.node, IPv4Address(r.ip)) for r in self._pod_records()]

    def _pod_records(self) -> list[state.PodRecord]:
        if not self.paths.pods_dir.exists():
            return []
        return sorted((state.PodRecord.from_json(state.read_json(p)) for p in self.paths.pods_dir.glob("*.json")),
                      key=lambda r: r.name)

    def _pod_record(self, name: str) -> state.PodRecord:
        self._require_up()
        path = self.paths.pod_file(name)
        if not path.exists():
            known = ", ".join(r.name for r in self._pod_records()) or "none"
            raise LabStateError(f"no pod named {name!r} in lab {self.spec.name!r}; pods: {known}")
        return state.PodRecord.from_json(state.read_json(path))

    def pod_start(self, name: str, node: str, containers: Sequence[Container] = ()) -> Pod:
        return self.pods_start([(name, node)], {name: containers})[0]

    def pods_start(self, wanted: Sequence[tuple[str, str]],
                   containers: Mapping[str, Sequence[Container]] | None = None) -> list[Pod]:
        """Start several pods: nodes in parallel, each node's pods one after another (so addresses
        are handed out in order, .2, .3, ...). All or nothing: on failure none of them is left.
        A pod not in containers gets default_containers (its image follows its name)."""
        given = {name: pods.wanted_containers(name, (containers or {}).get(name, ())) for name, _ in wanted}
        for name, node in wanted:
            problem = names.pod_name_problem(name)
            if problem:
                raise InvalidPodNameError(problem)
            self.spec.node(node)
            problems = pods.problems(self.spec, name, given[name])
            if problems:
                raise LabStateError("; ".join(problems))
        dup = sorted({n for n, _ in wanted if sum(m == n for m, _ in wanted) > 1})
        if dup:
            raise LabStateError(f"pod names given more than once: {', '.join(dup)}")
        self._require_up()
        with self._lock():
            self._require_up()
            taken = [n for n, _ in wanted if self.paths.pod_file(n).exists()]
            if taken:
                known = ", ".join(r.name for r in self._pod_records())
                raise LabStateError(f"pod {', '.join(taken)} already exists in lab {self.spec.name!r} "
                                    f"(pods: {known}); delete it first or pick another name")
            plugin_dir = cni.find_plugin_dir()
            if plugin_dir is None:
                raise ToolMissingError("CNI plugins missing: apt-get install containernetworking-plugins")
            by_node: dict[str, list[str]] = {}
            for name, node in wanted:
                by_node.setdefault(node, []).append(name)
            made: dict[str, state.PodRecord] = {}
            made_lock = threading.Lock()

            def start_on(node: str) -> None:
                for name in by_node[node]:
                    rec = self._make_pod(name, node, plugin_dir, given[name])
                    with made_lock:
                        made[name] = rec

            try:
                with ThreadPoolExecutor(max_workers=min(len(by_node), 2 * (os.cpu_count() or 1))) as pool:
                    futures = [pool.submit(start_on, node) for node in by_node]
                    try:
                        for f in futures:
                            f.result()
                    except BaseException:
                        pool.shutdown(wait=True, cancel_futures=True)
                        raise
            except BaseException:
                with no_interrupts():
                    for rec in made.values():
                        self._remove_pod(rec, plugin_dir, strict=False)
                raise
            return [Pod(made[n].name, made[n].node, IPv4Address(made[n].ip)) for n, _ in wanted]

    def _make_pod(self, name: str, node: str, plugin_dir: Path, wanted: Sequence[Container]) -> state.PodRecord:
        lab = self.spec.name
        netns = names.pod_netns(lab, name)
        uts = self.paths.pod_uts(name)
        node_plan = self.lab_plan.node_plan(node)
        rec = state.PodRecord(name=name, node=node, ip="", netns=netns, uts=str(uts),
                              container_id=netns, cni_config=node_plan.cni_config, containers=pods.to_json(wanted))
        ns_path = nsfs.create_netns(netns)
        try:
            self.paths.uts_dir.mkdir(parents=True, exist_ok=True)
            nsfs.create_uts(uts, name)
            common = {"container_id": rec.container_id, "netns": ns_path, "ifname": POD_IF,
                          "run_in": nsfs.netns_path(node_plan.netns), "what": f"pod {name} on {node}"}
            cni.invoke(plugin_dir, "ADD", loopback_config(), **{**common, "ifname": "lo"})
            result = cni.invoke(plugin_dir, "ADD", rec.cni_config, **common)
            rec = state.PodRecord(**{**rec.to_json(), "ip": cni.result_ip(result)})
            state.write_json(self.paths.pod_file(name), rec.to_json())
            pods.start_all(self.paths.dir, rec, resolv_conf=None)
            return rec
        except BaseException:
            with no_interrupts():
                self._remove_pod(rec, plugin_dir, strict=False)
            raise

    def pod_delete(self, name: str) -> None:
        plugin_dir = cni.find_plugin_dir()
        if plugin_dir is None:
            raise ToolMissingError("CNI plugins missing: apt-get install containernetworking-plugins")
        with self._lock():
            rec = self._pod_record(name)
            with no_interrupts():
                self._remove_pod(rec, plugin_dir, strict=True)

    def _remove_pod(self, rec: state.PodRecord, plugin_dir: Path, strict: bool) -> None:
        """CNI DEL (frees the address in host-local), then the pod's processes, namespaces, record."""
        ns_path = nsfs.netns_path(rec.netns)
        node_ns = nsfs.netns_path(names.node_netns(self.spec.name, rec.node))
        nsfs.kill_all(sorted({*nsfs.pids_in([ns_path]), *containers.pids_under(containers.pod_dir(self.paths.dir, rec.name))}))
        try:
            cni.invoke(plugin_dir, "DEL", rec.cni_config, container_id=rec.container_id, netns=ns_path,
                       ifname=POD_IF, run_in=node_ns, what=f"pod {rec.name} on {rec.node}")
        except K8slabError:
            if strict:
                raise
        nsfs.unbind(ns_path)
        nsfs.unbind(Path(rec.uts))
        shutil.rmtree(containers.pod_dir(self.paths.dir, rec.name), ignore_errors=True)
        self.paths.pod_file(rec.name).unlink(missing_ok=True)


def _run(argv: list[str], timeout: float) -> Result:
    """Run argv, capture its output; on timeout kill its whole process group and return rc 124."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        return Result(tuple(argv), proc.returncode, out, err)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        out, err = proc.communicate()
        return Result(tuple(argv), TIMEOUT_RC, out, (err or "") + f"\nk8slab: timed out after {timeout:g} s")
    except BaseException:
        _kill_group(proc.pid)
        proc.wait()
        raise


def _kill_group(pid: int) -> None:
    # Ctrl-C may land after the command already exited; the group is then gone, which is fine.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
