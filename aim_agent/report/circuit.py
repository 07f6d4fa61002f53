"""``circuit.html``: one self-contained page for a :class:`~aim_agent.circuits.discover.Circuit` (``aim circuit``).

A graph drawn as inline SVG (upstream units on the left, the unit on the right, each edge as
wide as its attribution share, blue when ablating its source lowers the unit, orange when it
raises it, dashed grey when the ablation did not confirm it), then the edges' numbers and a
card per unit with its exemplars and its interpretation. Inline CSS, no scripts; images are
linked relatively from ``images/``. Every piece of text is escaped.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from aim_agent.report.html import CSS

if TYPE_CHECKING:
    from aim_agent.circuits.discover import Circuit, CircuitEdge, CircuitNode

EXCITE, INHIBIT, UNVERIFIED = "#2f5bea", "#c2410c", "#9aa3b2"
BOX_W, BOX_H, THUMB, GAP = 330, 118, 52, 22
LEFT_X, RIGHT_X, TOP = 20, 640, 20

EXTRA_CSS = """
.graph svg{width:100%;height:auto;display:block}
.graph text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
.legend{display:flex;gap:18px;flex-wrap:wrap;font-size:12.5px;color:var(--muted);margin-top:8px}
.legend i{display:inline-block;width:26px;height:0;border-top:4px solid;vertical-align:middle;margin-right:6px}
.legend i.dash{border-top-style:dashed}
.node h3{margin:0 0 4px}.node h4{margin:12px 0 6px;font-size:12.5px;font-weight:600}
.node .grid{grid-template-columns:repeat(auto-fill,minmax(96px,1fr));gap:8px}
.node .tile{padding:4px}.node .act{font-size:11px}
.change.down{color:#2f5bea;font-weight:600}.change.up{color:var(--barneg);font-weight:600}
"""


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _clip(text: str | None, limit: int) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _node_title(node: CircuitNode) -> str:
    return f"{node.layer} · unit {node.unit}"


def _box(node: CircuitNode, x: float, y: float, accent: str) -> str:
    parts = [
        f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="10" fill="#fff" stroke="{accent}" '
        f'stroke-width="{2.5 if node.role == "target" else 1.5}"/>',
        f'<text x="{x + 12}" y="{y + 22}" font-size="14" font-weight="700" fill="#1d2433">'
        f"{esc(_node_title(node))}</text>",
    ]
    label = node.label or ("(not interpreted)" if node.error is None else "(interpretation failed)")
    parts.append(f'<text x="{x + 12}" y="{y + 41}" font-size="12.5" fill="#1e3a9a" font-weight="600">'
                 f'{esc(_clip(label, 42))}</text>')
    for i, src in enumerate(node.exemplars[:5]):
        tx = x + 12 + i * (THUMB + 8)
        parts.append(f'<image href="{esc(src)}" x="{tx}" y="{y + 54}" width="{THUMB}" height="{THUMB}" '
                     'preserveAspectRatio="xMidYMid slice"/>')
        parts.append(f'<rect x="{tx}" y="{y + 54}" width="{THUMB}" height="{THUMB}" fill="none" stroke="#e3e6ee"/>')
    return "\n".join(parts)


def _edge_color(edge: CircuitEdge) -> str:
    if not edge.verified:
        return UNVERIFIED
    return EXCITE if edge.relative_change < 0 else INHIBIT


def graph_svg(circuit: Circuit) -> str:
    """The circuit as an SVG drawing (upstream boxes, target box, one curve per edge with its numbers)."""
    upstream = [n for n in circuit.nodes if n.role == "upstream"]
    target = circuit.node("target")
    rows = max(1, len(upstream))
    height = TOP * 2 + rows * BOX_H + (rows - 1) * GAP
    width = RIGHT_X + BOX_W + LEFT_X
    ty = (height - BOX_H) / 2
    shares = [abs(e.share) for e in circuit.edges] or [1.0]
    biggest = max(shares) or 1.0
    edges_by_source = {e.source: e for e in circuit.edges}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="circuit of unit {circuit.unit}">']
    for i, node in enumerate(upstream):
        edge = edges_by_source.get(node.unit)
        if edge is None:
            continue
        y = TOP + i * (BOX_H + GAP)
        x1, y1 = LEFT_X + BOX_W, y + BOX_H / 2
        x2, y2 = RIGHT_X, ty + BOX_H / 2 + (i - (rows - 1) / 2) * 10
        mid = (x1 + x2) / 2
        stroke = 1.5 + 9 * abs(edge.share) / biggest
        color = _edge_color(edge)
        dash = "" if edge.verified else ' stroke-dasharray="7 5"'
        parts.append(f'<path d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}" fill="none" stroke="{color}" '
                     f'stroke-width="{stroke:.1f}" stroke-opacity="0.85"{dash}/>')
        lx, ly = mid, (y1 + y2) / 2
        label = f"ablation {100 * edge.relative_change:+.0f}%"
        parts.append(f'<rect x="{lx - 62}" y="{ly - 25}" width="124" height="36" rx="6" fill="#fff" '
                     f'stroke="{color}" stroke-width="1"/>')
        parts.append(f'<text x="{lx}" y="{ly - 9}" font-size="12" text-anchor="middle" font-weight="700" '
                     f'fill="{color}">{esc(label)}</text>')
        parts.append(f'<text x="{lx}" y="{ly + 6}" font-size="11" text-anchor="middle" fill="#5d6678">'
                     f'attribution {edge.share:+.0%}</text>')
        parts.append(_box(node, LEFT_X, y, "#c9cfdb"))
    parts.append(_box(target, RIGHT_X, ty, "#1d2433"))
    parts.append("</svg>")
    return "\n".join(parts)


def _change(value: float) -> str:
    cls = "down" if value < 0 else "up"
    return f'<span class="change {cls}">{100 * value:+.1f}%</span>'


def _edges_table(circuit: Circuit) -> str:
    nodes = {n.unit: n for n in circuit.nodes if n.role == "upstream"}
    rows = []
    for e in circuit.edges:
        node = nodes.get(e.source)
        verdict = ('<span class="badge ok">verified</span>' if e.verified
                   else '<span class="badge neutral">not confirmed</span>')
        rows.append(
            f"<tr><td class=num>{e.rank}</td><td>{esc(circuit.upstream_layer)} · unit {e.source}</td>"
            f"<td>{esc(_clip(node.label if node else None, 60)) or '–'}</td>"
            f"<td class=num>{e.score:.4g}</td><td class=num>{e.share:+.1%}</td>"
            f"<td class=num>{e.before:.4g} → {e.after:.4g}</td><td class=num>{_change(e.relative_change)}</td>"
            f"<td>{verdict}</td></tr>"
        )
    joint = circuit.joint
    rows.append(
        f'<tr class="muted"><td></td><td colspan=2>all {len(joint.get("units", []))} together '
        f"({esc(', '.join(str(u) for u in joint.get('units', [])))})</td><td></td><td></td>"
        f"<td class=num>{joint.get('before', 0):.4g} → {joint.get('after', 0):.4g}</td>"
        f"<td class=num>{_change(float(joint.get('relative_change', 0.0)))}</td><td></td></tr>"
    )
    return (
        "<table><thead><tr><th>#</th><th>upstream unit</th><th>label</th><th>attribution</th><th>share</th>"
        f"<th>unit before → after ({esc(circuit.ablation)} ablation)</th><th>change</th><th>edge</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _tiles(sources: list[str], activations: list[float], alt: str) -> str:
    return "".join(
        f'<div class="tile"><img src="{esc(src)}" alt="{esc(alt)} {i + 1}" loading="lazy">'
        f'<div class="act">{act:.3g}</div></div>'
        for i, (src, act) in enumerate(zip(sources, activations, strict=False))
    )


def _node_card(node: CircuitNode) -> str:
    tiles = _tiles(node.exemplars, node.exemplar_activations, "exemplar")
    on_target = ""
    if node.on_target:
        on_target = ('<h4 class="sub">where it fires on the unit\'s top exemplars</h4><div class="grid">'
                     f"{_tiles(node.on_target, node.on_target_activations, 'on the unit')}</div>")
    role = "the unit" if node.role == "target" else "upstream"
    desc = f'<p class="description">{esc(node.description)}</p>' if node.description else ""
    if node.error:
        desc += f'<div class="error">interpretation failed: {esc(node.error)}</div>'
    link = f' · <a href="{esc(node.report)}">interpretation report</a>' if node.report else ""
    conf = f" · confidence {node.confidence:.2f}" if node.confidence is not None else ""
    mean = (f" · mean activation on the unit's exemplars {node.mean_activation:.3g}"
            if node.mean_activation is not None else "")
    label = f'<div class="labels"><span class="label">{esc(node.label)}</span></div>' if node.label else ""
    return (f'<section class="card node" id="{esc(node.key)}"><h3>{esc(_node_title(node))} '
            f'<span class="badge neutral">{role}</span></h3><div class="sub">{(conf + mean + link)[3:]}</div>'
            f'{label}{desc}<h4 class="sub">its own top dataset exemplars</h4><div class="grid">{tiles}</div>'
            f"{on_target}</section>")


def render_circuit(circuit: Circuit) -> str:
    """The whole page."""
    target = circuit.node("target")
    verified = sum(e.verified for e in circuit.edges)
    meta = [
        ("model", circuit.model), ("unit", f"{circuit.target_layer} · {circuit.unit}"),
        ("upstream", circuit.upstream), ("attribution", circuit.method.replace("_", " ")),
        ("ablation", circuit.ablation), ("images", f"{len(circuit.images)} top exemplars"),
        ("edges verified", f"{verified} of {len(circuit.edges)}"),
        ("top units' share", f"{circuit.top_share:.0%} of |attribution|"),
        ("interpreted by", circuit.backend), ("time", f"{circuit.seconds:.0f} s"),
    ]
    meta_html = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in meta)
    headline = target.label or f"unit {circuit.unit}"
    joint = circuit.joint
    summary = (f"Ablating the top {len(joint.get('units', []))} upstream units together changes the unit's mean "
               f"activation on its exemplars from {joint.get('before', 0):.3g} to {joint.get('after', 0):.3g} "
               f"({100 * float(joint.get('relative_change', 0.0)):+.0f}%).")
    legend = (f'<div class="legend"><span><i style="border-color:{EXCITE}"></i>ablating the source lowers the unit '
              f'(excitatory, verified)</span><span><i style="border-color:{INHIBIT}"></i>ablating it raises the unit '
              f'(inhibitory, verified)</span><span><i class="dash" style="border-color:{UNVERIFIED}"></i>not '
              "confirmed by ablation</span><span>edge width: share of attribution</span></div>")
    cards = "".join(_node_card(n) for n in circuit.nodes)
    notes = "".join(f"<li>{esc(n)}</li>" for n in circuit.notes)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>AIM circuit · {esc(circuit.model)} {esc(circuit.target_layer)} unit {circuit.unit}</title>
<style>{CSS}{EXTRA_CSS}</style></head><body><main>
<h1>Circuit of {esc(circuit.target_layer)} · unit {circuit.unit}</h1>
<div class="sub">{esc(circuit.model)} · {esc(_clip(headline, 120))}</div>
<section class="card"><dl class="meta">{meta_html}</dl></section>
<section class="card graph"><h2>Graph</h2>{graph_svg(circuit)}{legend}<p>{esc(summary)}</p></section>
<section class="card"><h2>Edges</h2>{_edges_table(circuit)}<ul class="notes">{notes}</ul></section>
{cards}
<footer>AIM · aim circuit · attribution {esc(circuit.method)}, {esc(circuit.ablation)} ablation ·
total attribution {circuit.total_score:.4g}</footer>
</main></body></html>
"""


__all__ = ["graph_svg", "render_circuit"]
