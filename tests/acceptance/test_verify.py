"""`k8slab verify` on the lab under test: the same checks as this suite, printed as a table, and
`--junit FILE` as valid JUnit XML with one testcase per check (a grader parses it)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from k8slab.cli import main
from k8slab.spec.expect import node_interfaces, node_routes
from k8slab.verify.names import forwarding_name, interface_name, node_pairs, pod_trace_name, route_name


def test_verify_prints_the_table_and_writes_junit(spec, lab, tmp_path, capsys, request):
    junit = tmp_path / "verify.xml"
    argv = ["--spec", spec.source, "verify", "--junit", str(junit)]
    inventory = request.config.getoption("lab_inventory")
    argv += ["--inventory", inventory] if inventory else (["--backend", lab.backend] if lab.backend != "ssh" else [])
    pods_before = {p.name for p in lab.pods()}
    status = main(argv)
    out = capsys.readouterr().out
    assert status == 0, out

    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and root.get("failures") == "0"
    names = [case.get("name") for case in root.iter("testcase")]
    assert len(names) == len(set(names)) == int(root.get("tests"))
    # The names pytest uses for its own ids, computed from the spec, are the testcases of the report.
    wanted = [pod_trace_name(spec, a, b) for a, b in node_pairs(spec)]
    wanted += [interface_name(e) for n in spec.nodes for e in node_interfaces(spec, n, has_pods=True)]
    wanted += [route_name(e) for n in spec.nodes for e in node_routes(spec, n)]
    wanted += [forwarding_name(n) for n in spec.nodes]
    assert set(wanted) <= set(names), sorted(set(wanted) - set(names))
    assert not list(root.iter("failure"))
    for name in wanted:
        assert name in out
    assert f"{len(names)} checks" in out and "0 failed" in out
    # The pods verify started for itself are gone again.
    assert {p.name for p in lab.pods()} == pods_before


@pytest.mark.usefixtures("flannel_tutorial")  # Calico's BIRD would put a deleted route back within 2 s
def test_a_broken_lab_lists_only_its_failures_and_a_labelled_report(spec, lab, tmp_path, capsys):
    """A peer route deleted: --failed prints just the checks it breaks, each with its cause, the summary
    counts them all, and the HTML report opens with them under the student's label."""
    from k8slab.labs.registry import BACKENDS
    from k8slab.verify.faults import BY_ID, Pair, run_commands

    src, dst = spec.workers[1], spec.workers[0]
    fault, pair = BY_ID["peer-route-deleted"], Pair(spec, src, dst)
    page, junit = tmp_path / "report.html", tmp_path / "grades.xml"
    backend = ["--backend", lab.backend] if lab.backend in BACKENDS else []
    run_commands(lab, fault.breaks(pair))
    try:
        status = main(["--spec", spec.source, "verify", "--failed", "--html", str(page), "--label", "Ada, pc-12",
                       "--junit", str(junit), *backend])
    finally:
        run_commands(lab, fault.repairs(pair))
    out = capsys.readouterr().out
    assert status == 1
    broken = fault.expect(pair)
    for name in broken:
        assert name in out
    assert forwarding_name(dst) not in out  # a passing check is not listed
    assert out.count("likely cause:") == len(broken)
    assert f"{len(broken)} failed" in out.splitlines()[-1]
    html = page.read_text()
    assert '<p class="label" id="label">Ada, pc-12</p>' in html
    assert html.index(f"<h2>Failures ({len(broken)})</h2>") < html.index('id="checks"')
    root = ET.parse(junit).getroot()
    assert root.get("name") == f"k8slab verify {spec.name} (Ada, pc-12)" and root.get("failures") == str(len(broken))
