"""``run_sweep``: interpret every unit of a layer (or of a unit source), resumably, on Ray.

1. The units are resolved and checked (``--units all|0-63|0,5,9-12`` against the layer's width).
2. ``DIR/sweep.sqlite`` remembers what the sweep is (the same folder refuses another sweep) and
   which units are finished: those are skipped.
3. The layer's exemplars are computed once, in this process, before any worker starts; the
   workers read them from the exemplar cache (``AIM_CACHE``, which a cluster must share).
4. The units run as jobs of :func:`aim_agent.sweep.engine.run_jobs`: one interpretation run each
   (:func:`aim_agent.sweep.worker.interpret_unit`, or the plan's own ``work``, such as an
   evaluation's) in ``DIR/runs/<unit>/``, on workers that load the world and the model once; each
   result is written to the table as it arrives.
5. ``DIR/index.html`` is rewritten at the end, however the sweep ends.

``aim sweep`` is this; ``aim eval synthetic`` and ``aim eval units`` are this plus their scoring.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aim_agent.agent.config import RunConfig
from aim_agent.sweep.engine import Executor, JobOutcome, UnitJob, run_jobs
from aim_agent.sweep.index import write_index
from aim_agent.sweep.progress import SweepProgress
from aim_agent.sweep.store import SweepStore, UnitRow
from aim_agent.sweep.units import parse_units, run_id_of
from aim_agent.sweep.worker import interpret_unit, worker_setup

#: the default per-unit work: one interpretation run, summarised as a row of the table
INTERPRET = f"{interpret_unit.__module__}:{interpret_unit.__qualname__}"

#: config fields that may change between a sweep and its rerun (budgets, where runs go)
_MAY_CHANGE = {"max_rounds", "max_tokens", "max_cost", "max_seconds", "run_id", "runs_dir", "unit", "synthetic"}


class SweepPlan(BaseModel):
    """What to sweep and how: the units, the run config every unit gets, the workers and the budgets."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    out_dir: Path
    template: RunConfig = Field(description="the run config of every unit (its unit and run id are set per unit)")
    units: str | list[str] = Field(default="all", description="all, a range 0-63, a list 0,5,9-12; or a list of "
                                   "the units themselves (indices of a layer, names of a unit source)")
    source: str | None = Field(default=None, description="a unit source (--synthetic): its units instead of a layer's")
    workers: int = Field(default=1, ge=1, le=1024)
    executor: Executor = "ray"
    address: str | None = Field(default=None, description="a Ray cluster; None starts Ray in this process")
    unit_timeout_s: float | None = Field(default=None, gt=0)
    gpus_per_worker: float = Field(default=0.0, ge=0, description="GPUs each Ray worker reserves (0.25: 4 a GPU)")
    max_total_tokens: int | None = Field(default=None, gt=0)
    max_total_cost: float | None = Field(default=None, gt=0)
    plugins: list[str] = Field(default_factory=list)
    trust: list[str] = Field(default_factory=list, description="models the person named (may run code as they load)")
    work: str = Field(default=INTERPRET, description="the per-unit function (module:function) workers import: it "
                      "gets the unit's payload and returns a UnitRow's data, plus any keys the caller reads")
    work_args: dict[str, Any] = Field(default_factory=dict, description="JSON data every payload carries (as "
                                      "'args') for the work function")


def executor_for(workers: int, address: str | None) -> Executor:
    """Where an evaluation's units run: in this process for one worker and no cluster (Ray not needed), else on
    Ray (``aim sweep`` always runs on Ray)."""
    return "inline" if workers == 1 and not address else "ray"


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def resolve_units(plan: SweepPlan) -> list[str]:
    """The plan's units, checked against the layer's width or the unit source's names."""
    template = plan.template
    if plan.source:
        if isinstance(plan.units, list):  # names: the source checks each one when it opens the unit
            if not plan.units:
                raise ValueError("the list of units is empty")
            return list(dict.fromkeys(plan.units))
        from aim_agent.plugins import plugin_manager

        return parse_units(plan.units, list(plugin_manager().provider("units", plan.source).unit_names()))
    from aim_agent.models.probe import open_probe

    assert template.model is not None and template.layer is not None
    probe = open_probe(template.model, template.layer, sae=template.sae)
    spec = plan.units if isinstance(plan.units, str) else ",".join(plan.units)
    return parse_units(spec, int(probe.num_units))


def unit_config(plan: SweepPlan, unit: str) -> RunConfig:
    """One unit's run config: the template with this unit, in ``DIR/runs/<unit>``."""
    update: dict[str, Any] = {"run_id": run_id_of(unit), "runs_dir": str(Path(plan.out_dir) / "runs")}
    if plan.source:
        update["synthetic"] = f"{plan.source}:{unit}"
    else:
        update["unit"] = int(unit)
    return plan.template.model_copy(update=update)


def sweep_identity(plan: SweepPlan) -> dict[str, Any]:
    """What makes two sweeps the same sweep (budgets and unit lists may change on a rerun)."""
    config = {k: v for k, v in plan.template.public().items() if k not in _MAY_CHANGE}
    return {"source": plan.source, "config": config}


