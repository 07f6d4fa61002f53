"""Circuits: ablation equals a hand computation, attribution finds a planted unit, the tools reach every caller."""

from __future__ import annotations

import base64
import io

import pytest
import torch
import torch.nn.functional as F
from sae_fakes import TwoConv, loaded, noise_images, pixels

from aim_agent.circuits import LatentSite, Site, ablate, attribute, previous_layer, run_sites
from aim_agent.circuits.tools import ablate_tool, attribute_tool
from aim_agent.models.probe import ModelProbe
from aim_agent.models.trust import trusting
from aim_agent.sae import SAEProbe, SparseAutoencoder
from aim_agent.system import System
from aim_agent.tools.base import ToolContext, ToolError, Tools, invoke

W1 = torch.tensor([[1.0, 0.5, -0.2], [0.3, 1.2, 0.1], [-0.4, 0.2, 1.1], [0.6, -0.3, 0.8]])  # conv1: 3 -> 4
W2 = torch.tensor([[0.7, -1.3, 0.4, 0.9], [0.2, 0.5, -0.6, 1.4]])  # conv2: 4 -> 2


def _by_hand(images, w1=W1, w2=W2):
    """conv1 = relu(W1 x) and conv2 = W2 conv1 at every pixel: (B, H, W, 4), (B, H, W, 2)."""
    a = F.relu(pixels(images) @ w1.T)
    return a, a @ w2.T


def test_zero_and_mean_ablation_equal_a_hand_computation(two_conv) -> None:
    model = two_conv(W1, W2)
    images = noise_images(5, seed=3)
    x = model.preprocess(images)
    target, upstream = Site(model, "conv2"), Site(model, "conv1")
    a, out = _by_hand(images)
    for unit in (0, 1):
        result = ablate(model, x, target, unit, upstream, [1, 3], mode="zero")
        a_zero = a.clone()
        a_zero[..., [1, 3]] = 0
        torch.testing.assert_close(result.before, out[..., unit].flatten(1).amax(1), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(result.after, (a_zero @ W2.T)[..., unit].flatten(1).amax(1), atol=1e-5, rtol=1e-5)
        mean = ablate(model, x, target, unit, upstream, [2], mode="mean", reduce="mean")
        a_mean = a.clone()
        a_mean[..., 2] = a[..., 2].mean()  # over images and positions
        torch.testing.assert_close(mean.after, (a_mean @ W2.T)[..., unit].flatten(1).mean(1), atol=1e-5, rtol=1e-5)
        assert mean.effect == pytest.approx(float((mean.after - mean.before).mean()))


def test_ablating_an_sae_latent_moves_the_layer_along_its_decoder_direction(two_conv) -> None:
    torch.manual_seed(0)
    model = two_conv(W1, W2)
    sae = SparseAutoencoder(4, 12, activation="topk", k=2)
    with torch.no_grad():
        sae.scale.fill_(0.7)
        sae.b_pre.copy_(torch.randn(4) * 0.1)
    images = noise_images(4, seed=4)
    x = model.preprocess(images)
    site = LatentSite(model, "conv1", sae)
    # an untouched SAE changes nothing (its reconstruction error stays in)
    untouched = run_sites(model, x, Site(model, "conv2"), site, edit=lambda z: z)
    _, out = _by_hand(images)
    torch.testing.assert_close(untouched.target.permute(0, 2, 3, 1), out, atol=1e-5, rtol=1e-5)
    a, _ = _by_hand(images)
    with torch.no_grad():
        z = sae.encode(a)  # (B, H, W, 12)
    k = int(torch.argmax((z > 0).float().sum((0, 1, 2))))  # a latent that fires somewhere
    result = ablate(model, x, Site(model, "conv2"), 1, site, [k])
    moved = a - z[..., k : k + 1] * sae.decoder.weight[:, k].detach() * 0.7
    torch.testing.assert_close(result.after, (moved @ W2.T)[..., 1].flatten(1).amax(1), atol=1e-5, rtol=1e-5)


def test_attribution_ranks_a_planted_strong_unit_first(two_conv) -> None:
    # conv2 unit 0 reads conv1 channel 2 with weight 8, every other channel weakly
    w1 = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.9, 0.1], [0.2, 0.2, 0.6], [0.5, 0.5, 0.1], [0.3, 0.1, 0.7]])
    w2 = torch.tensor([[0.4, -0.3, 8.0, 0.5, 0.2]])
    model = two_conv(w1, w2)
    x = model.preprocess(noise_images(6, seed=5))
    target, upstream = Site(model, "conv2"), Site(model, "conv1")
    for method in ("grad_x_act", "integrated_gradients"):
        result = attribute(model, x, target, 0, upstream, method=method, steps=8)
        assert result.ranked(1) == [2], (method, result.scores)
        assert float(result.scores[2]) > 5 * float(result.scores.abs()[[0, 1, 3, 4]].max())
    # the target is linear in conv1 at its argmax, so activation x gradient adds up to the activation exactly
    gxa = attribute(model, x, target, 0, upstream)
    torch.testing.assert_close(gxa.per_image.sum(1), gxa.target, atol=1e-4, rtol=1e-4)


