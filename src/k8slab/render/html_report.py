"""`k8slab verify --html`: one self-contained page (inline CSS, inline SVG, no external URL) for a
teacher to collect: who and where (--label), the failures and their causes first, then every check
with expected/observed and the likely cause, and the diagram. Text quoting a command in backticks
(`ip route`) is shown as code.

build_html is pure; render_html reads the live lab for the diagram and never fails the report
because of it (a missing Graphviz or an unreachable node becomes a note on the page).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from k8slab.errors import K8slabError
from k8slab.spec.model import LabSpec

if TYPE_CHECKING:
    from k8slab.labs.base import Lab
    from k8slab.verify.checks import CheckResult

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222;
       margin: 2em auto; max-width: 1200px; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.meta { color: #666; } .label { font-size: 1.2em; font-weight: bold; margin: .2em 0; }
#failures li { margin-bottom: .5em; } code { background: #f3f3f3; padding: 0 .2em; border-radius: 3px; }
.verdict { display: inline-block; padding: .35em .8em; border-radius: 4px; font-weight: bold; color: white; }
.verdict.pass { background: #2e7d32; } .verdict.fail { background: #c62828; }
table { border-collapse: collapse; width: 100%; font-size: .93em; }
th, td { border: 1px solid #ddd; padding: .35em .5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr.fail td { background: #fdecea; }
td.mark { font-weight: bold; text-align: center; width: 1.5em; }
tr.ok td.mark { color: #2e7d32; } tr.fail td.mark { color: #c62828; }
td code, td.value { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .92em; }
tr.group th { background: #e8eef7; }
.diagram svg { max-width: 100%; height: auto; }
.note { background: #fff8e1; border: 1px solid #f0d98c; padding: .5em .8em; }
@media print { body { margin: 0; max-width: none; } tr { page-break-inside: avoid; } }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _prose(value: object) -> str:
    """Escaped text whose `backticked` parts (commands, addresses in hints) become <code>."""
    parts = _e(value).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: keep it as written
        return _e(value)
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def inline_svg(svg: str) -> str:
    """Graphviz's SVG file made fit to sit inside HTML: no XML prolog, doctype or comments."""
    svg = re.sub(r"<\?xml[^>]*\?>", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>", "", svg, flags=re.DOTALL)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.DOTALL)
    return svg.strip()


def build_html(spec: LabSpec, backend: str, results: Sequence[CheckResult], svg: str | None,
               note: str = "", generated: str = "", label: str = "") -> str:
    passed = sum(1 for r in results if r.ok)
    failed = len(results) - passed
    ok = failed == 0 and bool(results)
    verdict = ("PASS: the lab's network behaves as the tutorial says" if ok else
               f"FAIL: {failed} of {len(results)} checks do not match the tutorial" if results else
               "no checks were run")
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>k8slab report: lab {_e(spec.name)}{' — ' + _e(label) if label else ''}</title>",
           f"<style>{_CSS}</style>", "</head>", "<body>",
           f"<h1>k8slab verification of lab {_e(spec.name)}</h1>",
           *([f'<p class="label" id="label">{_e(label)}</p>'] if label else []),
           f'<p class="meta">backend {_e(backend)} &middot; spec {_e(spec.source)} &middot; '
           f"{_e(spec.dataplane)} on {_e(spec.cni_interface)} &middot; pod CIDR {_e(spec.pod_cidr)}"
           + (f" &middot; generated {_e(generated)}" if generated else "") + "</p>",
           (f'<p><span class="verdict {"pass" if ok else "fail"}" id="verdict">{_e(verdict)}</span> '
           f'<span class="meta">{passed} passed, {failed} failed</span></p>'),
           *_failures(results),
           "<h2>Nodes</h2>", ('<table id="nodes"><thead><tr><th>node</th><th>role</th><th>eth1 (host-only)</th>'
           f"<th>pod subnet</th><th>{'pods&#39; gateway' if spec.calico else 'cni0 gateway'}</th></tr></thead><tbody>")]
    for n in spec.nodes:
        out.append(f"<tr><td>{_e(n.name)}</td><td>{_e(n.role)}</td><td class=\"value\">{_e(n.ip)}</td>"
                   f'<td class="value">{_e(n.pod_subnet)}</td><td class="value">{_e(n.pod_gateway)}</td></tr>')
    out.append("</tbody></table>")

    out += ["<h2>Checks</h2>", ('<table id="checks"><thead><tr><th></th><th>check</th><th>expected</th>'
            "<th>observed</th><th>likely cause</th></tr></thead><tbody>")]
    # verify lists checks node by node; a header per consecutive run keeps that order readable.
    runs: list[list[CheckResult]] = []
    for r in results:
        if runs and (runs[-1][0].group, runs[-1][0].node) == (r.group, r.node):
            runs[-1].append(r)
        else:
            runs.append([r])
    for run in runs:
        first = run[0]
        bad = sum(1 for x in run if not x.ok)
        where = f" &middot; {_e(first.node)}" if first.node else ""
        out.append(f'<tr class="group"><th colspan="5">{_e(first.group)}{where} '
                   f'({len(run) - bad}/{len(run)} ok)</th></tr>')
        for r in run:
            cls, mark = ("ok", "✓") if r.ok else ("fail", "✗")
            out.append(f'<tr class="check {cls}"><td class="mark">{mark}</td><td>{_e(r.name)}</td>'
                       f'<td class="value">{_e(r.expected)}</td><td class="value">{_e(r.observed)}</td>'
                       f"<td>{_prose(r.cause or '')}</td></tr>")
    out.append("</tbody></table>")

    out.append("<h2>The lab</h2>")
    if note:
        out.append(f'<p class="note">{_e(note)}</p>')
    if svg:
        out.append(f'<div class="diagram" id="diagram">{inline_svg(svg)}</div>')
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


def _failures(results: Sequence[CheckResult]) -> list[str]:
    """The failures and their likely causes, above everything else: what a student fixes first."""
    failed = [r for r in results if not r.ok]
    if not failed:
        return []
    out = [f'<h2>Failures ({len(failed)})</h2>', '<ol id="failures">']
    out += [f'<li><strong>{_e(r.name)}</strong><br>expected <code>{_e(r.expected)}</code>, observed '
            f'<code>{_e(r.observed)}</code>' + (f"<br>likely cause: {_prose(r.cause)}" if r.cause else "") + "</li>"
            for r in failed]
    return out + ["</ol>"]


def render_html(lab: Lab, results: list[CheckResult], label: str = "") -> str:
    """The report page for lab and the results `verify` just computed."""
    from k8slab.render import diagram

    svg, note = None, ""
    try:
        dot = diagram.live_dot(lab)
    except (K8slabError, OSError) as exc:
        dot = diagram.build_dot(lab.spec)
        note = f"the live lab could not be read ({exc}); the diagram shows the lab as its spec describes it"
    try:
        svg = diagram.render(dot, "svg").decode()
    except (K8slabError, OSError) as exc:
        note = f"the diagram could not be drawn: {exc}"
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return build_html(lab.spec, lab.backend, results, svg, note, generated, label)
