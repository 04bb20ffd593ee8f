"""A cluster reached over SSH: nodes through paramiko (and testinfra's paramiko backend), pods through
kubectl on the control plane. The Vagrant lab is one of these; so is a cluster of machines the user
already has, described by an Ansible inventory (`k8slab provision --inventory FILE`).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from ipaddress import IPv4Address
from pathlib import Path
from typing import TYPE_CHECKING, Any

from k8slab.errors import CommandFailedError, LabStateError, ToolMissingError, UsageError
from k8slab.labs import calico_cluster, kubectl_services
from k8slab.labs.base import (
    Container,
    Lab,
    Pod,
    PodState,
    Progress,
    Result,
    check_name,
    default_containers,
    node_row,
    quiet,
)
from k8slab.labs.kube_proxy import Service
from k8slab.labs.values import restart_policy
from k8slab.provision.inventory import SshEndpoint, endpoints_for, endpoints_from_inventory, ssh_config_text
from k8slab.spec.model import LabSpec

if TYPE_CHECKING:
    import paramiko
    import testinfra.host

# kubeadm writes the cluster-admin kubeconfig here on the control plane; reading it as root avoids
# depending on whether provisioning also copied it to the login user's ~/.kube.
ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf"
# The images the lab's pods name, pinned; any other image goes to the registry as named.
IMAGE_TAGS = {"busybox": "busybox:1.36", "alpine": "alpine:3.20", "httpd": "httpd:2.4", "nginx": "nginx:1.27"}
# Images whose own command is a shell that exits at once; k8slab keeps them running to exec into.
SHELL_IMAGES = ("busybox", "alpine")
# busybox's PID 1 would ignore SIGTERM and make every delete wait out the grace period; this exits on it.
KEEP_ALIVE = ["sh", "-c", "trap 'kill $! 2>/dev/null; exit 0' TERM; while :; do sleep 3600 & wait $!; done"]
POD_READY_TIMEOUT = 180
# What coreutils' timeout returns: a command cut off by node_run/pod_run's own timeout.
RC_TIMEOUT = 124
# The lab's pods run on every node, the control plane too: k8slab's kubeadm config leaves it untainted,
# and a cluster kubeadm tainted anyway (an older lab, an --inventory cluster) still takes them.
CONTROL_PLANE_TOLERATIONS = [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                              "effect": "NoSchedule"}]


def image_ref(image: str) -> str:
    return IMAGE_TAGS.get(image, image)


def container_manifest(container: Container) -> dict[str, Any]:
    """One entry of the pod's spec.containers."""
    command = list(container.command) or (KEEP_ALIVE if container.image.split(":")[0] in SHELL_IMAGES else [])
    return {"name": container.name, "image": image_ref(container.image), **({"command": command} if command else {})}


def kubectl_run_args(name: str, node: str, containers: Sequence[Container] = ()) -> list[str]:
    """`kubectl run` arguments for a pod pinned to node, as the tutorial pins httpd to node-1. The overrides
    carry the whole container list: kubectl run's default --override-type=merge is a JSON merge patch, which
    replaces a list, so a pod gets exactly these containers (and the apiVersion overrides require). Its
    restartPolicy is the emulated lab's (values.restart_policy): a crashed server comes back on both."""
    containers = tuple(containers) or default_containers(name)
    overrides = {"apiVersion": "v1", "spec": {"nodeSelector": {"kubernetes.io/hostname": node},
                                             "tolerations": CONTROL_PLANE_TOLERATIONS,
                                             "containers": [container_manifest(c) for c in containers]}}
    return ["run", name, f"--image={image_ref(containers[0].image)}", f"--restart={restart_policy(containers)}",
            f"--overrides={json.dumps(overrides)}"]


