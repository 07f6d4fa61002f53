"""``aim eval spurious|bias|predictive`` end to end at tiny sizes: each writes result.json, table.md and page.html
and its JSON has the protocol's rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aim_agent.cli import main


def outputs(folder: Path) -> dict:
    assert {p.name for p in folder.iterdir()} >= {"result.json", "table.md", "page.html"}
    assert "data:image/jpeg;base64," in (folder / "page.html").read_text()
    return json.loads((folder / "result.json").read_text())


def test_eval_spurious_tiny(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "spurious", "--n-validation", "80", "--n-test", "40", "--n-balanced", "16", "--top", "4",
                 "--draws", "3", "--out", str(tmp_path)])
    assert code == 0 and "shifted test accuracy" in capsys.readouterr().out
    data = outputs(tmp_path)
    assert len(data["top"]) == len(data["units"]) == 4
    assert all(u["aim"]["verdict"] in ("SELECTIVE", "SPURIOUS") for u in data["units"])
    assert data["kept"]["AIM"] == [u["unit"] for u in data["units"] if u["aim"]["verdict"] == "SELECTIVE"]
    assert data["rows"][0]["method"].startswith("original model") and all(0 <= r["accuracy"] <= 1 for r in data["rows"])


def test_eval_bias_one_class(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "bias", "--classes", "boat", "--n-exemplar-pool", "100", "--out", str(tmp_path)]) == 0
    assert "planted bias" in capsys.readouterr().out
    data = outputs(tmp_path)
    assert data["classes"] == ["boat"] and [p["cls"] for p in data["planted"]] == ["boat"]
    assert "companions read off the exemplars" in data["answers"]["boat"]["reasoning"]
    assert "boat: exemplars" in (tmp_path / "page.html").read_text()  # the images the scientist started from
    assert data["planted"][0]["found"] is any(f["value"] == "water" and f["kind"] == "preference"
                                              for f in data["answers"]["boat"]["findings"])
    assert main(["eval", "bias", "--classes", "spaceship", "--out", str(tmp_path / "x")]) == 2
    assert "unknown class(es) spaceship; classes of world-cnn-bias: dog, cat" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # nothing half-written


def test_eval_predictive_one_unit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from aim_world.datasets import write_dataset

    world = write_dataset(tmp_path / "world-40", 40, seed=5, size=64)
    assert main(["eval", "predictive", "--layer", "conv5", "--units", "3", "--max-rounds", "1", "--dataset",
                 str(world), "--out", str(tmp_path / "pred")]) == 0
    assert "+ minus -" in capsys.readouterr().out
    data = outputs(tmp_path / "pred")
    (unit,) = data["units"]
    assert set(unit["methods"]) <= {"aim", "exemplar", "dissection", "random"} and "aim" in unit["methods"]
    for m in unit["methods"].values():
        assert len(m["positive"]) <= 7 and not set(m["positive"]) & set(m["neutral"])
        assert set(m["positive"]) | set(m["neutral"]) <= set(unit["pool"])
    assert {r["method"] for r in data["table"]} == set(unit["methods"])
