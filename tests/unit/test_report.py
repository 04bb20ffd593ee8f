"""The HTML report on recorded check results: self-contained, escaped, and rendered by headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from k8slab.labs.base import Pod
from k8slab.render import diagram
from k8slab.render.html_report import build_html, inline_svg
from k8slab.spec.load import load_spec
from k8slab.verify.checks import CheckResult

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps"]


@pytest.fixture
def spec():
    return load_spec(ROOT / "lab.yaml")


def recorded_results(spec) -> list[CheckResult]:
    n1, n2 = spec.workers[0], spec.workers[1]
    return [
        CheckResult("interfaces", f"{n1.name} has eth1 with {n1.ip}/24", f"{n1.ip}/24", f"{n1.ip}/24", True, None,
                    n1.name),
        CheckResult("routes", f"{n2.name} routes {n1.pod_subnet} via {n1.ip} on eth1",
                    f"{n1.pod_subnet} via {n1.ip} dev eth1", "no route", False,
                    "route to a peer's pod subnet missing or wrong: <flannel> not running?", n2.name),
        CheckResult("pod traces", f"pod on {n2.name} -> pod on {n1.name}: 3 hops", "3 hops", "3 hops", True, None),
    ]


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_page_lists_every_check_and_escapes_what_it_quotes(spec):
    results = recorded_results(spec)
    page = build_html(spec, "netns", results, "<svg xmlns='http://www.w3.org/2000/svg'><text>x</text></svg>")
    rows = re.findall(r'<tr class="check (ok|fail)">', page)
    assert rows == ["ok", "fail", "ok"]
    assert "&lt;flannel&gt; not running?" in page and "<flannel>" not in page
    assert "FAIL: 1 of 3 checks" in page and "2 passed, 1 failed" in page
    n1, n2 = spec.workers[0].name, spec.workers[1].name
    headers = re.findall(r'<tr class="group"><th colspan="5">(.*?)</th>', page)
    assert headers == [f"interfaces &middot; {n1} (1/1 ok)", f"routes &middot; {n2} (0/1 ok)", "pod traces (1/1 ok)"]
    for n in spec.nodes:
        assert f"<td>{n.name}</td>" in page and str(n.pod_subnet) in page


def test_page_is_self_contained(spec):
    n1 = spec.workers[0]
    svg = diagram.render(diagram.build_dot(spec, [Pod("w-a", n1.name, n1.pod_subnet.network_address + 2)]), "svg")
    page = build_html(spec, "netns", recorded_results(spec), svg.decode())
    parser = _Collect()
    parser.feed(page)
    fetching = [(t, a) for t, a in parser.tags if t in ("script", "link", "img", "iframe") or
                any(k in ("src", "href") and "://" in (v or "") for k, v in a.items())]
    assert fetching == []
    assert page.count("<svg") == 1 and "<?xml" not in page and "<!DOCTYPE svg" not in page
    assert "PASS" not in page


def test_inline_svg_strips_prolog_and_comments():
    raw = '<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN"\n "x.dtd">\n<!-- g -->\n<svg></svg>\n'
    assert inline_svg(raw) == "<svg></svg>"


def test_all_ok_says_pass(spec):
    ok = [r for r in recorded_results(spec) if r.ok]
    assert 'class="verdict pass"' in build_html(spec, "netns", ok, None)
    assert "no checks were run" in build_html(spec, "netns", [], None)


def chromium_dom(page: Path, tmp: Path) -> str:
    exe = shutil.which("chromium")
    assert exe, "chromium is not installed (scripts/setup.sh installs it)"
    proc = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'profile'}", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_chromium_renders_the_table_and_the_svg(spec, tmp_path):
    results = recorded_results(spec)
    svg = diagram.render(diagram.build_dot(spec), "svg").decode()
    page = tmp_path / "report.html"
    page.write_text(build_html(spec, "netns", results, svg))
    dom = chromium_dom(page, tmp_path)
    assert len(re.findall(r'<tr class="check (?:ok|fail)">', dom)) == len(results)
    assert re.search(r'<div class="diagram" id="diagram"><svg ', dom)
    assert spec.control_plane.name in dom


def test_failures_and_their_causes_open_the_page_with_code_as_code(spec):
    n1, n2 = spec.workers[0], spec.workers[1]
    results = [*recorded_results(spec),
               CheckResult("routes", f"{n1.name} routes {n2.pod_subnet}", "a route", "none", False,
                           f"flannel has not run on {n1.name}: run `ip route` on it", n1.name)]
    page = build_html(spec, "netns", results, None, label="Ada Lovelace, pc-12")
    failures = page.index('<ol id="failures">')
    assert failures < page.index('id="nodes"') < page.index('id="checks"')
    listed = re.findall(r"<li><strong>(.*?)</strong>", page[failures:page.index("</ol>", failures)])
    assert listed == [r.name for r in results if not r.ok]
    assert "run <code>ip route</code> on it" in page and "`ip route`" not in page
    assert '<p class="label" id="label">Ada Lovelace, pc-12</p>' in page and "— Ada Lovelace, pc-12</title>" in page
    assert "&lt;flannel&gt; not running?" in page  # escaped before backticks become <code>


def test_a_passing_report_lists_no_failures_and_an_unpaired_backtick_stays(spec):
    ok = [r for r in recorded_results(spec) if r.ok]
    page = build_html(spec, "netns", ok, None)
    assert 'id="failures"' not in page and 'id="label"' not in page
    odd = [CheckResult("routes", "r", "a", "b", False, "a stray ` here", None)]
    assert "a stray ` here" in build_html(spec, "netns", odd, None)
