"""What a report shows, read from a run directory (``result.json``, ``log.jsonl``, ``images/``).

:func:`load_report_data` is forgiving on purpose: a run that crashed before writing its result,
a run with zero rounds, or a result written by an older version still gives a page. Missing
pieces are left empty and the renderer says so.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EDIT_SEP = " | edit: "


@dataclass(frozen=True)
class Scale:
    """How activation bars map values to lengths: ``lo`` is an empty bar, ``hi`` a full one.

    ``lo`` is 0, unless every activation of the run sits far above 0 (a unit with a high
    baseline) or some are negative: then bars span the run's own range, so differences show.
    """

    lo: float = 0.0
    hi: float = 1.0

    @classmethod
    def of(cls, values: list[float]) -> Scale:
        if not values:
            return cls()
        lo, hi = min(values), max(values)
        if hi <= lo:
            return cls(min(0.0, lo), max(hi, 1e-9) if hi > 0 else 1.0)
        return cls(lo if lo < 0 or lo > 0.2 * hi else 0.0, hi)

    def frac(self, value: float) -> float:
        span = self.hi - self.lo
        return 0.0 if span <= 0 else min(1.0, max(0.0, (value - self.lo) / span))

    @property
    def silent_below(self) -> float:
        return 0.01 * max(abs(self.lo), abs(self.hi))


@dataclass
class ImageItem:
    image_id: str
    activation: float | None = None
    caption: str = ""
    description: str = ""
    is_edit: bool = False
    fallback_id: str = ""  # shown when ``image_id`` was not saved (an overlay of the same image)


@dataclass
class RoundData:
    index: int
    phase: str = ""
    thoughts: str = ""
    hypotheses: list[dict[str, Any]] = field(default_factory=list)
    code: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    images: list[ImageItem] = field(default_factory=list)
    text: str = ""
    error: str | None = None
    traceback: str | None = None
    failed: bool = False
    critic: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class ReportData:
    title: str = "AIM run"
    task: str = ""
    meta: list[tuple[str, str]] = field(default_factory=list)
    ground_truth: str | None = None
    label_match: bool | None = None
    failed: bool = False
    error: str | None = None
    traceback: str | None = None
    conclusion: dict[str, Any] | None = None
    hypotheses: list[dict[str, Any]] = field(default_factory=list)
    exemplars: list[ImageItem] = field(default_factory=list)
    exemplar_summary: str = ""
    rounds: list[RoundData] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    scale: Scale = field(default_factory=Scale)


# --------------------------------------------------------------------------- reading files


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; an empty dict when the file is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """JSON objects, one a line; unreadable lines (a crash mid-write) are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            out.append(item)
    return out


def _get(data: Any, *keys: str, default: Any = None) -> Any:
    """The first present, non-empty value among ``keys`` (dotted paths allowed)."""
    for key in keys:
        value = data
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value not in (None, "", [], {}):
            return value
    return default


def _float(x: Any) -> float | None:
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _dicts(x: Any) -> list[dict[str, Any]]:
    return [i for i in x if isinstance(i, dict)] if isinstance(x, list) else []


# --------------------------------------------------------------------------- header numbers


def _usage_totals(usage: Any) -> tuple[int | None, float | None]:
    """Tokens and cost from a list of per-call usage records or a totals dict."""
    records = _dicts(usage) if isinstance(usage, list) else [usage] if isinstance(usage, dict) else []
    if not records:
        return None, None
    tokens = 0
    cost = 0.0
    seen_tokens = seen_cost = False
    for r in records:
        total = _float(_get(r, "total_tokens", "tokens"))
        if total is None:
            parts = [_float(r.get(k)) for k in ("input_tokens", "output_tokens", "prompt_tokens", "completion_tokens")]
            parts = [p for p in parts if p is not None]
            total = sum(parts) if parts else None
        if total is not None:
            tokens += int(total)
            seen_tokens = True
        c = _float(_get(r, "cost_usd", "cost"))
        if c is not None:
            cost += c
            seen_cost = True
    return (tokens if seen_tokens else None), (cost if seen_cost else None)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    return f"{minutes} min {sec:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _backend_text(value: Any) -> str:
    if isinstance(value, dict):
        provider = value.get("provider") or value.get("name") or ""
        model = value.get("model") or ""
        return f"{provider}:{model}" if provider and model else str(provider or model)
    return "" if value is None else str(value)


def _rounds_text(result: dict[str, Any], n_rounds: int) -> str:
    done = result.get("rounds")
    done = done if isinstance(done, int) else n_rounds
    cap = result.get("max_rounds")
    return f"{done} of {cap} max" if isinstance(cap, int) else str(done)


