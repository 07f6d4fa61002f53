"""``aim eval units``: the agent's labels of real units against a dissection reference.

For ``n`` random units of a layer (units that fire somewhere on the dataset), the agent interprets each
unit (a full ``aim interpret`` run) and its label is compared with the unit's Network Dissection
reference (:mod:`aim_agent.eval.dissect`): a **match** when the label names the reference concept (the
IoU label) or its category ("animals" for a dog unit).

The runs are a sweep of those units (:func:`aim_agent.sweep.run.run_sweep`, ``aim sweep``'s engine:
``--workers N`` on Ray, one worker in this process), in one folder with its ``sweep.sqlite``,
``index.html`` and ``runs/<unit>/``; the same command again skips the units that finished and scores
them again. The scoring below runs in this process once the sweep is done.

Where they disagree, neither is taken on trust: **controlled renders** decide. Each candidate concept
(the IoU reference, the AUC reference, the agent's concepts) is drawn alone on several backgrounds, and
random scenes without any candidate are the controls; the unit is measured on all of them, and the
candidate that best separates its images from the controls (AUC, then mean activation) is the one the
unit *follows*.

A second reference does not depend on the dataset's co-occurrences: the **render dissection**
(:mod:`aim_agent.eval.render_dissect`: every concept of the vocabularies drawn alone, with controls, the
whole layer measured once and cached). Per unit the evaluation reports whether the label's main concept
(the first it names) agrees with each reference, how many concepts the label names, its **precision**
(the share of those concepts that fire alone in the render dissection: AUC against their controls at
least :data:`~aim_agent.eval.render_dissect.FIRES_ALONE`), whether the run was forced, and its
**repeated proposals** (read from the run's ``log.jsonl``: a ``hypothesis`` entry whose proposal is the
same as the one before it, its free-text thoughts aside).
"""

from __future__ import annotations

import json
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from aim_agent.agent.critic import mentions_any
from aim_agent.eval import render_dissect as rd
from aim_agent.eval.dissect import Dissection, dissect
from aim_agent.providers import drawn_images
from aim_agent.sweep.units import slug
from aim_agent.vocabulary import ConceptInfo, Vocabularies, installed_vocabularies

RENDERS = 8  # images per candidate concept, and controls


@dataclass
class RenderCheck:
    """A candidate concept drawn alone ``n`` times against ``n`` controls, measured on the unit."""

    concept: str
    role: str  # "reference (IoU)", "reference (AUC)", "agent"
    mean: float
    control_mean: float
    auc: float
    n: int


@dataclass
class UnitResult:
    unit: int
    labels: list[str]
    description: str
    confidence: float
    forced: str | None
    run_dir: str
    reference: str | None  # IoU concept
    reference_iou: float | None
    auc_concept: str | None
    auc: float | None
    agent_concepts: list[str]
    match: bool  # the labels name the IoU reference or its category
    match_auc: bool  # ... the AUC reference or its category
    match_main: bool  # the label's main concept (the first it names) is the IoU reference or its category
    renders: list[RenderCheck] = field(default_factory=list)
    follows: str | None = None  # the candidate the unit follows on controlled renders
    follows_role: str | None = None
    rounds: int = 0
    # proposals the agent refused as repeats of earlier ones, plus logged proposals the same as the one before
    repeated_proposals: int = 0
    open_objections: int = 0  # critic objections the conclusion stands over (escalated, not answered)
    render_reference: str | None = None  # the render dissection's concept; None: no clear concept
    render_best: str | None = None  # its best concept, clear or not
    render_auc: float | None = None  # the best concept's AUC
    match_render_main: bool = False  # the label's main concept is the render reference or its category
    fires_alone: list[str] = field(default_factory=list)  # the label's concepts that fire alone (render dissection)
    precision: float | None = None  # len(fires_alone) / len(agent_concepts); None when the label names none


@dataclass
class Unevaluated:
    """A unit whose run left no record to score (its job failed); the same command again runs it again."""

    unit: int
    error: str


