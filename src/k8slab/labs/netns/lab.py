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
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import TYPE_CHECKING

from k8slab.errors import CommandFailedError, K8slabError, LabSpecError, LabStateError, ToolMissingError
from k8slab.interrupts import no_interrupts
from k8slab.labs import kube_proxy
from k8slab.labs.base import Container, InvalidNameError, Lab, Pod, PodState, Progress, Result, check_name, quiet
from k8slab.labs.netns import (
    bird,
    calico_pods,
    cni,
    containers,
    dns,
    names,
    nsfs,
    pods,
    preflight,
    services,
    state,
    supervise,
)
from k8slab.labs.netns.plan import LabPlan, build_plan, loopback_config, pins_eth1_neighbours
from k8slab.spec.facts import POD_IF
from k8slab.spec.load import reserved_node_name_problem
from k8slab.spec.model import LabSpec

if TYPE_CHECKING:
    import testinfra.host

# Containers started at once by pods_start: each mostly waits (process starts, a server's listen), so more than
# the CPUs; bench/netns_bench.py's 50 nodes x 4 pods shows what more would give.
CONTAINER_STARTS = 16
TIMEOUT_RC = 124  # what coreutils' timeout returns, so a timed-out command reads the same everywhere


InvalidPodNameError = InvalidNameError  # the name tests and callers knew it by


class DataplaneUnsupportedError(ToolMissingError):
    """The kernel lacks what the chosen dataplane needs (the ipip module for IPIP)."""


def ipip_refusal(spec: LabSpec, problem: str) -> str:
    """Why an IPIP lab cannot be built on this kernel, and the VXLAN mode that teaches the same lesson."""
    if spec.cni_plugin == "calico":
        assert spec.calico is not None
        instead = spec.calico.encapsulation.replace("IPIP", "VXLAN")
        edit = f"cni.encapsulation: {instead}"
    else:
        edit = "cni.backend: vxlan"
    return (f"{spec.dataplane} needs IP-in-IP tunnels, and this kernel has none: {problem}. Nothing was built. "
            f"Load the module where you can (`modprobe ipip`), or set `{edit}` in {spec.source}: VXLAN shows "
            "the same lesson with UDP (port and 50 bytes of headers instead of protocol 4 and 20 bytes)")


