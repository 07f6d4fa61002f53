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

Offline, generator and selector are deterministic and read only the label text through the installed
concept vocabularies (hook ``aim_vocabularies``): the generator draws prompts that show the concepts the
label names, and controls that show none of them; the selector ranks prompts by how many of the label's
concepts they name. Neither sees an activation or the unit.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aim_agent.eval.pages import Figure, Section, fmt, html_page, md_table
from aim_agent.eval.truth import ConceptTruth
from aim_agent.vocabulary import ConceptInfo, Vocabularies, alternatives

N_PROMPTS = 7
METHODS: dict[str, str] = {
    "aim": "AIM (agent)",
    "exemplar": "exemplar-only (one-shot summary)",
    "dissection": "dissection reference (IoU)",
    "random": "random vocabulary label",
}
Progress = Callable[[str], None]


# --------------------------------------------------------------------------------------------- generator


def label_concepts(label: str, vocabularies: Vocabularies) -> list[ConceptInfo]:
    """The concepts a label is about: the main concept of each of its parts ('dog; cat or bird' -> dog, cat,
    bird), else every concept it names."""
    found: dict[str, ConceptInfo] = {}
    for part in label.split(";"):
        for alt in alternatives(part):
            named = vocabularies.concepts_in(alt)
            if named:
                found.setdefault(named[0].key, named[0])
    if not found:
        for c in vocabularies.concepts_in(label):
            found.setdefault(c.key, c)
    return list(found.values())


@dataclass
class Prompts:
    """A label's generated prompts."""

    positive: list[str]
    neutral: list[str]