def _meta(result: dict[str, Any], config: dict[str, Any], n_rounds: int) -> list[tuple[str, str]]:
    tokens, cost = _usage_totals(_get(result, "usage", "tokens_used"))
    if tokens is None:
        tokens = _get(result, "total_tokens", "tokens.total", "tokens")
    if cost is None:
        cost = _float(_get(result, "cost_usd", "cost"))
    wall = _float(_get(result, "wall_time_s", "elapsed_s", "seconds", "duration_s"))
    if wall is None and isinstance(result.get("timings"), dict):
        wall = sum(v for v in (_float(x) for x in result["timings"].values()) if v is not None) or None
    synthetic = _get(result, "synthetic") or config.get("synthetic")
    rows = [
        ("model", str(_get(result, "model") or config.get("model") or ("synthetic (world)" if synthetic else ""))),
        ("layer", str(_get(result, "layer") or config.get("layer") or "")),
        ("unit", str(_get(result, "unit_index") if _get(result, "unit_index") is not None else
                     config.get("unit") if config.get("unit") is not None else synthetic or "")),
        ("scientist", _backend_text(_get(result, "scientist", "backend") or config.get("backend")) or "offline"),
        ("mode", str(_get(result, "mode") or config.get("mode") or "")),
        ("describer", str(_get(result, "describer") or config.get("describer") or "")),
        ("critic", str(_get(result, "critic_backend") or "")),
        ("rounds", _rounds_text(result, n_rounds)),
        ("tokens", f"{int(tokens):,}" if isinstance(tokens, int | float) and tokens else "0 (no model calls)"),
        ("cost", f"${cost:.4f}" if isinstance(cost, float) and cost > 0 else
                 str(_get(result, "cost_note") or "$0")),
        ("wall time", _duration(wall)),
        ("run", str(_get(result, "run_id") or config.get("run_id") or "")),
        ("finished", str(_get(result, "finished_at", "ended_at", "created_at") or "")),
    ]
    return [(k, v) for k, v in rows if v]


# --------------------------------------------------------------------------- images


_EDIT_VERB = re.compile(r"^\s*(replace|change|remove|add|make|turn|put|delete|swap|insert|erase)\b", re.I)


def _image_items(ids: list[Any], acts: list[Any], prompts: list[Any], descriptions: list[Any]) -> list[ImageItem]:
    """Images with their activations and captions; an edit is 'prompt | edit: instruction', or an
    instruction right after its original (as ``edit_images`` returns them)."""
    items = []
    for k, iid in enumerate(ids):
        prompt = str(prompts[k]) if k < len(prompts) and prompts[k] is not None else ""
        base, _, edit = prompt.partition(EDIT_SEP)
        if not edit and k > 0 and _EDIT_VERB.match(prompt) and not items[-1].is_edit:
            base, edit = "", prompt
        items.append(ImageItem(
            image_id=str(iid),
            activation=_float(acts[k]) if k < len(acts) else None,
            caption=f"edit: {edit}" if edit else base,
            description=str(descriptions[k]) if k < len(descriptions) and descriptions[k] else "",
            is_edit=bool(edit),
        ))
    return items


def _measurement_items(measurements: list[dict[str, Any]]) -> list[ImageItem]:
    seen: dict[str, int] = {}
    items: list[ImageItem] = []
    for m in measurements:
        iid = str(m.get("image_id", ""))
        if iid in seen:  # the same image measured twice: keep the latest value
            items[seen[iid]] = _image_items([iid], [m.get("activation")], [m.get("prompt", "")], [])[0]
            continue
        seen[iid] = len(items)
        items += _image_items([iid], [m.get("activation")], [m.get("prompt", "")], [])
    return items


def _exemplars(result: dict[str, Any], log: list[dict[str, Any]]) -> list[ImageItem]:
    ex = result.get("exemplars") if isinstance(result.get("exemplars"), dict) else {}
    ids = _get(ex, "image_ids") or _get(result, "exemplar_image_ids") or []
    acts = _get(ex, "activations") or _get(result, "exemplar_activations") or []
    descs = _get(ex, "descriptions") or _get(result, "exemplar_descriptions") or []
    entry = next((e for e in log if e.get("kind") == "exemplars"), None)
    if not ids and entry:
        ids, acts = entry.get("image_ids") or [], entry.get("activations") or []
    if not descs:  # the describe node logs the blind descriptions as a note with the same images
        described = next((e for e in log if e.get("kind") == "note" and e.get("descriptions")), None)
        if described and list(described.get("image_ids") or []) == list(ids):
            descs = described["descriptions"]
    items = _image_items(list(ids), list(acts), [], list(descs))
    for rank, item in enumerate(items, 1):
        item.caption = f"#{rank}"
    return items