class NetnsLab(Lab):
    backend = "netns"
    state_is_local = True  # /run/k8slab/<lab>: an emulated lab shows even to a user who cannot run it

    def __init__(self, spec: LabSpec, state_root: Path = names.STATE_ROOT,
                 restart_backoff: supervise.Backoff = supervise.KUBELET):
        super().__init__(spec)
        problem = restart_backoff.problem()
        if problem:
            raise LabStateError(f"restart back-off: {problem}")
        # What `up` records for the containers' restarts (a lab up already keeps the one it recorded).
        self._new_backoff = restart_backoff
        self._backoff: supervise.Backoff | None = None
        self.paths = names.StatePaths(spec.name, state_root)
        self.prefix = names.prefix(spec.name)
        self._plan: LabPlan | None = None
        # The lab's lock is one flock per process; these make it reentrant for the thread holding it.
        self._lock_guard = threading.RLock()
        self._lock_depth = 0
        self._run = ""  # set by session(): the verify or walkthrough whose pods this process is making

    # ---- availability and the plan

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return preflight.unavailable_reason()

    @property
    def lab_plan(self) -> LabPlan:
        if self._plan is None:
            problems = [p for n in self.spec.nodes if (p := reserved_node_name_problem(n.name))]
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
        return os.path.lexists(self.paths.lab_file)

    def notes_dir(self) -> Path:
        return self.paths.dir / "notes"  # removed by destroy with the rest of the lab's state

    def has_leftovers(self) -> bool:
        return bool(nsfs.list_netns(self.prefix)) or self.paths.dir.exists()

    def _leftovers_under_lock(self) -> bool:
        """has_leftovers, minus the lock files this very command has just made."""
        mine = {self.paths.lock, self.paths.session_lock}
        extra = [p for p in self.paths.dir.iterdir() if p not in mine] if self.paths.dir.exists() else []
        return bool(nsfs.list_netns(self.prefix) or extra)

    @contextlib.contextmanager
    def locked(self, create: bool = False, progress: Progress | None = None) -> Iterator[None]:
        """Hold the lab's lock for a whole read-modify-write of its state (other lanes' code may wrap theirs in
        it too). Reentrant in the thread that holds it; other threads and processes wait. create: make the
        state directory if missing (up, destroy); without it a lab destroyed meanwhile is "not up"."""
        if not self._lock_guard.acquire(timeout=120):
            raise LabStateError(f"lab {self.spec.name!r}: another thread of this command holds the lab's lock")
        try:
            if self._lock_depth:
                self._lock_depth += 1
                try:
                    yield
                finally:
                    self._lock_depth -= 1
                return
            try:
                held = state.locked(self.paths.root, self.paths.lock, f"lab {self.spec.name!r}", create=create,
                                    waiting=progress)
                held.__enter__()
            except state.LabGoneError:
                self._require_up()  # its message says how to start the lab
                raise
            self._lock_depth = 1
            try:
                yield
            finally:
                self._lock_depth = 0
                held.__exit__(None, None, None)
        finally:
            self._lock_guard.release()

    def _lock(self, create: bool = False):
        return self.locked(create=create)

    @contextlib.contextmanager
    def session(self, run: str, progress: Progress = quiet, ephemeral: bool = True,
                timeout: float = 600) -> Iterator[None]:
        """One verify or walkthrough at a time on this lab (their checks count every pod, and the walkthrough's
        pods have fixed names): a second waits, saying so, and gives up clearly after timeout. Pods started
        inside carry `run` and this process's mark, so a later command knows them as orphans if it dies."""
        self._require_up()
        self.reap(progress)
        with state.locked(self.paths.root, self.paths.session_lock, f"lab {self.spec.name!r} (a {run} runs on it)",
                          create=False, timeout=timeout, waiting=progress):
            self._run = run if ephemeral else ""
            try:
                yield
            finally:
                self._run = ""

    def up(self, progress: Progress = quiet) -> None:
        plan = self.lab_plan  # bad spec: refused before anything is built
        self._require_usable()
        self._require_dataplane(plan)
        with self._lock(create=True):
            if self.is_up():
                raise LabStateError(f"lab {self.spec.name!r} is already up (netns); nothing changed. Use "
                                    f"`{self.command('recreate')}` to rebuild it or "
                                    f"`{self.command('destroy')}` to remove it")
            if self._leftovers_under_lock():
                progress("removing leftovers of an earlier run that did not finish")
                self._teardown(progress)
            start = time.monotonic()
            try:
                from k8slab.labs.netns import kernel

                kernel.build(plan, self.paths, progress)
                if plan.bird:
                    bird.start(self.paths.root, plan.bird, progress)
                    bird.wait_established(plan.bird, progress)
                for node in plan.nodes:
                    state.write_json(self.paths.root, self.paths.cni_conf(node.node.name), node.cni_config)
                state.make_dirs(self.paths.root, self.paths.pods_dir)
                self._backoff = self._new_backoff
                self._start_cluster_dns(progress)
                state.write_json(self.paths.root, self.paths.lab_file, {
                    "name": self.spec.name, "backend": self.backend, "spec": self.spec.source,
                    "fingerprint": self._fingerprint(), "built_at": time.time(),
                    "nodes": [n.name for n in self.spec.nodes], "restart_backoff": self._backoff.to_json(),
                })
            except BaseException:
                with no_interrupts():
                    progress("build failed or interrupted: removing what was made")
                    self._teardown(progress)
                    self._remove_empty_root()
                raise
            progress(f"emulated lab {self.spec.name!r} built in {time.monotonic() - start:.2f} s")

    def _require_dataplane(self, plan: LabPlan) -> None:
        """What this dataplane needs beyond the lab's tools: BIRD for Calico's BGP modes, the kernel's
        ipip module for IPIP (probed in a scratch namespace, so nothing of the lab is built before)."""
        if plan.bird and (problem := bird.missing()):
            raise ToolMissingError(f"{self.spec.dataplane} needs BIRD: {problem}")
        if any(link.kind in ("ipip", "tunl0") for link in plan.links):
            from k8slab.labs.netns import kernel

            problem = kernel.ipip_missing(self.prefix)
            if problem:
                raise DataplaneUnsupportedError(ipip_refusal(self.spec, problem))

    def destroy(self, progress: Progress = quiet) -> None:
        problem = self.teardown_unavailable_reason()
        if problem:
            raise ToolMissingError(f"the emulated lab cannot be removed from here: {problem}")
        if not self.has_leftovers():
            progress(f"nothing of lab {self.spec.name!r} is left")
            return
        with no_interrupts():
            try:
                with self._lock(create=True):
                    if self._leftovers_under_lock():
                        self._teardown(progress)
                    else:  # another destroy was first: take away the lock file this one made
                        progress(f"nothing of lab {self.spec.name!r} is left")
                        self._remove_state_dir()
            except state.UnsafeStateError as exc:
                # A state directory someone else could write is not read, only removed (without following links).
                progress(f"{exc}; removing it without reading it")
                self._teardown(progress)
            self._remove_empty_root()

    def _teardown(self, progress: Progress) -> None:
        """Remove every namespace with the lab's prefix, the processes in them and the state dir."""
        self._backoff = None  # the next `up` records its own
        netns = nsfs.list_netns(self.prefix)
        paths = [nsfs.netns_path(n) for n in netns]
        killed = nsfs.kill_all(sorted({*nsfs.pids_in(paths), *containers.pids_under(self.paths.dir)}))
        for path in paths:
            nsfs.unbind(path)
        uts_dir = self.paths.uts_dir
        # Only a real directory is listed: a symlink planted at uts/ would lead to other mounts.
        if _is_real_dir(self.paths.dir) and _is_real_dir(uts_dir):
            for uts in uts_dir.iterdir():
                nsfs.unbind(uts)  # never follows a symlink planted in uts/
        self._remove_state_dir()
        dns.remove_node_files(self.prefix)
        progress(f"removed {len(netns)} namespaces, {killed} processes and {self.paths.dir}")

    def _remove_state_dir(self) -> None:
        """rmtree never follows symlinks inside; a symlink planted at the directory itself is unlinked."""
        if os.path.islink(self.paths.dir):
            self.paths.dir.unlink()
        elif self.paths.dir.exists():
            shutil.rmtree(self.paths.dir)

    def _start_cluster_dns(self, progress: Progress) -> None:
        """The kube-dns pod on the control plane (dnsmasq), then every node's kube-proxy chains for it."""
        plugin_dir = _plugin_dir()
        hosts = services.dns_hosts_file(self.paths.dir)
        services.write_dns_hosts(self.spec, self.paths.root, self.paths.dir, [], [])
        rec = self._make_pod(dns.POD, self.spec.control_plane.name, plugin_dir, (dns.container(self.spec, hosts),))
        self._sync_services()
        for path, text in dns.node_files(self.spec, {n.name: names.node_netns(self.spec.name, n.name)
                                                     for n in self.spec.nodes}).items():
            state.write_bytes(dns.ETC_NETNS, path, text.encode())
        progress(f"cluster DNS: dnsmasq in pod {dns.POD} ({rec.ip}) behind {dns.cluster_ip(self.spec)}; "
                 f"nodes know each other from /etc/netns/{self.prefix}*/hosts")

    def _remove_empty_root(self) -> None:
        try:
            self.paths.root.rmdir()
        except OSError:
            pass  # other labs are still there, or it was never made

    def _fingerprint(self) -> str:
        """What pods depend on: node names, addresses, subnets, the dataplane."""
        s = self.spec
        data = [str(s.host_only), str(s.pod_cidr), s.dataplane, s.calico.block_size if s.calico else None,
                [(n.name, str(n.ip), str(n.pod_subnet)) for n in s.nodes]]
        return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:16]

    def _require_up(self) -> None:
        if not self.is_up():
            raise LabStateError(f"the emulated lab {self.spec.name!r} is not up; start it with "
                                f"`{self.command('up')}`")
        drift = self.spec_drift()
        if drift:
            raise LabStateError(drift)

    def restart_backoff(self) -> supervise.Backoff:
        """The back-off of the lab's container restarts, as `up` recorded it in lab.json (checked as data)."""
        if self._backoff is None:
            self._backoff = supervise.backoff_from_lab(state.read_json(self.paths.root, self.paths.lab_file))
        return self._backoff

    def spec_drift(self) -> str | None:
        """Why the lab that is up does not match this spec (built from another one), or None."""
        try:
            built = state.read_json(self.paths.root, self.paths.lab_file)
        except FileNotFoundError:
            return None
        if not isinstance(built, dict) or built.get("fingerprint") != self._fingerprint():
            return (f"lab {self.spec.name!r} is up, but was built from a different spec than {self.spec.source} "
                    f"(nodes, addresses or CIDRs differ); `{self.command('recreate')}` rebuilds it")
        return None

    def status(self) -> list[dict[str, str]]:
        rows = super().status()
        drift = self.spec_drift() if self.is_up() else None  # the CLI warns; the records fit the other spec
        pods = self.pods() if self.is_up() and not drift else []
        for row in rows:
            row["netns"] = names.node_netns(self.spec.name, row["node"])
            row["pods"] = "?" if drift else str(sum(p.node == row["node"] for p in pods))
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

    def bgp_status(self, node: str) -> tuple[str | None, str | None]:
        """What the node's BIRD says (`birdc show status`, `show protocols`) on its control socket in the
        lab's state dir; (None, None) when it does not answer (stopped, or not a BGP mode)."""
        self._require_up()
        self.spec.node(node)
        return bird.status(str(self.paths.bird_dir / f"{node}.ctl"))

    def testinfra_host(self, node: str) -> testinfra.host.Host:
        from k8slab.labs.netns.testinfra_backend import host

        self._require_up()
        return host(node, self.node_argv(node))

    # ---- pods

    def pod_argv(self, name: str, container: str | None = None) -> list[str]:
        rec = self._pod_record(name)
        if rec.phase != "ready":
            raise LabStateError(f"pod {name} is still being made (or its maker died; the next `pod list` removes it)")
        return pods.exec_argv(self.paths.dir, rec, container)

    def pod_run(self, name: str, argv: Sequence[str], timeout: float = 30, container: str | None = None) -> Result:
        return _run([*self.pod_argv(name, container), *argv], timeout)

    def pod_states(self) -> dict[str, PodState]:
        return pods.states(self.paths.dir, [r for r in self._pod_records() if not dns.is_system(r.name)])

    def pods(self) -> list[Pod]:
        return [Pod(r.name, r.node, IPv4Address(r.ip)) for r in self._pod_records() if not dns.is_system(r.name)]

    def _pod_records(self, phase: str | None = "ready") -> list[state.PodRecord]:
        """The pods' records (only those of one phase unless phase is None), each checked and validated. A
        record deleted meanwhile (another command's pod delete) is skipped, not an error."""
        try:
            state.check_dirs(self.paths.root, self.paths.pods_dir)
            files = sorted(os.listdir(self.paths.pods_dir))
        except FileNotFoundError:
            return []
        found = []
        for entry in files:
            if entry.startswith(".") or not entry.endswith(".json"):
                continue  # a temp file of a write in progress
            try:
                rec = self._read_record(entry[:-len(".json")])
            except FileNotFoundError:
                continue
            if phase is None or rec.phase == phase:
                found.append(rec)
        return found

    def _read_record(self, name: str) -> state.PodRecord:
        if names.pod_name_problem(name):
            raise state.UnsafeStateError(f"{self.paths.pods_dir} holds a record named {name[:80]!r}, which is no "
                                         f"pod name; `{self.command('destroy')}` removes the lab without reading it")
        data = state.read_json(self.paths.root, self.paths.pod_file(name))
        plan = self.lab_plan
        return state.validate_record(
            data, expect_name=name, nodes={n.node.name: n.node.pod_subnet for n in plan.nodes},
            netns=names.pod_netns(self.spec.name, name), uts=str(self.paths.pod_uts(name)),
            ipam_dir=self.paths.ipam_dir)

    def _pod_record(self, name: str) -> state.PodRecord:
        check_name("pod", name)
        self._require_up()
        try:
            return self._read_record(name)
        except FileNotFoundError:
            known = ", ".join(p.name for p in self.pods()) or "none"
            raise LabStateError(f"no pod named {name!r} in lab {self.spec.name!r}; pods: {known}") from None

    def reap(self, progress: Progress = quiet) -> list[str]:
        """Remove what a killed k8slab left (SIGKILL runs no cleanup): pods half made, pods of a verify or
        walkthrough whose process is gone, and pod namespaces without a record. Says what it removed."""
        if not self.is_up():
            return []
        with self.locked():
            records = self._pod_records(phase=None)
            orphans = [r for r in records if r.orphaned()]
            known = {r.netns for r in records}
            stray = [n for n in nsfs.list_netns(names.pod_netns(self.spec.name, ""))
                     if n not in known and not names.pod_name_problem(n[len(names.pod_netns(self.spec.name, "")):])]
            if not orphans and not stray:
                return []
            plugin_dir = cni.find_plugin_dir()
            with no_interrupts():
                for rec in orphans:
                    why = f"{rec.run} " if rec.run else ""
                    progress(f"removing pod {rec.name}: its {why}process {rec.owner_pid} ended without removing it")
                    if plugin_dir is not None:
                        self._remove_pod(rec, plugin_dir, strict=False)
                for netns in stray:
                    progress(f"removing namespace {netns}: a pod's, with no record (its maker was killed)")
                    self._remove_stray(netns, plugin_dir)
            return [r.name for r in orphans] + stray

    def pod_start(self, name: str, node: str, containers: Sequence[Container] = ()) -> Pod:
        return self.pods_start([(name, node)], {name: containers})[0]

    def pods_start(self, wanted: Sequence[tuple[str, str]],
                   containers: Mapping[str, Sequence[Container]] | None = None) -> list[Pod]:
        """Start several pods: nodes in parallel, each node's pods one after another (so addresses
        are handed out in order, .2, .3, ...). All or nothing: on failure none of them is left.
        A pod not in containers gets default_containers (its image follows its name)."""
        given = {name: pods.wanted_containers(name, (containers or {}).get(name, ())) for name, _ in wanted}
        for name, node in wanted:
            check_name("pod", name)
            self.spec.node(node)
            problems = pods.problems(self.spec, name, given[name])
            if problems:
                raise LabStateError("; ".join(problems))
        dup = sorted({n for n, _ in wanted if sum(m == n for m, _ in wanted) > 1})
        if dup:
            raise LabStateError(f"pod names given more than once: {', '.join(dup)}")
        self._require_up()
        self.reap()
        with self._lock():
            self._require_up()
            taken = [n for n, _ in wanted if os.path.lexists(self.paths.pod_file(n))]
            if taken:
                known = ", ".join(p.name for p in self.pods())
                raise LabStateError(f"pod {', '.join(taken)} already exists in lab {self.spec.name!r} "
                                    f"(pods: {known}); delete it first or pick another name")
            plugin_dir = _plugin_dir()
            by_node: dict[str, list[str]] = {}
            for name, node in wanted:
                by_node.setdefault(node, []).append(name)
            made: dict[str, state.PodRecord] = {}  # every pod with a namespace; removed together on failure
            made_lock = threading.Lock()
            stop = threading.Event()
            starting: list[Future[None]] = []

            # Addresses come from each node's pods in order (host-local hands out .2, .3 ...), so a node's pods
            # get their network one after another; their containers start meanwhile, in a pool of their own:
            # a container takes ~80 ms of process starts and waits (its PID 1's mounts, a server's listen),
            # which one node's pods, or a lab's hundreds, would otherwise spend one after another.
            def network_on(node: str) -> None:
                try:
                    for name in by_node[node]:
                        if stop.is_set():
                            return
                        rec = self._make_pod_network(name, node, plugin_dir, given[name])
                        with made_lock:
                            made[name] = rec
                            starting.append(containers_pool.submit(containers_of, rec))
                except BaseException:
                    stop.set()  # the others stop making pods: all of them go
                    raise

            def containers_of(rec: state.PodRecord) -> None:
                if stop.is_set():
                    return
                try:
                    done = self._start_pod_containers(rec)
                except BaseException:
                    stop.set()
                    raise
                with made_lock:
                    made[rec.name] = done

            # Every worker is registered with its pool before an interrupt may surface (one raised while a
            # thread starts would leave that thread unjoined, making a pod after the cleanup ran). The network
            # pool is shut first on failure: once its workers are done, nothing submits containers any more.
            pool = ThreadPoolExecutor(max_workers=min(len(by_node), 2 * (os.cpu_count() or 1)))
            containers_pool = ThreadPoolExecutor(max_workers=min(len(wanted), CONTAINER_STARTS))
            try:
                with no_interrupts():  # an interrupt held here surfaces at the end of this block, inside the try
                    futures = [pool.submit(network_on, node) for node in by_node]
                for f in futures:
                    f.result()
                for c in starting:  # complete now: every network worker has ended
                    c.result()
                if len(made) != len(wanted) or any(r.phase != "ready" for r in made.values()):
                    raise CommandFailedError("pods were left half made without an error; nothing is kept")
                result = [Pod(made[n].name, made[n].node, IPv4Address(made[n].ip)) for n, _ in wanted]
            except BaseException:
                with no_interrupts():  # wait for the pods being made, then remove every one of them
                    stop.set()
                    pool.shutdown(wait=True, cancel_futures=True)
                    containers_pool.shutdown(wait=True, cancel_futures=True)
                    for rec in made.values():
                        self._remove_pod(rec, plugin_dir, strict=False)
                raise
            containers_pool.shutdown(wait=True)
            pool.shutdown(wait=True)
            self._sync_services()  # new endpoints and names for kube-proxy's chains and DNS
            return result

    # ---- ClusterIP services (services.py; kube-proxy's chains in every node)

    def service_expose(self, name: str, port: int, target_port: int, pod_names: Sequence[str],
                       protocol: str = "tcp") -> services.ServiceRecord:
        self._require_up()
        with self._lock(), no_interrupts():
            return services.expose(self.spec, self.paths.root, self.paths.dir, name, port, target_port, pod_names,
                                   self._pod_records(), protocol)

    def service_delete(self, name: str) -> services.ServiceRecord:
        self._require_up()
        with self._lock(), no_interrupts():
            return services.delete(self.spec, self.paths.root, self.paths.dir, name, self._pod_records())

    def services(self) -> list[kube_proxy.Service]:
        """Every ClusterIP service with the addresses of its endpoints, kube-dns included."""
        self._require_up()
        return services.cluster_services(self.spec, self.paths.root, self.paths.dir, self._pod_records())

    def _sync_services(self) -> None:
        services.sync(self.spec, self.paths.root, self.paths.dir, self._pod_records())

    def _make_pod(self, name: str, node: str, plugin_dir: Path, wanted: Sequence[Container]) -> state.PodRecord:
        """One pod, network then containers; on failure nothing of it is left."""
        rec = self._make_pod_network(name, node, plugin_dir, wanted)
        try:
            return self._start_pod_containers(rec)
        except BaseException:
            with no_interrupts():
                self._remove_pod(rec, plugin_dir, strict=False)
            raise

    def _make_pod_network(self, name: str, node: str, plugin_dir: Path,
                          wanted: Sequence[Container]) -> state.PodRecord:
        """The pod's record, namespaces and address (CNI ADD); its record stays "creating" until its containers
        run. On failure nothing of it is left."""
        lab = self.spec.name
        netns = names.pod_netns(lab, name)
        uts = self.paths.pod_uts(name)
        node_plan = self.lab_plan.node_plan(node)
        mark = state.RunMark.of_this_process()
        rec = state.PodRecord(name=name, node=node, ip="", netns=netns, uts=str(uts), container_id=netns,
                              cni_config=node_plan.cni_config, containers=pods.to_json(wanted), phase="creating",
                              owner_pid=mark.pid, owner_start=mark.start, run=self._run)
        # The record comes first, so a SIGKILL at any later point leaves a trace reap() finds and undoes.
        state.write_json(self.paths.root, self.paths.pod_file(name), rec.to_json())
        try:
            ns_path = nsfs.create_netns(netns)
            state.make_dirs(self.paths.root, self.paths.uts_dir)
            nsfs.create_uts(uts, name)
            common = {"container_id": rec.container_id, "netns": ns_path, "ifname": POD_IF,
                          "run_in": nsfs.netns_path(node_plan.netns), "what": f"pod {name} on {node}"}
            cni.invoke(plugin_dir, "ADD", loopback_config(), **{**common, "ifname": "lo"})
            if rec.cni_config["type"] == "calico":
                ip = calico_pods.allocate(self.paths.root, *self._calico_block(node), name)
                rec = state.PodRecord(**{**rec.to_json(), "ip": str(ip)})
                calico_pods.wire(nsfs.netns_path(node_plan.netns), ns_path, name, ip, rec.cni_config["mtu"])
            else:
                result = cni.invoke(plugin_dir, "ADD", rec.cni_config, **common)
                rec = state.PodRecord(**{**rec.to_json(), "ip": cni.result_ip(result)})
            state.write_json(self.paths.root, self.paths.pod_file(name), rec.to_json())
            return rec
        except BaseException:
            with no_interrupts():
                self._remove_pod(rec, plugin_dir, strict=False)
            raise

    def _start_pod_containers(self, rec: state.PodRecord) -> state.PodRecord:
        """Start the containers of a pod that has its address, then mark it ready. On failure the caller
        removes the pod."""
        pods.start_all(self.paths.dir, rec, resolv_conf=dns.resolv_conf(self.spec), backoff=self.restart_backoff())
        rec = state.PodRecord(**{**rec.to_json(), "phase": "ready"})
        state.write_json(self.paths.root, self.paths.pod_file(rec.name), rec.to_json())
        return rec

    def _calico_block(self, node: str) -> tuple[Path, IPv4Network, int]:
        """Where the node's block lives, the block and its first pod ordinal: from the plan, never a record."""
        ipam = self.lab_plan.node_plan(node).cni_config["ipam"]
        return self.paths.calico_block(node), IPv4Network(ipam["block"]), ipam["first_ordinal"]

    def pod_delete(self, name: str) -> None:
        check_name("pod", name)
        if dns.is_system(name):
            raise LabStateError(f"{name} is the lab's cluster DNS pod; `{self.command('destroy')}` removes it")
        plugin_dir = _plugin_dir()
        with self._lock():
            rec = self._pod_record(name)
            with no_interrupts():
                self._remove_pod(rec, plugin_dir, strict=True)
                self._sync_services()

    def pods_delete(self, names: Sequence[str]) -> None:
        """Remove several pods under one hold of the lock: nodes in parallel, each node's pods one after another
        (its IPAM files are rewritten by each), the services' chains and DNS names synced once at the end. Every
        pod is tried; the ones that could not be removed are named together."""
        names = list(dict.fromkeys(names))  # a name given twice is one pod, removed once
        for name in names:
            check_name("pod", name)
            if dns.is_system(name):
                raise LabStateError(f"{name} is the lab's cluster DNS pod; `{self.command('destroy')}` removes it")
        plugin_dir = _plugin_dir()
        failures: dict[str, str] = {}
        with self._lock(), no_interrupts():
            by_node: dict[str, list[state.PodRecord]] = {}
            for name in names:
                try:
                    rec = self._pod_record(name)
                except K8slabError as exc:
                    failures[name] = str(exc)
                    continue
                by_node.setdefault(rec.node, []).append(rec)

            def remove_on(node: str) -> None:
                for rec in by_node[node]:
                    try:
                        self._remove_pod(rec, plugin_dir, strict=True)
                    except Exception as exc:  # noqa: BLE001 - the others are still removed; reported together
                        failures[rec.name] = str(exc)

            if by_node:
                with ThreadPoolExecutor(max_workers=min(len(by_node), 2 * (os.cpu_count() or 1))) as pool:
                    list(pool.map(remove_on, by_node))
            self._sync_services()
        if failures:
            raise LabStateError("could not remove " + "; ".join(f"{n}: {failures[n]}" for n in names if n in failures))

    @property
    def learns_node_neighbours(self) -> bool:
        return not pins_eth1_neighbours(self.spec)  # a big lab's eth1 neighbours are pinned (plan.py)

    def _remove_pod(self, rec: state.PodRecord, plugin_dir: Path, strict: bool) -> None:
        """CNI DEL (frees the address in host-local), then the pod's processes, namespaces, record. Every path
        is computed from the (validated) pod name, none taken from the record."""
        ns_path = nsfs.netns_path(names.pod_netns(self.spec.name, rec.name))
        node_ns = nsfs.netns_path(names.node_netns(self.spec.name, rec.node))
        in_pod = containers.pids_under(containers.pod_dir(self.paths.dir, rec.name))
        nsfs.kill_all(sorted({*nsfs.pids_in([ns_path]), *in_pod}))
        try:
            if rec.cni_config["type"] == "calico":
                calico_pods.unwire(node_ns, rec.name)
                calico_pods.release(self.paths.root, *self._calico_block(rec.node), rec.name)
            else:
                cni.invoke(plugin_dir, "DEL", rec.cni_config, container_id=rec.container_id, netns=ns_path,
                           ifname=POD_IF, run_in=node_ns, what=f"pod {rec.name} on {rec.node}")
        except (K8slabError, OSError):
            if strict:
                raise
        nsfs.unbind(ns_path)
        nsfs.unbind(self.paths.pod_uts(rec.name))
        shutil.rmtree(containers.pod_dir(self.paths.dir, rec.name), ignore_errors=True)
        self.paths.pod_file(rec.name).unlink(missing_ok=True)

    def _remove_stray(self, netns: str, plugin_dir: Path | None) -> None:
        """A pod namespace without a record: made by a k8slab killed before it wrote one (an older version).
        Which node it was wired to is unknown, so every node's CNI DEL is asked (DEL of nothing is a no-op)."""
        pod = netns[len(names.pod_netns(self.spec.name, "")):]
        ns_path = nsfs.netns_path(netns)
        in_pod = containers.pids_under(containers.pod_dir(self.paths.dir, pod))
        nsfs.kill_all(sorted({*nsfs.pids_in([ns_path]), *in_pod}))
        if plugin_dir is not None:
            for node in self.lab_plan.nodes:
                with contextlib.suppress(K8slabError):
                    cni.invoke(plugin_dir, "DEL", node.cni_config, container_id=netns, netns=ns_path, ifname=POD_IF,
                               run_in=nsfs.netns_path(node.netns), what=f"stray pod {pod}")
        nsfs.unbind(ns_path)
        nsfs.unbind(self.paths.pod_uts(pod))
        shutil.rmtree(containers.pod_dir(self.paths.dir, pod), ignore_errors=True)


def _is_real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


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


def _plugin_dir() -> str:
    found = cni.find_plugin_dir()
    if found is None:
        raise ToolMissingError("CNI plugins missing: apt-get install containernetworking-plugins")
    return found
