"""``aim eval predictive``: MAIA's predictive evaluation (Section 4.1, Table A3) of unit labels.

A label is good when images written from it make the unit fire. For every unit:

1. each method labels the unit: **AIM** (the agent's conclusion of a real ``aim interpret`` run), the
   **exemplar-only** baseline (the describer's one-shot summary of the top exemplars,
   :mod:`aim_agent.eval.baselines`), the **dissection** reference (the unit's IoU concept,
   :mod:`aim_agent.eval.dissect`) and a **random** concept of the vocabulary;
2. a *generator* writes, from each label alone, :data:`N_PROMPTS` prompts that should make the unit fire
   (positive: the main concept of each part of the label, in turn) and :data:`N_PROMPTS` unrelated ones
   (neutral: scenes without any of them);
3. every method's prompts are **pooled** (duplicates once);
4. for each label a *selector* picks from the pool the :data:`N_PROMPTS` prompts it predicts most activating
   and the :data:`N_PROMPTS` it predicts least activating;
5. every pooled prompt is rendered and measured once; a method's score for the unit is the mean activation
   on its positive picks and on its neutral picks.

Generator and selector are a :class:`~aim_agent.eval.prompt_writers.PromptWriter`: offline, deterministic
over the installed concept vocabularies; or a chat model (``prompt_backend``), as MAIA's GPT-4 instances. Either
reads only the label text (and, to select, the pool): never an activation or the unit. A chat model's reply
that cannot be read leaves that method unscored on that unit, with the reason in ``errors``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aim_agent.eval.pages import Figure, Section, fmt, html_page, md_table
from aim_agent.eval.prompt_writers import N_PROMPTS, Prompts, Selection
from aim_agent.eval.truth import ConceptTruth
from aim_agent.vocabulary import ConceptInfo

if TYPE_CHECKING:
    from aim_agent.agent.backends import UsageMeter

METHODS: dict[str, str] = {
    "aim": "AIM (agent)",
    "exemplar": "exemplar-only (one-shot summary)",
    "dissection": "dissection reference (IoU)",
    "random": "random vocabulary label",
}
Progress = Callable[[str], None]


def pool_prompts(generated: Sequence[Prompts]) -> list[str]:
    """Every method's positive and neutral prompts in one list, in order, each once."""
    return list(dict.fromkeys(p for g in generated for p in (*g.positive, *g.neutral)))


# --------------------------------------------------------------------------------------------- scoring


@dataclass
class MethodScore:
    """One method on one unit."""

    label: str
    positive: list[str]
    neutral: list[str]
    positive_mean: float
    neutral_mean: float

    @property
    def difference(self) -> float:
        return self.positive_mean - self.neutral_mean


def score_selection(selection: Selection, label: str, activation: dict[str, float]) -> MethodScore:
    """Mean activation on the selected positive and neutral prompts (``activation``: prompt -> value)."""
    def mean(prompts: list[str]) -> float:
        return statistics.fmean(activation[p] for p in prompts) if prompts else 0.0

    return MethodScore(label=label, positive=selection.positive, neutral=selection.neutral,
                       positive_mean=round(mean(selection.positive), 4), neutral_mean=round(mean(selection.neutral), 4))


@dataclass
class UnitPrediction:
    """Every method's score on one unit; ``scale`` (the highest activation on the pool) normalises them."""

    layer: str
    unit: int
    scale: float
    methods: dict[str, MethodScore]
    run_dir: str | None = None
    pool: dict[str, float] = field(default_factory=dict)  # prompt -> activation
    images: dict[str, Any] = field(default_factory=dict, repr=False)  # prompt -> image (for the page)
    errors: dict[str, str] = field(default_factory=dict)  # method -> why it is unscored (a chat reply unread)

    def to_json(self) -> dict[str, Any]:
        return {"layer": self.layer, "unit": self.unit, "scale": self.scale, "run_dir": self.run_dir,
                "pool": self.pool, "methods": {m: {**asdict(s), "difference": round(s.difference, 4)}
                                               for m, s in self.methods.items()}, "errors": self.errors}


def sign_test(wins: int, losses: int) -> float | None:
    """Two-sided exact sign test (ties dropped): the chance of a split at least this uneven if either method
    were as likely to win each unit."""
    n = wins + losses
    if n == 0:
        return None
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2 ** n
    return float(min(1.0, 2 * tail))


def paired(units: Sequence[UnitPrediction], method: str, other: str = "exemplar") -> dict[str, Any]:
    """``method`` against ``other`` unit by unit: the mean and sd of the paired (+ minus -) differences, wins,
    losses and the sign test, so a reader sees whether the gap is larger than the spread between units."""
    gaps = [u.methods[method].difference - u.methods[other].difference
            for u in units if method in u.methods and other in u.methods]
    wins, losses = sum(g > 0 for g in gaps), sum(g < 0 for g in gaps)
    return {"gap_mean": round(statistics.fmean(gaps), 4) if gaps else None,
            "gap_sd": round(statistics.stdev(gaps), 4) if len(gaps) > 1 else None,
            "wins": wins, "losses": losses, "sign_test_p": sign_test(wins, losses)}


