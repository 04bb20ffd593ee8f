"""kubectl's habits in `k8slab pod`, without a lab: parsing, placement, images, help with examples."""

from __future__ import annotations

import argparse
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from k8slab.cli import build_parser, split_command
from k8slab.cli.pod_cmds import containers_of
from k8slab.errors import UsageError
from k8slab.labs.base import Container, Pod
from k8slab.labs.netns import containers, images
from k8slab.labs.placement import node_name_clash, place, schedulable
from k8slab.spec.load import load_spec

ROOT = Path(__file__).resolve().parents[2]
SPEC = load_spec(ROOT / "lab.yaml")


def parse(*argv: str) -> argparse.Namespace:
    own, command = split_command(list(argv))
    args = build_parser().parse_args(own)
    if command is not None:
        args.argv = command
    return args


def test_the_program_after_double_dash_is_kept_whole():
    args = parse("pod", "run", "web", "--image=httpd", "--", "sh", "-c", "echo -n x --image")
    assert (args.name, args.image, args.argv) == ("web", "httpd", ["sh", "-c", "echo -n x --image"])
    args = parse("pod", "exec", "-it", "client", "-c", "side", "--", "sh")
    assert (args.stdin, args.tty, args.name, args.container, args.argv) == (True, True, "client", "side", ["sh"])
    assert split_command(["pod", "list"]) == (["pod", "list"], None)


def test_containers_from_image_command_and_sidecars():
    assert containers_of(parse("pod", "run", "web")) == ()  # the lab's default: the image follows the name
    args = parse("pod", "run", "web", "--image", "nginx", "--container", "sidecar=busybox", "--", "sleep", "9")
    assert containers_of(args) == (Container("web", "nginx", ("sleep", "9")), Container("sidecar", "busybox"))
    assert containers_of(parse("pod", "run", "x-httpd", "--", "true")) == (Container("x-httpd", "httpd", ("true",)),)
    with pytest.raises(UsageError, match="NAME=IMAGE"):
        containers_of(parse("pod", "run", "web", "--container", "busybox"))


def pods_on(*nodes: str) -> list[Pod]:
    return [Pod(f"p{i}", node, IPv4Address("10.0.0.1")) for i, node in enumerate(nodes)]


def test_placement_spreads_over_the_workers_like_the_scheduler():
    workers = [n.name for n in SPEC.workers]
    assert schedulable(SPEC) == workers and SPEC.control_plane.name not in workers
    assert place(SPEC, []).node == workers[0]
    assert place(SPEC, pods_on(workers[0])).node == workers[1]
    assert place(SPEC, pods_on(workers[0], workers[1], workers[1])).node == workers[0]
    assert place(SPEC, pods_on(SPEC.control_plane.name)).node == workers[0]
    assert "NoSchedule" in place(SPEC, []).why


def test_a_pod_named_like_a_node_is_refused():
    assert all(node_name_clash(SPEC, n.name) for n in SPEC.nodes)
    assert node_name_clash(SPEC, "web") is None


@pytest.mark.parametrize(("ref", "known"), [("nginx", "nginx"), ("nginx:1.27", "nginx"),
                                            ("docker.io/library/httpd:2.4", "httpd"), ("busybox@sha256:ab", "busybox"),
                                            ("alpine:3.20", "alpine"), ("localhost:5000/nginx", None),
                                            ("redis", None), ("quay.io/x/nginx:1", None)])
def test_image_names_as_a_registry_reads_them(ref, known):
    problem = images.image_problem(ref)
    if known:
        assert problem is None and images.resolve(ref).name == known
    else:
        assert problem and all(name in problem for name in images.IMAGES)


def test_server_images_serve_a_page_naming_the_pod(tmp_path):
    for image in images.IMAGES.values():
        if image.port is None:
            assert image.command(tmp_path)[0] == "sleep"
            continue
        page = image.page("web", "main", "10.244.1.2", "node-1")
        assert image.welcome in page and "pod web (container main), 10.244.1.2 on node-1" in page
        command = image.command(tmp_path)
        assert command[command.index("-p") + 1] == str(image.port) and str(tmp_path) in command
    assert "&lt;b&gt;" in images.IMAGES["nginx"].page("<b>", "c", "ip", "n")


def test_the_pod_hosts_file_names_the_pod():
    text = containers.hosts_file("web", "10.244.1.2")
    assert "127.0.0.1\tlocalhost" in text and "10.244.1.2\tweb" in text


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("group", ["pod", "node", "service"])
def test_every_argument_has_help_with_an_example(group):
    for name, sub in _subparsers(_subparsers(build_parser())[group]).items():
        assert "example" in (sub.epilog or ""), f"{group} {name} has no examples"
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and "e.g." in action.help, f"{group} {name} {action.dest}: {action.help!r}"


def test_capture_arguments_have_help_with_an_example():
    capture = _subparsers(build_parser())["capture"]
    assert "example" in (capture.epilog or "")
    for action in capture._actions:
        if not isinstance(action, argparse._HelpAction):
            assert action.help and "e.g." in action.help, f"capture {action.dest}: {action.help!r}"
