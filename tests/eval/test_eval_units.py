"""``aim eval units``: the agent on random real units against the dissection reference, end to end (tiny)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aim_agent.cli import main
from aim_agent.eval.units import names_concept
from aim_agent.vocabulary import ConceptInfo


@pytest.fixture(autouse=True)
def _few_concepts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The render dissection draws every concept of the world (minutes); here a few of each kind."""
    from aim_world.concept_vocabulary import WorldVocabulary

    everything = WorldVocabulary.concepts
    keep = {"object:dog", "object:cat", "object:car", "object:person", "object:tree", "color:red", "color:blue",
            "texture:stripes", "texture:dots", "background:beach", "background:grass", "region:sky", "region:sand",
            "category:animal", "category:vehicle"}
    monkeypatch.setattr(WorldVocabulary, "concepts", lambda self: [c for c in everything(self) if c.key in keep])


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from aim_world.datasets import write_dataset

    return write_dataset(tmp_path_factory.mktemp("eval") / "world-40", 40, seed=5, size=64)


def test_eval_units_runs_the_agent_and_reports_json(tiny_world: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "eval.json"
    code = main(["eval", "units", "--model", "world-cnn", "--layer", "conv5", "--n", "2", "--seed", "1",
                 "--dataset", str(tiny_world), "--max-rounds", "1", "--runs-dir", str(tmp_path / "runs"),
                 "--out", str(out), "--json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert {"model", "layer", "dataset", "seed", "summary", "units", "dissection_cache",
            "render_dissection_cache"} <= set(printed)
    summary, units = printed["summary"], printed["units"]
    assert summary["units"] == len(units) == 2 and summary["match_iou_reference"] == sum(u["match"] for u in units)
    assert 0.0 <= summary["agreement"] <= 1.0
    # the run records' repeated proposals and open objections are counted (one round: none of either)
    assert summary["runs_with_repeated_proposals"] == sum(u["repeated_proposals"] > 0 for u in units) == 0
    assert summary["conclusions_over_open_objections"] == sum(u["open_objections"] > 0 for u in units)
    assert all(u["rounds"] == 1 for u in units) and summary["median_rounds"] == 1
    assert summary["match_main_render_reference"] == sum(u["match_render_main"] for u in units)
    assert summary["repeated_proposals"] == sum(u["repeated_proposals"] for u in units)
    named = sum(len(u["agent_concepts"]) for u in units)
    assert summary["precision"] == (round(sum(len(u["fires_alone"]) for u in units) / named, 4) if named else None)
    for u in units:
        assert {"unit", "labels", "reference", "reference_iou", "auc_concept", "auc", "match", "match_auc",
                "renders", "follows", "run_dir", "agent_concepts"} <= set(u)
        assert u["labels"] and u["reference"] and Path(u["run_dir"], "result.json").is_file()
        assert u["render_best"] and set(u["fires_alone"]) <= set(u["agent_concepts"])
        if not u["match"]:  # controlled renders decided between the candidates
            assert u["renders"] and u["follows"] in {r["concept"] for r in u["renders"]}
            assert all(r["n"] > 0 and 0.0 <= r["auc"] <= 1.0 for r in u["renders"])
    assert [u["unit"] for u in units] == sorted(u["unit"] for u in units)


def test_the_runs_are_a_sweep_and_the_same_evaluation_again_scores_them_without_running_them(
        tiny_world: Path, tmp_path: Path) -> None:
    """The units' runs are a sweep (sweep.sqlite, index.html, runs/<unit>/); the scoring hands out the evaluation
    after every unit (the CLI writes --out); a second evaluation skips the finished runs and scores the same."""
    from aim_agent.eval.units import UnitsEvaluation, evaluate_units
    from aim_agent.sweep.store import SweepStore

    seen: list[UnitsEvaluation] = []
    final = evaluate_units("world-cnn", "conv5", n=2, seed=1, dataset=str(tiny_world), max_rounds=1,
                           runs_dir=tmp_path / "runs", on_unit=seen.append)
    assert [len(e.units) for e in seen] == [1, 2]
    assert seen[0].units[0] == final.units[0] and seen[-1].to_json() == final.to_json()
    assert final.sweep_dir is not None and final.unevaluated == []
    sweep_dir = Path(final.sweep_dir)
    assert sweep_dir.parent == tmp_path / "runs" and (sweep_dir / "index.html").is_file()
    rows = SweepStore(sweep_dir).rows()
    assert sorted(int(r.unit) for r in rows) == [u.unit for u in final.units]
    assert all(r.status == "finished" and r.attempts == 1 for r in rows)
    assert all(Path(u.run_dir).parent == sweep_dir / "runs" for u in final.units)

    again = evaluate_units("world-cnn", "conv5", n=2, seed=1, dataset=str(tiny_world), max_rounds=1,
                           runs_dir=tmp_path / "runs")
    assert again.to_json() == final.to_json()
    assert all(r.attempts == 1 for r in SweepStore(sweep_dir).rows())  # no unit ran again

    # --score-only runs nothing: a unit whose run is missing (an evaluation stopped by a deadline) is unevaluated
    import shutil

    shutil.rmtree(Path(final.units[1].run_dir))
    scored = evaluate_units("world-cnn", "conv5", n=2, seed=1, dataset=str(tiny_world), max_rounds=1,
                            runs_dir=tmp_path / "runs", score_only=True)
    assert [u.unit for u in scored.units] == [final.units[0].unit] and len(scored.unevaluated) == 1
    assert all(r.attempts == 1 for r in SweepStore(sweep_dir).rows())


def test_a_label_matches_the_reference_or_its_category() -> None:
    dog = ConceptInfo("object:dog", "object", "dog", ("dog", "puppy"), "animal", ("animal", "animals"))
    assert names_concept(["dog, only when a leash is present"], dog)
    assert names_concept(["animals"], dog)
    assert names_concept(["puppies"], dog)
    assert not names_concept(["cat"], dog)
    stripes = ConceptInfo("texture:stripes", "texture", "stripes", ("stripes", "striped"))
    assert names_concept(["striped texture"], stripes)