def parse_pods(kubectl_json: str) -> list[Pod]:
    """Pods of `kubectl get pods -o json` that are scheduled and have an address."""
    pods = []
    for item in json.loads(kubectl_json).get("items", []):
        node, ip = item.get("spec", {}).get("nodeName"), item.get("status", {}).get("podIP")
        if node and ip:
            pods.append(Pod(name=item["metadata"]["name"], node=node, ip=IPv4Address(ip)))
    return pods


def parse_pod_states(kubectl_json: str) -> dict[str, PodState]:
    """READY and STATUS as `kubectl get pods` prints them: a waiting or terminated container's reason
    (CrashLoopBackOff, Completed), else the pod's phase; RESTARTS summed over its containers."""
    states = {}
    for item in json.loads(kubectl_json).get("items", []):
        statuses = item.get("status", {}).get("containerStatuses", [])
        total = len(item.get("spec", {}).get("containers", [])) or len(statuses)
        reasons = [s["state"][k].get("reason", "") for k in ("waiting", "terminated") for s in statuses
                   if k in s.get("state", {})]
        status = next((r for r in reasons if r), item.get("status", {}).get("phase", "Unknown"))
        restarts = sum(s.get("restartCount", 0) for s in statuses if isinstance(s.get("restartCount"), int))
        states[item["metadata"]["name"]] = PodState(sum(bool(s.get("ready")) for s in statuses), total, status,
                                                    restarts)
    return states


def parse_node_readiness(kubectl_json: str) -> dict[str, str]:
    """node name -> "Ready"/"NotReady" from `kubectl get nodes -o json`."""
    ready = {}
    for item in json.loads(kubectl_json).get("items", []):
        conditions = {c.get("type"): c.get("status") for c in item.get("status", {}).get("conditions", [])}
        ready[item["metadata"]["name"]] = "Ready" if conditions.get("Ready") == "True" else "NotReady"
    return ready


