"""`aim eval synthetic` end to end (offline): the JSON's shape, the baselines, the files, and that a
second run continues instead of starting again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aim_agent.cli import main
from aim_agent.eval.synthetic import METHODS, RESULTS_FILE, read_results

N = 3


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small world exemplar dataset, so that the test needs no pass over the 2000 default images."""
    from aim_world.datasets import write_dataset

    return write_dataset(tmp_path_factory.mktemp("eval-exemplars") / "world-60", 60, seed=3, size=112)


def run_cli(capsys: pytest.CaptureFixture[str], out: Path, dataset: Path) -> dict:
    code = main(["eval", "synthetic", "--set", "fresh", "--seed", "3", "--n", str(N), "--json", "--quiet",
                 "--out", str(out), "--dataset", str(dataset), "--max-rounds", "2", "--k", "6"])
    assert code == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow  # agent runs on fresh neurons, then a resume
def test_eval_synthetic_fresh_end_to_end_and_resume(tmp_path: Path, small_dataset: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval"
    summary = run_cli(capsys, out, small_dataset)
    assert summary["set"] == "fresh" and summary["source"] == "fresh" and summary["seed"] == 3 and summary["n"] == N
    assert summary["methods"] == list(METHODS) == ["agent", "one_shot", "frequent", "random"]
    assert summary["ran_now"] == N and summary["reused"] == 0
    # one row per kind present and method, plus 'all'
    kinds = {u["kind"] for u in summary["neurons"]}
    assert kinds == {"mono", "or", "cond"}  # every run of three fresh neurons holds one of each
    rows = {(r["kind"], r["method"]) for r in summary["table"]}
    assert rows == {(k, m) for k in (*kinds, "all") for m in METHODS}
    for row in summary["table"]:
        assert set(row) >= {"n", "strict", "concepts", "two_afc", "retrieval", "rounds", "seconds", "tokens"}
        assert 0.0 <= row["strict"] <= 1.0
    agent_all = next(r for r in summary["table"] if r["kind"] == "all" and r["method"] == "agent")
    assert agent_all["n"] == N and agent_all["rounds"] > 0 and agent_all["tokens"] == 0  # offline: no tokens
    if summary["judge"]:
        assert 0.0 <= agent_all["two_afc"] <= 1.0 and 0.0 <= agent_all["retrieval"] <= 1.0
        assert {r["baseline"] for r in summary["head_to_head"]} == {"one_shot", "frequent", "random"}
    for unit in summary["neurons"]:
        assert unit["unit"].startswith("s3_") and unit["ref"] == f"fresh:{unit['unit']}"
        assert set(unit["labels"]) == set(METHODS) and set(unit["scores"]) == set(METHODS)
        assert unit["labels"]["random"]["label"]  # a baseline label is always there
        assert unit["ground_truth"]
        run = json.loads((out / "runs" / unit["run_id"] / "result.json").read_text())
        assert run["ground_truth"] == unit["ground_truth"]
        assert run["config"]["synthetic"] == unit["ref"]
    for name in ("eval.json", "summary.json", "summary.md", RESULTS_FILE, "sweep.sqlite", "index.html"):
        assert (out / name).is_file()
    assert summary["workers"] == 1 and summary["unevaluated"] == [] and summary["index"] == str(out / "index.html")
    assert "| kind | method |" in (out / "summary.md").read_text()

    # the same command again: nothing to run
    again = run_cli(capsys, out, small_dataset)
    assert again["ran_now"] == 0 and again["reused"] == N
    assert [u["labels"] for u in again["neurons"]] == [u["labels"] for u in summary["neurons"]]

    # a killed writer: the last line torn off; the next run drops the torn line and runs that unit again
    path = out / RESULTS_FILE
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    assert len(read_results(path)) == N - 1
    resumed = run_cli(capsys, out, small_dataset)
    assert resumed["ran_now"] == 1 and resumed["reused"] == N - 1
    assert len(path.read_text().splitlines()) == N


def test_a_failed_unit_is_recorded_the_others_go_on_and_a_rerun_tries_only_it_again(
        tmp_path: Path, small_dataset: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed agent run is a result (a wrong answer, kept as today); a job that fails outside the agent's run has
    no result: its row in sweep.sqlite holds the error, the evaluation goes on, and the same command runs it again."""
    from aim_agent.agent import runner
    from aim_agent.eval import synthetic
    from aim_agent.sweep.store import SweepStore

    real_run, real_view = runner.run_interpret, synthetic.exemplar_view

    def run_interpret(config: Any, **kw: Any) -> Any:
        if config is not None and config.synthetic == "fresh:s3_0":
            raise RuntimeError("the scientist is down")
        return real_run(config, **kw)

    def exemplar_view(system: Any, config: Any) -> Any:
        if config.synthetic == "fresh:s3_1":
            raise RuntimeError("the describer is down")
        return real_view(system, config)

    monkeypatch.setattr(runner, "run_interpret", run_interpret)
    monkeypatch.setattr(synthetic, "exemplar_view", exemplar_view)
    out = tmp_path / "eval"
    command = ["eval", "synthetic", "--set", "fresh", "--seed", "3", "--n", "2", "--json", "--quiet", "--out",
               str(out), "--dataset", str(small_dataset), "--max-rounds", "1", "--k", "6"]
    assert main(command) == 1  # a partial evaluation
    first = json.loads(capsys.readouterr().out)
    assert first["ran_now"] == 2 and first["unevaluated"] == [{"unit": "s3_1",
                                                               "error": "RuntimeError: the describer is down"}]
    assert [(u["unit"], u["status"], u["error"]) for u in first["neurons"]] == [
        ("s3_0", "failed", "RuntimeError: the scientist is down")]
    failed_run = first["neurons"][0]
    assert failed_run["labels"]["agent"]["label"] == "" and not failed_run["scores"]["agent"]["strict"]
    rows = {r.unit: r for r in SweepStore(out).rows()}
    assert rows["s3_1"].status == "failed" and "the describer is down" in (rows["s3_1"].error or "")
    assert "Not evaluated" in (out / "summary.md").read_text()

    monkeypatch.setattr(runner, "run_interpret", real_run)
    monkeypatch.setattr(synthetic, "exemplar_view", real_view)
    assert main(command) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["ran_now"] == 1 and again["reused"] == 1 and again["unevaluated"] == []
    assert [u["status"] for u in again["neurons"]] == ["failed", "finished"]  # the failed run is not run again
    assert {r.unit: r.attempts for r in SweepStore(out).rows()} == {"s3_0": 1, "s3_1": 2}
    assert len(read_results(out / RESULTS_FILE)) == 2


def test_another_evaluation_in_the_same_folder_is_refused(tmp_path: Path, small_dataset: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval"
    out.mkdir()
    (out / "eval.json").write_text(json.dumps({"set": "fresh", "source": "fresh", "seed": 99, "units": ["s99_0"],
                                               "config": {}}))
    code = main(["eval", "synthetic", "--set", "fresh", "--seed", "3", "--n", "1", "--quiet", "--out", str(out),
                 "--dataset", str(small_dataset)])
    assert code == 2
    assert "another evaluation" in capsys.readouterr().err


def test_a_unit_source_without_answers_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "synthetic", "--set", "no-such-set", "--quiet"])
    assert code == 2
    assert "no-such-set" in capsys.readouterr().err
