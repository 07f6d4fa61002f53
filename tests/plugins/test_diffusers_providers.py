"""The diffusers providers on tiny random-weight pipelines built here (real pipeline classes, no download)."""

from __future__ import annotations

import json
import string

import pytest

pytest.importorskip("diffusers")
pytestmark = pytest.mark.slow

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from aim_agent.images import current_store, image_id  # noqa: E402
from aim_agent.providers import ProviderError  # noqa: E402

SETTINGS = {"steps": 2, "resolution": 32, "device": "cpu"}


def _components(tmp, in_channels: int):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in string.ascii_lowercase:
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    tok_dir = tmp / "tokenizer-files"
    tok_dir.mkdir(exist_ok=True)
    (tok_dir / "vocab.json").write_text(json.dumps(vocab))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(
        vocab_file=str(tok_dir / "vocab.json"), merges_file=str(tok_dir / "merges.txt"), model_max_length=16
    )
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=16,
        in_channels=in_channels,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        norm_num_groups=4,
        attention_head_dim=2,
    )
    vae = AutoencoderKL(
        block_out_channels=[8, 16],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=32,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=16,
            intermediate_size=32,
            num_attention_heads=2,
            num_hidden_layers=2,
            vocab_size=len(vocab),
            max_position_embeddings=16,
            projection_dim=16,
        )
    )
    return dict(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


@pytest.fixture(scope="module")
def tiny_pipelines(tmp_path_factory):
    """Folders written by save_pretrained: a tiny SD-1.5-shaped pipeline and a tiny InstructPix2Pix."""
    from diffusers import DDIMScheduler, PNDMScheduler, StableDiffusionInstructPix2PixPipeline, StableDiffusionPipeline

    tmp = tmp_path_factory.mktemp("pipelines")
    StableDiffusionPipeline(
        scheduler=PNDMScheduler(skip_prk_steps=True, steps_offset=1), **_components(tmp, 4)
    ).save_pretrained(tmp / "sd")
    StableDiffusionInstructPix2PixPipeline(
        scheduler=DDIMScheduler(steps_offset=1), **_components(tmp, 8)
    ).save_pretrained(tmp / "p2p")
    return tmp


def test_sd15_generates_images_of_the_requested_size(tiny_pipelines):
    from aim_diffusers.providers import StableDiffusion15

    provider = StableDiffusion15(tiny_pipelines / "sd", **SETTINGS)
    made = provider.generate(["a red dog", "a blue car", "a cat"], size=48, seed=3)
    assert [g.prompt for g in made] == ["a red dog", "a blue car", "a cat"]
    assert all(g.image.size == (48, 48) and g.image.mode == "RGB" for g in made)
    assert all(current_store().record(g.image).meta["prompt"] == g.prompt for g in made)
    again = provider.generate(["a red dog"], size=48, seed=3)
    other = provider.generate(["a red dog"], size=48, seed=4)
    assert image_id(again[0].image) == image_id(made[0].image)  # a seed fixes the image
    assert image_id(other[0].image) != image_id(made[0].image)


def test_instruct_pix2pix_returns_pairs(tiny_pipelines):
    from aim_diffusers.providers import InstructPix2PixEditor

    editor = InstructPix2PixEditor(tiny_pipelines / "p2p", **SETTINGS)
    originals = [Image.new("RGB", (40, 40), (20, 180, 30)), Image.new("RGB", (40, 40), (200, 30, 30))]
    done = editor.edit(originals, ["make it red", "make it green"], seed=0)
    assert len(done) == 2
    for pair, original, instruction in zip(done, originals, ["make it red", "make it green"], strict=True):
        assert pair.original is original and pair.instruction == instruction and pair.applied
        assert pair.edited.size == original.size
        assert current_store().record(pair.edited).parent == image_id(original)
    with pytest.raises(ProviderError, match="pair up"):
        editor.edit(originals, ["one instruction"])


def test_missing_weights_say_where_they_looked(tmp_path):
    from aim_diffusers.providers import FluxKontextEditor, StableDiffusionXL

    with pytest.raises(ProviderError) as info:
        _ = StableDiffusionXL("nobody/no-such-model", device="cpu").pipe
    message = str(info.value)
    assert "Hugging Face cache" in message and "never downloads" in message and "AIM_DIFFUSERS_SDXL_MODEL" in message
    with pytest.raises(ProviderError, match="does not exist"):
        _ = FluxKontextEditor(tmp_path / "nothing-here", device="cpu").pipe
    (tmp_path / "not-a-pipeline").mkdir()
    with pytest.raises(ProviderError, match=r"model_index\.json"):
        _ = FluxKontextEditor(tmp_path / "not-a-pipeline", device="cpu").pipe


def test_configuration_picks_weights_and_the_tool_uses_them(tiny_pipelines, monkeypatch):
    from aim_agent.log import ExperimentLog
    from aim_agent.plugins import AimPlugins
    from aim_agent.tools.base import ToolContext
    from aim_agent.tools.core import edit_images, text2image

    monkeypatch.setenv("AIM_DIFFUSERS_SD15_MODEL", str(tiny_pipelines / "sd"))
    monkeypatch.setenv("AIM_DIFFUSERS_INSTRUCT_PIX2PIX_MODEL", str(tiny_pipelines / "p2p"))
    monkeypatch.setenv("AIM_DIFFUSERS_STEPS", "1")
    monkeypatch.setenv("AIM_DIFFUSERS_RESOLUTION", "32")
    monkeypatch.setenv("AIM_DIFFUSERS_DEVICE", "auto")
    plugins = AimPlugins()
    assert {"sd15", "sdxl", "diffusers"} <= set(plugins.provider_names("text2image"))
    assert {"instruct-pix2pix", "flux-kontext"} <= set(plugins.provider_names("editor"))
    generator = plugins.provider("text2image", "sd15")
    assert generator.steps == 1 and generator.device == ("cuda" if torch.cuda.is_available() else "cpu")
    ctx = ToolContext(
        text2image=generator, editor=plugins.provider("editor", "instruct-pix2pix"), log=ExperimentLog(), image_size=40
    )
    out = text2image.invoke(ctx, {"prompts": ["a red dog", "a cat"]})
    assert [im.size for im in out.images] == [(40, 40), (40, 40)]
    pairs = edit_images.invoke(ctx, {"prompts": ["a dog"], "edits": ["make it blue"]})
    assert len(pairs.images) == 2 and pairs.applied == [True] and pairs.images[1].size == (40, 40)


def test_generic_pipeline_needs_a_model(tiny_pipelines):
    from aim_diffusers.providers import DiffusersTextToImage

    with pytest.raises(ProviderError, match="has no model"):
        _ = DiffusersTextToImage(device="cpu").pipe
    auto = DiffusersTextToImage(tiny_pipelines / "sd", **SETTINGS)
    assert auto.generate(["a dog"], size=32)[0].image.size == (32, 32)