@dataclass
class UnitsEvaluation:
    model: str
    layer: str
    dataset: str
    seed: int
    units: list[UnitResult]
    dissection_cache: str | None = None
    render_dissection_cache: str | None = None
    sweep_dir: str | None = None  # the sweep of the units' runs: sweep.sqlite, index.html, runs/<unit>/
    unevaluated: list[Unevaluated] = field(default_factory=list)

    @property
    def agreement(self) -> float:
        return sum(u.match for u in self.units) / len(self.units) if self.units else 0.0

    def summary(self) -> dict[str, Any]:
        n = len(self.units)
        disagree = [u for u in self.units if not u.match]
        named = sum(len(u.agent_concepts) for u in self.units)
        return {
            "units": n,
            "match_iou_reference": sum(u.match for u in self.units),
            "match_auc_reference": sum(u.match_auc for u in self.units),
            "match_either": sum(u.match or u.match_auc for u in self.units),
            "match_main_concept": sum(u.match_main for u in self.units),
            "concepts_per_label": round(statistics.fmean(len(u.agent_concepts) for u in self.units), 2)
            if self.units else 0.0,
            "concepts_per_label_median": statistics.median(len(u.agent_concepts) for u in self.units)
            if self.units else 0.0,
            "match_main_render_reference": sum(u.match_render_main for u in self.units),
            "render_reference_unclear": sum(u.render_best is not None and u.render_reference is None
                                            for u in self.units),
            # the share of all named concepts (over every label) that fire alone in the render dissection
            "precision": round(sum(len(u.fires_alone) for u in self.units) / named, 4) if named else None,
            "repeated_proposals": sum(u.repeated_proposals for u in self.units),
            "runs_with_repeated_proposals": sum(u.repeated_proposals > 0 for u in self.units),
            "agreement": round(self.agreement, 4),
            "disagreements": len(disagree),
            "renders_follow_agent": sum(u.follows_role == "agent" for u in disagree),
            "renders_follow_reference": sum(bool(u.follows_role and u.follows_role.startswith("reference"))
                                            for u in disagree),
            "forced_conclusions": sum(bool(u.forced) for u in self.units),
            "conclusions_over_open_objections": sum(u.open_objections > 0 for u in self.units),
            "median_rounds": statistics.median(u.rounds for u in self.units) if self.units else 0,
            "unevaluated": len(self.unevaluated),
        }

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "layer": self.layer, "dataset": self.dataset, "seed": self.seed,
                "dissection_cache": self.dissection_cache,
                "render_dissection_cache": self.render_dissection_cache, "sweep_dir": self.sweep_dir,
                "summary": self.summary(),
                "units": [asdict(u) for u in self.units], "unevaluated": [asdict(u) for u in self.unevaluated]}


def names_concept(labels: Sequence[str], info: ConceptInfo) -> bool:
    """Whether the labels name the concept (any of its words) or its category."""
    text = " ; ".join(labels)
    return mentions_any(text, [*info.words, *info.category_words])


def label_concepts(labels: Sequence[str], vocabularies: Vocabularies) -> list[ConceptInfo]:
    """Every concept the labels name, in order (the first is the main one: 'dog' of 'dog, only when a leash
    is present'; 'dog' of 'dog, cat or cow'). Each label is read by the first installed vocabulary that finds a
    concept in it, so one word is one concept ('dog' is not also WordNet's dog)."""
    out: dict[str, ConceptInfo] = {}
    for label in labels:
        for v in vocabularies.items:
            found = v.concepts_in(label)
            if found:
                for c in found:
                    out.setdefault(c.key, c)
                break
    return list(out.values())


def main_names(agent: Sequence[ConceptInfo], reference: ConceptInfo | None) -> bool:
    """Whether the label's main concept (the first of ``agent``) is ``reference`` or its category."""
    return bool(reference and agent and names_concept(list(agent[0].words[:1]), reference))


def render_verdict(agent: Sequence[ConceptInfo], renders: rd.RenderDissection, unit: int) -> dict[str, Any]:
    """The label's concepts ``agent`` against the render dissection of ``unit``: the reference (None: no clear
    concept), whether the main concept names it, which concepts fire alone and the label's precision (a concept
    the dissection could not draw alone does not fire alone)."""
    ref = renders.reference(unit)
    fires = [c.key for c in agent if renders.fires_alone(c.key, unit)]
    return {"render_reference": ref.concept, "render_best": ref.best.concept if ref.best else None,
            "render_auc": ref.best.auc if ref.best else None,
            "match_render_main": main_names(agent, renders.concept(ref.concept) if ref.concept else None),
            "fires_alone": fires, "precision": round(len(fires) / len(agent), 4) if agent else None}


