"""What one call may make the agent decode and convert (issue 25).

Main capped each image at 4096x4096 but not a call: ``system.neuron([png_bytes] * 8)`` decoded
all eight in the agent (RSS 286 -> 1911 MB), and an 8-image MCP body did the same to the
server. A 5-million-item list returned by model code cost 33 s of the agent's CPU. Now images
decoded from bytes share a pixel budget per call, charged from each header before its decode,
and the agent counts the values of a message before converting any of them.
"""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image
from test_sandbox_attacks import ISOLATION, LIMITS

from aim_agent.agent.sandbox import ObjectHandler, run_code, wire
from aim_agent.images import MAX_CALL_PIXELS, load_image, pixel_budget
from aim_agent.tools.base import AimImage, ToolContext, ToolError, ToolInput, ToolOutput, tool

needs_isolation = pytest.mark.skipif(not ISOLATION, reason="the sandbox has no isolation layer on this machine")
SIDE = 4096  # the largest image main accepted


@pytest.fixture(scope="module")
def big_png() -> bytes:
    """A 4096x4096 PNG of a few kB: what a decompression-minded caller sends."""
    buf = io.BytesIO()
    Image.new("L", (SIDE, SIDE)).save(buf, format="PNG")
    return buf.getvalue()


def test_pixel_budget_is_charged_from_headers_and_shared_by_nested_calls(big_png: bytes) -> None:
    fits = MAX_CALL_PIXELS // (SIDE * SIDE)
    with pixel_budget():
        decoded = [load_image(big_png) for _ in range(fits)]
        with pixel_budget(), pytest.raises(ValueError, match="budget of one call"):  # the outer budget, not a new one
            load_image(big_png)
    assert len(decoded) == fits
    with pixel_budget():  # a new call starts afresh
        load_image(big_png)
    for _ in range(fits + 2):  # outside any call nothing is charged (one image is still capped on its own)
        load_image(big_png)


class BytesIn(ToolInput):
    images: list[AimImage]


class CountOut(ToolOutput):
    count: int


@tool()
def count_images(ctx: ToolContext, args: BytesIn) -> CountOut:
    """Count the images."""
    return CountOut(count=len(args.images))


def test_one_tool_call_cannot_decode_more_than_the_budget(big_png: bytes) -> None:
    """What an MCP client or a tool-calling scientist sends: eight large images as base64 in one call."""
    text = base64.b64encode(big_png).decode()
    with pytest.raises(ToolError, match="budget of one call"):
        count_images.invoke(ToolContext(), {"images": [text] * 8})
    assert count_images.invoke(ToolContext(), {"images": [text] * 2}).count == 2  # within the budget
    assert count_images.invoke(ToolContext(), {"images": [text] * 2}).count == 2  # and again: per call


@needs_isolation
def test_sandbox_call_with_png_bytes_decodes_within_the_budget(big_png: bytes) -> None:
    decoded: list[tuple[int, int]] = []

    def neuron(images: list) -> int:
        for image in images:  # what System.neuron does with each image it is given
            decoded.append(load_image(image).size)
        return len(images)

    code = f"""
import io
from PIL import Image
def run_experiment(system):
    buf = io.BytesIO()
    Image.new("L", ({SIDE}, {SIDE})).save(buf, format="PNG")
    try:
        return system.neuron([buf.getvalue()] * 8)
    except ValueError as exc:
        return "refused: " + str(exc)
"""
    result = run_code(code, handlers={"system": ObjectHandler(methods={"neuron": neuron})}, limits=LIMITS)
    assert result.ok, result.report()
    assert result.return_value.startswith("refused:") and "budget of one call" in result.return_value
    assert len(decoded) == MAX_CALL_PIXELS // (SIDE * SIDE)  # the rest were refused from their headers


@needs_isolation
def test_a_huge_returned_list_is_refused_before_it_is_converted() -> None:
    code = "def run_experiment():\n    return [0] * 1_000_000\n"
    result = run_code(code, handlers={}, limits=LIMITS)
    assert not result.ok and result.kind == "runtime_error"
    assert f"more than {wire.MAX_ITEMS} items" in (result.error or "") and result.return_value is None
    nested = "def run_experiment():\n    return {'a': [[0] * 1000 for _ in range(300)]}\n"
    assert not run_code(nested, handlers={}, limits=LIMITS).ok
    array = "import numpy as np\ndef run_experiment():\n    return np.zeros(1_000_000, dtype='f4')\n"
    ok = run_code(array, handlers={}, limits=LIMITS)  # an array is one value: the cheap way stays open
    assert ok.ok and ok.return_value.shape == (1_000_000,)


@needs_isolation
def test_huge_call_arguments_are_refused_before_they_reach_the_handler() -> None:
    seen: list[int] = []
    handler = ObjectHandler(methods={"take": lambda values: seen.append(len(values)) or 0})
    code = """
def run_experiment(tools):
    try:
        tools.take([1] * 500_000)
    except ValueError as exc:
        return str(exc)
"""
    result = run_code(code, handlers={"tools": handler}, limits=LIMITS)
    assert result.ok, result.report()
    assert "more than" in result.return_value and seen == []


def test_counting_values_stops_at_the_limit() -> None:
    assert wire.decode(wire.encode({"a": [1, 2, (3, 4)]}), max_items=10) == {"a": [1, 2, (3, 4)]}
    with pytest.raises(wire.TooManyValues):
        wire.decode(wire.encode([[1] * 6, [2] * 6]), max_items=10)
