"""Pods that behave like pods on the emulated lab: servers that answer, containers that share localhost
and nothing else, kubectl's habits in the CLI, states read from the kernel, and no process left
behind by pod delete, destroy, or a CLI killed with SIGKILL half way through `pod run`."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from k8slab.errors import LabStateError
from k8slab.labs.base import Container, PodState
from k8slab.labs.netns import NetnsLab, containers, names, nsfs
from k8slab.labs.netns.images import IMAGES
from k8slab.labs.placement import place

from .labtools import K8SLAB, ROOT, default_spec, leftovers, run_cli, unique_name, up_through_cli


def lab_processes(lab: NetnsLab) -> list[int]:
    """Every process a container of this lab started, found by what it inherited, not by namespace."""
    return containers.pids_under(lab.paths.dir)


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for init to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][:1] != "Z"
    except FileNotFoundError:
        return False


def wait_for(predicate, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def lab(labs) -> NetnsLab:
    lab = labs(default_spec(unique_name("p")))
    lab.up()
    return lab


def test_servers_answer_with_a_page_naming_the_pod_from_another_node(lab):
    server_node, client_node = lab.spec.workers[0].name, lab.spec.workers[-1].name
    web = lab.pod_start("web", server_node, (Container("web", "nginx"),))
    httpd = lab.pod_start("httpd", server_node)  # the image follows the name, as on the VirtualBox lab
    lab.pod_start("client", client_node, (Container("client", "busybox"),))
    for pod, image in ((web, "nginx"), (httpd, "httpd")):
        page = lab.pod_run("client", ["wget", "-qO-", "-T", "5", f"http://{pod.ip}/"])
        assert page.ok, page.stderr
        assert IMAGES[image].welcome in page.stdout
        assert f"pod {pod.name} " in page.stdout and f"{pod.ip} on {server_node}" in page.stdout


def test_containers_share_the_network_and_nothing_else(lab):
    node = lab.spec.workers[0].name
    pod = lab.pod_start("web", node, (Container("web", "httpd"), Container("sidecar", "busybox")))
    page = lab.pod_run("web", ["wget", "-qO-", "-T", "5", "http://localhost/"], container="sidecar")
    assert page.ok and "pod web " in page.stdout, page.stderr
    addr = lab.pod_run("web", ["ip", "-4", "-o", "addr", "show", "eth0"], container="sidecar")
    assert f" {pod.ip}/" in addr.stdout
    # each container is PID 1 of its own PID namespace: the sidecar does not see the server
    ps = lab.pod_run("web", ["sh", "-c", "cat /proc/[0-9]*/comm"], container="sidecar")
    assert "httpd" not in ps.stdout.split() and "busybox" not in ps.stdout.split()
    assert lab.pod_run("web", ["cat", "/proc/1/comm"], container="web").stdout.strip() == "sh"
    # a private /tmp each, the pod's name as hostname and in /etc/hosts
    assert lab.pod_run("web", ["touch", "/tmp/mark"], container="web").ok
    assert not lab.pod_run("web", ["test", "-e", "/tmp/mark"], container="sidecar").ok
    assert lab.pod_run("web", ["hostname"], container="sidecar").stdout.strip() == "web"
    hosts = lab.pod_run("web", ["cat", "/etc/hosts"], container="sidecar").stdout
    assert f"{pod.ip}\tweb" in hosts
    assert lab.pod_states()["web"] == PodState(2, 2, "Running")
    with pytest.raises(LabStateError, match="no container 'nope'.*web, sidecar"):
        lab.pod_run("web", ["true"], container="nope")


def test_bad_pods_are_refused_before_anything_is_built(lab):
    node = lab.spec.workers[0].name
    before = sorted(nsfs.list_netns(lab.prefix))
    with pytest.raises(LabStateError) as err:
        lab.pod_start("x", node, (Container("x", "redis"),))
    assert all(name in str(err.value) for name in IMAGES)  # the refusal lists what is known
    with pytest.raises(LabStateError, match="node's name"):
        lab.pod_start(lab.spec.workers[-1].name, node)
    with pytest.raises(LabStateError, match="twice"):
        lab.pod_start("y", node, (Container("y", "busybox"), Container("y", "httpd")))
    assert sorted(nsfs.list_netns(lab.prefix)) == before and lab.pods() == []


def test_states_follow_the_processes_and_the_namespace(lab):
    node = lab.spec.workers[0].name
    lab.pod_start("done", node, (Container("done", "busybox", ("true",)),))
    lab.pod_start("failed", node, (Container("failed", "busybox", ("sh", "-c", "exit 3")),))
    lab.pod_start("lost", node)
    wait_for(lambda: lab.pod_states()["done"].status == "Completed", "done to complete")
    wait_for(lambda: lab.pod_states()["failed"].status == "Error", "failed to fail")
    assert lab.pod_states()["lost"] == PodState(1, 1, "Running")
    # someone removes the pod's namespace behind the lab's back: not Running any more
    subprocess.run(["ip", "netns", "delete", names.pod_netns(lab.spec.name, "lost")], check=True)
    assert lab.pod_states()["lost"].status == "Unknown"
    assert lab_processes(lab)  # its container still runs, outside any namespace the lab can list
    lab.pod_delete("lost")
    assert not containers.pids_under(containers.pod_dir(lab.paths.dir, "lost"))


def test_pod_delete_and_destroy_end_every_container(lab):
    node = lab.spec.workers[0].name
    lab.pod_start("web", node, (Container("web", "nginx"), Container("sidecar", "busybox")))
    lab.pod_start("other", node)
    web_pids = containers.pids_under(containers.pod_dir(lab.paths.dir, "web"))
    assert web_pids
    lab.pod_delete("web")
    assert not any(alive(pid) for pid in web_pids)
    assert lab.pod_states()["other"].status == "Running"
    lab.destroy()
    assert lab_processes(lab) == [] and leftovers(lab.spec.name) == []


def test_pods_delete_removes_many_at_once_and_names_the_ones_it_could_not(lab):
    """verify's cleanup: every node's pods removed together, with their containers, namespaces and veths; a
    name that is no pod is reported, and the others are removed all the same."""
    def ports() -> dict[str, str]:  # each node's pod veths on its bridge: CNI DEL removes a pod's
        return {n.name: lab.node_run(n.name, ["ip", "-o", "link", "show", "master", "cni0"]).stdout
                for n in lab.spec.nodes}

    before = ports()
    wanted = [(f"many-{n.index}-{k}", n.name) for n in lab.spec.nodes for k in range(2)]
    lab.pods_start(wanted)
    assert ports() != before
    pids = [pid for name, _ in wanted for pid in containers.pids_under(containers.pod_dir(lab.paths.dir, name))]
    assert pids
    with pytest.raises(LabStateError, match="could not remove ghost") as raised:
        lab.pods_delete([name for name, _ in wanted] + [wanted[0][0], "ghost"])  # one name twice: one pod
    assert str(raised.value).startswith("could not remove ghost: ")  # and nothing else: each failure is "NAME: why"
    assert f"; {wanted[0][0]}: " not in str(raised.value)
    assert lab.pods() == [] and not any(alive(pid) for pid in pids)
    assert not [n for n in leftovers(lab.spec.name) if "_pod-many" in n]
    assert ports() == before


def test_cli_kubectl_habits(tmp_path, cli_labs):
    path, spec = up_through_cli(tmp_path, cli_labs, "c")
    lab = NetnsLab(spec)
    expected = place(spec, []).node
    run = run_cli(path, "pod", "run", "web", "--image=httpd", "--container", "sidecar=busybox")
    assert run.returncode == 0, run.stderr
    assert f"placing web on {expected}" in run.stdout and lab.pod("web").node == expected
    run = run_cli(path, "pod", "run", "sleeper", "--image", "busybox", "--", "sleep", "3600")
    assert run.returncode == 0, run.stderr
    assert lab.pod("sleeper").node != expected  # spread: the other worker has fewer pods now
    page = run_cli(path, "pod", "exec", "web", "-c", "sidecar", "--", "wget", "-qO-", "localhost")
    assert page.returncode == 0 and "pod web " in page.stdout, page.stderr
    shell = run_cli(path, "pod", "exec", "-it", "sleeper", "--", "sh", "-c", "cat /proc/1/cmdline")
    assert "sleep\x003600" in shell.stdout
    listing = run_cli(path, "pod", "list").stdout.splitlines()
    assert listing[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "IP", "NODE"]
    rows = {line.split()[0]: line.split() for line in listing[1:] if line.strip()}
    assert rows["web"] == ["web", "2/2", "Running", "0", str(lab.pod("web").ip), expected]
    refused = run_cli(path, "pod", "run", spec.workers[0].name)
    assert refused.returncode == 2 and "node's name" in refused.stderr
    refused = run_cli(path, "pod", "run", "db", "--image", "postgres")
    assert refused.returncode == 2 and "httpd" in refused.stderr and "db" not in {p.name for p in lab.pods()}


def test_destroy_after_a_cli_killed_mid_run_leaves_nothing(tmp_path, cli_labs):
    path, spec = up_through_cli(tmp_path, cli_labs, "k")
    lab = NetnsLab(spec)
    cli = subprocess.Popen([*K8SLAB, "--spec", str(path), "pod", "run", "web", "--node", spec.workers[0].name,
                            "--image", "nginx", "--container", "a=busybox", "--container", "b=httpd"],
                           cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # kill it once its first container runs, while the others are still being started
        wait_for(lambda: bool(lab_processes(lab)) or cli.poll() is not None, "the first container")
    finally:
        cli.send_signal(signal.SIGKILL)
        cli.wait()
    lab.destroy()
    assert lab_processes(lab) == [] and leftovers(spec.name) == []