def repeated_proposals(run_dir: str | Path) -> int:
    """How many of the run's proposals repeat the one before (``log.jsonl``: consecutive ``hypothesis`` entries
    whose proposals are the same, the free-text thoughts aside); 0 when the run has no log."""
    path = Path(run_dir) / "log.jsonl"
    if not path.is_file():
        return 0
    count, previous = 0, None
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        if entry.get("kind") != "hypothesis":
            continue
        proposal = dict((entry.get("data") or {}).get("proposal") or {})
        proposal.pop("thoughts", None)
        count += previous is not None and proposal == previous
        previous = proposal
    return count


def live_units(result: Dissection) -> list[int]:
    """Units that fire somewhere on the dataset and have a reference label."""
    return [u.unit for u in result.units if not u.dead and u.iou]


def pick_units(result: Dissection, n: int, seed: int) -> list[int]:
    live = live_units(result)
    if not live:
        raise ValueError(f"no unit of {result.layer} fires on {result.dataset}: nothing to evaluate")
    return sorted(random.Random(seed).sample(live, min(n, len(live))))


def _auc(pos: Sequence[float], neg: Sequence[float]) -> float:
    if not pos or not neg:
        return 0.5
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


def render_checks(system: Any, candidates: Sequence[tuple[str, str]], vocabularies: Vocabularies,
                  generate: Callable[[list[str]], list[Any]], n: int = RENDERS) -> list[RenderCheck]:
    """Each candidate ``(concept key, role)`` drawn alone ``n`` times vs ``n`` shared controls, on the unit."""
    owners = {key: vocabularies.owner(key) for key, _ in candidates}
    known = [(key, role) for key, role in candidates if owners[key] is not None]
    if not known:
        return []
    vocabulary = owners[known[0][0]][0]  # type: ignore[index]
    controls = vocabulary.control_prompts([key for key, _ in known], n)
    prompts = {key: owners[key][0].concept_prompts(key, n) for key, _ in known}  # type: ignore[index]
    every = [*controls, *(p for key, _ in known for p in prompts[key])]
    acts = [float(a) for a in system.activations(generate(every)).activations]
    control_acts = acts[: len(controls)]
    out, at = [], len(controls)
    for key, role in known:
        mine = acts[at : at + len(prompts[key])]
        at += len(prompts[key])
        out.append(RenderCheck(concept=key, role=role, mean=round(statistics.fmean(mine), 4) if mine else 0.0,
                               control_mean=round(statistics.fmean(control_acts), 4) if control_acts else 0.0,
                               auc=round(_auc(mine, control_acts), 4), n=len(mine)))
    return out


def units_dir(runs_dir: str | Path, model: str, layer: str, seed: int, n: int, backend: str, mode: str) -> Path:
    """The evaluation's sweep folder: ``runs_dir/<model>-<layer>-s<seed>-n<n>-<backend>-<mode>`` (the same command
    names the same folder, so running it again continues)."""
    return Path(runs_dir) / slug(f"{model}-{layer}-s{seed}-n{n}-{backend}-{mode}", empty="eval-units")


