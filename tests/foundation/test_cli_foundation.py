"""``aim layers`` and ``aim exemplars`` in-process, on the tiny ResNet and ViT; the benchmark."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from aim_agent.cli import main


def test_aim_layers_lists_conv_and_token_layers(
    resnet_dir: Path, vit_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["layers", str(resnet_dir)]) == 0
    out = capsys.readouterr().out
    assert "resnet.encoder.stages.1" in out and "conv" in out and "16x4x4" in out and "vector" in out
    assert main(["layers", str(vit_dir), "--kind", "tokens", "--grep", "layers.1"]) == 0
    out = capsys.readouterr().out
    assert "layers.1" in out and "17x32" in out and "4x4" in out and "conv" not in out


def test_aim_exemplars_summarises_and_reuses_the_cache(
    resnet_dir: Path, vit_dir: Path, image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    n_good: int,
) -> None:
    args = ["exemplars", "--model", str(resnet_dir), "--layer", "resnet.encoder.stages.1", "--dataset",
            str(image_folder), "--k", "4", "--batch-size", "8", "--cache", str(tmp_path), "--units", "0,15"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"{n_good} seen, 1 skipped" in out and "broken.jpg" in out
    assert str(tmp_path) in out and "computed in" in out and "(3 batches)" in out
    assert "0.99 quantile" in out and "exact" in out
    assert main(args) == 0
    assert "reused from cache" in capsys.readouterr().out
    assert main(["exemplars", "--model", str(vit_dir), "--layer", "layers.0", "--dataset", str(image_folder),
                 "--cache", str(tmp_path), "--quantile", "0.95", "--no-stop-early"]) == 0
    out = capsys.readouterr().out
    assert "tokens, 32 units, grid 4x4" in out and "0.95 quantile" in out


def test_cli_errors_are_messages_listing_what_is_valid(
    resnet_dir: Path, image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["exemplars", "--model", str(resnet_dir), "--dataset", str(image_folder), "--cache", str(tmp_path)]
    assert main([*base, "--layer", "resnet.encoder.stage.1"]) == 2
    err = capsys.readouterr().err
    assert "no layer 'resnet.encoder.stage.1'" in err and "resnet.encoder.stages.1" in err
    assert "aim layers" in err and "Traceback" not in err
    assert main([*base, "--layer", "classifier", "--units", "7"]) == 2
    assert "units 0..2" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["exemplars", "--model", str(resnet_dir), "--layer", "classifier", "--dataset", str(empty)]) == 2
    assert "holds no images" in capsys.readouterr().err
    assert main(["layers", str(tmp_path / "no-such-model")]) == 2
    err = capsys.readouterr().err
    assert "cannot load model" in err and "transformers:" in err and "module-factory:" in err


def test_exemplar_benchmark_reports_both_ratios(resnet_dir: Path) -> None:
    from aim_agent.benchmarks import exemplars as bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--images", "12", "--batch-size", "4", "--model", str(resnet_dir),
                              "--layer", "resnet.encoder.stages.0", "--repeat", "1"])
    result = bench.run(args)
    assert result["images"] == 12
    for key in ("bare_s", "engine_s", "engine_no_stop_early_s"):
        assert result[key] > 0
    assert result["ratio_engine_over_bare"] == pytest.approx(result["engine_s"] / result["bare_s"], rel=0.01)
    assert "ratio_engine_no_stop_early_over_bare" in result


def test_exemplar_benchmark_takes_images_from_a_dataset(resnet_dir: Path, make_images, tmp_path: Path) -> None:
    """``--source`` names a plugin dataset (``world``) or a folder: its first ``--images`` files are used."""
    from aim_agent.benchmarks import exemplars as bench

    source = make_images(tmp_path / "source", 9, corrupt=False)
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--images", "6", "--batch-size", "4", "--model", str(resnet_dir), "--source",
                              str(source), "--layer", "resnet.encoder.stages.0", "--repeat", "1"])
    result = bench.run(args)
    assert result["images"] == 6 and result["image_source"] == f"the first 6 images of dataset {str(source)!r}"
