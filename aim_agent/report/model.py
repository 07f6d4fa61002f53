"""What a report shows, arranged from a run's typed record (``result.json``) and its ``images/``.

:func:`load_report_data` reads the :class:`~aim_agent.agent.record.RunRecord` with
:func:`~aim_agent.agent.record.read_run_record` (a missing, damaged or older file is an error that
names it) and arranges it for the page: the rounds with their hypotheses, experiments, images with
prompts and activations, and the critic's verdicts, all on one activation scale.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aim_agent.agent.experiment import EDIT_SEP
from aim_agent.agent.record import RoundRecord, RunRecord, read_run_record
from aim_agent.agent.schema import CriticReport, Hypothesis, Proposal, ToolCall
from aim_agent.agent.state import Measurement
from aim_agent.log import LogEntry


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
class HypothesisRow:
    """A hypothesis as a round stated it, and how it changed since the round before."""

    hypothesis: Hypothesis
    change: str = ""  # "new", "was open", ... ("" when unchanged or in the first round)


@dataclass
class Verdict:
    """The scientist asked to conclude without a new experiment; the critic answered."""

    request: Proposal
    critic: CriticReport | None = None


@dataclass
class RoundData:
    index: int
    phase: str = ""
    thoughts: str = ""
    hypotheses: list[HypothesisRow] = field(default_factory=list)
    compared: bool = False  # whether ``hypotheses`` were compared with an earlier round's
    code: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    images: list[ImageItem] = field(default_factory=list)
    text: str = ""
    error: str | None = None
    traceback: str | None = None
    failed: bool = False
    ran_experiment: bool = True
    critic: list[CriticReport] = field(default_factory=list)  # on the round's experiment
    verdicts: list[Verdict] = field(default_factory=list)  # requests to conclude, in order
    notes: list[str] = field(default_factory=list)


@dataclass
class ReportData:
    record: RunRecord
    title: str = "AIM run"
    meta: list[tuple[str, str]] = field(default_factory=list)
    label_match: bool | None = None
    exemplars: list[ImageItem] = field(default_factory=list)
    rounds: list[RoundData] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    scale: Scale = field(default_factory=Scale)

    @property
    def failed(self) -> bool:
        return self.record.status == "failed"


# --------------------------------------------------------------------------- header numbers


def _duration(seconds: float | None) -> str:
    if not seconds:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    return f"{minutes} min {sec:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _meta(record: RunRecord) -> list[tuple[str, str]]:
    config, totals = record.config, record.usage.totals
    if config.synthetic:
        model = "synthetic (world)"
    elif config.system_factory:
        model = config.system_factory
    else:
        model = config.model or ""
    cost = (f"${totals.cost_usd:.4f}" if totals.cost_usd else
            "unknown" if totals.cost_usd is None else "$0")
    rows = [
        ("model", model),
        ("layer", config.layer or ""),
        ("unit", str(config.unit) if config.unit is not None else config.synthetic or ""),
        ("sae", config.sae or ""),
        ("scientist", record.backends.scientist),
        ("mode", config.mode),
        ("describer", record.backends.describer),
        ("critic", record.backends.critic),
        ("rounds", f"{record.rounds_run} of {config.max_rounds} max"),
        ("tokens", f"{totals.total_tokens:,}" if totals.total_tokens else "0 (no model calls)"),
        ("cost", cost + (f" ({totals.cost_note})" if totals.cost_note else "")),
        ("wall time", _duration(record.usage.wall_time_s)),
        ("run", record.run_id + (" (resumed)" if record.resumed else "")),
        ("finished", record.finished_at),
    ]
    return [(k, v) for k, v in rows if v]


# --------------------------------------------------------------------------- images


_EDIT_VERB = re.compile(r"^\s*(replace|change|remove|add|make|turn|put|delete|swap|insert|erase)\b", re.I)


def _image_items(ids: Sequence[str], acts: Sequence[float], prompts: Sequence[str],
                 descriptions: Sequence[str]) -> list[ImageItem]:
    """Images with their activations and captions; an edit is 'prompt | edit: instruction', or an
    instruction right after its original (as ``edit_images`` returns them)."""
    items: list[ImageItem] = []
    for k, iid in enumerate(ids):
        prompt = prompts[k] if k < len(prompts) else ""
        base, _, edit = prompt.partition(EDIT_SEP)
        if not edit and k > 0 and _EDIT_VERB.match(prompt) and not items[-1].is_edit:
            base, edit = "", prompt
        items.append(ImageItem(
            image_id=iid,
            activation=acts[k] if k < len(acts) else None,
            caption=f"edit: {edit}" if edit else base,
            description=descriptions[k] if k < len(descriptions) else "",
            is_edit=bool(edit),
        ))
    return items


def _logged_items(entries: list[LogEntry]) -> list[ImageItem]:
    items: list[ImageItem] = []
    for e in entries:
        items += _image_items(e.image_ids, e.activations, e.prompts, e.descriptions)
    return items


def _measurement_items(measurements: list[Measurement], overlays: list[str]) -> list[ImageItem]:
    """The images the unit saw (the latest value when one was measured twice); the overlay at the
    same position stands in for an image that was not saved."""
    latest: dict[str, Measurement] = {}
    for m in measurements:
        latest[m.image_id] = m
    rows = list(latest.values())
    items = _image_items([m.image_id for m in rows], [m.activation for m in rows], [m.prompt for m in rows], [])
    for k, item in enumerate(items):
        item.fallback_id = overlays[k] if k < len(overlays) else ""
    return items


def _round_images(rd: RoundRecord) -> list[ImageItem]:
    """A round's images with their prompts and activations, from the best source there is:
    what the experiment showed itself (display, log_experiment: overlays), else the measurements,
    else the observation's images."""
    logged = _logged_items(rd.shown)
    if logged:
        return logged
    obs = rd.observation
    overlays = list(obs.image_ids) if obs else []
    if rd.measurements:
        return _measurement_items(rd.measurements, overlays)
    if obs is None:
        return []
    return _image_items(obs.image_ids, obs.activations, obs.prompts, [])


