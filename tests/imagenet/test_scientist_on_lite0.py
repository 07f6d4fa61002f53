"""The concept scientist end to end on an EfficientNet-Lite0 with random weights, over a few generated photos."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from aim_photo_fakes import write_photos
from imagenet_skips import NEEDS_ARCH

from aim_agent.agent.config import RunConfig
from aim_agent.agent.record import read_run_record
from aim_agent.agent.runner import run_interpret
from aim_agent.cli.demo import REAL_DESCRIBER, REAL_MODEL, demo_config


@NEEDS_ARCH
@pytest.mark.slow
def test_the_concept_scientist_runs_on_a_random_weight_lite0(random_lite0: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AIM_CACHE", str(tmp_path / "cache"))
    write_photos(tmp_path / "photos", per_color=4, size=64)
    config = RunConfig(model=f"efficientnet-lite0@{random_lite0}", layer="_blocks.2", unit=3,
                       plugins=["aim_photo_fakes"], describer="pixel-tagger", exemplar_dataset=str(tmp_path / "photos"),
                       backend={"provider": "concepts"}, mode="tools", max_rounds=3, exemplars_k=4,
                       runs_dir=str(tmp_path / "runs"))
    result = run_interpret(config)
    assert result.conclusion is not None and result.conclusion.labels
    record = read_run_record(result.run_dir)
    assert record.rounds_run >= 2  # a survey and a screen ran on the photos
    words = {"red", "orange", "yellow", "blue", "green", "grey", "warm colour", "cool colour", "neutral colour"}
    assert result.conclusion.labels[0] in words  # one of the describer's concepts, never a file name
    assert result.report_path is not None and Path(result.report_path).is_file()


def test_the_real_demo_names_the_model_the_tagger_and_the_concept_scientist() -> None:
    args = argparse.Namespace(real=True, synthetic=None, layer=None, unit=None, mode="code", max_rounds=8, out="runs")
    config = demo_config(args)
    assert config.model == REAL_MODEL and config.describer == REAL_DESCRIBER
    assert config.backend is not None and config.backend.provider == "concepts"
    assert config.exemplar_dataset == "imagenet-sample"
    with pytest.raises(ValueError, match="--real"):
        demo_config(argparse.Namespace(**{**vars(args), "synthetic": "or_dog_car"}))