def evaluate_units(
    model: str,
    layer: str,
    *,
    n: int = 30,
    seed: int = 0,
    dataset: str | None = None,
    backend: str = "offline",
    mode: str = "tools",
    runs_dir: str | Path = "runs/eval-units",
    max_rounds: int | None = None,
    image_size: int = 224,
    workers: int = 1,
    address: str | None = None,
    unit_timeout_s: float | None = None,
    gpus_per_worker: float = 0.0,
    progress: Callable[[str], None] | None = None,
    live: bool = False,
    on_unit: Callable[[UnitsEvaluation], None] | None = None,
    score_only: bool = False,
) -> UnitsEvaluation:
    """Run the agent on ``n`` random live units of ``layer`` (a sweep in :func:`units_dir`) and compare its labels
    with the dissection; ``on_unit`` gets the evaluation so far after every unit it scores. ``score_only``: run
    nothing, score the units whose runs finished (the others are unevaluated)."""
    from aim_agent.agent.backends import BackendSpec
    from aim_agent.agent.config import RunConfig
    from aim_agent.agent.record import RunRecordError, read_run_record
    from aim_agent.models.probe import open_probe
    from aim_agent.plugins import plugin_manager
    from aim_agent.sweep.run import SweepPlan, executor_for, run_sweep
    from aim_agent.sweep.store import SweepStore
    from aim_agent.sweep.units import run_id_of
    from aim_agent.system import System

    say = progress or (lambda _line: None)
    probe = open_probe(model, layer)
    reference = dissect(probe, dataset)
    vocabularies = installed_vocabularies()
    text2image = plugin_manager().provider("text2image", "world")

    def generate(prompts: list[str]) -> list[Any]:
        return drawn_images(text2image.generate(prompts, size=image_size, seed=seed))

    picked = pick_units(reference, n, seed)
    values: dict[str, Any] = {"model": model, "layer": layer, "unit": picked[0], "backend": BackendSpec.parse(backend),
                              "mode": mode, "seed": seed, "exemplar_dataset": dataset, "image_size": image_size,
                              "max_rounds": max_rounds}
    template = RunConfig(**{k: v for k, v in values.items() if v is not None})
    out_dir = units_dir(runs_dir, model, layer, seed, n, backend, mode)
    plan = SweepPlan(out_dir=out_dir, template=template, units=[str(u) for u in picked], workers=workers,
                     executor=executor_for(workers, address), address=address, unit_timeout_s=unit_timeout_s,
                     gpus_per_worker=gpus_per_worker)
    if not score_only:
        run_sweep(plan, progress=say, live=live)
    # the render dissection only scores: drawn after the runs, so they start at once (a fresh one takes minutes)
    renders = rd.render_dissect(probe, text2image, vocabularies=vocabularies, seed=seed, image_size=image_size)
    say(f"render dissection of {layer}: {len(renders.concepts)} concepts, {renders.images} images "
        f"({'cached' if renders.from_cache else f'{renders.seconds:.0f} s'})")
    rows = {r.unit: r for r in SweepStore(out_dir).rows()} if (out_dir / "sweep.sqlite").is_file() else {}

    evaluation = UnitsEvaluation(model=model, layer=layer, dataset=reference.dataset, seed=seed, units=[],
                                 dissection_cache=reference.cache_path,
                                 render_dissection_cache=renders.cache_path, sweep_dir=str(out_dir))
    for unit in picked:
        run_dir = out_dir / "runs" / run_id_of(str(unit))
        try:
            record = read_run_record(run_dir)
        except RunRecordError as exc:  # its job failed before the run wrote a record
            stored = rows.get(str(unit))
            error = (stored.error if stored else None) or str(exc)
            evaluation.unevaluated.append(Unevaluated(unit=unit, error=error))
            say(f"unit {unit}: not evaluated ({error[:200]})")
            continue
        if score_only and record.status != "finished":  # cut short by the deadline that stopped the evaluation
            evaluation.unevaluated.append(Unevaluated(unit=unit, error=f"run {record.status}, not finished"))
            continue
        ref = reference.units[unit]
        conclusion = record.conclusion
        labels = list(conclusion.labels) if conclusion else []
        ref_info = reference.concept(ref.iou_concept) if ref.iou_concept else None
        auc_info = reference.concept(ref.auc_concept) if ref.auc_concept else None
        agent = label_concepts(labels, vocabularies)
        row = UnitResult(
            unit=unit, labels=labels, description=conclusion.description if conclusion else "",
            confidence=conclusion.confidence if conclusion else 0.0, forced=record.forced, run_dir=str(run_dir),
            rounds=record.rounds_run,
            # two disjoint counts: a refused proposal is replaced before it is logged, so the log never shows it
            repeated_proposals=record.repeated_proposals + repeated_proposals(run_dir),
            open_objections=len(conclusion.open_objections) if conclusion else 0,
            reference=ref.iou_concept, reference_iou=ref.iou[0].score if ref.iou else None,
            auc_concept=ref.auc_concept, auc=ref.auc[0].score if ref.auc else None,
            agent_concepts=[c.key for c in agent],
            match=bool(ref_info and names_concept(labels, ref_info)),
            match_auc=bool(auc_info and names_concept(labels, auc_info)),
            match_main=main_names(agent, ref_info),
            **render_verdict(agent, renders, unit),
        )
        if not row.match:
            candidates = [(k, r) for k, r in ((ref.iou_concept, "reference (IoU)"), (ref.auc_concept,
                                                                                      "reference (AUC)")) if k]
            candidates += [(c.key, "agent") for c in agent[:2]]  # its main concepts
            roles: dict[str, str] = {}
            for key, role in candidates:
                roles.setdefault(key, role)  # a concept that is both reference and agent's: a reference
            candidates = list(roles.items())
            row.renders = render_checks(System(probe, unit), candidates, vocabularies, generate)
            if row.renders:
                best = max(row.renders, key=lambda r: (r.auc, r.mean - r.control_mean))
                row.follows, row.follows_role = best.concept, best.role
        evaluation.units.append(row)
        verdict = "match" if row.match else f"differs (renders follow {row.follows or '?'})"
        say(f"unit {unit}: agent {labels} vs reference {ref.iou_concept} (IoU {row.reference_iou}): {verdict}; "
            f"render reference {row.render_reference or rd.NO_CLEAR} "
            f"(main concept {'agrees' if row.match_render_main else 'differs'}), "
            f"precision {row.precision}, repeated proposals {row.repeated_proposals}")
        if on_unit is not None:
            on_unit(replace(evaluation, units=list(evaluation.units), unevaluated=list(evaluation.unevaluated)))
    return evaluation


