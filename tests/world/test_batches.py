"""Batches are per prompt: one undrawable prompt fails only its own image, and every caller sees which
(the tool result, the agent's observation in both experiment modes, MCP in tests/mcp)."""

from __future__ import annotations

import json

import pytest

from aim_agent.agent.experiment import Recorder, recorded_invoke, run_tool_call, tool_steps_observation
from aim_agent.agent.schema import ToolCall
from aim_agent.images import use_store
from aim_agent.providers import ProviderError, drawn_images
from aim_agent.tools.base import ToolContext, ToolError, output_data
from aim_agent.tools.core import CORE_TOOLS, edit_images, text2image
from aim_world.providers import WorldEditor, WorldTextToImage

PROMPTS = ["a dog on grass", "a lighthouse on a rocky coast", "a red car on a road"]


@pytest.fixture
def ctx() -> ToolContext:
    return ToolContext(text2image=WorldTextToImage(), editor=WorldEditor(), image_size=48)


def test_the_world_generator_fails_one_prompt_not_the_batch() -> None:
    made = WorldTextToImage().generate(PROMPTS, size=32)
    assert [g.image is None for g in made] == [False, True, False]
    assert made[1].error is not None and "'lighthouse'" in made[1].error
    with pytest.raises(ProviderError, match="lighthouse"):
        drawn_images(made)  # a caller that needs every image gets the prompt's own error


def test_text2image_returns_the_drawable_images_and_each_error(ctx: ToolContext) -> None:
    with use_store(ctx.images):
        out = text2image.invoke(ctx, {"prompts": PROMPTS})
    assert [image is None for image in out.images] == [False, True, False]
    assert out.errors[0] is None and out.errors[2] is None and "lighthouse" in (out.errors[1] or "")
    assert any(n.startswith("prompt 1 (") and "NOT DRAWN" in n for n in out.notes)
    data = output_data(out, ctx)
    assert data["images"][1] is None and data["images"][0].startswith("img_")
    assert len(out.all_images()) == 2
    good = text2image.invoke(ctx, {"prompts": ["a dog"]})
    assert good.errors == []  # nothing failed: no error list to read


def test_a_batch_where_nothing_can_be_drawn_is_an_error(ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="lighthouse"):
        text2image.invoke(ctx, {"prompts": ["a lighthouse"]})


def test_edit_images_skips_pairs_whose_original_could_not_be_drawn(ctx: ToolContext) -> None:
    with use_store(ctx.images):
        out = edit_images.invoke(ctx, {"prompts": PROMPTS, "edits": ["make it night"]})
    assert out.applied == [True, False, True]
    assert out.images[2] is None and out.images[3] is None and out.images[0] is not None
    assert any(n.startswith("edit 1 (") and "NOT DONE" in n for n in out.notes)


def test_the_agent_sees_which_prompt_failed_in_tool_calling_mode(ctx: ToolContext) -> None:
    recorder = Recorder(round=1, images=ctx.images)
    specs = {spec.name: spec for spec in CORE_TOOLS}
    with use_store(ctx.images):
        step, _ = run_tool_call(0, ToolCall(tool="text2image", args={"prompts": PROMPTS}), ctx, specs, recorder, [])
    assert step.ok and len(step.image_ids) == 2
    observation = tool_steps_observation(1, [step], recorder)
    assert "lighthouse" in observation.text and "NOT DRAWN" in observation.text
    assert json.loads(json.dumps(step.result))["images"][1] is None


def test_the_agent_sees_which_prompt_failed_in_code_mode(ctx: ToolContext) -> None:
    """Code mode's observation lists the recorder's tool notes; the recorder is handed every call's output."""
    recorder = Recorder(round=1, images=ctx.images)
    with use_store(ctx.images):
        recorded_invoke(text2image, {"prompts": PROMPTS}, ctx, recorder)
    assert any("text2image: prompt 1" in n and "NOT DRAWN" in n for n in recorder.notes)


def test_an_empty_or_too_long_prompt_fails_only_its_own_image(ctx: ToolContext) -> None:
    long_prompt = "a dog " * 2000
    with use_store(ctx.images):
        out = text2image.invoke(ctx, {"prompts": ["", "a dog on grass", long_prompt]})
    assert [image is None for image in out.images] == [True, False, True]
    assert "empty" in (out.errors[0] or "") and out.errors[1] is None
    assert "at most 1000 characters" in (out.errors[2] or "") and len(out.errors[2] or "") < 200
    assert all(len(n) < 400 for n in out.notes)  # the long prompt is quoted shortened, never whole
    with pytest.raises(ToolError, match="at most 1000 characters"):
        text2image.invoke(ctx, {"prompts": [long_prompt]})