def summary_rows(units: Sequence[UnitPrediction]) -> list[dict[str, Any]]:
    """Per layer and method (MAIA's Table A3): mean positive and neutral activation over units, their
    difference, and the difference divided by each unit's pool maximum (comparable across units); for AIM
    also the paired comparison with the exemplar-only baseline (:func:`paired`)."""
    rows = []
    for layer in dict.fromkeys(u.layer for u in units):
        mine = [u for u in units if u.layer == layer]
        for method in METHODS:
            scored = [(u, u.methods[method]) for u in mine if method in u.methods]
            if not scored:
                continue
            rows.append({
                "layer": layer, "method": method, "units": len(scored),
                "positive": round(statistics.fmean(s.positive_mean for _, s in scored), 4),
                "neutral": round(statistics.fmean(s.neutral_mean for _, s in scored), 4),
                "difference": round(statistics.fmean(s.difference for _, s in scored), 4),
                "normalised_difference": round(statistics.fmean(s.difference / u.scale if u.scale > 0 else 0.0
                                                                for u, s in scored), 4),
                "vs_exemplar": paired(mine, method) if method == "aim" else None,
            })
    return rows


# --------------------------------------------------------------------------------------------- the run


def concept_vocabulary(concepts: Sequence[ConceptInfo]) -> list[ConceptTruth]:
    """Dissection concepts as the baselines' vocabulary (key, name, the words that name it)."""
    return [ConceptTruth(key=c.key, label=c.name, terms=[w.lower() for w in (c.name, *c.words)])
            for c in concepts]


def evaluate_predictive(
    model: str,
    layers: Sequence[str],
    *,
    units: Sequence[int] | None = None,
    n: int = 5,
    seed: int = 0,
    backend: str = "offline",
    mode: str = "tools",
    max_rounds: int | None = None,
    dataset: str | None = None,
    runs_dir: str | Path = "runs/eval/predictive/runs",
    image_size: int = 224,
    prompt_backend: str | None = None,
    meter: UsageMeter | None = None,
    progress: Progress | None = None,
) -> list[UnitPrediction]:
    """Label each unit with every method, generate, pool, select, render and measure (see the module doc).
    ``prompt_backend``: the generator and selector, ``offline`` or a chat model (default: ``backend``'s choice,
    the same chat model as the AIM runs, each request a fresh conversation); ``meter`` collects its usage."""
    from aim_agent.agent.backends import BackendSpec
    from aim_agent.agent.config import RunConfig
    from aim_agent.agent.record import conclusion_label
    from aim_agent.agent.runner import run_interpret
    from aim_agent.eval.baselines import exemplar_view, one_shot_label, random_label
    from aim_agent.eval.dissect import dissect
    from aim_agent.eval.prompt_writers import PromptReplyError, prompt_writer
    from aim_agent.eval.units import pick_units
    from aim_agent.images import ImageStore, use_store
    from aim_agent.models.probe import open_probe
    from aim_agent.plugins import plugin_manager
    from aim_agent.system import System
    from aim_agent.vocabulary import installed_vocabularies

    say = progress or (lambda _line: None)
    vocabularies = installed_vocabularies()
    if not vocabularies:
        raise LookupError("aim eval predictive needs a concept vocabulary (hook aim_vocabularies): install the "
                          "world plugin")
    writer = prompt_writer(prompt_backend or backend, vocabularies, meter)
    text2image = plugin_manager().provider("text2image", "world")
    out: list[UnitPrediction] = []
    for layer in layers:
        probe = open_probe(model, layer)
        reference = dissect(probe, dataset)
        chosen = list(units) if units else pick_units(reference, n, seed + sum(map(ord, layer)))
        vocabulary = concept_vocabulary(reference.concepts)
        for unit in chosen:
            probe.check_unit(unit)
            system = System(probe, unit)
            values: dict[str, Any] = {"model": model, "layer": layer, "unit": unit, "runs_dir": str(runs_dir),
                                      "backend": BackendSpec.parse(backend), "mode": mode, "seed": seed,
                                      "exemplar_dataset": dataset, "image_size": image_size}
            if max_rounds is not None:
                values["max_rounds"] = max_rounds
            config = RunConfig(**{k: v for k, v in values.items() if v is not None})
            run = run_interpret(config)
            ref = reference.units[unit]
            ref_info = reference.concept(ref.iou_concept) if ref.iou_concept else None
            labels = {
                "aim": conclusion_label(run.record),
                "exemplar": one_shot_label(exemplar_view(system, config).summary, vocabulary),
                "dissection": ref_info.name if ref_info else "",
                "random": random_label(vocabulary, seed, f"{model}:{layer}:{unit}"),
            }
            labels = {m: text for m, text in labels.items() if text}
            generated: dict[str, Prompts] = {}
            errors: dict[str, str] = {}
            for m, text in labels.items():
                try:
                    generated[m] = writer.generate(text)
                except PromptReplyError as exc:  # that method goes unscored on this unit; the reason is kept
                    errors[m] = f"generator: {exc}"
            with use_store(ImageStore()):
                drawn = text2image.generate(pool_prompts(list(generated.values())), size=image_size, seed=seed)
                # a prompt the generator cannot draw (a label with no concept) has no image: it leaves the pool
                pool = [g.prompt for g in drawn if g.image is not None]
                images = [g.image for g in drawn if g.image is not None]
                acts = [round(float(a), 4) for a in system.activations(images).activations] if images else []
            activation = dict(zip(pool, acts, strict=True))
            scores: dict[str, MethodScore] = {}
            for m in generated:
                try:
                    scores[m] = score_selection(writer.select(labels[m], pool), labels[m], activation)
                except PromptReplyError as exc:
                    errors[m] = f"selector: {exc}"
            row = UnitPrediction(layer=layer, unit=unit, scale=max([*acts, 0.0]), methods=scores,
                                 run_dir=str(run.run_dir), pool=activation, images=dict(zip(pool, images, strict=True)),
                                 errors=errors)
            out.append(row)
            say(f"{layer} unit {unit}: " + "; ".join(f"{m} {s.label!r} +{s.positive_mean:.2f}/-{s.neutral_mean:.2f}"
                                                     for m, s in scores.items()))
    return out


