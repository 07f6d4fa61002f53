"""The single tool definition: parsing, the Tools object, registry, image ids."""

from __future__ import annotations

import pytest
from PIL import Image
from pydantic import ValidationError

from aim_agent.images import STORE, image_id, load_image, to_base64
from aim_agent.log import ExperimentLog
from aim_agent.providers import Generated
from aim_agent.tools.base import AimImage, ToolContext, ToolInput, ToolOutput, Tools, tool
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
    with pytest.raises(ValidationError):
        tools.text2image([])  # at least one prompt
    with pytest.raises(ValidationError):
        tools.text2image(["x"] * 10_000)
    with pytest.raises(ValidationError):
        tools.text2image(["x"], colour="red")  # unknown argument
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
    STORE.register(img)

    out = echo.invoke(ToolContext(), {"images": [image_id(img), to_base64(img)]})
    assert out.model_dump()["images"] == [image_id(img)] * 2
    assert load_image(image_id(img)).tobytes() == img.tobytes()
    assert len(out.all_images()) == 2
