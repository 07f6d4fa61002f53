"""Render a :class:`~aim_agent.report.model.ReportData` as one self-contained HTML page.

Inline CSS, no scripts, images linked relatively from ``images/`` (the page works when opened
from disk and stays small). Every piece of text goes through :func:`esc`: model-written
text can never inject markup.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Sequence
from urllib.parse import quote

from aim_agent.agent.critic import leading_hypothesis
from aim_agent.agent.schema import Conclusion, CriticReport, Hypothesis, ToolCall
from aim_agent.report.model import HypothesisRow, ImageItem, ReportData, RoundData, Scale, Verdict

_IMAGE_ID = re.compile(r"^img_[0-9A-Za-z]{4,64}$")
UNIT = Scale(0.0, 1.0)  # confidences
SHOWN_HYPOTHESES = 8  # rows of the final hypotheses table before the rest is folded away
ROUND_HYPOTHESES = 6  # a round's leading hypotheses shown (besides those that changed); the rest is folded away
FOLD_AT = 48  # images of a round shown before the rest is folded away
STATUS_CLASS = {"supported": "ok", "refuted": "bad", "open": "neutral"}


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"


CSS = """
:root{--ink:#1d2433;--muted:#5d6678;--line:#e3e6ee;--bg:#f6f7fb;--card:#fff;--accent:#2f5bea;
--ok:#1a7f4b;--okbg:#e4f5ec;--bad:#b4232a;--badbg:#fbe6e7;--warn:#9a5b00;--warnbg:#fff3dc;--neutral:#4b5563;
--neutralbg:#eef0f4;--bar:#2f5bea;--barneg:#c2410c}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 20px 60px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:0 0 12px}h3{font-size:15px;margin:18px 0 8px}
.sub{color:var(--muted)}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 20px;margin:16px 0}
.meta{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px 18px;margin-top:14px}
.meta div{min-width:0}.meta dt{font-size:11px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
.meta dd{margin:0;font-weight:600;overflow-wrap:anywhere}
.badge{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:600;
white-space:nowrap;vertical-align:1px}
.ok{background:var(--okbg);color:var(--ok)}.bad{background:var(--badbg);color:var(--bad)}
.warn{background:var(--warnbg);color:var(--warn)}.neutral{background:var(--neutralbg);color:var(--neutral)}
.truth{margin-top:14px;padding:10px 12px;border-radius:8px;background:var(--neutralbg)}
.description{font-size:16px;white-space:pre-wrap;margin:4px 0 12px}
.labels{margin:0 0 12px}.label{display:inline-block;background:#e8eeff;color:#1e3a9a;border-radius:6px;
padding:3px 10px;margin:0 6px 6px 0;font-weight:600}
.conf{display:flex;align-items:center;gap:10px;margin:6px 0 10px}
.conf .track{width:220px}
.track{height:8px;background:#edf0f6;border-radius:4px;overflow:hidden;position:relative}
.track span{display:block;height:100%;background:var(--bar)}
.track span.neg{background:var(--barneg)}
ul.evidence{margin:6px 0 0;padding-left:20px}ul.evidence li{margin:2px 0}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:12px}
.tile{background:#fafbfd;border:1px solid var(--line);border-radius:8px;padding:6px;min-width:0}
.tile img,.ph{width:100%;aspect-ratio:1;object-fit:cover;border-radius:5px;display:block;background:#dfe3ea}
.ph{display:flex;align-items:center;justify-content:center;color:var(--muted);font-size:12px}
.cap{font-size:12px;color:var(--ink);margin-top:5px;overflow-wrap:anywhere;display:-webkit-box;
-webkit-line-clamp:3;-webkit-box-orient:vertical;overflow:hidden}
.act{display:flex;align-items:center;gap:6px;font:12px ui-monospace,SFMono-Regular,Menlo,monospace;margin-top:4px}
.act .track{flex:1}
.pair{grid-column:span 2;display:grid;grid-template-columns:1fr 1fr;gap:6px;background:#fafbfd;
border:1px solid var(--line);border-radius:8px;padding:6px;min-width:0}
.pair .tile{border:0;padding:0;background:none}
.pair .delta{grid-column:span 2;font:12px ui-monospace,Menlo,monospace;color:var(--muted)}
.edit .cap{color:#7c3aed}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);
vertical-align:top}th{font-size:11px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
pre{background:#0f172a;color:#e2e8f0;border-radius:8px;padding:12px 14px;overflow:auto;font:12px/1.45
ui-monospace,SFMono-Regular,Menlo,monospace;margin:6px 0;white-space:pre}
pre.wrap{white-space:pre-wrap;background:#f3f4f8;color:var(--ink)}
.round{border-left:4px solid var(--accent)}
.round h2 .badge{margin-left:8px}
.thoughts{white-space:pre-wrap;color:#2b3345;background:#f7f8fc;border-radius:8px;padding:10px 12px;margin:4px 0}
.conf-num{color:var(--muted);font:12px ui-monospace,Menlo,monospace}
.critic{background:#fffaf0;border:1px solid #f3e2bf;border-radius:8px;padding:10px 12px;margin-top:12px}
.critic.good{background:#f2fbf6;border-color:#cdebd9}
.error{background:var(--badbg);border:1px solid #f3c5c8;border-radius:8px;padding:10px 12px;margin-top:10px}
details summary{cursor:pointer;font-weight:600}
.chart{margin:6px 0 10px}.chart svg{width:100%;height:auto;display:block}
.notes{color:var(--muted);font-size:13px}
footer{color:var(--muted);font-size:12px;margin-top:30px;text-align:center}
.toc a{margin-right:10px;color:var(--accent);text-decoration:none}
tr.muted td{opacity:.62}
details.exp{margin:14px 0 6px}details.exp>summary{font-size:15px;margin-bottom:6px}
.exemplars .grid{grid-template-columns:repeat(auto-fill,minmax(170px,1fr))}
.exemplars .cap.sub{-webkit-line-clamp:7;font-size:11.5px;color:var(--muted)}
.rank{font-weight:600}
.new{background:#e8eeff;color:#1e3a9a}.changed{background:var(--warnbg);color:var(--warn)}
table.hyps td{padding:4px 8px}table.hyps td:nth-child(3){white-space:nowrap}
.request{border-top:1px dashed var(--line);margin-top:14px;padding-top:4px}h2+.request{border:0;margin:0;padding:0}
"""


# --------------------------------------------------------------------------- small pieces


def badge(text: str, cls: str) -> str:
    return f'<span class="badge {esc(cls)}">{esc(text)}</span>'


def status_badge(status: str) -> str:
    return badge(status or "open", STATUS_CLASS.get(status, "neutral"))


def bar(value: float | None, scale: Scale) -> str:
    if value is None:
        return '<div class="track"></div>'
    width = 100.0 * scale.frac(value)
    neg = ' class="neg"' if value < 0 else ""
    return f'<div class="track"><span{neg} style="width:{width:.1f}%"></span></div>'


def image_tag(image_id: str, alt: str, available: set[str]) -> str:
    if not _IMAGE_ID.match(image_id or "") or image_id not in available:
        return f'<div class="ph" title="{esc(image_id)}">image not saved</div>'
    src = "images/" + quote(image_id) + ".png"
    return f'<img src="{src}" alt="{esc(alt)}" title="{esc(alt)}" loading="lazy">'


def tile(item: ImageItem, scale: Scale, available: set[str], extra_class: str = "") -> str:
    caption = item.caption or item.image_id
    act = (f'<div class="act">{bar(item.activation, scale)}<span>{esc(fmt(item.activation))}</span></div>'
           if item.activation is not None else "")
    desc = f'<div class="cap sub" title="{esc(item.description)}">{esc(item.description)}</div>' \
        if item.description else ""
    shown = item.image_id if item.image_id in available or not item.fallback_id else item.fallback_id
    return (f'<div class="tile {esc(extra_class)}">{image_tag(shown, caption, available)}'
            f'<div class="cap" title="{esc(caption)}">{esc(caption)}</div>{act}{desc}</div>')


def image_grid(items: Sequence[ImageItem], scale: Scale, available: set[str]) -> str:
    """Tiles; an edit right after its original is shown as a pair with the change in activation."""
    parts: list[str] = []
    i = 0
    while i < len(items):
        item = items[i]
        nxt = items[i + 1] if i + 1 < len(items) else None
        if nxt is not None and nxt.is_edit and not item.is_edit:
            delta = ""
            if item.activation is not None and nxt.activation is not None:
                change = _signed(nxt.activation - item.activation)
                delta = f'<div class="delta">edit changes the activation by {esc(change)}</div>'
            parts.append(f'<div class="pair">{tile(item, scale, available)}'
                         f'{tile(nxt, scale, available, "edit")}{delta}</div>')
            i += 2
            continue
        parts.append(tile(item, scale, available, "edit" if item.is_edit else ""))
        i += 1
    return f'<div class="grid">{"".join(parts)}</div>'


def _signed(x: float) -> str:
    return ("+" if x >= 0 else "−") + fmt(abs(x))


def activation_chart(items: Sequence[ImageItem], scale: Scale) -> str:
    """A compact inline-SVG bar chart of a round's activations, in experiment order (hover: prompt)."""
    values = [(it.activation, it.caption or it.image_id, it.is_edit) for it in items if it.activation is not None]
    if len(values) < 10:  # few images: the bars under the tiles say it all
        return ""
    width, height, pad, top = 1000, 110, 18, 8
    step = (width - 2 * pad) / len(values)
    base = height - 4
    span = base - top
    bars = []
    for k, (value, label, is_edit) in enumerate(values):
        h = scale.frac(value) * span
        x = pad + k * step + step * 0.12
        y = base - h
        color = "#c2410c" if value < 0 else ("#8b5cf6" if is_edit else "#2f5bea")
        bars.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{step * 0.76:.1f}" height="{max(h, 0.5):.1f}" '
                    f'fill="{color}" rx="1.5"><title>{esc(label)}: {esc(fmt(value))}</title></rect>')
    axis = f'<line x1="{pad}" y1="{base:.1f}" x2="{width - pad}" y2="{base:.1f}" stroke="#9aa3b5" stroke-width="1"/>'
    legend = ('<div class="notes">Activation of every image of the round, in order (hover a bar for its '
              'prompt); blue: generated, purple: edited; bars span the run\'s activation scale.</div>')
    return (f'<div class="chart">{legend}<svg viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="activations">{axis}{"".join(bars)}</svg></div>')


def meta_grid(rows: Iterable[tuple[str, str]]) -> str:
    cells = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in rows if v not in (None, ""))
    return f'<dl class="meta">{cells}</dl>'


STATUS_ORDER = {"supported": 0, "open": 1, "refuted": 2}


def _rank(h: Hypothesis) -> tuple[int, float]:
    return STATUS_ORDER.get(h.status, 1), -h.confidence


def hypothesis_row(h: Hypothesis, change: str = "") -> str:
    conf_cell = f'<div class="act">{bar(h.confidence, UNIT)}<span>{h.confidence:.2f}</span></div>'
    muted = ' class="muted"' if h.status == "refuted" else ""
    kind = h.kind + (f" ({h.condition})" if h.condition else "")
    mark = badge(change, "new" if change == "new" else "changed") if change else ""
    return (f'<tr{muted}><td>{status_badge(h.status)}</td><td>{esc(h.statement or h.id)} {mark}</td>'
            f'<td>{esc(kind)}</td><td style="width:190px">{conf_cell}</td></tr>')


HYP_HEAD = '<thead><tr><th>status</th><th>hypothesis</th><th>kind</th><th>confidence</th></tr></thead>'


def _table(rows: Sequence[str]) -> str:
    return f'<table class="hyps">{HYP_HEAD}<tbody>{"".join(rows)}</tbody></table>'


def _variant_key(h: Hypothesis) -> tuple[str, str] | None:
    """What refuted variants of one idea share: the kind and the main concept ('dog, only when X')."""
    if h.status != "refuted" or h.kind not in ("conditional", "or") or not h.concepts:
        return None
    return h.kind, h.concepts[0]


def collapse_variants(hyps: Sequence[Hypothesis]) -> list[tuple[Hypothesis, list[Hypothesis]]]:
    """Hypotheses in rank order, with refuted variants of one idea (the same kind and main concept: "dog,
    only when a leash / a tree / a hat is present") folded into their best one: (shown, the others)."""
    ranked = sorted(hyps, key=_rank)
    groups: dict[tuple[str, str], list[Hypothesis]] = {}
    for h in ranked:
        key = _variant_key(h)
        if key is not None:
            groups.setdefault(key, []).append(h)
    out: list[tuple[Hypothesis, list[Hypothesis]]] = []
    for h in ranked:
        key = _variant_key(h)
        if key is None:
            out.append((h, []))
        elif groups[key][0] is h:
            out.append((h, groups[key][1:]))
    return out


def variants_row(h: Hypothesis, others: Sequence[Hypothesis]) -> str:
    """One row for refuted variants of one idea: the best of them, and what the others varied."""
    if not others:
        return hypothesis_row(h)
    what = [o.condition or (o.concepts[1] if len(o.concepts) > 1 else o.statement) for o in others]
    shown = ", ".join(what[:8]) + (", ..." if len(what) > 8 else "")
    label = "conditions" if h.kind == "conditional" else "alternatives"
    conf_cell = f'<div class="act">{bar(h.confidence, UNIT)}<span>{h.confidence:.2f}</span></div>'
    kind = h.kind + (f" ({h.condition})" if h.condition else "")
    return (f'<tr class="muted"><td>{status_badge(h.status)}</td><td>{esc(h.statement or h.id)} '
            f'<span class="sub">and {len(others)} more refuted variants ({label}: {esc(shown)})</span></td>'
            f'<td>{esc(kind)}</td><td style="width:190px">{conf_cell}</td></tr>')


def hypotheses_table(hyps: Sequence[Hypothesis]) -> str:
    """The hypotheses at the end of the run: supported first, then open, then refuted, by confidence;
    refuted variants of one idea share a row."""
    if not hyps:
        return ""
    rows = [variants_row(h, others) for h, others in collapse_variants(hyps)]
    table = _table(rows[:SHOWN_HYPOTHESES])
    if len(rows) > SHOWN_HYPOTHESES:
        table += (f'<details><summary>{len(rows) - SHOWN_HYPOTHESES} more hypotheses</summary>'
                  f'{_table(rows[SHOWN_HYPOTHESES:])}</details>')
    return table


def round_hypotheses(rows: Sequence[HypothesisRow], compared: bool) -> str:
    """A round's hypotheses: the leading ones and every one that changed; the rest one click away.

    ``compared``: whether there was a round before to compare with (the first round's are all new).
    """
    ordered = sorted(rows, key=lambda r: _rank(r.hypothesis))
    shown = [r for k, r in enumerate(ordered) if k < ROUND_HYPOTHESES or r.change]
    rest = [r for k, r in enumerate(ordered) if not (k < ROUND_HYPOTHESES or r.change)]
    changed = sum(1 for r in rows if r.change)
    note = (f"{changed} changed since the round before" if changed else "none changed since the round before"
            if compared else f"{len(rows)} stated")
    html_ = f'<h3>Hypotheses <span class="sub">({note})</span></h3>'
    html_ += _table([hypothesis_row(r.hypothesis, r.change) for r in shown])
    if rest:
        more = f"{len(rest)} more {'hypothesis' if len(rest) == 1 else 'hypotheses'}"
        more += ", unchanged" if compared else ""
        html_ += f'<details><summary>{more}</summary>{_table([hypothesis_row(r.hypothesis) for r in rest])}</details>'
    return html_


def tool_calls_block(calls: Sequence[ToolCall]) -> str:
    lines = []
    for k, call in enumerate(calls):
        text = json.dumps(call.args, indent=2, ensure_ascii=False, default=str)
        lines.append(f"${k} = {call.tool}({text})")
    return f'<pre>{esc(chr(10).join(lines))}</pre>'


def error_block(message: str | None, traceback: str | None, title: str = "Error") -> str:
    if not message and not traceback:
        return ""
    body = f"<p>{esc(message)}</p>" if message else ""
    tb = (f"<details><summary>traceback</summary><pre>{esc(traceback)}</pre></details>" if traceback else "")
    return f'<div class="error"><strong>{esc(title)}</strong>{body}{tb}</div>'


def critic_block(report: CriticReport, title: str = "Critic") -> str:
    head = badge("satisfied" if report.satisfied else "not satisfied", "ok" if report.satisfied else "warn")
    checks = report.checks
    if checks.get("vetoed_conclusion"):
        head += " " + badge("sent the conclusion back", "warn")
    if checks.get("overruled"):
        head += " " + badge(str(checks["overruled"]), "neutral")
    if checks.get("dropped"):
        head += " " + badge(f"dropped {', '.join(map(str, checks['dropped']))}", "neutral")
    req = ('<ul class="evidence">' + "".join(f"<li>{esc(r)}</li>" for r in report.requests) + "</ul>"
           if report.requests else "")
    if report.escalated:  # repeated on the same evidence: open, but no longer asked for
        req += ("<p>open, no longer asked for (came back with no new evidence):</p><ul class=\"evidence\">"
                + "".join(f"<li>{esc(o.text)}</li>" for o in report.escalated) + "</ul>")
    comment = checks.get("comment")
    note = f'<p class="thoughts">{esc(comment)}</p>' if comment else ""
    chk = ""
    shown = {k: v for k, v in checks.items() if k != "comment"}
    if shown:
        items = "".join(f"<tr><td>{esc(k)}</td><td>{esc(_plain(v))}</td></tr>" for k, v in shown.items())
        chk = f'<details><summary>checks</summary><table><tbody>{items}</tbody></table></details>'
    return (f'<div class="critic {"good" if report.satisfied else ""}"><strong>{esc(title)}</strong> {head}'
            f'{req}{note}{chk}</div>')


def verdict_block(verdict: Verdict) -> str:
    """A request to conclude (the scientist's words) and the critic's answer."""
    request = verdict.request
    words = f'<div class="thoughts">{esc(request.thoughts)}</div>' if request.thoughts.strip() else ""
    lead = leading_hypothesis(request.hypotheses)
    lead_html = (f'<p>Leading hypothesis: {status_badge(lead.status)} {esc(lead.statement)} '
                 f'<span class="conf-num">{lead.confidence:.2f}</span></p>' if lead else "")
    answer = critic_block(verdict.critic, "Critic on the request") if verdict.critic else \
        '<p class="notes">The critic had not answered when the run ended.</p>'
    notes = f"<details><summary>the scientist's notes</summary>{words}</details>" if words else ""
    return f'<div class="request"><h3>The scientist asked to conclude</h3>{lead_html}{notes}{answer}</div>'


def _plain(value: object) -> str:
    if isinstance(value, float):
        return fmt(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


# --------------------------------------------------------------------------- sections


def header(data: ReportData) -> str:
    record = data.record
    status = badge("failed", "bad") if data.failed else badge("finished", "ok") if record.conclusion \
        else badge("no conclusion", "warn")
    truth = ""
    if record.ground_truth:
        match = ("" if data.label_match is None else badge("labels match", "ok") if data.label_match
                 else badge("labels do not match", "bad"))
        truth = (f'<div class="truth"><strong>Ground truth:</strong> {esc(record.ground_truth)} {match}'
                 f'<div class="notes">known for this unit; added to the record after the run, never shown to '
                 f'the scientist</div></div>')
    task = f'<p class="sub">{esc(record.task)}</p>' if record.task else ""
    failure = error_block(record.error, record.traceback, "The run failed") if data.failed else ""
    return (f'<header class="card"><h1>{esc(data.title)} {status}</h1>{task}'
            f'{meta_grid(data.meta)}{truth}{failure}</header>')


def conclusion_section(data: ReportData) -> str:
    c: Conclusion | None = data.record.conclusion
    if c is None:
        return ('<section class="card" id="conclusion"><h2>Conclusion</h2>'
                '<p class="notes">The run ended without a conclusion.</p></section>')
    labels = "".join(f'<span class="label">[LABEL] {esc(label)}</span>' for label in c.labels)
    conf_html = (f'<div class="conf"><span class="sub">confidence</span>{bar(c.confidence, UNIT)}'
                 f'<strong>{c.confidence:.2f}</strong></div>')
    forced = badge(forced_text(data.record.forced), "warn") if c.forced else ""
    ev = ('<h3>Evidence</h3><ul class="evidence">' + "".join(f"<li>{esc(e)}</li>" for e in c.evidence) + "</ul>"
          if c.evidence else "")
    hyps = data.record.hypotheses
    final = f"<h3>Hypotheses at the end</h3>{hypotheses_table(hyps)}" if hyps else ""
    return (f'<section class="card" id="conclusion"><h2>Conclusion {forced}</h2>'
            f'<div class="sub">[DESCRIPTION]</div><p class="description">{esc(c.description)}</p>'
            f'<div class="labels">{labels}</div>{conf_html}{ev}{final}</section>')


def forced_text(reason: str | None) -> str:
    """Why the conclusion was forced, in a few words (the full reason is in the run notes)."""
    from aim_agent.agent.nodes import VETO_CAP

    if reason and reason.startswith(VETO_CAP):
        return "forced: the critic's veto limit ran out"
    return "forced by a budget"


def exemplars_section(data: ReportData, available: set[str]) -> str:
    if not data.exemplars:
        return ('<section class="card" id="exemplars"><h2>Dataset exemplars</h2>'
                '<p class="notes">No exemplars were recorded.</p></section>')
    return (f'<section class="card exemplars" id="exemplars"><h2>Dataset exemplars '
            f'<span class="sub">({len(data.exemplars)} top-activating images, highest first, with what the blind '
            f'describer saw in the highlighted region)</span></h2>'
            f'{image_grid(data.exemplars, data.scale, available)}</section>')


def round_title(r: RoundData) -> str:
    return f"Round {r.index}" if r.ran_experiment or r.index else "Before any experiment"


def round_section(r: RoundData, scale: Scale, available: set[str]) -> str:
    title = round_title(r)
    parts = [f'<section class="card round" id="round-{r.index}"><h2>{esc(title)}'
             f'{badge(r.phase, "neutral") if r.phase else ""}'
             f'{badge("failed", "bad") if r.failed else ""}</h2>']
    if r.thoughts:
        parts.append(f'<h3>Scientist</h3><div class="thoughts">{esc(r.thoughts)}</div>')
    if r.hypotheses:
        parts.append(round_hypotheses(r.hypotheses, r.compared))
    if r.code:
        parts.append(experiment_block("code", f"<pre>{esc(r.code)}</pre>", r.code.count(chr(10)) + 1))
    elif r.tool_calls:
        block = tool_calls_block(r.tool_calls)
        parts.append(experiment_block(f"{len(r.tool_calls)} tool calls", block, block.count(chr(10)) + 1))
    if r.images:
        parts.append(f'<h3>Results <span class="sub">({esc(results_summary(r.images))})</span></h3>')
        if all(abs(i.activation or 0.0) <= scale.silent_below for i in r.images):
            parts.append('<p class="notes">The unit stayed silent on every image of this round.</p>')
        else:
            parts.append(activation_chart(r.images, scale))
        parts.append(folded_grid(r, scale, available))
    if r.text:
        parts.append(f'<details><summary>experiment output</summary><pre class="wrap">{esc(r.text)}</pre></details>')
    for note in r.notes:
        parts.append(f'<p class="notes">{esc(note)}</p>')
    parts.append(error_block(r.error, r.traceback, "The experiment failed"))
    for report in r.critic:
        parts.append(critic_block(report))
    for verdict in r.verdicts:
        parts.append(verdict_block(verdict))
    parts.append("</section>")
    return "".join(parts)


def folded_grid(r: RoundData, scale: Scale, available: set[str]) -> str:
    """The round's images; a big round shows :data:`FOLD_AT` of them and folds the rest away.

    A survey (one image of everything) is shown strongest first: that is what it is for.
    """
    items = list(r.images)
    if r.phase == "survey":
        items.sort(key=lambda i: -(i.activation if i.activation is not None else float("-inf")))
    if len(items) <= FOLD_AT:
        return image_grid(items, scale, available)
    cut = FOLD_AT - (1 if items[FOLD_AT].is_edit else 0)  # never split an edit from its original
    order = " (strongest first)" if r.phase == "survey" else ""
    return (f'<p class="notes">{len(items)} images{esc(order)}; the first {cut} are shown.</p>'
            f'{image_grid(items[:cut], scale, available)}'
            f'<details><summary>{len(items) - cut} more images</summary>'
            f'{image_grid(items[cut:], scale, available)}</details>')


def experiment_block(kind: str, body: str, lines: int) -> str:
    """The experiment, open when short, folded (one click away) when long."""
    state = " open" if lines <= 30 else ""
    return (f'<details class="exp"{state}><summary>Experiment <span class="sub">({esc(kind)}, {lines} lines)'
            f'</span></summary>{body}</details>')


def results_summary(items: Sequence[ImageItem]) -> str:
    acts = [i.activation for i in items if i.activation is not None]
    edits = sum(1 for i in items if i.is_edit)
    text = f"{len(items)} images" + (f", {edits} of them edits" if edits else "")
    if acts:
        text += f"; activation max {fmt(max(acts))}, mean {fmt(sum(acts) / len(acts))}"
    return text


def render(data: ReportData, available: set[str]) -> str:
    toc = "".join(f'<a href="#round-{r.index}">{esc(round_title(r).lower())}</a>' for r in data.rounds)
    rounds = "".join(round_section(r, data.scale, available) for r in data.rounds)
    if not data.rounds:
        rounds = '<section class="card"><h2>Rounds</h2><p class="notes">No experiment rounds were run.</p></section>'
    notes = ""
    if data.notes:
        notes = ('<section class="card"><h2>Run notes</h2><ul class="evidence">'
                 + "".join(f"<li>{esc(n)}</li>" for n in data.notes) + "</ul></section>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{esc(data.title)} — AIM report</title><style>{CSS}</style></head>
<body><main>
{header(data)}
<nav class="toc sub"><a href="#conclusion">conclusion</a><a href="#exemplars">exemplars</a>{toc}</nav>
{conclusion_section(data)}
{exemplars_section(data, available)}
{rounds}
{notes}
<footer>AIM — Automated Interpretability Modelling · activation bars run from {esc(fmt(data.scale.lo))}
(empty) to {esc(fmt(data.scale.hi))} (full), the range of this run · generated from result.json
(schema {esc(data.record.schema_version)})</footer>
</main></body></html>
"""
