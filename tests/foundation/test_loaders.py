"""Model loaders: transformers (local dir, HF cache), module:factory, TorchScript, torch.save."""

from __future__ import annotations

import shutil
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image

from aim_agent.models import LoadedModel, ModelNotFound, UntrustedModel, load_model, trusting
from aim_agent.models.base import open_model
from aim_agent.models.preprocess import from_hf_preprocessor
from aim_agent.models.probe import ModelProbe, list_layers
from aim_agent.models.user_loader import ModuleFactoryLoader, SavedModuleLoader
from aim_agent.plugins import plugin_manager


def test_preprocessor_configs_of_real_checkpoints_give_their_geometry() -> None:
    # microsoft/resnet-152 (ConvNext style): resize shortest edge to 224/0.875 = 256, crop 224
    resnet = from_hf_preprocessor({"crop_pct": 0.875, "size": 224, "resample": 3,
                                   "feature_extractor_type": "ConvNextFeatureExtractor"})
    assert (resnet.resize_shortest, resnet.crop, resnet.resample) == (256, (224, 224), 3)
    # facebook/dino-vits8 (ViT style): square resize, no crop
    dino = from_hf_preprocessor({"size": 224, "resample": 2, "feature_extractor_type": "ViTFeatureExtractor"})
    assert (dino.resize_exact, dino.crop) == ((224, 224), None)
    # openai/clip-vit-base-patch32: shortest edge 224, centre crop 224, CLIP statistics
    clip = from_hf_preprocessor({"size": {"shortest_edge": 224}, "crop_size": {"height": 224, "width": 224},
                                 "do_center_crop": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
                                 "image_std": [0.26862954, 0.26130258, 0.27577711],
                                 "image_processor_type": "CLIPImageProcessor"})
    assert (clip.resize_shortest, clip.crop) == (224, (224, 224))
    assert clip.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    image = Image.new("RGB", (300, 200), (255, 0, 0))
    assert clip.view(image).size == (224, 224)
    x = clip([image])
    assert x.shape == (1, 3, 224, 224)
    assert float(x[0, 0, 0, 0]) == pytest.approx((1.0 - 0.48145466) / 0.26862954, rel=1e-5)


def test_transformers_resnet_loads_with_its_preprocessing_and_labels(resnet_dir: Path, resnet: LoadedModel) -> None:
    assert resnet.input_size == 32
    assert resnet.preprocess.resize_shortest == 36 and resnet.preprocess.crop == (32, 32)
    assert resnet.labels == ["LABEL_0", "LABEL_1", "LABEL_2"]
    again = load_model(str(resnet_dir))  # through the plugin registry
    assert again.fingerprint == resnet.fingerprint
    layers = {info.name: info for info in list_layers(resnet)}
    stage = layers["resnet.encoder.stages.1"]
    assert (stage.kind, stage.units, stage.shape, stage.grid) == ("conv", 16, (16, 4, 4), (4, 4))
    assert layers["resnet.encoder.stages.0"].shape == (8, 8, 8)
    assert layers["classifier"].kind == "vector" and layers["classifier"].units == 3
    assert "resnet" not in layers and "resnet.encoder" not in layers  # whole-model wrappers are not listed


def test_conv_probe_equals_hidden_states_and_stop_early_skips_the_rest(resnet: LoadedModel) -> None:
    images = [Image.new("RGB", (40, 50), (i * 40, 100, 200 - i * 30)) for i in range(3)]
    x = resnet.preprocess(images)
    with torch.no_grad():
        out = resnet.module(pixel_values=x, output_hidden_states=True)
    expected = out.hidden_states[1]  # output of stage 0
    ran = []
    handle = resnet.module.classifier.register_forward_hook(lambda *a: ran.append(1))
    try:
        early = ModelProbe(resnet, "resnet.encoder.stages.0").forward(images)
        assert not ran  # the forward stopped after stage 0
        full = ModelProbe(resnet, "resnet.encoder.stages.0", stop_early=False).forward(images)
        assert ran
    finally:
        handle.remove()
    assert early.dtype == torch.float32 and early.shape == (3, 8, 8, 8)
    torch.testing.assert_close(early, expected)
    torch.testing.assert_close(full, expected)
    logits = ModelProbe(resnet, "classifier").forward(images)
    assert logits.shape == (3, 3, 1, 1)
    torch.testing.assert_close(logits[:, :, 0, 0], out.logits)


