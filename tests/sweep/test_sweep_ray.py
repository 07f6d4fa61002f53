"""Sweeps on a local Ray (one Ray start for the module): failures, timeouts, dead workers, models opened once per
worker, the table, the runs and the index, and a rerun that skips finished units."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sweep_fakes

from aim_agent.agent.config import RunConfig
from aim_agent.sweep.engine import UnitJob, run_jobs
from aim_agent.sweep.run import SweepPlan, run_sweep, unit_config, warm_exemplars
from aim_agent.sweep.store import SweepStore, UnitRow
from aim_agent.sweep.worker import worker_setup


@pytest.mark.slow  # waits out the 30 s timeout of its "slow" job
def test_failures_timeouts_and_dead_workers_are_outcomes_and_the_rest_goes_on(local_ray: Any) -> None:
    jobs = [UnitJob(str(i), {"x": i}) for i in range(3)]
    jobs += [UnitJob("bad", {"x": 0, "fail": True}), UnitJob("dies", {"x": 0, "die": True}),
             UnitJob("slow", {"x": 0, "sleep": 120}), UnitJob("after", {"x": 21})]
    # the per-job timeout must only catch "slow" (asleep for 120 s): the other jobs take milliseconds of work, but a
    # loaded machine may take seconds to hand a Ray task over and back
    report = run_jobs(jobs, sweep_fakes.double, workers=2, timeout_s=30)
    by_unit = {o.unit: o for o in report.outcomes}
    assert set(by_unit) == {j.unit for j in jobs} and report.not_started == []
    assert [by_unit[str(i)].data["x"] for i in range(3)] == [0, 2, 4]  # type: ignore[index]
    assert "unit 0 failed on purpose" in (by_unit["bad"].error or "")
    assert (by_unit["dies"].error or "").startswith("worker died")
    assert by_unit["slow"].timed_out and "timed out after 30 s" in (by_unit["slow"].error or "")
    assert by_unit["after"].ok and by_unit["after"].data == {"x": 42, "pid": by_unit["after"].data["pid"]}  # type: ignore[index]
    assert report.worker_starts == 4  # the two first workers, one replacing the dead one, one the stopped one


def _plan(out: Path, dataset: Path, **kw: Any) -> SweepPlan:
    template = RunConfig(model="world-cnn", layer="conv5", unit=0, max_rounds=1, exemplar_dataset=str(dataset),
                         exemplars_k=4)
    return SweepPlan(out_dir=out, template=template, **kw)


def test_each_worker_opens_the_model_once_for_all_its_units(local_ray: Any, tiny_world: Path,
                                                            tmp_path: Path) -> None:
    plan = _plan(tmp_path, tiny_world, workers=2)
    configs = [unit_config(plan, str(u)) for u in range(4)]
    warm_exemplars(configs, lambda _line: None)
    jobs = [UnitJob(c.run_id or "", {"unit": str(c.unit), "config": c.public(), "out_dir": str(tmp_path)})
            for c in configs]
    report = run_jobs(jobs, sweep_fakes.interpret_and_count, workers=2, setup=worker_setup, setup_args=[[]])
    assert all(o.ok for o in report.outcomes), [o.error for o in report.outcomes]
    data = [o.data for o in report.outcomes if o.data is not None]
    assert all(UnitRow.model_validate(d["row"]).status == "finished" for d in data)
    units_per_worker = Counter(d["pid"] for d in data)
    assert max(units_per_worker.values()) >= 2  # some worker ran several units...
    assert all(d["opened"] == 1 for d in data)  # ...and every worker opened world-cnn conv5 once


def test_a_sweep_writes_its_table_runs_and_index_and_a_rerun_skips_finished_units(
        local_ray: Any, tiny_world: Path, tmp_path: Path) -> None:
    summary = run_sweep(_plan(tmp_path, tiny_world, units="0-2", workers=2))
    assert summary["finished"] == 3 and summary["failed"] == 0 and summary["ran"] == 3
    rows = SweepStore(tmp_path).rows(["0", "1", "2"])
    assert [r.status for r in rows] == ["finished"] * 3 and all(r.label and r.rounds == 1 for r in rows)
    index = (tmp_path / "index.html").read_text()
    for row in rows:
        assert row.report == f"runs/{row.unit}/report.html" and (tmp_path / row.report).exists()
        assert row.thumbnails and all((tmp_path / t).exists() for t in row.thumbnails)
        assert f'href="{row.report}"' in index
    again = run_sweep(_plan(tmp_path, tiny_world, units="0-3", workers=2))
    assert again["skipped_finished"] == 3 and again["ran"] == 1 and again["finished"] == 4
    assert [r.attempts for r in SweepStore(tmp_path).rows(["0", "1", "2", "3"])] == [1, 1, 1, 1]
    with pytest.raises(ValueError, match="holds another sweep"):
        run_sweep(_plan(tmp_path, tiny_world, units="0").model_copy(
            update={"template": RunConfig(model="world-cnn", layer="conv4", unit=0)}))


def test_bench_sweep_measures_the_old_and_the_new_path_and_compares_their_labels(
        local_ray: Any, tiny_world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from aim_agent.cli import main

    assert main(["bench", "sweep", "--json", "--units", "2", "--workers", "2", "--max-rounds", "1",
                 "--dataset", str(tiny_world), "--k", "4"]) == 0
    result = json.loads(capsys.readouterr().out)
    old, new = result["old"], result["new"]
    assert old["units_per_min"] > 0 and new["units_per_min"] > 0 and old["mean_unit_seconds"] > 0
    assert old["mean_unit_cpu_s"] > 0 and new["mean_unit_cpu_s"] > 0 and result["cpu_ratio_old_over_new"] > 0
    assert result["speedup_new_over_old"] == round(new["units_per_min"] / old["units_per_min"], 2)
    # the same labels on both paths, every unit compared
    assert result["identical_labels"] is True and result["units_compared"] == 2 and result["units_differing"] == []
    # the old path never asks the activation cache; the new one does, and computes each image once
    assert old["activation_cache"]["hit_rate"] is None
    cache = new["activation_cache"]
    assert cache["misses"] > 0 and 0 < cache["written"] <= cache["misses"]
    assert new["files_per_unit"] > 0 and len(result["load_average_before"]) == 3 and result["cpus"] >= 1


def test_rays_notice_that_it_turned_token_auth_on_is_dropped_and_its_other_warnings_kept() -> None:
    """Ray 2.59+ starts a local cluster with token authentication and warns so on every start; the engine keeps the
    protection and drops only that notice (a warning that authentication is off still shows)."""
    import logging

    pytest.importorskip("ray")
    from ray._private.authentication import authentication_token_setup as setup

    from aim_agent.sweep.engine import TOKEN_AUTH_LOGGER, import_ray

    import_ray()
    logger = logging.getLogger(TOKEN_AUTH_LOGGER)
    assert logger is logging.getLogger(setup.__name__)
    filters = len(logger.filters)
    import_ray()
    assert len(logger.filters) == filters  # added once, however often Ray is imported
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        setup._warn_token_auth_enabled()
        setup._warn_token_auth_disabled()
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage().split(".")[0] for r in records] == ["Token authentication is disabled for this Ray cluster"]
