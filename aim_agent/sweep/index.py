"""``DIR/index.html``: every unit of a sweep in one sortable table, linking to each run's report.

A static page (no server, no network): one row per unit with its label, confidence, status,
rounds, time, tokens, cost and its first exemplar overlays (the run's own image files, loaded
lazily), and a link to the run's ``report.html``. Clicking a column header sorts by it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from aim_agent.files import atomic_write
from aim_agent.sweep.store import UnitRow

INDEX_FILE = "index.html"

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em;margin:0 0 .3em} .meta{color:#555;margin-bottom:1em}
table{border-collapse:collapse;width:100%} th,td{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;
vertical-align:middle;font-size:.9em} th{background:#f4f4f4;cursor:pointer;user-select:none;position:sticky;top:0}
th.sorted-asc::after{content:" \\25B2"} th.sorted-desc::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums} td.thumbs{white-space:nowrap}
td.thumbs img{width:48px;height:48px;margin-right:2px;
border:1px solid #ccc;image-rendering:pixelated} .failed,.timeout,.stopped{background:#fff3f0}
.label{font-weight:600} .desc{color:#555;font-size:.85em;max-width:38em} .err{color:#a33;font-size:.8em}
"""

# sort by the clicked column: numbers as numbers (data-v), text as text; click again to reverse
_SCRIPT = """
document.querySelectorAll('th').forEach((th, col) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0], asc = !th.classList.contains('sorted-asc');
  document.querySelectorAll('th').forEach(h => h.classList.remove('sorted-asc', 'sorted-desc'));
  th.classList.add(asc ? 'sorted-asc' : 'sorted-desc');
  const key = tr => { const td = tr.children[col], v = td.dataset.v ?? td.textContent.trim();
                      const n = parseFloat(v); return td.dataset.v !== undefined && !isNaN(n) ? n : v.toLowerCase(); };
  [...body.rows].sort((a, b) => { const x = key(a), y = key(b);
    return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1); }).forEach(r => body.appendChild(r));
}));
"""


def _num(value: float | int | None, fmt: str) -> str:
    if value is None:
        return '<td class="num" data-v="-1">–</td>'
    return f'<td class="num" data-v="{value}">{format(value, fmt)}</td>'


def _clip(text: str, size: int = 300) -> str:
    return text if len(text) <= size else text[:size].rsplit(" ", 1)[0] + " …"


def _unit_key(unit: str) -> str:
    return str(int(unit)) if unit.isdigit() else "-1"


def _row(row: UnitRow) -> str:
    esc = html.escape
    thumbs = "".join(f'<img loading="lazy" src="{esc(quote(t))}" alt="exemplar">' for t in row.thumbnails)
    unit = esc(row.unit)
    link = f'<a href="{esc(quote(row.report))}">{unit}</a>' if row.report else unit
    error = f'<div class="err">{esc(row.error[:300])}</div>' if row.error else ""
    return (f'<tr class="{esc(row.status)}"><td data-v="{_unit_key(row.unit)}">{link}</td>'
            f'<td><div class="label">{esc(row.label) or "–"}</div><div class="desc">{esc(_clip(row.description))}'
            f"</div>{error}</td>"
            + _num(row.confidence, ".2f") + f"<td>{esc(row.status)}</td>" + _num(row.rounds, "d")
            + _num(row.seconds, ".1f") + _num(row.tokens, "d") + _num(row.cost, ".4f")
            + f'<td class="thumbs">{thumbs}</td>'
            + (f'<td><a href="{esc(quote(row.report))}">report</a></td>' if row.report else "<td></td>") + "</tr>")


def write_index(out_dir: Path, rows: Sequence[UnitRow], *, title: str, pending: int = 0) -> Path:
    """Write ``out_dir/index.html`` atomically; its path."""
    finished = sum(r.status == "finished" for r in rows)
    cost = sum(r.cost or 0.0 for r in rows)
    tokens = sum(r.tokens for r in rows)
    meta = (f"{len(rows)} units: {finished} finished, {len(rows) - finished} failed or stopped"
            + (f", {pending} not run yet" if pending else "")
            + f" · {tokens} tokens · ${cost:.4f} · results in sweep.sqlite")
    head = "".join(f"<th>{h}</th>" for h in ("unit", "label and description", "confidence", "status", "rounds",
                                              "seconds", "tokens", "cost $", "exemplars", "run"))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1><div class='meta'>{meta}</div>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(_row(r) for r in rows)}</tbody></table>"
            f"<script>{_SCRIPT}</script></body></html>\n")
    path = Path(out_dir) / INDEX_FILE
    atomic_write(path, page.encode())
    return path