def test_token_probe_drops_cls_and_lays_patches_on_the_grid(vit: LoadedModel, vit_dir: Path) -> None:
    assert vit.module.pooler is None  # missing from the checkpoint: dropped, not random
    assert load_model(str(vit_dir)).fingerprint == vit.fingerprint
    assert vit.preprocess.resize_exact == (32, 32) and vit.prefix_tokens == 1
    images = [Image.new("RGB", (32, 32), (200, 10 * i, 30)) for i in range(2)]
    probe = ModelProbe(vit, "layers.0")
    assert (probe.kind, probe.num_units, probe.grid) == ("tokens", 32, (4, 4))
    maps = probe.forward(images)
    with torch.no_grad():
        hidden = vit.module(pixel_values=vit.preprocess(images), output_hidden_states=True).hidden_states[1]
    patches = hidden[:, 1:, :]  # (B, 16, 32) without CLS
    assert maps.shape == (2, 32, 4, 4)
    # unit d at grid cell (r, c) is patch r*4+c, dimension d
    torch.testing.assert_close(maps[:, 5, 2, 3], patches[:, 2 * 4 + 3, 5])
    torch.testing.assert_close(maps.flatten(2).transpose(1, 2), patches)
    # a patch embedding has no CLS token: all 16 tokens are kept
    assert ModelProbe(vit, "embeddings.patch_embeddings").grid == (4, 4)


def test_clip_checkpoint_loads_the_vision_tower_only(clip_dir: Path) -> None:
    from transformers import CLIPModel

    model = load_model(str(clip_dir))
    assert type(model.module).__name__ == "CLIPVisionModel"
    assert not any("text" in name for name, _ in model.module.named_modules())
    images = [Image.new("RGB", (48, 32), (10, 200, 40))]
    maps = ModelProbe(model, "encoder.layers.1").forward(images)
    full = CLIPModel.from_pretrained(clip_dir).eval()
    with torch.no_grad():
        hidden = full.vision_model(pixel_values=model.preprocess(images), output_hidden_states=True).hidden_states[2]
    torch.testing.assert_close(maps.flatten(2).transpose(1, 2), hidden[:, 1:, :])
    pooled = ModelProbe(model, "post_layernorm")
    assert pooled.kind == "vector" and pooled.grid == (1, 1)