class SshLab(Lab):
    backend = "ssh"
    has_kubernetes = True
    needs_inventory = True

    def __init__(self, spec: LabSpec, endpoints: Mapping[str, SshEndpoint] | None = None,
                 inventory: Path | None = None):
        super().__init__(spec)
        self._endpoints = dict(endpoints) if endpoints is not None else None
        self.inventory = inventory
        self._clients: dict[str, paramiko.SSHClient] = {}
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._tmp_lock = threading.Lock()
        self._closer = weakref.finalize(self, SshLab._close_all, self._clients)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None  # paramiko is a dependency of k8slab

    @classmethod
    def open(cls, spec: LabSpec, inventory: Path | None = None) -> Lab:
        if not cls.needs_inventory:
            return super().open(spec, inventory)
        if inventory is None:
            raise UsageError("the ssh backend works on machines you already have: pass --inventory FILE, an "
                             "Ansible inventory whose host names are the lab's node names")
        return cls.from_inventory(spec, inventory)

    @classmethod
    def from_inventory(cls, spec: LabSpec, inventory: Path) -> SshLab:
        """The lab of machines listed in an Ansible inventory (any format ansible-inventory reads)."""
        return cls(spec, read_inventory(spec, inventory), inventory=inventory)

    # connection details
    def endpoints(self) -> dict[str, SshEndpoint]:
        if self._endpoints is None:
            raise LabStateError(f"no SSH details for lab {self.spec.name!r}; give an inventory file")
        return self._endpoints

    def endpoint(self, node: str) -> SshEndpoint:
        self.spec.node(node)  # unknown node: LabStateError listing the nodes
        return endpoints_for(self.spec, self.endpoints(), "the inventory")[self.spec.node(node).index]

    def ssh_config_file(self) -> Path:
        """An ssh_config for this lab's nodes, for testinfra's paramiko backend. Called from the threads that
        observe nodes at once: one directory per lab (a second one would be garbage-collected, and removed,
        while a thread still reads its file) and the file replaced whole, never seen half written."""
        text = ssh_config_text({e.name: e for e in endpoints_for(self.spec, self.endpoints(), "the inventory")})
        with self._tmp_lock:
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix=f"k8slab-{self.spec.name}-ssh-")
            path = Path(self._tmp.name) / "ssh_config"
            fresh = path.with_name(f"ssh_config.{threading.get_ident()}")
            fresh.write_text(text)
            os.replace(fresh, path)
        return path

    # lifecycle: the machines exist already; `up` provisions them, `destroy` leaves them alone
    def is_up(self) -> bool:
        try:
            return self.kubectl("get", "nodes", timeout=20).ok
        except CommandFailedError:
            return False

    def up(self, progress: Progress = quiet) -> None:
        from k8slab.provision.runner import provision

        if self.inventory is None:
            raise LabStateError("an SSH lab is provisioned from an inventory file; pass --inventory FILE")
        provision(self.spec, self.inventory, progress, next_step=self.command("provision"))

    def destroy(self, progress: Progress = quiet) -> None:
        raise LabStateError(f"lab {self.spec.name!r} runs on machines k8slab did not create "
                            f"({self.inventory or 'an inventory'}); k8slab leaves them as they are")

    def plan(self) -> str:
        lines = [(f"provision lab {self.spec.name!r} on existing machines over SSH "
                 f"({self.inventory or 'inventory'}) with ansible/site.yml:")]
        for node, e in zip(self.spec.nodes, endpoints_for(self.spec, self.endpoints(), "the inventory")):
            lines.append(f"  {node.name:<14} {node.role:<13} ssh {e.user or '(you)'}@{e.hostname}:{e.port}  "
                         f"eth1 {node.ip}  pods {node.pod_subnet}")
        return "\n".join(lines)

    def node_readiness(self) -> dict[str, str]:
        """node -> Ready/NotReady as Kubernetes sees it; empty when the API server does not answer."""
        try:
            result = self.kubectl("get", "nodes", "-o", "json", timeout=20)
        except CommandFailedError:
            return {}
        return parse_node_readiness(result.stdout) if result.ok else {}

    def status(self) -> list[dict[str, str]]:
        ready = self.node_readiness()
        return [{**node_row(n), "kubernetes": ready.get(n.name, "unreachable")} for n in self.spec.nodes]

    # nodes
    def _client(self, node: str) -> paramiko.SSHClient:
        import paramiko

        if node in self._clients and self._clients[node].get_transport() and \
                self._clients[node].get_transport().is_active():
            return self._clients[node]
        e = self.endpoint(node)
        client = paramiko.SSHClient()
        # Throwaway VMs get new host keys on every rebuild; see THROWAWAY_HOST_OPTIONS.
        client.set_missing_host_key_policy(paramiko.MissingHostKeyPolicy())
        try:
            client.connect(e.hostname, port=e.port, username=e.user or None, key_filename=e.identity_file,
                           look_for_keys=e.identity_file is None, allow_agent=e.identity_file is None,
                           sock=paramiko.ProxyCommand(e.expanded_proxy_command()) if e.proxy_command else None,
                           timeout=15, banner_timeout=15, auth_timeout=15)
        except (paramiko.SSHException, OSError) as exc:
            raise CommandFailedError(f"cannot reach {node} over SSH at {e.user}@{e.hostname}:{e.port}: {exc}; "
                                     f"{self.unreachable_hint(node)}") from None
        self._clients[node] = client
        return client

    def unreachable_hint(self, node: str) -> str:
        return f"check the machine is up and {self.inventory or 'the inventory'} points at it"

    def _as_root(self, node: str, argv: Sequence[str]) -> str:
        command = shlex.join(argv)
        return command if self.endpoint(node).user == "root" else f"sudo -n -- {command}"

    def node_run(self, node: str, argv: Sequence[str], timeout: float = 30) -> Result:
        """Run argv on the node as root (the emulated lab's node commands run as root too)."""
        channel = self._client(node).get_transport().open_session(timeout=15)
        channel.exec_command(self._as_root(node, argv))
        out, err = bytearray(), bytearray()
        deadline = time.monotonic() + timeout
        channel.settimeout(0.2)
        while True:
            for recv, buf in ((channel.recv, out), (channel.recv_stderr, err)):
                try:
                    while chunk := recv(65536):
                        buf.extend(chunk)
                except TimeoutError:
                    pass
            if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                rc = channel.recv_exit_status()
                break
            if time.monotonic() > deadline:
                channel.close()
                err.extend(f"\nk8slab: timed out after {timeout:g}s".encode())
                rc = RC_TIMEOUT
                break
        channel.close()
        return Result(tuple(argv), rc, out.decode(errors="replace"), err.decode(errors="replace"))

    def node_stream_argv(self, node: str, argv: Sequence[str]) -> list[str]:
        from k8slab.labs.capture import over_ssh

        return over_ssh(self.ssh_config_file(), node, self.endpoint(node).user, argv)

    def testinfra_host(self, node: str) -> testinfra.host.Host:
        import testinfra

        e = self.endpoint(node)
        return testinfra.get_host(f"paramiko://{node}", ssh_config=str(self.ssh_config_file()),
                                  sudo=e.user != "root")

    # Kubernetes
    def adopt_cluster_blocks(self) -> None:
        """On a Calico lab, take each node's pod subnet from the cluster's block affinities (which block a node
        gets is calico-node's choice, not lab.yaml's order); a cluster that cannot say leaves the spec as it is."""
        if self.spec.calico is None:
            return
        for resource in calico_cluster.BLOCK_AFFINITY_RESOURCES:
            res = self.kubectl("get", resource, "-o", "json")
            if res.ok:
                blocks = calico_cluster.blocks_from_affinities(res.stdout)
                self.spec = calico_cluster.with_cluster_blocks(self.spec, blocks)
                return

    def bgp_status(self, node: str) -> tuple[str | None, str | None]:
        """What calico-node's BIRD on node says (`birdcl show status`, `show protocols`); None where it is silent."""
        pods = self.kubectl(*calico_cluster.CALICO_NODE_PODS)
        pod = calico_cluster.calico_node_pods(pods.stdout).get(node) if pods.ok else None
        if pod is None:
            return None, None
        status = self.kubectl(*calico_cluster.birdcl_args(pod, "show", "status"))
        protocols = self.kubectl(*calico_cluster.birdcl_args(pod, "show", "protocols"))
        return (status.stdout if status.ok else None), (protocols.stdout if protocols.ok else None)

    def kubectl(self, *args: str, timeout: float = 60) -> Result:
        """kubectl as cluster admin on the control plane."""
        return self.node_run(self.spec.control_plane.name, ["kubectl", f"--kubeconfig={ADMIN_KUBECONFIG}", *args],
                             timeout=timeout)

    def _kubectl_ok(self, *args: str, timeout: float = 60, what: str) -> Result:
        result = self.kubectl(*args, timeout=timeout)
        if not result.ok:
            raise CommandFailedError(f"{what} failed on {self.spec.control_plane.name}: "
                                     f"{(result.stderr or result.stdout).strip()}")
        return result

    def pods(self) -> list[Pod]:
        return parse_pods(self._kubectl_ok("get", "pods", "-o", "json", what="kubectl get pods").stdout)

    def pod_states(self) -> dict[str, PodState]:
        return parse_pod_states(self._kubectl_ok("get", "pods", "-o", "json", what="kubectl get pods").stdout)

    def _pod_names(self) -> list[str]:
        result = self._kubectl_ok("get", "pods", "-o", "name", what="kubectl get pods")
        return [line.split("/", 1)[1] for line in result.stdout.split() if "/" in line]

    def pod_start(self, name: str, node: str, containers: Sequence[Container] = ()) -> Pod:
        check_name("pod", name)
        self.spec.node(node)
        taken = self._pod_names()
        if name in taken:
            raise LabStateError(f"a pod named {name!r} already exists in lab {self.spec.name!r}; "
                                f"pods: {', '.join(taken)}")
        self._kubectl_ok(*kubectl_run_args(name, node, containers), what=f"kubectl run {name}")
        wait = self.kubectl("wait", "--for=condition=Ready", f"pod/{name}", f"--timeout={POD_READY_TIMEOUT}s",
                            timeout=POD_READY_TIMEOUT + 30)
        if not wait.ok:
            events = self.kubectl("describe", "pod", name, timeout=30).stdout.strip().splitlines()[-8:]
            raise CommandFailedError(f"pod {name} on {node} is not Ready after {POD_READY_TIMEOUT}s "
                                     f"({wait.stderr.strip()}); last events:\n  " + "\n  ".join(events))
        return self.pod(name)

    def pod_delete(self, name: str) -> None:
        names = self._pod_names()
        if name not in names:
            raise LabStateError(f"no pod named {name!r} in lab {self.spec.name!r}; pods: {', '.join(names) or 'none'}")
        self._kubectl_ok("delete", "pod", name, "--now", "--wait=true", timeout=120, what=f"kubectl delete {name}")

    # ClusterIP services: kubectl expose; the real kube-proxy writes the chains (kubectl_services.py)
    def service_expose(self, name: str, port: int, target_port: int, pod_names: Sequence[str],
                       protocol: str = "tcp") -> None:
        known = self._pod_names()
        missing = [p for p in pod_names if p not in known]
        if missing or not pod_names:
            raise LabStateError(f"no pod named {', '.join(missing) or '(none given)'}; "
                                f"pods: {', '.join(known) or 'none'}")
        self._kubectl_ok(*kubectl_services.label_args(name, pod_names), what=f"kubectl label pods for {name}")
        self._kubectl_ok(*kubectl_services.expose_args(name, pod_names[0], port, target_port, protocol),
                         what=f"kubectl expose {name}")

    def service_delete(self, name: str) -> None:
        self._kubectl_ok("delete", "service", name, what=f"kubectl delete service {name}")
        self._kubectl_ok(*kubectl_services.unlabel_args(name), what=f"kubectl label pods (removing {name}'s label)")

    def services(self) -> list[Service]:
        res = self._kubectl_ok("get", "services,endpointslices", "-A", "-o", "json", what="kubectl get services")
        return kubectl_services.parse_services(res.stdout)

    def pod_run(self, name: str, argv: Sequence[str], timeout: float = 30, container: str | None = None) -> Result:
        result = self.kubectl("exec", name, *(["-c", container] if container else []), "--", *argv, timeout=timeout)
        return Result(tuple(argv), result.rc, result.stdout, result.stderr)

    @staticmethod
    def _close_all(clients: dict[str, Any]) -> None:
        for client in clients.values():
            client.close()
        clients.clear()

    def close(self) -> None:
        self._close_all(self._clients)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def read_inventory(spec: LabSpec, inventory: Path) -> dict[str, SshEndpoint]:
    """Connection details of the spec's nodes from an inventory file, read by ansible-inventory itself."""
    from k8slab.provision.runner import ansible_path

    if not inventory.is_file():
        raise LabStateError(f"inventory {inventory} not found")
    exe = shutil.which("ansible-inventory", path=ansible_path())
    if exe is None:
        raise ToolMissingError("ansible-inventory not found; install ansible (`pip install ansible`) or run "
                               "`make setup`")
    proc = subprocess.run([exe, "-i", str(inventory), "--list"], check=False, capture_output=True, text=True,
                          timeout=60)
    if proc.returncode != 0:
        raise CommandFailedError(f"ansible-inventory cannot read {inventory}: {proc.stderr.strip()}")
    endpoints = endpoints_from_inventory(json.loads(proc.stdout))
    endpoints_for(spec, endpoints, f"inventory {inventory}")
    return endpoints
