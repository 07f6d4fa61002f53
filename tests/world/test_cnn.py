"""The world CNN: architecture, shipped weights, loader, and a real accuracy check on fresh images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from aim_agent.models.base import LoadedModel, load_model
from aim_world import datasets as ds
from aim_world.cnn import INPUT_SIZE, MODELS, WorldCNN, WorldModelLoader, file_hash, preprocess, weights_path
from aim_world.render import render
from aim_world.train import train


def test_architecture_has_readable_named_layers() -> None:
    model = WorldCNN(7).eval()
    top = [name for name, _ in model.named_children()]
    for layer in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc"):
        assert layer in top
    x = torch.zeros(2, 3, INPUT_SIZE, INPUT_SIZE)
    assert model(x).shape == (2, 7)
    assert model.conv5(model.conv4(model.conv3(model.conv2(model.conv1(x))))).shape[-2:] == (8, 8)


def test_preprocess_resizes_any_image_the_same_way() -> None:
    scene = next(iter(ds.samples("classify", 1, 0))).scene
    other = next(iter(ds.samples("classify", 1, 1))).scene
    big, small, different = render(scene, 224).image, render(scene, 64).image, render(other, 224).image
    x = preprocess([big, small, different])
    assert x.shape == (3, 3, INPUT_SIZE, INPUT_SIZE) and x.dtype == torch.float32
    assert float(x.min()) >= -2.1 and float(x.max()) <= 2.1
    # one scene at two render sizes looks alike to the network; another scene does not
    assert float((x[0] - x[1]).abs().mean()) < 0.5 * float((x[0] - x[2]).abs().mean())
    with pytest.raises(ValueError):
        preprocess([])


@pytest.mark.parametrize("spec", list(MODELS))
def test_shipped_weights_load_through_the_plugin(spec: str) -> None:
    path = weights_path(MODELS[spec])
    assert path.is_file() and path.stat().st_size < 20e6
    info = json.loads(path.with_suffix(".json").read_text())
    assert info["input_size"] == INPUT_SIZE and info["classes"] and info["accuracy"]["train"] > 0.5
    model = load_model(spec)  # the world plugin's loader, found through the aim_model_loaders hook
    assert isinstance(model, LoadedModel) and model.name == spec
    assert model.labels == info["classes"] and model.input_size == INPUT_SIZE
    assert file_hash(path) in model.fingerprint
    assert not model.module.training


def test_loader_recognises_only_world_specs(tmp_path: Path) -> None:
    loader = WorldModelLoader()
    assert all(loader.can_load(s) for s in MODELS)
    assert not loader.can_load("resnet18") and not loader.can_load("synthetic")
    assert loader.can_probe("synthetic")
    with pytest.raises(FileNotFoundError, match="aim world train"):
        loader.load(f"world-cnn:{tmp_path / 'missing.safetensors'}")


def _accuracy(spec: str, samples: list[ds.Sample]) -> float:
    model = load_model(spec)
    images = [render(s.scene, 224).image for s in samples]
    with torch.no_grad():
        pred = model.module(model.preprocess(images)).argmax(1)
    assert model.labels is not None
    return sum(model.labels[int(p)] == s.label for p, s in zip(pred, samples, strict=True)) / len(samples)


def test_shipped_classifier_is_accurate_on_fresh_images() -> None:
    # a seed neither training (0) nor the recorded test set (1000) used
    fresh = list(ds.samples("classify", 100, 4242, "test"))
    assert _accuracy("world-cnn", fresh) >= 0.85  # chance is 0.05


def test_spawrious_model_relies_on_backgrounds() -> None:
    in_dist = list(ds.spawrious_samples(80, 4242, "train"))
    shifted = list(ds.spawrious_samples(80, 4242, "test"))
    a_in, a_out = _accuracy("world-cnn-spawrious", in_dist), _accuracy("world-cnn-spawrious", shifted)
    assert a_in >= 0.85 and a_in - a_out >= 0.25, (a_in, a_out)


def test_train_writes_loadable_weights(tmp_path: Path) -> None:
    out = tmp_path / "tiny.safetensors"
    info = train("classify", out, epochs=1, n_train=40, n_test=20, seed=3, log=lambda _: None)
    assert out.is_file() and out.with_suffix(".json").is_file()
    assert info["training"]["epochs"] == 1 and info["training"]["n_train"] == 40
    assert set(info["accuracy"]) == {"train", "test"}
    model = load_model(f"world-cnn:{out}")
    assert model.labels == list(ds.CLASSIFY_CLASSES)
    with pytest.raises(ValueError, match="unknown task"):
        train("nope", out)


def test_world_cnn_layers_are_probe_able() -> None:
    from aim_agent.models.probe import ModelProbe, list_layers

    model = load_model("world-cnn")
    names = [info.name for info in list_layers(model)]
    assert [n for n in names if n in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc")] == [
        "conv1", "conv2", "conv3", "conv4", "conv5", "fc"]
    probe = ModelProbe(model, "conv5")
    assert probe.num_units == 256 and probe.grid == (8, 8)
    assert probe.view(render(next(iter(ds.samples("classify", 1, 0))).scene, 224).image).size == (64, 64)