def test_integrated_gradients_add_up_to_the_change_from_the_baseline() -> None:
    torch.manual_seed(1)
    module = torch.nn.Sequential()
    module.add_module("conv1", torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU()))
    module.add_module("conv2", torch.nn.Sequential(torch.nn.Conv2d(6, 4, 3, padding=1), torch.nn.Tanh()))
    model = loaded(module)
    x = model.preprocess(noise_images(3, seed=6))
    result = attribute(model, x, Site(model, "conv2"), 1, Site(model, "conv1"), method="integrated_gradients",
                       steps=48, reduce="mean")
    assert result.baseline_target is not None
    torch.testing.assert_close(result.per_image.sum(1), result.target - result.baseline_target, atol=2e-3, rtol=1e-2)


def test_layer_order_and_previous_layer(two_conv) -> None:
    model = two_conv(W1, W2)
    assert previous_layer(model, "conv2") == "conv1"
    with pytest.raises(ValueError, match="does not run before"):
        run_sites(model, model.preprocess(noise_images(1)), Site(model, "conv1"), Site(model, "conv2"))
    with pytest.raises(ValueError, match="first layer"):
        previous_layer(model, "conv1")


def _png(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_tools_run_through_invoke_code_mode_and_langchain(two_conv) -> None:
    from aim_agent.tools.adapters import langchain_tools
    from aim_agent.tools.registry import all_tools

    w2 = torch.tensor([[0.1, 0.2, 0.1, 6.0], [1.0, 1.0, 1.0, 1.0]])
    model = two_conv(W1, w2)
    ctx = ToolContext(system=System(ModelProbe(model, "conv2"), 0))
    images = noise_images(4, seed=7)
    for spec in (attribute_tool, ablate_tool):
        assert spec.read_only and spec.needs_system and spec.idempotent
    assert {"attribute", "ablate"} <= {s.name for s in all_tools()}
    out = invoke(attribute_tool, {"images": images, "top": 2}, ctx)  # default upstream: the layer before, conv1
    assert out.units[0].unit == 3 and out.upstream == "channels of conv1" and len(out.target_activations) == 4
    abl = invoke(ablate_tool, {"units": [3], "images": images}, ctx)
    a, _ = _by_hand(images, W1, w2)
    a[..., 3] = 0
    torch.testing.assert_close(torch.tensor(abl.after), (a @ w2.T)[..., 0].flatten(1).amax(1), atol=1e-3, rtol=1e-3)
    assert abl.relative_change < -0.5
    # code mode: plain values, positional arguments in declared order
    tools = Tools(ctx, all_tools())
    units, scores = tools.attribute(images, top=3)
    assert units[0] == 3 and scores == sorted(scores, reverse=True)
    before, after = tools.ablate([3], images)
    assert len(before) == len(after) == 4
    # LangChain: image ids from the context's store, JSON back; errors as text the model can act on
    ids = [ctx.images.ensure(im) for im in images]
    lc = {t.name: t for t in langchain_tools(ctx, all_tools())}
    result = lc["attribute"].invoke({"images": ids, "top": 1})
    assert result["units"][0]["unit"] == 3
    assert "out of range" in lc["ablate"].invoke({"units": [99], "images": ids})
    assert "has no layer 'nope'" in lc["ablate"].invoke({"units": [0], "images": ids, "layer": "nope"})


def test_tools_on_an_sae_latent_and_clear_errors(two_conv, tmp_path) -> None:
    torch.manual_seed(2)
    model = two_conv(W1, W2)
    sae = SparseAutoencoder(2, 6, activation="relu")
    probe = SAEProbe(ModelProbe(model, "conv2"), sae)
    ctx = ToolContext(system=System(probe, 4))
    images = noise_images(3, seed=8)
    out = invoke(attribute_tool, {"images": images, "layer": "conv1", "top": 4}, ctx)
    assert out.upstream == "channels of conv1" and len(out.units) == 4
    # upstream latents of an SAE on conv1: only one the person who started AIM offered
    SparseAutoencoder(4, 8, activation="topk", k=2).save(tmp_path / "up")
    call = {"images": images, "layer": "conv1", "sae": str(tmp_path / "up")}
    with pytest.raises(ToolError, match="is not offered here"):
        invoke(attribute_tool, call, ctx)
    with trusting(str(tmp_path / "up")):  # what a command line or an MCP operator's [models] opens
        out = invoke(attribute_tool, call, ctx)
    assert out.upstream == "latents of an SAE (8) on conv1" and all(0 <= u.unit < 8 for u in out.units)
    ctx.saes = {"conv1-sae": str(tmp_path / "up")}  # or by a name the context offers
    assert invoke(attribute_tool, {**call, "sae": "conv1-sae"}, ctx).upstream == out.upstream
    ctx.saes = {"gone": str(tmp_path / "none")}
    with pytest.raises(ToolError, match="no SAE at"):
        invoke(ablate_tool, {"units": [0], "images": images, "layer": "conv1", "sae": "gone"}, ctx)
    with pytest.raises(ToolError, match="no system is loaded"):
        invoke(attribute_tool, {"images": images}, ToolContext())

    class Synthetic:
        model_name, layer, num_units = "synthetic", "neurons", 3

        def check_unit(self, unit: int) -> None:
            pass

    with pytest.raises(ToolError, match="circuits need a model's layer"):
        invoke(attribute_tool, {"images": images}, ToolContext(system=System(Synthetic(), 0)))  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_tools_over_mcp(two_conv, tmp_path) -> None:
    from mcp import Client

    from aim_agent.mcp_server import ServerOptions, build_server

    w2 = torch.tensor([[0.1, 5.0, 0.1, 0.2], [1.0, 1.0, 1.0, 1.0]])
    model = two_conv(W1, w2)
    server = build_server(ServerOptions(context_factory=lambda: ToolContext(system=System(ModelProbe(model, "conv2"),
                                                                                          0)),
                          runs_dir=tmp_path / "runs"))
    images = [_png(im) for im in noise_images(3, seed=9)]
    async with Client(server) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        assert listed["attribute"].description == attribute_tool.doc
        found = await client.call_tool("attribute", {"images": images, "top": 2})
        assert not found.is_error and found.structured_content["units"][0]["unit"] == 1
        cut = await client.call_tool("ablate", {"units": [1], "images": images, "mode": "mean"})
        assert not cut.is_error and len(cut.structured_content["after"]) == 3


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_twoconv_fixture_matches_its_hand_computation(two_conv) -> None:
    model = two_conv(W1, W2)
    images = noise_images(2, seed=1)
    with torch.no_grad():
        got = model.module(model.preprocess(images)).permute(0, 2, 3, 1)
    torch.testing.assert_close(got, _by_hand(images)[1], atol=1e-5, rtol=1e-5)
    assert isinstance(model.module, TwoConv)


def test_token_layers_of_a_vit_keep_their_cls_token_and_match_a_hand_ablation(tmp_path) -> None:
    """A ViT's units are hidden dimensions over the patch grid: ablation leaves the CLS token alone."""
    from transformers import ViTConfig, ViTModel

    from aim_transformers.loader import TransformersLoader

    torch.manual_seed(3)
    config = ViTConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
                       image_size=16, patch_size=8)
    ViTModel(config, add_pooling_layer=False).save_pretrained(tmp_path / "vit")
    model = TransformersLoader().load(str(tmp_path / "vit"))
    images = noise_images(3, seed=11, size=16)
    x = model.preprocess(images)
    names = dict(model.module.named_modules())
    prefix = "layers" if "layers.1" in names else "encoder.layer"  # transformers 5 renamed the blocks
    target, upstream = Site(model, f"{prefix}.1"), Site(model, f"{prefix}.0")
    assert previous_layer(model, f"{prefix}.1") == f"{prefix}.0"
    result = ablate(model, x, target, 5, upstream, [2, 9])

    def by_hand() -> torch.Tensor:  # zero dims 2 and 9 of the patch tokens (not CLS) after layer 0
        def hook(module, inputs, output):
            hidden = (output[0] if isinstance(output, tuple) else output).clone()
            hidden[:, 1:, [2, 9]] = 0
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

        handle = names[f"{prefix}.0"].register_forward_hook(hook)
        try:
            with torch.no_grad():
                out = model.module(pixel_values=x, output_hidden_states=True)
        finally:
            handle.remove()
        return out.hidden_states[2][:, 1:, 5].amax(1)  # layer 1's output, patch tokens, dim 5

    torch.testing.assert_close(result.after, by_hand(), atol=1e-5, rtol=1e-5)
    ig = attribute(model, x, target, 5, upstream, method="integrated_gradients", steps=32, reduce="mean")
    assert ig.baseline_target is not None and ig.scores.shape == (16,)
    torch.testing.assert_close(ig.per_image.sum(1), ig.target - ig.baseline_target, atol=5e-3, rtol=2e-2)


