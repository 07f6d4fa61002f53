"""What a sweep worker does: open each model once, then run one interpretation per unit.

:func:`worker_setup` runs once per worker process (Ray actor): it registers the plugins the sweep
names and a model loader that keeps every probe this process opened, so the second and later
units of a layer reuse the loaded model instead of loading it again. :func:`interpret_unit` is the
per-unit work: one ordinary interpretation run (``aim interpret``: the scientist, the critic, the
model-written code in the sandbox), resumed from its checkpoint when an earlier sweep was killed
during it, summarised as a row of the sweep's table.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from aim_agent.hookspecs import hookimpl
from aim_agent.sweep.store import UnitRow

#: exemplar overlays shown in the index, per unit
THUMBNAILS = 4


class ProbeMemo:
    """A model loader (hook ``aim_model_loaders``) that hands out probes this process already opened.

    It answers ``can_probe`` for every model, opens a model through the other loaders the first time
    (while it does, it steps aside), and keeps the probe for the rest of the worker's life.
    """

    name = "sweep-probe-memo"

    def __init__(self) -> None:
        self._probes: dict[tuple[str, str], Any] = {}
        self._opening = threading.local()
        self.opened = 0

    def can_load(self, spec: str) -> bool:
        return False

    def load(self, spec: str) -> Any:
        raise LookupError("the sweep's probe memo only reuses probes")

    def where_looked(self, spec: str) -> str:
        return "models this sweep worker already opened"

    def can_probe(self, spec: str) -> bool:
        return not getattr(self._opening, "on", False)

    def probe(self, spec: str, layer: str) -> Any:
        from aim_agent.models.probe import open_probe

        key = (spec, layer)
        if key not in self._probes:
            self._opening.on = True
            try:
                self._probes[key] = open_probe(spec, layer)
            finally:
                self._opening.on = False
            self.opened += 1
        return self._probes[key]


class _MemoPlugin:
    def __init__(self, memo: ProbeMemo) -> None:
        self.memo = memo

    @hookimpl(tryfirst=True)
    def aim_model_loaders(self) -> list[Any]:
        return [self.memo]


MEMO = ProbeMemo()
MEMO_PLUGIN = "aim_agent.sweep.worker.memo"


def worker_setup(plugins: list[str]) -> None:
    """Once per worker: the sweep's plugins, and the probe memo (models are opened once per process)."""
    from aim_agent.plugins import plugin_manager

    pm = plugin_manager()
    for module in plugins:
        pm.add_module(module, source="aim sweep")
    if not pm.pm.has_plugin(MEMO_PLUGIN):
        pm.pm.register(_MemoPlugin(MEMO), name=MEMO_PLUGIN)


def run_or_resume(config_data: dict[str, Any]) -> tuple[Any, str | None]:
    """Run the interpretation ``config_data`` names, or resume its folder left by a killed process.

    Returns the run's record (None when even that could not be read) and the error that ended it.
    """
    from aim_agent.agent.config import RunConfig
    from aim_agent.agent.record import RunRecordError, read_run_record
    from aim_agent.agent.runner import run_interpret
    from aim_agent.models.trust import trusting

    config = RunConfig.model_validate(config_data)
    assert config.run_id is not None
    run_dir = Path(config.runs_dir) / config.run_id
    try:
        if (run_dir / "run.json").exists():
            # the servers this sweep's own config names; run.json, a file on disk, may name no other
            servers = [s.base_url for s in (config.backend, config.critic_backend) if s is not None and s.base_url]
            try:
                with trusting(*servers):
                    return run_interpret(None, resume=config.run_id, runs_dir=config.runs_dir).record, None
            except FileNotFoundError:  # killed before its first checkpoint: nothing to continue
                shutil.rmtree(run_dir)
        return run_interpret(config).record, None
    except Exception as exc:  # a failed run is one row of the table, not the end of the sweep
        error = f"{type(exc).__name__}: {exc}"
        try:
            return read_run_record(run_dir), error
        except RunRecordError:
            return None, error


def interpret_unit(payload: dict[str, Any]) -> dict[str, Any]:
    """One unit of a sweep (the default work of :class:`~aim_agent.sweep.run.SweepPlan`): ``payload`` holds
    ``unit``, ``config`` (RunConfig data), ``out_dir`` and ``trust`` (models the person named); returns a
    :class:`~aim_agent.sweep.store.UnitRow` as data."""
    from aim_agent import activations
    from aim_agent.exemplars.dataset import default_cache_dir

    # the activation cache ($AIM_CACHE/activations): an image's maps of the whole layer are computed once for
    # every unit, worker and rerun of the sweep (off with AIM_FAST_PATH=0)
    before = activations.all_stats()
    cpu = _cpu_seconds()
    folder = os.environ.get("AIM_ACTIVATION_CACHE", "").strip()
    with activations.enabled(Path(folder).expanduser() if folder else default_cache_dir() / "activations"):
        row = interpret_row(payload).model_dump(mode="json")
    after = activations.all_stats()
    row["activation_cache"] = {key: after[key] - before[key] for key in after}
    row["cpu_s"] = round(_cpu_seconds() - cpu, 3)  # this process and its finished children (the sandboxes)
    return row


def _cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and of its children that have finished."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def interpret_row(payload: dict[str, Any]) -> UnitRow:
    """The interpretation run of one unit (resumed when a kill cut it short), summarised as its row.

    Work functions that do more per unit (an evaluation's baselines) start from this one.
    """
    from aim_agent.agent.record import conclusion_label
    from aim_agent.models.trust import trusting

    started = time.monotonic()
    out_dir = Path(payload["out_dir"])
    with trusting(*payload.get("trust", [])):
        record, error = run_or_resume(payload["config"])
    row = UnitRow(unit=payload["unit"], run_id=payload["config"]["run_id"], error=error,
                  seconds=round(time.monotonic() - started, 3))
    if record is None:
        return row
    run_dir = Path(payload["config"]["runs_dir"]) / record.run_id
    conclusion = record.conclusion
    report = run_dir / "report.html"
    thumbs = [run_dir / "images" / f"{i}.png" for i in record.exemplars.image_ids[:THUMBNAILS]]
    return row.model_copy(update={
        "label": conclusion_label(record),
        "description": conclusion.description if conclusion is not None else "",
        "confidence": conclusion.confidence if conclusion is not None else None,
        "rounds": record.rounds_run,
        "seconds": round(record.usage.wall_time_s, 3),
        "tokens": record.usage.totals.total_tokens,
        "cost": record.usage.totals.cost_usd,
        "status": record.status if error is None else "failed",
        "error": error or record.error,
        "forced": record.forced,
        "report": _relative(report, out_dir) if report.exists() else None,
        "thumbnails": [_relative(t, out_dir) for t in thumbs if t.exists()],
    })


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()