def units_table(evaluation: UnitsEvaluation) -> Any:
    """A rich table: per unit, the agent's label, the references, the verdict, what the renders say."""
    from rich.table import Table

    s = evaluation.summary()
    precision = "-" if s["precision"] is None else f"{s['precision']:.2f}"
    table = Table(title=f"agent vs dissection: {evaluation.model} {evaluation.layer}, {s['units']} random units "
                        f"(seed {evaluation.seed}): {s['match_iou_reference']}/{s['units']} labels name the "
                        f"reference, {s['match_main_concept']}/{s['units']} as their main concept; main concept is "
                        f"the render-dissection reference {s['match_main_render_reference']}/{s['units']} "
                        f"({s['render_reference_unclear']} with no clear concept); concepts per label (median) "
                        f"{s['concepts_per_label_median']}; precision {precision}; forced {s['forced_conclusions']}; "
                        f"repeated proposals {s['repeated_proposals']} in {s['runs_with_repeated_proposals']} runs")
    for name in ("unit", "agent label", "reference (IoU)", "AUC concept", "match", "controlled renders",
                 "render reference", "main = render ref", "fire alone", "repeats"):
        table.add_column(name, justify="right" if name in ("unit", "repeats") else "left", overflow="fold")
    for u in evaluation.units:
        renders = ""
        if u.renders:
            parts = [f"{r.concept} {r.auc:.2f}" for r in sorted(u.renders, key=lambda r: -r.auc)]
            renders = f"follows {u.follows} ({u.follows_role}); AUC " + ", ".join(parts)
        table.add_row(str(u.unit), "; ".join(u.labels) + (" [forced]" if u.forced else ""),
                      f"{u.reference} ({u.reference_iou:.3f})" if u.reference_iou is not None else "-",
                      f"{u.auc_concept} ({u.auc:.2f})" if u.auc is not None else "-",
                      ("main" if u.match_main else "yes") if u.match else ("AUC only" if u.match_auc else "no"),
                      renders,
                      f"{u.render_reference or rd.NO_CLEAR} ({u.render_best} {u.render_auc:.2f})"
                      if u.render_auc is not None else "-",
                      "yes" if u.match_render_main else "no",
                      f"{len(u.fires_alone)}/{len(u.agent_concepts)}", str(u.repeated_proposals))
    return table