def _exemplars(record: RunRecord) -> list[ImageItem]:
    ex = record.exemplars
    items = _image_items(ex.image_ids, ex.activations, [], ex.descriptions)
    for rank, item in enumerate(items, 1):
        item.caption = f"#{rank}"
    return items


# --------------------------------------------------------------------------- rounds


def _phase_of(thoughts: str) -> str:
    for line in thoughts.splitlines():
        if line.startswith("Next (") and ")" in line:
            return line[len("Next (") : line.index(")")]
    return ""


def _rows(hypotheses: list[Hypothesis], before: dict[str, Hypothesis] | None) -> list[HypothesisRow]:
    """Hypotheses with what changed since ``before`` (None: the first round, nothing to compare)."""
    rows = []
    for h in hypotheses:
        change = ""
        if before is not None:
            old = before.get(h.id)
            change = "new" if old is None else (f"was {old.status}" if old.status != h.status else "")
        rows.append(HypothesisRow(h, change))
    return rows


def _round(rd: RoundRecord, before: dict[str, Hypothesis] | None) -> RoundData:
    proposal, obs = rd.proposal, rd.observation
    thoughts = proposal.thoughts if proposal else ""
    # the first critic report judges the experiment; later ones answer the requests to conclude
    on_experiment = rd.critic[:1] if rd.ran_experiment else []
    answers = rd.critic[len(on_experiment):]
    return RoundData(
        index=rd.round,
        phase=_phase_of(thoughts),
        thoughts=thoughts,
        hypotheses=_rows(proposal.hypotheses, before) if proposal else [],
        compared=before is not None,
        code=proposal.code if proposal and proposal.code else None,
        tool_calls=list(proposal.tool_calls) if proposal else [],
        images=_round_images(rd),
        text=obs.text if obs else "",
        error=obs.error if obs else None,
        traceback=obs.traceback if obs else None,
        failed=obs is not None and not obs.ok,
        ran_experiment=rd.ran_experiment,
        critic=on_experiment,
        verdicts=[Verdict(req, answers[k] if k < len(answers) else None)
                  for k, req in enumerate(rd.conclusion_requests)],
        notes=list(rd.notes),
    )


def _rounds(record: RunRecord) -> list[RoundData]:
    out: list[RoundData] = []
    before: dict[str, Hypothesis] | None = None
    for rd in record.rounds:
        out.append(_round(rd, before))
        if rd.hypotheses:
            before = {h.id: h for h in rd.hypotheses}
    return out


# --------------------------------------------------------------------------- all of it


def report_data(record: RunRecord) -> ReportData:
    """Everything the report shows, from a run's record."""
    rounds = _rounds(record)
    data = ReportData(record=record, title=record.unit_label or record.run_id, meta=_meta(record), rounds=rounds)
    if record.ground_truth and record.conclusion:
        data.label_match = labels_match(record.ground_truth, record.conclusion.labels)
    data.exemplars = _exemplars(record)
    data.notes = list(record.notes)
    if record.forced:
        data.notes.insert(0, f"The conclusion was forced: {record.forced}")
    values = [i.activation for i in data.exemplars if i.activation is not None]
    values += [i.activation for rd in rounds for i in rd.images if i.activation is not None]
    data.scale = Scale.of(values)
    return data


def load_report_data(run_dir: Path) -> ReportData:
    """Everything the report shows, from ``run_dir/result.json`` (:class:`RunRecordError` if it cannot be read)."""
    return report_data(read_run_record(Path(run_dir)))


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


def available_images(run_dir: Path) -> set[str]:
    folder = run_dir / "images"
    try:
        return {p.stem for p in folder.glob("img_*.png")}
    except OSError:
        return set()
