"""The commands end to end on the world CNN: `aim sae train` / `info`, `aim exemplars --sae`, `aim circuit`,
`aim interpret --sae`, and `aim bench sae`."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
from PIL import Image

from aim_agent.cli import main
from aim_agent.models.probe import open_probe
from aim_agent.system import System


@pytest.fixture(scope="module")
def world_folder(tmp_path_factory):
    datasets = importlib.import_module("aim_world.datasets")
    return datasets.write_dataset(tmp_path_factory.mktemp("world") / "w24", 24, 0, size=112)


@pytest.fixture(scope="module")
def trained(world_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("sae") / "conv4"
    code = main(["sae", "train", "--model", "world-cnn", "--layer", "conv4", "--dataset", str(world_folder),
                 "--latents", "64", "--k", "4", "--epochs", "2", "--batch-vectors", "256", "--out", str(out),
                 "--no-progress", "--json"])
    assert code == 0
    return out


def test_sae_train_saves_metrics_and_history_and_info_reads_them(trained, capsys) -> None:
    meta = json.loads((trained / "sae.json").read_text())
    assert meta["n_latents"] == 64 and meta["k"] == 4 and meta["activation"] == "topk"
    info = meta["meta"]
    assert info["layer"] == "conv4" and info["images"] == 24 and info["held_out_images"] == 2
    assert info["held_out_vectors"] == 2 * 64 and set(info["metrics"]) >= {"fvu", "l0", "dead_fraction"}
    assert len(info["history"]) == 2 and info["history"][-1]["l0"] <= 4
    assert main(["sae", "info", str(trained)]) == 0
    printed = capsys.readouterr().out
    assert "64 latents (topk, k=4)" in printed and "FVU" in printed and "history" in printed


def test_latents_are_units_everywhere(trained, world_folder, tmp_path, capsys) -> None:
    probe = open_probe("world-cnn", "conv4", sae=str(trained))
    assert probe.num_units == 64 and probe.layer == "conv4/sae64"
    images = [Image.open(p).convert("RGB") for p in sorted(world_folder.rglob("*.png"))[:2]]
    acts = System(probe, 3).activations(images).activations
    assert acts.shape == (2,) and np.isfinite(acts).all()
    # exemplars of every latent in one pass over the dataset
    assert main(["exemplars", "--model", "world-cnn", "--layer", "conv4", "--sae", str(trained), "--dataset",
                 str(world_folder), "--units", "0,63", "--cache", str(tmp_path / "cache")]) == 0
    printed = capsys.readouterr().out
    assert "conv4/sae64" in printed and "64 units" in printed


def test_interpret_a_latent_with_the_offline_scientist(trained, world_folder, tmp_path) -> None:
    code = main(["interpret", "--model", "world-cnn", "--layer", "conv4", "--sae", str(trained), "--unit", "5",
                 "--backend", "offline", "--max-rounds", "2", "--dataset", str(world_folder), "--runs-dir",
                 str(tmp_path / "runs"), "--run-id", "latent5", "--quiet"])
    assert code == 0
    record = json.loads((tmp_path / "runs" / "latent5" / "result.json").read_text())
    assert record["config"]["sae"] == str(trained) and record["conclusion"]["labels"]
    assert "latent of SAE" in record["unit_label"]
    report = (tmp_path / "runs" / "latent5" / "report.html").read_text()
    assert "conv4" in report and str(trained) in report


def test_circuit_on_a_world_cnn_unit(world_folder, tmp_path, capsys) -> None:
    out = tmp_path / "circuit"
    code = main(["circuit", "--model", "world-cnn", "--layer", "conv4", "--unit", "7", "--top", "2", "--images", "6",
                 "--dataset", str(world_folder), "--max-rounds", "1", "--backend", "offline", "--out", str(out),
                 "--quiet"])
    assert code == 0
    data = json.loads((out / "circuit.json").read_text())
    assert data["upstream_layer"] == "conv3" and len(data["edges"]) == 2 and len(data["nodes"]) == 3
    for edge in data["edges"]:
        assert edge["before"] > 0 and edge["verified"] == (edge["relative_change"] <= -0.05)
    assert all(node["label"] and node["report"] for node in data["nodes"])
    html = (out / "circuit.html").read_text()
    assert "<svg" in html and "ablation" in html and data["nodes"][1]["label"].split(",")[0] in html
    for node in data["nodes"]:
        assert all((out / image).is_file() for image in [*node["exemplars"], *node["on_target"]])
        assert (out / node["report"]).is_file()
    assert [len(n["on_target"]) for n in data["nodes"]] == [0, 6, 6]  # upstream units on the unit's exemplars
    assert "where it fires on the unit" in html
    assert "report" in capsys.readouterr().out


def test_circuit_onto_upstream_sae_latents(trained, world_folder, tmp_path) -> None:
    out = tmp_path / "latents"
    code = main(["circuit", "--model", "world-cnn", "--layer", "conv5", "--unit", "3", "--upstream", "conv4",
                 "--upstream-sae", str(trained), "--top", "3", "--images", "6", "--dataset", str(world_folder),
                 "--no-interpret", "--out", str(out), "--quiet"])
    assert code == 0
    data = json.loads((out / "circuit.json").read_text())
    assert data["upstream"] == "latents of an SAE (64) on conv4" and data["backend"] == "not interpreted"
    assert [n["layer"] for n in data["nodes"]] == ["conv5", "conv4/sae64", "conv4/sae64", "conv4/sae64"]
    assert all(0 <= e["source"] < 64 for e in data["edges"])
    assert "(not interpreted)" in (out / "circuit.html").read_text()


def test_circuit_refuses_a_synthetic_neuron(tmp_path, capsys) -> None:
    code = main(["circuit", "--model", "synthetic", "--layer", "neurons", "--unit", "0", "--no-interpret",
                 "--out", str(tmp_path / "c")])
    assert code == 2 and "circuits need a model's layer" in capsys.readouterr().err


def test_bench_sae_reports_ours_next_to_the_reference(world_folder, capsys) -> None:
    pytest.importorskip("sklearn")
    code = main(["bench", "sae", "--json", "--model", "world-cnn", "--layer", "conv4", "--dataset", str(world_folder),
                 "--latents", "64", "--k", "4", "--epochs", "1", "--ref-vectors", "256", "--batch-vectors", "256"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    for side in ("ours", "reference"):
        assert set(result[side]) >= {"fvu", "l0", "dead_fraction", "train_vectors_per_s", "encode_vectors_per_s"}
    assert result["ours"]["l0"] <= 4 and result["reference"]["l0"] <= 4  # matched sparsity
    assert result["held_out_vectors"] == 128 and "ratio_fvu_ours_over_reference" in result
