"""``aim eval synthetic``: interpret synthetic neurons whose answers are known, and score the labels.

The evaluation is a sweep (:func:`aim_agent.sweep.run.run_sweep`) over the set's units, whose
per-unit work is :func:`evaluate_unit`: for every unit of an evaluation set (the shipped neurons,
or fresh ones drawn from a seed) a sweep worker

1. runs the agent (the sweep's own interpretation run, any scientist backend) and takes its final
   labels;
2. makes the baseline labels from the unit's exemplars alone (:mod:`aim_agent.eval.baselines`);
3. reads the unit's ground truth from its unit source, after its run has ended;

and the driver appends one line to ``results.jsonl`` (a single ``write`` of a whole line; a torn
last line from a killed process is dropped when the file is read again). ``--workers N`` runs N
units at once on Ray, as ``aim sweep`` does; one worker runs them in this process.

Then it scores every label (strict concept match, the sentence-embedding 2AFC judge, retrieval
among the set's ground truths) and writes ``summary.json`` and ``summary.md``, with one table by
kind of neuron (mono / OR / conditional). Scores are always recomputed from ``results.jsonl`` with
the unit source's current ground truth, so a finished evaluation can be scored again for free.

Everything goes under ``runs/eval/<id>/`` (``--out`` to choose): ``eval.json`` (what was asked),
``results.jsonl``, ``runs/<unit>/`` (each agent run: result.json, report.html, ...),
``summary.json``, ``summary.md``, and the sweep's ``sweep.sqlite`` and ``index.html``. Running the
same command again continues where a killed evaluation stopped: the units of ``results.jsonl`` are
not run again (a failed agent run is a result: a wrong answer), a unit whose run was cut short is
resumed from its checkpoint, and a unit whose job failed (an error outside the agent's run, a
timeout, a dead worker: a failed row of ``sweep.sqlite``, no result) is tried again.

Units and answers come only through unit sources (hook ``aim_units``) that implement
:class:`aim_agent.eval.truth.EvaluableUnits`; the core never imports the world.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from pydantic import BaseModel, Field

from aim_agent.agent.config import RunConfig
from aim_agent.eval.baselines import (
    BASELINES,
    FREQUENT,
    ONE_SHOT,
    RANDOM,
    READS_SUMMARY,
    SHOWN_PER_UNIT,
    baseline_labels,
    exemplar_view,
)
from aim_agent.eval.truth import KIND_NAMES, KINDS, ConceptTruth, EvaluableUnits, UnitTruth

#: ``--set`` names and the unit sources they read; any other unit source is accepted by its own name
SETS: dict[str, str] = {"shipped": "synthetic", "fresh": "fresh"}
AGENT = "agent"
METHODS: tuple[str, ...] = (AGENT, *BASELINES)
METHOD_NAMES: dict[str, str] = {AGENT: "agent", **BASELINES}
RESULTS_FILE = "results.jsonl"
SPEC_FILE = "eval.json"
#: the key of :func:`evaluate_unit`'s data that holds the unit's :class:`UnitResult` (beside the sweep row's)
RESULT_KEY = "result"
Progress = Callable[[str], None]
#: the column heading of a baseline in the table of units
UNIT_COLUMNS: dict[str, str] = {ONE_SHOT: "one-shot", FREQUENT: "frequent", RANDOM: "random"}


class MethodLabel(BaseModel):
    """One method's final label for one unit, and what it cost."""

    label: str
    rounds: int = 0
    seconds: float = 0.0
    tokens: int = 0


class UnitResult(BaseModel):
    """One line of ``results.jsonl``: every method's label for one unit, and the unit's truth."""

    unit: str
    ref: str = Field(description="the unit as --synthetic names it, e.g. fresh:s7_3")
    run_id: str
    status: str = Field(description="the agent run's status: finished, stopped or failed")
    forced: str | None = None
    error: str | None = None
    labels: dict[str, MethodLabel]
    truth: UnitTruth


class EvalSpec(BaseModel):
    """What an evaluation is (``eval.json``); continuing one needs the same spec."""

    set: str
    source: str
    seed: int
    units: list[str]
    config: dict[str, Any] = Field(description="the run config of every unit (its unit and run id aside)")


