"""What the server promises whatever the tool: annotations from flags, sessions from flags, bounded results."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from mcp import Client
from PIL import Image
from pydantic import Field

from aim_agent.tools.base import AimImage, ToolContext, ToolInput, ToolOutput, tool
from aim_agent.tools.core import CORE_TOOLS

pytestmark = pytest.mark.anyio


def _text(result) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


class CountInput(ToolInput):
    n: int = Field(default=1, ge=1, le=64)


class NoiseOutput(ToolOutput):
    images: list[AimImage]


@tool(read_only=True, idempotent=True, stateless=True)
def noise_images(ctx: ToolContext, args: CountInput) -> NoiseOutput:
    """Incompressible 224 px images (about 150 KB of PNG each)."""
    rng = np.random.default_rng(0)
    return NoiseOutput(images=[Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8))
                               for _ in range(args.n)])


@tool(positional=("n",))
def count_calls(ctx: ToolContext, args: CountInput) -> NoiseOutput:
    """A stateful tool (it may use the session): no flags."""
    return NoiseOutput(images=[])


async def test_annotations_and_session_argument_come_from_flags(fake_server):
    async with Client(fake_server) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
    specs = fake_server.aim.specs
    assert set(listed) == set(specs)
    for name, spec in specs.items():
        hints = listed[name].annotations
        assert (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint, hints.open_world_hint) == (
            spec.read_only, spec.destructive, spec.idempotent, spec.open_world), name
        assert ("session" in listed[name].input_schema["properties"]) != spec.stateless, name
    for spec in CORE_TOOLS:  # set explicitly, never left to the client's default (destructive: true)
        assert listed[spec.name].annotations.destructive_hint is False
        assert listed[spec.name].annotations.open_world_hint is False
    assert listed["load_system"].annotations.destructive_hint is True
    assert listed["list_models"].annotations.read_only_hint is True
    assert listed["start_interpret"].annotations.open_world_hint is True


async def test_a_plugin_tool_flagged_stateless_needs_no_session(tmp_path):
    from aim_agent.mcp_server import ServerOptions, build_server

    server = build_server(ServerOptions(tools=[noise_images, count_calls], runs_dir=tmp_path, require_session=True,
                          context_factory=lambda: ToolContext(system=None)))
    async with Client(server) as client:
        # in process there is a connection; over stateless HTTP there would be none: ask the registry directly
        free = await server.aim.call(server.aim.specs["noise_images"], {"n": 1}, None)
        bound = await server.aim.call(server.aim.specs["count_calls"], {"n": 1}, None)
        assert not free.is_error and bound.is_error and "new_session" in bound.content[0].text
        assert not (await client.call_tool("count_calls", {"n": 1})).is_error  # the connection is the session


async def test_a_result_stays_under_one_mebibyte(tmp_path):
    from aim_agent.mcp_server import ServerOptions, build_server

    server = build_server(ServerOptions(tools=[noise_images], runs_dir=tmp_path,
                          context_factory=lambda: ToolContext(system=None)))
    async with Client(server, mode="legacy") as client:
        result = await client.call_tool("noise_images", {"n": 40})
        assert not result.is_error
        size = len(result.model_dump_json(by_alias=True, exclude_none=True))
        assert size < 1024 * 1024, size
        inline = [c for c in result.content if c.type == "image" and c.mime_type == "image/png"]
        links = [c for c in result.content if c.type == "resource_link"]
        assert 0 < len(inline) < 40 and len(inline) + len(links) == 40
        ids = result.structured_content["images"]
        assert [link.name for link in links] == ids[len(inline):]  # every image is reachable by its id
        assert "not inlined" in _text(result) and "aim://image/" in links[0].uri
        # a chat model that cannot fetch links still sees every image: a small preview just before its link
        # (up to 32 previews, as many as images inline at full size at most)
        kinds = [(c.type, getattr(c, "mime_type", None)) for c in result.content[1 + len(inline):-1]]
        shown = min(len(links), 32)
        pairs = [("image", "image/jpeg"), ("resource_link", "image/png")]
        assert kinds == pairs * shown + [("resource_link", "image/png")] * (len(links) - shown)
        previews = [c for c in result.content if c.type == "image" and c.mime_type == "image/jpeg"]
        assert {Image.open(io.BytesIO(base64.b64decode(p.data))).size for p in previews} == {(128, 128)}
        image = await client.read_resource(links[-1].uri)
        assert image.contents[0].mime_type == "image/png"
        assert json.loads(result.content[0].text)["images"] == ids


@tool()
def session_noise(ctx: ToolContext, args: CountInput) -> NoiseOutput:
    """Noise images made in the caller's session."""
    return noise_images.fn(ctx, args)


async def test_links_carry_the_session_handle(tmp_path):
    from aim_agent.mcp_server import ServerOptions, build_server

    server = build_server(ServerOptions(tools=[session_noise], runs_dir=tmp_path, require_session=True,
                                        max_result_bytes=300 * 1024,
                          context_factory=lambda: ToolContext(system=None)))
    async with Client(server) as client:
        handle = (await client.call_tool("new_session", {})).structured_content["session"]
        result = await client.call_tool("session_noise", {"n": 5, "session": handle})
        links = [c.uri for c in result.content if c.type == "resource_link"]
        assert links and all(uri.endswith(f"?session={handle}") for uri in links)
        assert (await client.read_resource(links[0])).contents[0].blob
        other = (await client.call_tool("new_session", {})).structured_content["session"]
        with pytest.raises(Exception, match="unknown image id"):  # another session cannot read it
            await client.read_resource(links[0].replace(handle, other))
