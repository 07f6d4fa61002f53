"""Registered tools as LangChain tools, for tool-calling agents.

Each :class:`~aim_agent.tools.base.ToolSpec` becomes a ``StructuredTool`` whose argument schema
is the JSON schema of the tool's input model; the raw arguments go to
:func:`~aim_agent.tools.base.invoke`, so validation and errors are the same ones every other
caller gets (image ids resolve in the context's own store). A call returns the output model
dumped to JSON with every image replaced by its id; with ``images=True`` the images are also
attached as image content blocks (for backends that accept images in tool results).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from PIL import Image

from aim_agent.images import to_base64
from aim_agent.tools.base import ToolContext, ToolError, ToolOutput, ToolSpec, invoke, output_data

#: most images attached to one tool result; more are still listed by id in the JSON
MAX_ATTACHED_IMAGES = 8


def image_block(image: Image.Image) -> dict[str, Any]:
    """An image as a LangChain content block (a base64 PNG data URL; every chat backend reads it)."""
    return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{to_base64(image)}"}}


def output_content(
    output: ToolOutput, ctx: ToolContext, *, images: bool, max_images: int = MAX_ATTACHED_IMAGES
) -> Any:
    """What a tool call returns to the model: the JSON, plus image blocks when ``images``."""
    data = output_data(output, ctx)
    if not images:
        return data
    pictures = output.all_images()
    blocks: list[dict[str, Any]] = [{"type": "text", "text": json.dumps(data)}]
    blocks += [image_block(im) for im in pictures[:max_images]]
    if len(pictures) > max_images:
        blocks.append({"type": "text", "text": f"({len(pictures) - max_images} more images are listed by id only)"})
    return blocks


class _AsToolError(ToolException):
    """A tool failure that LangChain turns into the tool's answer (``handle_tool_error=True``)."""


def langchain_tool(ctx: ToolContext, spec: ToolSpec, *, images: bool = False) -> BaseTool:
    """One registered tool as a LangChain ``StructuredTool`` bound to ``ctx``."""

    def call(**kwargs: Any) -> Any:
        try:
            output = invoke(spec, kwargs, ctx)
        except ToolError as exc:
            # the model reads this and can correct its call; nothing is raised into the agent loop
            raise _AsToolError(str(exc)) from exc
        return output_content(output, ctx, images=images)

    schema = spec.input_model.model_json_schema()
    schema.pop("title", None)
    return StructuredTool.from_function(
        func=call,
        name=spec.name,
        description=spec.doc or spec.summary,
        args_schema=schema,  # a JSON schema: LangChain passes the raw arguments on to invoke()
        handle_tool_error=True,
    )


def langchain_tools(ctx: ToolContext, specs: Sequence[ToolSpec], *, images: bool = False) -> list[BaseTool]:
    """Every spec as a LangChain tool over ``ctx`` (pass ``images=True`` when the backend takes images)."""
    return [langchain_tool(ctx, spec, images=images) for spec in specs]
