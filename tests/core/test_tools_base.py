"""The single tool definition: parsing, the Tools object, registry, image ids."""

from __future__ import annotations

import pytest
from PIL import Image

from aim_agent.images import image_id, load_image, to_base64
from aim_agent.log import ExperimentLog
from aim_agent.providers import Generated
from aim_agent.tools.base import AimImage, ToolContext, ToolError, ToolInput, ToolOutput, Tools, output_data, tool
from aim_agent.tools.core import CORE_TOOLS, text2image
from aim_agent.tools.registry import all_tools


class FakeGenerator:
    name = "fake"

    def generate(self, prompts, *, size=224, seed=0):
        return [Generated(Image.new("RGB", (size, size), (len(p) * 7 % 256, seed % 256, 0)), p) for p in prompts]


def test_core_tools_are_registered_once_with_agent_docs():
    names = [t.name for t in all_tools()]
    assert len(names) == len(set(names))
    for spec in CORE_TOOLS:
        assert spec.name in names and len(spec.doc) > 40


def test_tools_object_validates_and_returns_python_values():
    ctx = ToolContext(text2image=FakeGenerator(), image_size=32, log=ExperimentLog())
    tools = Tools(ctx, all_tools())
    images = tools.text2image(["a dog", "a cat on snow"])
    assert [im.size for im in images] == [(32, 32), (32, 32)]
    # one error policy for every caller: a ToolError naming the argument and its limits
    with pytest.raises(ToolError, match=r"prompts: .*at least 1 item"):
        tools.text2image([])
    with pytest.raises(ToolError, match=r"prompts: .*allowed: at least 1 items, at most 64 items"):
        tools.text2image(["x"] * 10_000)
    with pytest.raises(ToolError, match="unknown argument 'colour'; valid arguments: prompts, seed"):
        tools.text2image(["x"], colour="red")
    with pytest.raises(ToolError, match="at most 1000 characters"):
        tools.text2image(["a dog " * 1000])
    with pytest.raises(AttributeError, match="available"):
        tools.no_such_tool()


def test_missing_provider_is_a_clear_error():
    from aim_agent.tools.base import ToolError

    with pytest.raises(ToolError, match="no text2image provider"):
        text2image.invoke(ToolContext(), {"prompts": ["a dog"]})


class EchoIn(ToolInput):
    images: list[AimImage]


class EchoOut(ToolOutput):
    images: list[AimImage]


@tool()
def echo(ctx: ToolContext, args: EchoIn) -> EchoOut:
    """Echo images back."""
    return EchoOut(images=args.images)


def test_image_fields_accept_ids_and_base64_and_dump_to_ids():
    img = Image.new("RGB", (8, 8), "red")
    ctx = ToolContext()
    ctx.images.register(img)

    out = echo.invoke(ctx, {"images": [image_id(img), to_base64(img)]})
    assert output_data(out, ctx)["images"] == [image_id(img)] * 2
    assert load_image(image_id(img), ctx.images).tobytes() == img.tobytes()
    assert len(out.all_images()) == 2
    # ids are per context: another context (another run, another MCP session) cannot read them
    with pytest.raises(ToolError, match="unknown image id"):
        echo.invoke(ToolContext(), {"images": [image_id(img)]})
