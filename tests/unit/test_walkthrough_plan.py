"""The walkthrough's plan and closing line, from the spec alone: a smaller lab runs the steps it can and
says why it skips the others; a partial run never claims every step passed."""

from __future__ import annotations

from pathlib import Path

import yaml

from k8slab.render.walkthrough_text import format_skipped, summary
from k8slab.spec.load import load_spec, parse_spec
from k8slab.teach.walkthroughs import WALKTHROUGHS, walkthrough
from k8slab.teach.walkthroughs.model import Check, Roles, StepResult, pods_of
from k8slab.teach.walkthroughs.pods import PODS
from k8slab.teach.walkthroughs.runner import plan
from k8slab.teach.walkthroughs.tutorial import TUTORIAL

ROOT = Path(__file__).resolve().parents[2]


def spec_with(workers: int):
    data = yaml.safe_load((ROOT / "lab.yaml").read_text())
    data["nodes"] = data["nodes"][:1] + data["nodes"][1:1 + workers]
    return parse_spec(yaml.safe_dump(data))


def result(spec, number: int, ok: bool) -> StepResult:
    return StepResult(TUTORIAL.step(number).text(spec, Roles.of(spec), {}), [], "", [Check(ok, "x")])


def test_the_full_lab_runs_every_step():
    assert plan(load_spec(ROOT / "lab.yaml"), TUTORIAL, TUTORIAL.numbers) == ([1, 2, 3, 4], [])


def test_a_two_node_lab_runs_steps_1_to_3_and_says_why_not_4():
    small = spec_with(1)
    run, skipped = plan(small, TUTORIAL, TUTORIAL.numbers)
    assert run == [1, 2, 3] and [s.number for s in skipped] == [4]
    assert "two workers" in skipped[0].why and f"lab {small.name!r} has 1" in skipped[0].why
    assert format_skipped(skipped, 4) == [(f"-- step 4 of 4 (pod to pod across nodes: three hops) is skipped: "
                                          f"{skipped[0].why}")]


def test_a_one_node_lab_runs_nothing_and_says_so():
    lone = spec_with(0)
    run, skipped = plan(lone, TUTORIAL, TUTORIAL.numbers)
    assert run == [] and len(skipped) == 4
    ok, line = summary(TUTORIAL, [], skipped)
    assert not ok and "no step of the tutorial walkthrough could run" in line


def test_only_a_full_passing_run_claims_every_step():
    spec = load_spec(ROOT / "lab.yaml")
    every = [result(spec, n, True) for n in TUTORIAL.numbers]
    assert summary(TUTORIAL, every, []) == (True, "every step matches the tutorial")
    ok, line = summary(TUTORIAL, every[2:3], [])
    assert ok and "every" not in line and line.startswith("step(s) 3 match the tutorial (1 of 4 steps ran")
    ok, line = summary(TUTORIAL, [every[0], result(spec, 4, False)], [])
    assert not ok and line == "step(s) 4 do not match the tutorial; step(s) 1 do"


def test_pods_use_the_tutorials_names_and_the_registry_names_the_walkthroughs():
    assert pods_of(TUTORIAL, TUTORIAL.numbers) == {"nginx", "httpd", "busybox"}
    assert walkthrough("tutorial") is TUTORIAL and list(WALKTHROUGHS) == ["tutorial", "calico", "pods"]
    assert walkthrough("pods") is PODS and pods_of(PODS, PODS.numbers) == {"web", "hello-1", "hello-2", "hello-3",
                                                                           "client", "httpd", "busybox"}
    run, skipped = plan(spec_with(0), PODS, PODS.numbers)
    assert run == [] and [s.number for s in skipped] == [1, 2, 3, 4, 5]  # every step needs a worker, and says so
    assert all("needs a worker" in s.why for s in skipped[:4]) and "needs two workers" in skipped[4].why