def generate_prompts(label: str, vocabularies: Vocabularies, n: int = N_PROMPTS) -> Prompts:
    """``n`` positive prompts showing the label's concepts (taken in turn) and ``n`` neutral ones showing none."""
    concepts = [c for c in label_concepts(label, vocabularies) if vocabularies.owner(c.key) is not None]
    if not concepts:  # a label the vocabulary cannot draw: its own words are the only positive prompt
        fallback = vocabularies.items[0] if vocabularies.items else None
        neutral = fallback.control_prompts([], n) if fallback is not None else []
        return Prompts(positive=[label.strip()] if label.strip() else [], neutral=neutral)
    per_concept = [vocabularies.owner(c.key)[0].concept_prompts(c.key, n) for c in concepts]  # type: ignore[index]
    positive: list[str] = []
    for i in range(n):
        prompts = per_concept[i % len(per_concept)]
        if i // len(per_concept) < len(prompts):
            positive.append(prompts[i // len(per_concept)])
    owner = vocabularies.owner(concepts[0].key)
    assert owner is not None
    neutral = owner[0].control_prompts([c.key for c in concepts], n)
    return Prompts(positive=list(dict.fromkeys(positive)), neutral=list(dict.fromkeys(neutral)))


def pool_prompts(generated: Sequence[Prompts]) -> list[str]:
    """Every method's positive and neutral prompts in one list, in order, each once."""
    return list(dict.fromkeys(p for g in generated for p in (*g.positive, *g.neutral)))


# --------------------------------------------------------------------------------------------- selector


def _tiebreak(label: str, prompt: str) -> str:
    return hashlib.blake2b(f"{label}\0{prompt}".encode(), digest_size=8).hexdigest()


def predicted_score(label: str, prompt: str, vocabularies: Vocabularies) -> int:
    """How many of the concepts the label names the prompt names too (the selector's prediction of its
    activation): 'boats on water' predicts a boat on water above a boat elsewhere."""
    wanted = {c.key for c in vocabularies.concepts_in(label)}
    return len(wanted & {c.key for c in vocabularies.concepts_in(prompt)})


@dataclass
class Selection:
    """The prompts a selector picked for one label."""

    positive: list[str]
    neutral: list[str]


def select_prompts(label: str, pool: Sequence[str], vocabularies: Vocabularies, n: int = N_PROMPTS) -> Selection:
    """The ``n`` pooled prompts predicted most activating for ``label`` and the ``n`` (others) predicted least;
    ties broken by a hash of (label, prompt), so the choice is deterministic and favours no method's order."""
    scores = {p: predicted_score(label, p, vocabularies) for p in pool}
    ranked = sorted(pool, key=lambda p: (-scores[p], _tiebreak(label, p)))
    positive = ranked[:n]
    rest = [p for p in pool if p not in set(positive)]
    neutral = sorted(rest, key=lambda p: (scores[p], _tiebreak(label, p)))[:n]
    return Selection(positive=positive, neutral=neutral)


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

    def to_json(self) -> dict[str, Any]:
        return {"layer": self.layer, "unit": self.unit, "scale": self.scale, "run_dir": self.run_dir,
                "pool": self.pool, "methods": {m: {**asdict(s), "difference": round(s.difference, 4)}
                                               for m, s in self.methods.items()}}


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
    progress: Progress | None = None,
) -> list[UnitPrediction]:
    """Label each unit with every method, generate, pool, select, render and measure (see the module doc)."""
    from aim_agent.agent.backends import BackendSpec
    from aim_agent.agent.config import RunConfig
    from aim_agent.agent.runner import run_interpret
    from aim_agent.eval.baselines import exemplar_view, one_shot_label, random_label
    from aim_agent.eval.dissect import dissect
    from aim_agent.eval.synthetic import conclusion_label
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
            generated = {m: generate_prompts(text, vocabularies) for m, text in labels.items()}
            with use_store(ImageStore()):
                drawn = text2image.generate(pool_prompts(list(generated.values())), size=image_size, seed=seed)
                # a prompt the generator cannot draw (a label with no concept) has no image: it leaves the pool
                pool = [g.prompt for g in drawn if g.image is not None]
                images = [g.image for g in drawn if g.image is not None]
                acts = [round(float(a), 4) for a in system.activations(images).activations] if images else []
            activation = dict(zip(pool, acts, strict=True))
            scores = {m: score_selection(select_prompts(text, pool, vocabularies), text, activation)
                      for m, text in labels.items()}
            row = UnitPrediction(layer=layer, unit=unit, scale=max([*acts, 0.0]), methods=scores,
                                 run_dir=str(run.run_dir), pool=activation, images=dict(zip(pool, images, strict=True)))
            out.append(row)
            say(f"{layer} unit {unit}: " + "; ".join(f"{m} {s.label!r} +{s.positive_mean:.2f}/-{s.neutral_mean:.2f}"
                                                     for m, s in scores.items()))
    return out


def result_json(model: str, layers: Sequence[str], seed: int, backend: str,
                units: Sequence[UnitPrediction]) -> dict[str, Any]:
    return {"evaluation": "predictive", "model": model, "layers": list(layers), "seed": seed, "backend": backend,
            "n_prompts": N_PROMPTS, "methods": METHODS, "table": summary_rows(units),
            "units": [u.to_json() for u in units]}


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


def markdown(data: dict[str, Any]) -> str:
    lines = [f"# aim eval predictive: {data['model']} {', '.join(data['layers'])} (seed {data['seed']}, "
             f"scientist `{data['backend']}`)", "",
             f"Mean activation on the {data['n_prompts']} pooled prompts each label's selector predicts most "
             "(+) and least (-) activating; normalised: (+ minus -) / the unit's highest activation on the pool.",
             "", md_table(HEADERS, table_rows(data)), "", "## Units", ""]
    rows = [[u["layer"], u["unit"], *(u["methods"].get(m, {}).get("label", "—") for m in METHODS),
             *(u["methods"][m]["difference"] if m in u["methods"] else None for m in METHODS)] for u in data["units"]]
    lines += [md_table(["layer", "unit", *(f"{m} label" for m in METHODS), *(f"{m} +/-" for m in METHODS)], rows), ""]
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
