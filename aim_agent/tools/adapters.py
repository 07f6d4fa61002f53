"""Registered tools as LangChain tools, for tool-calling agents.

Each :class:`~aim_agent.tools.base.ToolSpec` becomes a ``StructuredTool`` whose argument schema
*is* the tool's input model, so the JSON schema a model sees and the validation a call goes
through are the same ones the Python ``tools`` object uses. A call returns the output model
dumped to JSON with every image replaced by its id; with ``images=True`` the images are also
attached as image content blocks (for backends that accept images in tool results).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from PIL import Image
from pydantic import ValidationError

from aim_agent.images import to_base64
from aim_agent.tools.base import ToolContext, ToolError, ToolOutput, ToolSpec, validation_text

#: most images attached to one tool result; more are still listed by id in the JSON
MAX_ATTACHED_IMAGES = 8


def image_block(image: Image.Image) -> dict[str, Any]:
    """An image as a LangChain content block (a base64 PNG data URL; every chat backend reads it)."""
    return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{to_base64(image)}"}}


def output_json(output: ToolOutput) -> dict[str, Any]:
    """A tool's output as JSON-ready data: images become their ids."""
    return output.model_dump(mode="json")


def output_content(output: ToolOutput, *, images: bool, max_images: int = MAX_ATTACHED_IMAGES) -> Any:
    """What a tool call returns to the model: the JSON, plus image blocks when ``images``."""
    data = output_json(output)
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


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return f"invalid arguments: {validation_text(exc)}"
    return f"{type(exc).__name__}: {exc}"


def langchain_tool(ctx: ToolContext, spec: ToolSpec, *, images: bool = False) -> BaseTool:
    """One registered tool as a LangChain ``StructuredTool`` bound to ``ctx``."""

    def call(**kwargs: Any) -> Any:
        try:
            output = spec.invoke(ctx, spec.input_model.model_validate(kwargs))
        except (ToolError, ValidationError, ValueError, TypeError, KeyError, LookupError) as exc:
            # the model reads this and can correct its call; nothing is raised into the agent loop
            raise _AsToolError(_error_text(exc)) from exc
        return output_content(output, images=images)

    return StructuredTool.from_function(
        func=call,
        name=spec.name,
        description=spec.doc or spec.summary,
        args_schema=spec.input_model,
        handle_tool_error=True,
        handle_validation_error=lambda exc: _error_text(exc),
    )


def langchain_tools(ctx: ToolContext, specs: Sequence[ToolSpec], *, images: bool = False) -> list[BaseTool]:
    """Every spec as a LangChain tool over ``ctx`` (pass ``images=True`` when the backend takes images)."""
    return [langchain_tool(ctx, spec, images=images) for spec in specs]
