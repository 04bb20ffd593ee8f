"""`k8slab diagram` and the HTML report end to end on the lab under test: a valid SVG of the live
lab with a traced path, and a self-contained page headless Chromium renders with every check."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from k8slab.cli import main
from k8slab.labs.registry import BACKENDS
from k8slab.render.html_report import render_html
from k8slab.spec.expect import LOOPBACK, node_routes
from k8slab.spec.facts import NAT_ADDRESS, NAT_NETWORK
from k8slab.verify import run

SVG = "{http://www.w3.org/2000/svg}"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps"]


def svg_texts(path) -> str:
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    return " ".join(t.text or "" for t in root.iter(f"{SVG}text"))


@pytest.mark.usefixtures("flannel_tutorial")
def test_diagram_of_the_live_lab_with_a_traced_path(lab, spec, lab_pods, tmp_path, capsys):
    w1, w2 = spec.workers[0], spec.workers[1]
    src, dst = lab_pods[w2.name], lab_pods[w1.name]
    backend = ["--backend", lab.backend] if lab.backend in BACKENDS else []
    out = tmp_path / "lab.svg"
    rc = main(["--spec", spec.source, "diagram", "--trace", src.name, dst.name, "-o", str(out), *backend])
    assert rc == 0, capsys.readouterr()
    texts = svg_texts(out)
    for node in spec.nodes:
        # eth1 with the node's host-only address, cni0 with its pod gateway (every node runs a suite pod).
        assert node.name in texts and f"{node.ip}/{spec.host_only.prefixlen}" in texts, texts
        assert f"{node.pod_gateway}/{node.pod_subnet.prefixlen}" in texts, texts
    # eth0 and lo carry the same address on every node: one box each per node.
    for shown in (f"{NAT_ADDRESS}/{NAT_NETWORK.prefixlen}", str(LOOPBACK)):
        assert texts.count(shown) == len(spec.nodes), f"{shown} should be drawn once per node: {texts}"
    for pod in lab_pods.values():
        assert f"pod {pod.name}" in texts and f"eth0 {pod.ip}" in texts
    assert "hop 1" in texts and "hop 2" in texts and "hop 3" in texts
    assert f"traced: pod {src.name} -> pod {dst.name}" in texts
    # The live routing table: the row w2 used to reach w1's pods is drawn, as flannel writes it.
    row = next(r for r in node_routes(spec, w2) if r.peer == w1.name)
    assert f"{row.route.dst} via {row.route.via} dev {row.route.dev}" in texts, texts
    png = tmp_path / "lab.png"
    assert main(["--spec", spec.source, "diagram", "-o", str(png), *backend]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_report_renders_in_headless_chromium(lab, spec, tmp_path):
    results = run.run_checks(lab)
    assert results
    page = tmp_path / "report.html"
    page.write_text(render_html(lab, results))
    assert "://" not in re.sub(r'xmlns(:xlink)?="[^"]*"', "", page.read_text()), "the page must not fetch anything"
    exe = shutil.which("chromium")
    assert exe, "chromium is not installed (scripts/setup.sh installs it)"
    proc = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                           page.as_uri()], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    rows = re.findall(r'<tr class="check (ok|fail)">', dom)
    assert rows == ["ok" if r.ok else "fail" for r in results]
    assert re.search(r'<div class="diagram" id="diagram"><svg ', dom)
    for node in spec.nodes:
        assert f"<td>{node.name}</td>" in dom
    passed = sum(r.ok for r in results)
    assert f"{passed} passed, {len(results) - passed} failed" in dom


@pytest.mark.usefixtures("flannel_tutorial")
def test_a_failed_trace_is_drawn_lost_where_the_route_is_missing(lab, spec, lab_pods, tmp_path, capsys):
    from k8slab.verify.faults import BY_ID, Pair, run_commands

    w1, w2 = spec.workers[0], spec.workers[1]
    fault, pair = BY_ID["peer-route-deleted"], Pair(spec, w2, w1)
    backend = ["--backend", lab.backend] if lab.backend in BACKENDS else []
    out = tmp_path / "lost.svg"
    run_commands(lab, fault.breaks(pair))
    try:
        rc = main(["--spec", spec.source, "diagram", "--trace", lab_pods[w2.name].name, lab_pods[w1.name].name,
                   "-o", str(out), *backend])
    finally:
        run_commands(lab, fault.repairs(pair))
    assert rc == 0, capsys.readouterr()
    texts = svg_texts(out)
    row = pair.peer_route()
    assert "packet lost here" in texts and f"{w2.name} lacks: {row.route}" in texts
    assert "legend" in texts