def test_model_written_code_calls_the_circuit_tools_through_the_sandbox(two_conv) -> None:
    """Code mode: the sandboxed child holds no model; tools.attribute / tools.ablate cross the pipe to the parent."""
    from aim_agent.agent.experiment import code_handlers
    from aim_agent.agent.sandbox import SandboxLimits, run_code
    from aim_agent.tools.registry import all_tools

    w2 = torch.tensor([[0.1, 0.2, 4.0, 0.1], [1.0, 1.0, 1.0, 1.0]])
    ctx = ToolContext(system=System(ModelProbe(two_conv(W1, w2), "conv2"), 0))
    code = """from PIL import Image
def run_experiment(system, tools):
    images = [Image.new("RGB", (8, 8), (30 * i, 200 - 20 * i, 90)) for i in range(4)]
    units, scores = tools.attribute(images, top=2)
    before, after = tools.ablate(units[:1], images)
    return units, scores, before, after
"""
    result = run_code(code, handlers=code_handlers(ctx, all_tools()),
                      limits=SandboxLimits(wall_time_s=30, cpu_time_s=30, memory_bytes=1024 * 2**20))
    assert result.ok, result.report()
    units, scores, before, after = result.return_value
    assert units[0] == 2 and scores[0] > 0 and all(a < b for a, b in zip(after, before, strict=True))