def result_json(model: str, layers: Sequence[str], seed: int, backend: str, units: Sequence[UnitPrediction],
                prompt_writer: str = "offline", usage: dict[str, Any] | None = None) -> dict[str, Any]:
    """The result: the table, every unit, and which generator/selector ran (with its token usage and cost)."""
    return {"evaluation": "predictive", "model": model, "layers": list(layers), "seed": seed, "backend": backend,
            "prompt_writer": prompt_writer, "prompt_writer_usage": usage, "n_prompts": N_PROMPTS, "methods": METHODS,
            "table": summary_rows(units), "units": [u.to_json() for u in units]}


HEADERS = ("layer", "method", "units", "+ (positive)", "- (neutral)", "+ minus -", "normalised",
           "AIM − exemplar (sd)", "AIM wins/losses", "sign test p")


def table_rows(data: dict[str, Any]) -> list[list[Any]]:
    def versus(r: dict[str, Any]) -> list[Any]:
        v = r.get("vs_exemplar")
        if not v:
            return [None, None, None]
        return [f"{fmt(v['gap_mean'])} ({fmt(v['gap_sd'])})", f"{v['wins']}/{v['losses']}", v["sign_test_p"]]

    return [[r["layer"], METHODS[r["method"]], r["units"], r["positive"], r["neutral"], r["difference"],
             r["normalised_difference"], *versus(r)] for r in data["table"]]


def _usage_lines(usage: dict[str, Any] | None) -> list[str]:
    if not usage:
        return []
    cost = f"${usage['cost_usd']:.4f}" if usage.get("cost_usd") is not None else usage.get("cost_note") or "unknown"
    return [f"Prompt generator and selector: {usage['calls']} calls, {usage['total_tokens']} tokens, cost {cost}.", ""]


def markdown(data: dict[str, Any]) -> str:
    lines = [f"# aim eval predictive: {data['model']} {', '.join(data['layers'])} (seed {data['seed']}, "
             f"scientist `{data['backend']}`, prompt generator and selector `{data['prompt_writer']}`)", "",
             f"Mean activation on the {data['n_prompts']} pooled prompts each label's selector predicts most "
             "(+) and least (-) activating; normalised: (+ minus -) / the unit's highest activation on the pool.",
             "", *_usage_lines(data.get("prompt_writer_usage")), md_table(HEADERS, table_rows(data)), "",
             "## Units", ""]
    rows = [[u["layer"], u["unit"], *(u["methods"].get(m, {}).get("label", "—") for m in METHODS),
             *(u["methods"][m]["difference"] if m in u["methods"] else None for m in METHODS)] for u in data["units"]]
    lines += [md_table(["layer", "unit", *(f"{m} label" for m in METHODS), *(f"{m} +/-" for m in METHODS)], rows), ""]
    unscored = [[u["layer"], u["unit"], m, why] for u in data["units"] for m, why in u.get("errors", {}).items()]
    if unscored:
        lines += ["## Unscored (a reply of the prompt generator or selector could not be read)", "",
                  md_table(["layer", "unit", "method", "why"], unscored), ""]
    return "\n".join(lines)


def page(data: dict[str, Any], units: Sequence[UnitPrediction]) -> str:
    """The page: the table, then per unit and method the selected prompts' images with their activations."""
    sections = []
    for u in units:
        for method, s in u.methods.items():
            figs = [Figure(u.images[p], f"+ {p}: {u.pool[p]:.2f}") for p in s.positive if p in u.images]
            figs += [Figure(u.images[p], f"- {p}: {u.pool[p]:.2f}") for p in s.neutral if p in u.images]
            sections.append(Section(f"{u.layer} unit {u.unit}: {METHODS[method]}",
                                    f"label {s.label!r}: + {s.positive_mean:.3f}, - {s.neutral_mean:.3f}", figs))
    return html_page(f"predictive evaluation: {data['model']}", [("per layer", HEADERS, table_rows(data))], sections)