class TableRow(BaseModel):
    """One row of the table by kind: one method's mean scores over the units of one kind (None: not scored)."""

    kind: str = Field(description="a kind of neuron (mono, or, conditional) or 'all'")
    method: str = Field(description="'agent' or a baseline's name")
    n: int = Field(description="units of that kind")
    strict: float | None = Field(description="share of labels that name every ground-truth concept")
    concepts: float | None = Field(description="mean share of ground-truth concepts named")
    two_afc: float | None = Field(description="the judge's 2AFC (None without the judge)")
    retrieval: float | None = Field(description="the judge's top-1 retrieval among the set's truths (None without it)")
    mentions: float | None = Field(description="mean vocabulary concepts a label names")
    rounds: float | None = Field(description="mean rounds")
    seconds: float | None = Field(description="mean seconds per unit")
    tokens: float | None = Field(description="mean tokens per unit")


class HeadToHead(BaseModel):
    """The agent against one baseline on the units of one kind (by the judge)."""

    kind: str = Field(description="a kind of neuron or 'all'")
    baseline: str = Field(description="the baseline's name")
    n: int = Field(description="units of that kind")
    agent_preferred: float | None = Field(description="share of units whose agent label is closer to the truth")


class EvalSummary(BaseModel):
    """What an evaluation found (``summary.json``): the scores (:func:`summarize`) and how the run went
    (:func:`run_eval`; None in a summary of scores alone)."""

    judge: str | None = Field(description="the judge's name; None when it is not installed or could not run")
    judge_note: str | None = Field(description="why there are no judge scores, when there are none")
    methods: list[str] = Field(description="'agent' and the baselines, in table order")
    method_names: dict[str, str] = Field(description="method -> what it is, in words")
    table: list[TableRow] = Field(description="mean scores by kind of neuron and method")
    head_to_head: list[HeadToHead] = Field(description="agent vs each baseline by kind (with the judge only)")
    neurons: list[dict[str, Any]] = Field(
        description="one record per unit: unit, ref, kind, ground_truth, run_id, status, forced, error, labels "
                    "(method -> MethodLabel) and scores (method -> strict, concepts, named, mentions, and with the "
                    "judge two_afc, retrieval, similarity)")
    failed: int = Field(description="agent runs that did not finish")
    set: str | None = Field(default=None, description="the evaluation set (--set)")
    source: str | None = Field(default=None, description="the unit source it reads")
    seed: int | None = Field(default=None, description="the set's seed")
    n: int | None = Field(default=None, description="units in the set")
    backend: str | None = Field(default=None, description="the scientist ('offline', or provider-model)")
    describer: str | None = Field(default=None, description="the describer of the runs")
    max_rounds: int | None = Field(default=None, description="the rounds each run may take")
    eval_dir: str | None = Field(default=None, description="the evaluation's folder")
    wall_time_s: float | None = Field(default=None, description="seconds this invocation took")
    ran_now: int | None = Field(default=None, description="units run by this invocation")
    reused: int | None = Field(default=None, description="units finished by an earlier invocation")
    agent_seconds_total: float | None = Field(default=None, description="seconds of all the agent's runs")
    workers: int | None = Field(default=None, description="sweep workers")
    index: str | None = Field(default=None, description="the sweep's index.html")
    unevaluated: list[dict[str, Any]] = Field(
        default_factory=list, description="units whose job failed ({'unit', 'error'}); the same command tries again")


class JudgeScores(NamedTuple):
    """The embedding judge's scores of every method's labels (empty when the judge is not installed)."""

    judge: str | None
    """the judge's name, None without it"""
    scores: dict[str, dict[str, np.ndarray]]
    """method -> {'two_afc': per unit, 'retrieval': per unit}"""
    own: dict[str, np.ndarray]
    """method -> each label's similarity to its own unit's truth (-inf for an empty label)"""
    note: str | None
    """why there are no scores, when there are none"""


def resolve_set(name: str) -> str:
    """The unit source an evaluation set reads: ``shipped`` -> ``synthetic``, ``fresh`` -> ``fresh``."""
    return SETS.get(name, name)


