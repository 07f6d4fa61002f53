"""The parts of a sweep that need no Ray: unit lists, the table, the index, exports, the inline engine, budgets."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import sweep_fakes

from aim_agent.agent.config import RunConfig
from aim_agent.sweep.engine import UnitJob, function_ref, run_jobs
from aim_agent.sweep.export import export
from aim_agent.sweep.index import write_index
from aim_agent.sweep.run import SweepPlan, run_sweep
from aim_agent.sweep.store import SweepStore, UnitRow
from aim_agent.sweep.units import parse_units, run_id_of


def test_units_are_ranges_lists_or_all_checked_against_the_layer() -> None:
    assert parse_units("all", 4) == ["0", "1", "2", "3"]
    assert parse_units("0-2,5, 1", 8) == ["0", "1", "2", "5"]
    assert parse_units("1", ["a", "b"]) == ["b"]
    assert parse_units("all", ["a", "b"]) == ["a", "b"]
    assert parse_units("s7_3,0", ["s0_0"]) == ["s7_3", "s0_0"]
    with pytest.raises(ValueError, match=r"unit 8 is outside the layer \(valid: 0-7\)"):
        parse_units("0-8", 8)
    with pytest.raises(ValueError, match="runs backwards"):
        parse_units("5-2", 8)
    with pytest.raises(ValueError, match="not a unit"):
        parse_units("dog", 8)
    with pytest.raises(ValueError, match="empty"):
        parse_units(" ", 8)
    assert run_id_of("fresh:s7_3") == "fresh-s7_3"


def test_the_table_keeps_one_row_per_unit_counts_attempts_and_spending(tmp_path: Path) -> None:
    store = SweepStore(tmp_path)
    store.check_spec({"source": None, "config": {"model": "m"}})
    store.put(UnitRow(unit="3", status="failed", error="boom", tokens=10, cost=0.5))
    store.put(UnitRow(unit="1", status="finished", label="dog", tokens=5, cost=0.25, thumbnails=["a.png"]))
    store.put(UnitRow(unit="3", status="finished", label="cat", tokens=7, cost=0.5))
    rows = {r.unit: r for r in SweepStore(tmp_path).rows()}  # a new handle reads what the first wrote
    assert rows["3"].label == "cat" and rows["3"].attempts == 2 and rows["3"].error is None
    assert rows["1"].thumbnails == ["a.png"]
    assert store.finished() == {"1", "3"}
    assert store.totals() == {"tokens": 22.0, "cost": 1.25}  # the failed attempt's spending counts too
    assert [r.unit for r in store.rows(["3", "9", "1"])] == ["3", "1"]
    with pytest.raises(ValueError, match=r"holds another sweep \(its config differ\)"):
        store.check_spec({"source": None, "config": {"model": "other"}})


def test_index_links_reports_shows_thumbnails_and_escapes_model_text(tmp_path: Path) -> None:
    rows = [UnitRow(unit="0", label="<b>dog</b>", description="x" * 1000, confidence=0.9, status="finished",
                    report="runs/0/report.html", thumbnails=["runs/0/images/img_a.png"]),
            UnitRow(unit="1", status="timeout", error="timed out after 5 s")]
    page = write_index(tmp_path, rows, title="t", pending=2).read_text()
    assert '<a href="runs/0/report.html">' in page and 'src="runs/0/images/img_a.png"' in page
    assert "&lt;b&gt;dog&lt;/b&gt;" in page and "<b>dog</b>" not in page
    assert "timed out after 5 s" in page and "2 not run yet" in page
    assert "x" * 400 not in page  # long descriptions are clipped
    assert "addEventListener('click'" in page  # the sortable headers


def test_export_csv_and_a_clear_error_for_parquet_without_pyarrow(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match=r"sweep\.sqlite is missing"):
        export(tmp_path, "csv")
    SweepStore(tmp_path).put(UnitRow(unit="2", label="boat, sail", status="finished", cost=None))
    path = export(tmp_path, "csv")
    rows = list(csv.DictReader(path.open()))
    assert rows[0]["unit"] == "2" and rows[0]["label"] == "boat, sail" and rows[0]["status"] == "finished"
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if it were not installed
    with pytest.raises(ValueError, match=r"needs pyarrow.*pip install pyarrow"):
        export(tmp_path, "parquet")
    with pytest.raises(ValueError, match="valid: csv, parquet, html"):
        export(tmp_path, "xlsx")


def test_inline_engine_records_failures_and_stops_starting_jobs_when_told() -> None:
    jobs = [UnitJob(str(i), {"x": i, "fail": i == 1}) for i in range(4)]
    seen: list[str] = []
    report = run_jobs(jobs, sweep_fakes.double, executor="inline", keep_going=lambda: len(seen) < 3,
                      on_result=lambda o: seen.append(o.unit))
    assert [o.unit for o in report.outcomes] == ["0", "1", "2"] and report.not_started == ["3"]
    assert report.outcomes[0].data is not None and report.outcomes[0].data["x"] == 0
    assert not report.outcomes[1].ok and "RuntimeError: unit 1 failed on purpose" in (report.outcomes[1].error or "")
    assert report.outcomes[2].ok


def test_work_functions_travel_by_name_only() -> None:
    assert function_ref(sweep_fakes.double) == "sweep_fakes:double"
    with pytest.raises(ValueError, match="top-level function"):
        function_ref(lambda p: p)
    with pytest.raises(ValueError, match="cannot import"):
        function_ref("no_such_module_xyz:f")


def _plan(out: Path, **kw: object) -> SweepPlan:
    template = RunConfig(model="world-cnn", layer="conv5", unit=0, max_rounds=1, exemplar_dataset="unused")
    return SweepPlan(out_dir=out, template=template, **kw)  # type: ignore[arg-type]


def test_a_spent_sweep_budget_starts_no_unit_and_says_so(tmp_path: Path) -> None:
    SweepStore(tmp_path).put(UnitRow(unit="99", status="failed", tokens=50))
    summary = run_sweep(_plan(tmp_path, units="0-1", executor="inline", max_total_tokens=40))
    assert summary["ran"] == 0 and summary["not_started"] == ["0", "1"]
    assert "tokens budget (40) is spent (50)" in summary["budget"]
    assert not (tmp_path / "runs").exists()
    with pytest.raises(ValueError, match=r"unit 256 is outside the layer \(valid: 0-255\)"):
        run_sweep(_plan(tmp_path, units="250-256", executor="inline"))


def test_synthetic_units_sweep_inline(tmp_path: Path, tiny_world: Path) -> None:
    template = RunConfig(synthetic="synthetic:placeholder", max_rounds=1, exemplar_dataset=str(tiny_world),
                         exemplars_k=4)
    plan = SweepPlan(out_dir=tmp_path, template=template, source="synthetic", units="0", executor="inline")
    summary = run_sweep(plan)
    row = SweepStore(tmp_path).rows()[0]
    assert summary["finished"] == 1 and row.status == "finished" and row.label and row.rounds == 1
    from aim_agent.agent.record import read_run_record

    record = read_run_record(tmp_path / "runs" / row.run_id)
    assert record.config.synthetic == f"synthetic:{row.unit}"
    assert row.report is not None and (tmp_path / row.report).exists()


def test_the_command_without_ray_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from aim_agent.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the sweep extra were not installed
    code = main(["sweep", "--model", "world-cnn", "--layer", "conv5", "--units", "0", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "Ray, which is not installed" in err and "aim-agent[sweep]" in err
    assert not (tmp_path / "sweep.sqlite").exists()
    assert main(["bench", "sweep", "--json", "--units", "1"]) == 2
    assert "aim-agent[sweep]" in capsys.readouterr().err
    # the evaluations need Ray only for more than one worker (or a cluster), and say so before any work
    for evaluation in (["synthetic", "--quiet", "--out", str(tmp_path / "e")], ["units", "--json"]):
        assert main(["eval", *evaluation, "--workers", "2"]) == 2
        assert "aim-agent[sweep]" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()