# --------------------------------------------------------------------------- rounds


def _by_round(items: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        r = item.get("round")
        if isinstance(r, int):
            out[r].append(item)
    return out


def _phase_of(thoughts: str) -> str:
    for line in thoughts.splitlines():
        if line.startswith("Next (") and ")" in line:
            return line[len("Next (") : line.index(")")]
    return ""


def _is_run_record(entry: dict[str, Any]) -> bool:
    """The graph's own record of an experiment (it carries the measurements), not a log_experiment call."""
    data = entry.get("data")
    return isinstance(data, dict) and "measurements" in data


def _round_images(entries: list[dict[str, Any]], record: dict[str, Any] | None,
                  obs: dict[str, Any], measurements: list[dict[str, Any]]) -> list[ImageItem]:
    """The images of a round with their prompts and activations, from the best source there is.

    1. what the experiment logged itself (log_experiment / display): overlays aligned with prompts;
    2. the measurements the graph recorded: the images the unit saw (the overlay at the same
       position stands in when the image itself was not saved);
    3. the observation's images.
    """
    logged: list[ImageItem] = []
    for e in entries:
        if e.get("kind") in ("experiment", "display") and not _is_run_record(e) and e.get("image_ids"):
            logged += _image_items(e.get("image_ids") or [], e.get("activations") or [], e.get("prompts") or [],
                                   e.get("descriptions") or [])
    if logged:
        return logged
    data = record.get("data") if record else None
    rows = _dicts(data.get("measurements")) if isinstance(data, dict) else []
    rows = rows or measurements
    if rows:
        items = _measurement_items(rows)
        shown = list(record.get("image_ids") or []) if record else list(obs.get("image_ids") or [])
        for k, item in enumerate(items):
            item.fallback_id = str(shown[k]) if k < len(shown) else ""
        return items
    source = record or obs
    return _image_items(source.get("image_ids") or [], source.get("activations") or [],
                        source.get("prompts") or [], [])


def _distinct(reports: list[Any]) -> list[dict[str, Any]]:
    """Critic reports without repeats of the same verdict (the critic also runs when the scientist
    asks to conclude, often saying the same thing twice)."""
    out: list[dict[str, Any]] = []
    for report in reports:
        key = (report.get("satisfied"), report.get("requests"))
        if not out or (out[-1].get("satisfied"), out[-1].get("requests")) != key:
            out.append(report)
        elif (report.get("checks") or {}).get("overruled") or (report.get("checks") or {}).get("vetoed_conclusion"):
            out[-1] = report
    return out


def _rounds(result: dict[str, Any], log: list[dict[str, Any]]) -> list[RoundData]:
    """One entry per experiment round, from the log (and the result's lists where the log lacks them)."""
    entries = _by_round(log)
    observations = _by_round(_dicts(result.get("observations")))
    critic_results = _by_round(_dicts(result.get("critic")))
    measurements = _by_round(_dicts(result.get("measurements")))
    indices = sorted({r for r, es in entries.items() if any(e.get("kind") != "conclusion" for e in es)}
                     | set(observations) | set(measurements) | set(critic_results))
    rounds = []
    for r in indices:
        if r == 0 and not observations.get(0) and not measurements.get(0):
            continue  # round 0 is exemplars and descriptions: shown in their own section
        es = entries.get(r, [])
        hyp = next((e for e in reversed(es) if e.get("kind") == "hypothesis"), {})
        record = next((e for e in reversed(es) if e.get("kind") == "experiment" and _is_run_record(e)), None)
        data = record.get("data", {}) if record else {}
        obs = (observations.get(r) or [{}])[-1]
        thoughts = str(hyp.get("text") or "")
        critic = _distinct([e.get("data") for e in es if e.get("kind") == "critic" and isinstance(e.get("data"), dict)])
        rd = RoundData(
            index=r,
            phase=_phase_of(thoughts),
            thoughts=thoughts,
            hypotheses=_dicts((hyp.get("data") or {}).get("hypotheses")),
            code=data.get("code") or None,
            tool_calls=_dicts(data.get("tool_calls")),
            text=str((record or {}).get("text") or obs.get("text") or ""),
            error=data.get("error") or obs.get("error"),
            traceback=data.get("traceback") or obs.get("traceback"),
            failed=data.get("ok") is False or obs.get("ok") is False,
            critic=critic or critic_results.get(r, []),
            images=_round_images(es, record, obs, measurements.get(r, [])),
            notes=[str(e.get("text")) for e in es if e.get("kind") == "note" and e.get("text")],
        )
        rounds.append(rd)
    return rounds


# --------------------------------------------------------------------------- all of it


def load_report_data(run_dir: Path) -> ReportData:
    """Everything the report shows, from whatever the run directory holds."""
    result = read_json(run_dir / "result.json")
    log = read_jsonl(run_dir / "log.jsonl")
    config = result.get("config") if isinstance(result.get("config"), dict) else read_json(run_dir / "run.json")
    config = config.get("config", config) if isinstance(config, dict) else {}
    rounds = _rounds(result, log)
    data = ReportData(rounds=rounds)
    data.title = str(_get(result, "unit_label", "unit", "title") or _unit_label(config) or run_dir.name)
    data.task = str(_get(result, "task") or config.get("task") or "")
    data.meta = _meta(result, config, len(rounds))
    data.ground_truth = _get(result, "ground_truth", "truth.label")
    conclusion = result.get("conclusion")
    if not isinstance(conclusion, dict):  # the conclude node logs it too
        entry = next((e for e in reversed(log) if e.get("kind") == "conclusion"), None)
        conclusion = entry.get("data") if entry else None
    data.conclusion = conclusion if isinstance(conclusion, dict) else None
    match = _get(result, "label_match", "labels_match", "truth.match")
    if not isinstance(match, bool) and data.ground_truth and data.conclusion:
        match = labels_match(str(data.ground_truth), list(data.conclusion.get("labels") or []))
    data.label_match = match if isinstance(match, bool) else None
    data.hypotheses = _dicts(result.get("hypotheses"))
    data.exemplars = _exemplars(result, log)
    data.exemplar_summary = str(_get(result, "exemplar_summary", "exemplars.summary") or "")
    status = str(_get(result, "status", default="")).lower()
    data.error = _get(result, "error", "error.message")
    data.error = data.error if isinstance(data.error, str) else (json.dumps(data.error) if data.error else None)
    data.traceback = _get(result, "traceback", "error.traceback")
    data.failed = not result or status in ("failed", "error", "crashed") or bool(data.error and not data.conclusion)
    if not result:
        data.error = data.error or "result.json is missing or unreadable: the run did not finish."
    data.notes = [str(n) for n in result.get("notes") or [] if n]
    if _get(result, "forced"):
        data.notes.insert(0, f"The conclusion was forced: {result.get('forced')}")
    values = [i.activation for i in data.exemplars if i.activation is not None]
    values += [i.activation for rd in rounds for i in rd.images if i.activation is not None]
    data.scale = Scale.of(values)
    return data


_FILLER = frozenset({
    "a", "an", "the", "of", "on", "in", "at", "with", "and", "or", "only", "when", "if", "is", "are", "it", "its",
    "present", "background", "scene", "texture", "pattern", "object", "unit", "detect", "not", "also", "region",
    "thing",
})


def _stem(word: str) -> str:
    """A crude singular, the same on both sides of a comparison ('leashes', 'leash' -> 'leash')."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


_FILLER_STEMS = frozenset(_stem(w) for w in _FILLER) | _FILLER


def _content_words(text: str) -> set[str]:
    """Words that carry meaning, plurals folded; asides in parentheses ('leashes (chains)') dropped."""
    text = re.sub(r"\([^)]*\)", " ", text.lower())
    return {w for w in (_stem(x) for x in re.findall(r"[a-z]+", text)) if w not in _FILLER_STEMS}


def labels_match(ground_truth: str, labels: list[str]) -> bool | None:
    """Whether the labels name every concept of the ground truth.

    The ground truth is split into its concepts ('dogs or cars', 'dogs, only when leashes are
    present', 'dog | leash'); each must share a word with the labels ('boats and ships' is named
    by 'boats'). A plain word check, shown as such in the report: an embedding judge is kinder
    to paraphrases.
    """
    parts = [_content_words(p) for p in re.split(r"\bor\b|\bonly when\b|\||\bunless\b", ground_truth.lower())]
    parts = [p for p in parts if p]
    if not parts:
        return None
    said = _content_words(" ".join(labels))
    return all(p & said for p in parts)


def _unit_label(config: dict[str, Any]) -> str:
    if config.get("synthetic"):
        return f"synthetic neuron {config['synthetic']}"
    if config.get("model"):
        return f"unit {config.get('unit')} of layer {config.get('layer')} of {config.get('model')}"
    return ""


def available_images(run_dir: Path) -> set[str]:
    folder = run_dir / "images"
    try:
        return {p.stem for p in folder.glob("img_*.png")}
    except OSError:
        return set()