def evaluable_source(source: str) -> EvaluableUnits:
    """The unit source ``source``, checked to offer units and answers for evaluation."""
    from aim_agent.plugins import plugin_manager

    found = plugin_manager().provider("units", source)
    if not isinstance(found, EvaluableUnits):
        missing = [m for m in ("eval_units", "ground_truth", "vocabulary") if not callable(getattr(found, m, None))]
        raise LookupError(f"the unit source {source!r} has no known answers to evaluate against (it lacks "
                          f"{', '.join(missing)}); evaluation sets: {', '.join(SETS)}")
    return found


def default_eval_id(set_name: str, seed: int, n: int, backend: str) -> str:
    """``fresh-s7-n60-offline``: the same command names the same folder, so running it again continues."""
    from aim_agent.sweep.units import slug

    return slug(f"{set_name}-s{seed}-n{n}-{backend}", empty="eval")


# --------------------------------------------------------------------------------------------- results file


def read_results(path: Path) -> dict[str, UnitResult]:
    """The finished units of ``results.jsonl``; a torn last line (a killed writer) is cut off the file."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        with path.open("r+b") as fh:
            fh.truncate(keep)
        data = data[:keep]
    found: dict[str, UnitResult] = {}
    for line in data.decode().splitlines():
        if not line.strip():
            continue
        try:
            result = UnitResult.model_validate_json(line)
        except ValueError:
            continue
        found.setdefault(result.unit, result)
    return found


def append_result(path: Path, result: UnitResult) -> None:
    """Append one whole line in one ``write`` and sync it: a kill leaves the line whole or torn, never mixed."""
    line = (result.model_dump_json() + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------- one unit


def evaluate_unit(payload: dict[str, Any]) -> dict[str, Any]:
    """The sweep work of one unit of an evaluation: the agent's run, the baselines, then the unit's truth.

    ``payload`` is a sweep's (``unit``, ``config``, ``out_dir``, and ``args``: ``source`` and ``seed``).
    Returns the sweep row's data (:func:`aim_agent.sweep.worker.interpret_row`: a run folder left by
    a killed evaluation is resumed, not started again) with the :class:`UnitResult` under ``RESULT_KEY``.
    """
    from aim_agent.plugins import plugin_manager
    from aim_agent.sweep.worker import interpret_row

    row = interpret_row(payload)  # a failed run is a wrong answer, not the end of the evaluation
    config = RunConfig.model_validate(payload["config"])
    unit, source, seed = payload["unit"], payload["args"]["source"], int(payload["args"]["seed"])
    agent = MethodLabel(label=row.label, rounds=row.rounds, seconds=row.seconds, tokens=row.tokens)
    evaluable = evaluable_source(source)
    view = exemplar_view(plugin_manager().unit_system(source, unit), config)
    vocabulary = list(evaluable.vocabulary())
    labels = {AGENT: agent}
    per_baseline = round(view.seconds, 3)
    for name, label in baseline_labels(view, vocabulary, seed, unit).items():
        tokens = view.tokens if name in READS_SUMMARY else 0
        labels[name] = MethodLabel(label=label, seconds=per_baseline, tokens=tokens)
    truth = evaluable.ground_truth(unit)  # read only now: the run and the baselines are done
    result = UnitResult(unit=unit, ref=config.synthetic or unit, run_id=row.run_id, status=row.status,
                        forced=row.forced, error=row.error, labels=labels, truth=UnitTruth.model_validate(truth))
    return {**row.model_dump(mode="json"), RESULT_KEY: result.model_dump(mode="json")}


# --------------------------------------------------------------------------------------------- the evaluation


def prepare(out_dir: Path, spec: EvalSpec) -> None:
    """Create ``out_dir`` with ``eval.json``, or check that the evaluation there is the same one."""
    path = out_dir / SPEC_FILE
    if path.exists():
        stored = EvalSpec.model_validate_json(path.read_text())
        if stored.model_dump() != spec.model_dump():
            diff = [k for k in ("set", "source", "seed", "units", "config")
                    if getattr(stored, k) != getattr(spec, k)]
            raise ValueError(f"{out_dir} holds another evaluation (its {', '.join(diff)} differ): "
                             "choose another folder with --out, or delete that one to start again")
        return
    from aim_agent.files import atomic_write

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (spec.model_dump_json(indent=2) + "\n").encode())


def run_eval(
    *,
    set_name: str,
    seed: int,
    n: int | None,
    template: RunConfig,
    out_dir: Path | None = None,
    runs_root: Path | None = None,
    backend_label: str = "offline",
    workers: int = 1,
    address: str | None = None,
    unit_timeout_s: float | None = None,
    gpus_per_worker: float = 0.0,
    plugins: Sequence[str] = (),
    progress: Progress | None = None,
    live: bool = False,
) -> EvalSummary:
    """Evaluate the agent and the baselines on a set of synthetic neurons; the summary (also written to disk).

    The units run as a sweep in ``out_dir`` (:func:`aim_agent.sweep.run.run_sweep`): on Ray with
    ``workers`` > 1 or a cluster ``address`` (then :class:`~aim_agent.sweep.engine.SweepUnavailable`
    without Ray), else one after another in this process.
    """
    from aim_agent.sweep.engine import function_ref
    from aim_agent.sweep.run import SweepPlan, executor_for, run_sweep
    from aim_agent.sweep.store import SweepStore, UnitRow

    say = progress or (lambda _line: None)
    started = time.monotonic()
    source = resolve_set(set_name)
    evaluable = evaluable_source(source)
    units = list(evaluable.eval_units(seed, n))
    if not units:
        raise ValueError(f"the set {set_name!r} has no units for seed {seed} and n={n}")
    if out_dir is None:
        out_dir = Path(runs_root or template.runs_dir) / "eval" / default_eval_id(set_name, seed, len(units),
                                                                                 backend_label)
    spec = EvalSpec(set=set_name, source=source, seed=seed, units=units,
                    config=template.model_copy(update={"synthetic": None, "run_id": None,
                                                       "runs_dir": "runs"}).public())
    prepare(out_dir, spec)
    results_path = out_dir / RESULTS_FILE
    done = read_results(results_path)

    def record(_row: UnitRow, data: dict[str, Any] | None) -> None:
        if data is None:  # the job failed: its row in sweep.sqlite says why, and a rerun tries it again
            return
        result = UnitResult.model_validate(data[RESULT_KEY])
        append_result(results_path, result)
        done[result.unit] = result

    plan = SweepPlan(out_dir=out_dir, template=template, units=units, source=source, workers=workers,
                     executor=executor_for(workers, address), address=address, unit_timeout_s=unit_timeout_s,
                     gpus_per_worker=gpus_per_worker, plugins=list(plugins), work=function_ref(evaluate_unit),
                     work_args={"source": source, "seed": seed})
    say(f"{set_name} set ({source}), seed {seed}")
    sweep = run_sweep(plan, progress=say, live=live, done=set(done), on_result=record)
    rows = {r.unit: r for r in SweepStore(out_dir).rows(units)}
    unevaluated = [{"unit": u, "error": (rows[u].error if u in rows else None) or "not run"}
                   for u in units if u not in done]

    # scored with the source's current truth (the line keeps the truth as it was read after the run)
    ordered = [done[u].model_copy(update={"truth": UnitTruth.model_validate(evaluable.ground_truth(u))})
               for u in units if u in done]
    summary = summarize(ordered, list(evaluable.vocabulary()), say=say).model_copy(update={
        "set": set_name, "source": source, "seed": seed, "n": len(units), "backend": backend_label,
        "describer": template.describer, "max_rounds": template.max_rounds,
        "eval_dir": str(out_dir), "wall_time_s": round(time.monotonic() - started, 1),
        "ran_now": sweep["ran"], "reused": sweep["skipped_finished"],
        "agent_seconds_total": round(sum(r.labels[AGENT].seconds for r in ordered), 1),
        "workers": sweep["workers"], "index": sweep["index"], "unevaluated": unevaluated,
    })
    write_summary(out_dir, summary)
    return summary


# --------------------------------------------------------------------------------------------- scoring


def _judge_scores(results: list[UnitResult], say: Progress) -> JudgeScores:
    """2AFC, retrieval and similarity-to-own-truth per method (empty when the judge is not installed)."""
    from aim_agent.eval.judge import JudgeUnavailable, load_judge, retrieval, two_afc

    try:
        judge = load_judge()
    except JudgeUnavailable as exc:
        say(str(exc))
        return JudgeScores(None, {}, {}, str(exc))
    truths = [r.truth.label for r in results]
    truth_vecs = judge.embed(truths)
    scores: dict[str, dict[str, np.ndarray]] = {}
    own: dict[str, np.ndarray] = {}
    for method in METHODS:
        labels = [r.labels[method].label for r in results]
        sim = judge.embed(labels) @ truth_vecs.T
        empty = np.array([not label.strip() for label in labels])
        afc, top1 = two_afc(sim), retrieval(sim)
        afc[empty], top1[empty] = 0.0, 0.0  # no label: the judge cannot pick it
        diag = np.diag(sim).copy()
        diag[empty] = -np.inf
        scores[method] = {"two_afc": afc, "retrieval": top1}
        own[method] = diag
    return JudgeScores(judge.name, scores, own, None)


def _mean(values: Sequence[float]) -> float | None:
    clean = [v for v in values if v is not None and not np.isnan(v)]
    return round(float(np.mean(clean)), 4) if clean else None


def summarize(results: list[UnitResult], vocabulary: list[ConceptTruth], *, say: Progress | None = None
              ) -> EvalSummary:
    """Scores per unit and the tables by kind (see :func:`write_summary` for the columns)."""
    from aim_agent.eval.judge import head_to_head as pairwise
    from aim_agent.eval.score import named_count, strict_score

    say = say or (lambda _line: None)
    judge, judged, own, judge_note = _judge_scores(results, say) if len(results) > 1 else JudgeScores(None, {}, {},
                                                                                                        None)
    if len(results) <= 1:
        judge_note = "the judge needs two or more units"
    neurons: list[dict[str, Any]] = []
    for i, r in enumerate(results):
        scores = {}
        for method in METHODS:
            label = r.labels[method].label
            strict = strict_score(label, r.truth)
            entry: dict[str, Any] = {"strict": strict.correct, "concepts": round(strict.fraction, 4),
                                     "named": strict.named, "mentions": named_count(label, vocabulary)}
            if judged:
                entry["two_afc"] = round(float(judged[method]["two_afc"][i]), 4)
                entry["retrieval"] = bool(judged[method]["retrieval"][i])
                entry["similarity"] = None if np.isinf(own[method][i]) else round(float(own[method][i]), 4)
            scores[method] = entry
        neurons.append({"unit": r.unit, "ref": r.ref, "kind": r.truth.kind, "ground_truth": r.truth.label,
                        "run_id": r.run_id, "status": r.status, "forced": r.forced, "error": r.error,
                        "labels": {m: r.labels[m].model_dump() for m in METHODS}, "scores": scores})
    table: list[TableRow] = []
    head_to_head: list[HeadToHead] = []
    for kind in (*KINDS, "all"):
        rows = [i for i, r in enumerate(results) if kind == "all" or r.truth.kind == kind]
        if not rows:
            continue
        for method in METHODS:
            picked = [neurons[i]["scores"][method] for i in rows]
            labels = [results[i].labels[method] for i in rows]
            table.append(TableRow(
                kind=kind, method=method, n=len(rows),
                strict=_mean([float(s["strict"]) for s in picked]),
                concepts=_mean([s["concepts"] for s in picked]),
                two_afc=_mean([s["two_afc"] for s in picked]) if judged else None,
                retrieval=_mean([float(s["retrieval"]) for s in picked]) if judged else None,
                mentions=_mean([float(s["mentions"]) for s in picked]),
                rounds=_mean([float(x.rounds) for x in labels]),
                seconds=_mean([x.seconds for x in labels]),
                tokens=_mean([float(x.tokens) for x in labels]),
            ))
        if own:
            for method in BASELINES:
                wins = pairwise(own[AGENT][rows], own[method][rows])
                head_to_head.append(HeadToHead(kind=kind, baseline=method, n=len(rows),
                                               agent_preferred=_mean(list(wins))))
    return EvalSummary(judge=judge, judge_note=judge_note, methods=list(METHODS), method_names=METHOD_NAMES,
                       table=table, head_to_head=head_to_head, neurons=neurons,
                       failed=sum(1 for r in results if r.status != "finished"))


# --------------------------------------------------------------------------------------------- writing


def _fmt(value: Any, digits: int = 2) -> str:
    """A table cell (:func:`aim_agent.eval.pages.fmt`), two places unless told."""
    from aim_agent.eval.pages import fmt

    return fmt(value, digits)


def markdown(summary: EvalSummary) -> str:
    """The summary as Markdown: parameters, the table by kind, agent vs baselines, every unit."""
    lines = [
        f"# aim eval synthetic: {summary.set} set, seed {summary.seed}, n={summary.n}",
        "",
        f"scientist `{summary.backend}`, describer `{summary.describer}`, "
        f"max rounds {summary.max_rounds}, judge `{summary.judge or 'not installed'}`; "
        f"agent runs {_fmt(summary.agent_seconds_total, 0)} s in all; "
        f"this invocation {_fmt(summary.wall_time_s, 1)} s "
        f"({summary.ran_now} units run now, {summary.reused} from an earlier run); "
        f"failed agent runs: {summary.failed}.",
        "",
    ]
    if summary.unevaluated:
        lines += ["Not evaluated (the unit's job failed; the same command again tries it again): "
                  + "; ".join(f"{u['unit']} ({u['error'][:120]})" for u in summary.unevaluated), ""]
    lines += [
        "| kind | method | n | strict | concepts | 2AFC | retrieval | mentions | rounds | s/neuron | tokens/neuron |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    names = summary.method_names
    for row in summary.table:
        kind = KIND_NAMES.get(row.kind, row.kind)
        lines.append(
            f"| {kind} | {names.get(row.method, row.method)} | {row.n} | {_fmt(row.strict)} | "
            f"{_fmt(row.concepts)} | {_fmt(row.two_afc)} | {_fmt(row.retrieval)} | "
            f"{_fmt(row.mentions, 1)} | {_fmt(row.rounds, 1)} | {_fmt(row.seconds, 1)} | "
            f"{_fmt(row.tokens, 0)} |")
    if summary.head_to_head:
        lines += ["", "Agent vs baseline (MAIA's 2AFC, judged by the embedder: share of units whose agent label "
                  "is closer to the ground truth):", "", "| kind | n | "
                  + " | ".join(f"vs {names.get(b, b)}" for b in BASELINES) + " |",
                  "|---|---:|" + "---:|" * len(BASELINES)]
        by_kind: dict[str, dict[str, Any]] = {}
        for pair in summary.head_to_head:
            by_kind.setdefault(pair.kind, {"n": pair.n})[pair.baseline] = pair.agent_preferred
        for kind, cells in by_kind.items():
            lines.append(f"| {KIND_NAMES.get(kind, kind)} | {cells['n']} | "
                         + " | ".join(_fmt(cells.get(b)) for b in BASELINES) + " |")
    if summary.judge_note:
        lines += ["", f"Judge: {summary.judge_note}"]
    lines += ["", "## Units", "", "| unit | kind | ground truth | agent | strict | "
              + " | ".join(UNIT_COLUMNS[b] for b in SHOWN_PER_UNIT) + " |",
              "|---|---|---|---|:-:|" + "---|" * len(SHOWN_PER_UNIT)]
    def cell(text: str) -> str:
        return text.replace("|", "/").replace("\n", " ")[:90]

    for u in summary.neurons:
        mark = "✓" if u["scores"][AGENT]["strict"] else "✗"
        lines.append(f"| {u['unit']} | {KIND_NAMES[u['kind']]} | {cell(u['ground_truth'])} | "
                     f"{cell(u['labels'][AGENT]['label'])} | {mark} | "
                     + " | ".join(cell(u["labels"][b]["label"]) for b in SHOWN_PER_UNIT) + " |")
    lines += ["", "Columns: docs/evaluation.md.", ""]
    return "\n".join(lines)


def write_summary(out_dir: Path, summary: EvalSummary) -> None:
    """``summary.json`` and ``summary.md`` in ``out_dir``, atomically."""
    from aim_agent.files import atomic_write

    atomic_write(out_dir / "summary.json", (json.dumps(summary.model_dump(mode="json"), indent=2) + "\n").encode())
    atomic_write(out_dir / "summary.md", markdown(summary).encode())
