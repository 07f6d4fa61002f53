"""The API text and the LangChain tools come from the registry: every tool, its types, its defaults."""

from __future__ import annotations

import json
import re
import types

from aim_test_fakes import draw, redness_system
from pydantic import Field

from aim_agent.hookspecs import hookimpl
from aim_agent.images import image_id
from aim_agent.plugins import AimPlugins
from aim_agent.tools.adapters import langchain_tools
from aim_agent.tools.api_text import api_text, signature_text
from aim_agent.tools.base import AimImage, ToolContext, ToolInput, ToolOutput, tool
from aim_agent.tools.core import CORE_TOOLS
from aim_agent.tools.registry import all_tools, builtin_tools


class ZoomInput(ToolInput):
    images: list[AimImage] = Field(min_length=1, description="images to crop")
    factor: float = Field(default=2.5, description="how much to magnify the centre")


class ZoomOutput(ToolOutput):
    images: list[AimImage]
    scale: float

    def python(self) -> list:
        return self.images


@tool("zoom_centre", positional=("images",))
def zoom_centre(ctx: ToolContext, args: ZoomInput) -> ZoomOutput:
    """Crop the centre of each image and magnify it (a dummy tool for the tests)."""
    return ZoomOutput(images=args.images, scale=args.factor)


def _plugins_with_dummy() -> AimPlugins:
    module = types.SimpleNamespace(aim_tools=hookimpl(lambda: [zoom_centre]))
    pm = AimPlugins(load_entry_points=False)
    pm.pm.register(module, name="dummy-zoom")
    return pm


def test_api_text_lists_every_registered_tool_with_its_signature_and_doc():
    specs = all_tools()
    text = api_text(specs)
    for spec in specs:
        assert f"tools.{spec.name}(" in text
        assert spec.summary in text
    # generated types, defaults and descriptions, and the return from python()
    assert "tools.text2image(prompts: list[str], *, seed: int | None = None) -> list[Image | None]" in text
    assert "k (int, default 15): how many top-activating dataset images" in text
    assert "tools.neuron(images: list[Image]) -> tuple[list[float], list[Image]]" in text
    # the System API comes from the System class itself
    assert "system.neuron(" in text and "system.activations(" in text
    assert "system.layer" in text and "system.unit" in text


def test_api_text_changes_when_a_tool_is_added():
    before = api_text(all_tools(AimPlugins(load_entry_points=False)))
    specs = all_tools(_plugins_with_dummy())
    after = api_text(specs)
    assert "zoom_centre" not in before
    assert "tools.zoom_centre(images: list[Image], *, factor: float = 2.5) -> list[Image]" in after
    assert "Crop the centre of each image and magnify it" in after
    assert "factor (float, default 2.5): how much to magnify the centre" in after
    assert after.startswith(before.split("tools.dataset_exemplars")[0])
    assert [s.name for s in specs] == [s.name for s in builtin_tools()] + ["zoom_centre"]


def test_json_style_documents_results_with_image_ids():
    text = api_text(all_tools(), style="json")
    assert "neuron(images: list[image id]) -> ActivationsOutput" in text
    assert "images (list[image id]): overlays" in text
    assert "Python:" not in text  # Python usage lines are dropped for tool calling


def test_signature_keeps_positional_order_valid():
    edit = next(s for s in CORE_TOOLS if s.name == "edit_images")
    sig = signature_text(edit)
    # prompts is optional but comes before the required positional edits: no default shown there
    assert re.match(r"tools\.edit_images\(prompts: list\[str\] \| None, edits: list\[str\], \*, images", sig)


def test_langchain_tools_validate_with_the_input_model_and_return_ids():
    ctx = ToolContext(system=redness_system())
    tools = {t.name: t for t in langchain_tools(ctx, all_tools())}
    assert set(tools) == {s.name for s in all_tools()}
    neuron = tools["neuron"]
    schema = next(s for s in CORE_TOOLS if s.name == "neuron").input_model.model_json_schema()
    assert neuron.args_schema["properties"] == schema["properties"]  # the input model's own schema
    picture = draw("a red ball on grass")
    ctx.images.register(picture)  # ids resolve in the context's own store
    result = neuron.invoke({"images": [image_id(picture)]})
    json.dumps(result)  # JSON-serialisable
    assert result["activations"][0] > 0.3
    assert result["images"][0].startswith("img_")
    # a bad call comes back as text the model can act on, not as an exception
    assert "at least 1 item" in neuron.invoke({"images": []})
    assert "no text2image provider" in tools["text2image"].invoke({"prompts": ["a dog"]})


def test_langchain_tools_attach_images_when_asked():
    ctx = ToolContext(system=redness_system())
    neuron = {t.name: t for t in langchain_tools(ctx, all_tools(), images=True)}["neuron"]
    picture = draw("a red car on snow")
    ctx.images.register(picture)
    blocks = neuron.invoke({"images": [image_id(picture)]})
    assert blocks[0]["type"] == "text" and json.loads(blocks[0]["text"])["images"][0].startswith("img_")
    assert blocks[1]["type"] == "image_url"
    assert blocks[1]["image_url"]["url"].startswith("data:image/png;base64,")