def warm_exemplars(configs: Sequence[RunConfig], say: Callable[[str], None]) -> int:
    """Compute each distinct layer's exemplars once (into the cache the workers read); how many layers."""
    from aim_agent.agent.runtime import build_system
    from aim_agent.exemplars import exemplars_for_system
    from aim_agent.exemplars.engine import DEFAULT_K
    from aim_agent.images import ImageStore, use_store

    seen: set[str] = set()
    # units of one model layer share one probe: the first config stands for all of them
    for config in configs[:1] if configs and configs[0].model else configs:
        system = build_system(config)
        key = system.probe.fingerprint()
        if key in seen:
            continue
        seen.add(key)
        say(f"exemplars of {system.layer}: one pass for its {system.probe.num_units} units")
        with use_store(ImageStore()):
            exemplars_for_system(system, k=config.exemplars_k or DEFAULT_K, dataset=config.exemplar_dataset,
                                 progress=False)
    return len(seen)


def _row_of(outcome: JobOutcome, run_ids: dict[str, str]) -> UnitRow:
    if outcome.ok and outcome.data is not None:
        row = UnitRow.model_validate(outcome.data)  # the row's fields; keys a work function adds are not columns
    else:
        row = UnitRow(unit=outcome.unit, run_id=run_ids[outcome.unit], status="timeout" if outcome.timed_out
                      else "failed", error=outcome.error, seconds=round(outcome.seconds, 3))
    return row.model_copy(update={"finished_at": _now()})


def run_sweep(plan: SweepPlan, *, progress: Callable[[str], None] | None = None, live: bool = False,
              done: Collection[str] | None = None,
              on_result: Callable[[UnitRow, dict[str, Any] | None], None] | None = None) -> dict[str, Any]:
    """Run (or continue) the sweep ``plan`` describes; a summary (also in the table and ``index.html``).

    ``done``: the units not to run again (default: those the table holds as finished; an evaluation
    passes the units of its results file). ``on_result(row, data)`` sees each unit once its row is
    stored, with all the work function returned (None when the job failed: raised, timed out, or its
    worker died).
    """
    say = progress or (lambda _line: None)
    started = time.monotonic()
    out_dir = Path(plan.out_dir)
    units = resolve_units(plan)
    run_ids = {u: run_id_of(u) for u in units}
    if len(set(run_ids.values())) != len(units):
        raise ValueError("two units of this sweep would share a run folder name; name them apart")
    store = SweepStore(out_dir)
    store.check_spec(sweep_identity(plan))
    finished = store.finished() if done is None else set(done)
    pending = [u for u in units if u not in finished]
    what = f"source {plan.source}" if plan.source else f"{plan.template.model} {plan.template.layer}"
    say(f"{what}: {len(units)} units, {len(units) - len(pending)} finished already, {len(pending)} to run "
        f"-> {out_dir}")
    configs = {u: unit_config(plan, u) for u in pending}
    jobs = [UnitJob(unit=u, payload={"unit": u, "config": configs[u].public(), "out_dir": str(out_dir),
                                     "trust": plan.trust, "args": plan.work_args}) for u in pending]
    budget_note: list[str] = []

    def keep_going() -> bool:
        spent = store.totals()
        for name, limit, used in (("tokens", plan.max_total_tokens, spent["tokens"]),
                                  ("cost", plan.max_total_cost, spent["cost"])):
            if limit is not None and used >= limit:
                if not budget_note:
                    budget_note.append(f"the sweep's {name} budget ({limit}) is spent ({used:g})")
                    say(budget_note[0] + ": no more units start; rerun with a higher budget to continue")
                return False
        return True

    if pending and keep_going():  # exemplars first, once, and only when some unit will run
        warm_exemplars([configs[u] for u in pending], say)
    tracker = SweepProgress(len(units), already=len(units) - len(pending), spent_cost=store.totals()["cost"],
                            show=live, say=say)
    report = None
    try:
        with tracker:
            def record(outcome: JobOutcome) -> None:
                row = _row_of(outcome, run_ids)
                store.put(row)  # written as it arrives: a kill loses nothing that finished
                if on_result is not None:
                    on_result(row, outcome.data if outcome.ok else None)
                tracker.result(row)

            if jobs:
                report = run_jobs(jobs, plan.work, workers=plan.workers, executor=plan.executor,
                                  address=plan.address, setup=worker_setup, setup_args=[plan.plugins],
                                  timeout_s=plan.unit_timeout_s, gpus_per_worker=plan.gpus_per_worker,
                                  on_start=tracker.start, on_result=record, keep_going=keep_going,
                                  on_tick=tracker.tick)
    finally:
        rows = store.rows(units)
        index = write_index(out_dir, rows, title=f"aim sweep: {what}", pending=len(units) - len(rows))
    ran = len(report.outcomes) if report else 0
    minutes = (report.run_s / 60) if report and report.run_s > 0 else 0.0
    totals = store.totals()
    return {
        "units": len(units), "skipped_finished": len(units) - len(pending), "ran": ran,
        "finished": sum(r.status == "finished" for r in rows), "failed": sum(r.status != "finished" for r in rows),
        "not_started": report.not_started if report else [], "budget": budget_note[0] if budget_note else None,
        "workers": report.workers if report else 0, "worker_starts": report.worker_starts if report else 0,
        "worker_startup_s": round(report.startup_s, 2) if report else 0.0,
        "run_s": round(report.run_s, 2) if report else 0.0,
        "units_per_min": round(ran / minutes, 2) if minutes else None,
        "tokens": int(totals["tokens"]), "cost_usd": round(totals["cost"], 6),
        "wall_s": round(time.monotonic() - started, 2),
        "store": str(store.path), "index": str(index),
    }
