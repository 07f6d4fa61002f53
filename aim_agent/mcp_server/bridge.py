"""From a :class:`ToolSpec` to an MCP tool: schema, argument checks, worker thread, progress, result.

- The input schema is the tool's pydantic input model, plus an optional ``session`` handle.
- Arguments are validated by that model; a bad call comes back as an MCP tool error
  (``isError``) whose text says which argument was wrong and what the limits are.
- The tool runs in a worker thread (``anyio.to_thread``) under its session's lock, so
  torch work never blocks the event loop and other sessions keep being served.
- While it runs, the client gets MCP progress notifications (when it sent a progress token):
  what the tool reports through ``ctx.extras["progress"](done, total, message)``, else a
  heartbeat.
- The result carries the output model dumped as structured content (images as ``img_…``
  ids), the same JSON as text, and the images themselves as MCP image content.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp_types import CallToolResult, ImageContent, TextContent, ToolAnnotations
from pydantic import PrivateAttr

from aim_agent.images import to_base64
from aim_agent.providers import ProviderError
from aim_agent.tools.base import ToolContext, ToolError, ToolOutput, ToolSpec, output_data

logger = logging.getLogger("aim_agent.mcp")

SESSION_PROPERTY = {
    "type": "string",
    "description": (
        "optional session handle from new_session; needed only where the transport keeps no session "
        "(stateless HTTP). Calls with the same handle share a loaded system and an experiment log."
    ),
}

#: errors whose message is meant for the caller as is
_USER_ERRORS = (ToolError, ProviderError, ValueError, LookupError, TypeError, FileNotFoundError, NotImplementedError)


class Progress:
    """Thread-side progress reporter: ``progress(done, total=None, message="")``; cheap to call often."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._lock = threading.Lock()
        self._fraction: float | None = None
        self._message = ""
        self.updates = 0

    def __call__(self, done: float, total: float | None = None, message: str = "") -> None:
        with self._lock:
            if total:
                self._fraction = min(max(float(done) / float(total), 0.0), 1.0)
            if message:
                self._message = str(message)
            self.updates += 1

    def snapshot(self) -> tuple[float | None, str]:
        with self._lock:
            return self._fraction, self._message


async def run_blocking(
    request: Any | None,
    fn: Callable[[Progress], Any],
    label: str,
    *,
    interval: float = 1.0,
) -> Any:
    """Run ``fn(progress)`` in a worker thread; report progress to the MCP client meanwhile.

    Progress goes out on a 0..100 scale and only ever increases (as MCP requires): the
    fraction the tool reports, or a slowly rising heartbeat when it reports none.
    """
    progress = Progress(label)
    started = time.monotonic()
    last = -1.0
    outcome: dict[str, Any] = {}

    async def send(value: float, message: str) -> None:
        nonlocal last
        value = max(value, last + 0.01)
        last = value
        if request is None:
            return
        try:
            await request.report_progress(round(value, 2), 100.0, message)
        except Exception:  # progress is advisory; a closed stream must not fail the call
            logger.debug("progress notification dropped", exc_info=True)

    def work() -> None:
        try:
            outcome["value"] = fn(progress)
        except Exception as exc:  # returned to the event loop, never lost in the thread
            outcome["error"] = exc
        except BaseException as exc:  # SystemExit & co. from plugin code must not stop the server
            outcome["error"] = RuntimeError(f"the tool raised {type(exc).__name__}: {exc}")

    async with anyio.create_task_group() as tg:

        async def beat() -> None:
            await send(0.0, f"{label}: started")
            while True:
                await anyio.sleep(interval)
                fraction, message = progress.snapshot()
                elapsed = time.monotonic() - started
                value = 99.0 * fraction if fraction is not None else 90.0 * (1.0 - math.exp(-elapsed / 30.0))
                await send(value, message or f"{label}: running for {elapsed:.0f} s")

        tg.start_soon(beat)
        await anyio.to_thread.run_sync(work)
        tg.cancel_scope.cancel()
    await send(100.0, f"{label}: done in {time.monotonic() - started:.1f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


# -- results -----------------------------------------------------------------------------------


def error_result(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


def describe_exception(name: str, exc: BaseException) -> str:
    """What the caller reads when a tool failed: the message for expected errors, a hint otherwise."""
    if isinstance(exc, ToolError | ProviderError):
        return str(exc)
    if isinstance(exc, KeyError):
        return f"{name} failed: {exc.args[0] if exc.args else exc}"
    if isinstance(exc, (IndexError, *_USER_ERRORS)):
        return f"{name} failed: {exc}"
    if isinstance(exc, MemoryError):
        return f"{name} ran out of memory; try fewer or smaller images"
    return (
        f"{name} failed unexpectedly ({type(exc).__name__}: {exc}). The server is still running; "
        "check the arguments, or report this with the server's log"
    )


def output_result(output: ToolOutput | Any, ctx: ToolContext, *, max_images: int) -> CallToolResult:
    """Structured content (the output model, images as ids in the session's store) + JSON text + image content."""
    if isinstance(output, ToolOutput):
        structured = output_data(output, ctx)
        images = output.all_images()
    else:
        structured = {"result": output}
        images = []
    text = json.dumps(structured, ensure_ascii=False)
    content: list[Any] = [TextContent(type="text", text=text)]
    for image in images[:max_images]:
        content.append(ImageContent(type="image", data=to_base64(image), mime_type="image/png"))
    if len(images) > max_images:
        content.append(
            TextContent(
                type="text",
                text=f"{len(images) - max_images} more images are not inlined; read them as resources "
                "aim://image/<id> using the ids above",
            )
        )
    return CallToolResult(content=content, structured_content=structured)


# -- the MCP tool --------------------------------------------------------------------------------

Handler = Callable[[dict[str, Any], Any], Awaitable[CallToolResult]]


class BridgedTool(Tool):
    """An MCP tool whose call is handled by AIM (validation, session, thread, result)."""

    _handler: Handler | None = PrivateAttr(default=None)

    async def run(self, arguments: dict[str, Any], context: Any, convert_result: bool = False) -> Any:
        assert self._handler is not None
        return await self._handler(arguments, context)


def input_schema(spec: ToolSpec, *, with_session: bool = True) -> dict[str, Any]:
    schema = spec.input_model.model_json_schema()
    schema.pop("title", None)
    if with_session:
        schema.setdefault("properties", {})["session"] = dict(SESSION_PROPERTY)
    return schema


def output_schema(spec: ToolSpec) -> dict[str, Any] | None:
    try:
        return spec.output_model.model_json_schema(mode="serialization")
    except Exception:  # an output model pydantic cannot describe: publish none rather than fail
        return None


def make_tool(spec: ToolSpec, handler: Handler, *, read_only: bool = False, with_session: bool = True) -> BridgedTool:
    """The MCP tool for ``spec``; ``handler(arguments, mcp_context)`` answers its calls."""

    async def _unused() -> None:  # Tool requires a function; calls go through ``run``
        return None

    tool = BridgedTool(
        fn=_unused,
        name=spec.name,
        title=spec.summary.rstrip("."),
        description=spec.doc,
        parameters=input_schema(spec, with_session=with_session),
        fn_metadata=FuncMetadata(arg_model=ArgModelBase, output_schema=output_schema(spec)),
        is_async=True,
        annotations=ToolAnnotations(read_only_hint=read_only, open_world_hint=False),
        meta={"aim/plugin": spec.plugin},
    )
    tool._handler = handler
    return tool