def test_hf_cache_id_loads_offline_and_missing_id_says_where_it_looked(
    resnet_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aim_transformers.loader import TransformersLoader

    hub = tmp_path / "hub"
    snapshot = hub / "models--acme--tiny-resnet" / "snapshots" / "0123abcd"
    shutil.copytree(resnet_dir, snapshot)
    (hub / "models--acme--tiny-resnet" / "refs").mkdir()
    (hub / "models--acme--tiny-resnet" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loader = TransformersLoader()
    assert loader.can_load("acme/tiny-resnet")
    assert not loader.can_load("acme/not-there")
    model = load_model("acme/tiny-resnet")
    assert model.source == str(snapshot) and model.name == "acme/tiny-resnet"
    with pytest.raises(ModelNotFound) as err:
        load_model("acme/not-there")
    text = str(err.value)
    assert str(hub) in text and "huggingface-cli download acme/not-there" in text
    assert "save_pretrained" in text and "module-factory" in text and "torch-file" in text


def test_module_factory_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_models.py").write_text(textwrap.dedent("""
        import torch
        def build():
            torch.manual_seed(0)
            return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2), torch.nn.ReLU(),
                                       torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
        def not_a_model():
            return 42
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    loader = ModuleFactoryLoader()
    # importing a module runs its code: only for specs the person running AIM trusts
    with pytest.raises(UntrustedModel, match="--trust-model"):
        load_model("my_models:build")
    assert "my_models" not in sys.modules
    with trusting("my_models:build", "no_such_mod:build", "my_models:not_a_model", "my_models:nope"):
        assert loader.can_load("my_models:build") and not loader.can_load("no_such_mod:build")
        assert not loader.can_load("/some/path.pt")
        model = load_model("my_models:build")
        assert model.input_size == 224 and model.preprocess.crop == (224, 224) and model.prefix_tokens == 0
        assert open_model("my_models:build", input_size=64).input_size == 64
        with pytest.raises(ValueError, match=r"must return a torch\.nn\.Module"):
            load_model("my_models:not_a_model")
        with pytest.raises(LookupError, match="callables there: build"):
            load_model("my_models:nope")
    probe = ModelProbe(model, "1")
    assert (probe.kind, probe.num_units, probe.grid) == ("conv", 4, (111, 111))
    image = Image.new("RGB", (256, 256), (90, 30, 200))
    with torch.no_grad():
        expected = model.module[1](model.module[0](model.preprocess([image])))
    torch.testing.assert_close(probe.forward([image]), expected)
    sys.modules.pop("my_models", None)


def test_torchscript_and_saved_module_files(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    with pytest.warns(DeprecationWarning):
        scripted = torch.jit.script(net)
    scripted.save(str(tmp_path / "net.pt"))
    torch.save(net, tmp_path / "whole.pth")
    torch.save(net.state_dict(), tmp_path / "state.pth")
    assert SavedModuleLoader().can_load(str(tmp_path / "net.pt"))
    # TorchScript and whole-module pickles run code as they load: refused unless trusted
    for name in ("net.pt", "whole.pth"):
        with pytest.raises(UntrustedModel, match="--trust-model"):
            load_model(str(tmp_path / name))
    with pytest.raises(ValueError, match="state_dict"):  # weights only: readable untrusted, but not a module
        load_model(str(tmp_path / "state.pth"))
    with trusting(str(tmp_path / "net.pt")):
        model = load_model(str(tmp_path / "net.pt"))
    names = [info.name for info in list_layers(model)]
    assert names[:2] == ["0", "1"] and "4" in names  # a scripted Sequential keeps its children's names
    image = Image.new("RGB", (230, 240), (1, 2, 3))
    x = model.preprocess([image])
    with torch.no_grad():
        expected = net[1](net[0](x))
    torch.testing.assert_close(ModelProbe(model, "1").forward([image]), expected)
    with trusting(str(tmp_path / "whole.pth")):
        whole = load_model(str(tmp_path / "whole.pth"))
    torch.testing.assert_close(ModelProbe(whole, "1").forward([image]), expected)


def test_builtin_loaders_are_registered_through_the_plugin_manager() -> None:
    names = [loader.name for loader in plugin_manager().model_loaders()]
    assert {"transformers", "module-factory", "torch-file"} <= set(names)


def test_bad_layer_name_lists_close_matches(resnet: LoadedModel) -> None:
    with pytest.raises(LookupError) as err:
        ModelProbe(resnet, "resnet.encoder.stage.1")
    text = str(err.value)
    assert "resnet.encoder.stages.1" in text and f"aim layers {resnet.name}" in text
    with pytest.raises(LookupError, match=r"close matches: resnet\.encoder\.stages\.1"):
        ModelProbe(resnet, "layer2")  # torchvision's name for the second stage


def test_unit_out_of_range_is_a_clear_index_error(resnet: LoadedModel) -> None:
    from aim_agent.system import System

    probe = ModelProbe(resnet, "resnet.encoder.stages.1")
    with pytest.raises(IndexError, match=r"valid units are 0\.\.15"):
        System(probe, 16)
