"""From a :class:`ToolSpec` to MCP: the tool's definition, a worker thread with progress, the result.

- :func:`tool_definition`: the MCP ``Tool`` (an ``mcp_types.Tool``, served by the low-level
  server's ``tools/list`` handler). Input schema: the tool's pydantic input model, plus an
  optional ``session`` handle unless the tool is ``stateless``. Output schema: its output
  model. Annotations come from the spec's flags (``read_only``, ``destructive``,
  ``idempotent``, ``open_world``), each set explicitly.
- :func:`run_blocking`: the call runs in a worker thread (``anyio.to_thread``), so torch work
  never blocks the event loop and other sessions keep being served; meanwhile the client
  gets MCP progress notifications (when it sent a progress token): the work done of the
  total, as the tool reports it through ``ctx.progress(done, total, message)`` (e.g. images
  processed of 8); a tool that reports nothing sends a count of seconds without a total.
- :func:`output_result`: the output model as structured content (images as ``img_…`` ids),
  the same JSON as text, and as many images as MCP image content as fit in one result of
  at most ``max_bytes`` (MCP clients reject larger messages: the SDK's HTTP client and
  fastmcp refuse an SSE event over 1 MiB). Each other image comes as a small JPEG preview
  plus a resource link (``aim://image/<id>``) to the full PNG, with a note.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
from mcp_types import CallToolResult, ImageContent, ResourceLink, TextContent, Tool, ToolAnnotations

from aim_agent.images import to_base64
from aim_agent.tools.base import ToolContext, ToolOutput, ToolSpec, output_data

logger = logging.getLogger("aim_agent.mcp")

SESSION_PROPERTY = {
    "type": "string",
    "description": (
        "optional session handle, as load_system or new_session returned it. Pass it when the client opens a "
        "new connection per call (or over stateless HTTP): calls with the same handle share the loaded unit, "
        "the experiment log and the images, across connections and server restarts."
    ),
}
#: MCP's JSON-RPC error code for a resource that does not exist
RESOURCE_NOT_FOUND = -32002
#: CLI commands that messages from shared code name, and the MCP tools that do the same
_CLI_TO_MCP: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"`aim layers ([^`\s]+)`"), r"the tool list_layers(model='\1')"),
    (re.compile(r"`aim layers`"), "the tools list_models and list_layers"),
    (re.compile(r"`aim plugins`"), "the tool list_models"),
    (re.compile(r"`aim interpret --resume ([^`\s]+)[^`]*`"), r"read_result(run_id='\1')"),
]


def mcp_wording(message: str) -> str:
    """An error message as an MCP client should read it: MCP tools named, not ``aim`` commands."""
    for pattern, replacement in _CLI_TO_MCP:
        message = pattern.sub(replacement, message)
    return message


#: one tool result, JSON-encoded, stays below this (MCP HTTP clients reject SSE events over 1 MiB)
MAX_RESULT_BYTES = 900 * 1024
_IMAGE_OVERHEAD = 64  # the JSON around one image block's base64 data
#: an image that does not fit inline comes as a preview of at most this many pixels a side
PREVIEW_SIDE = 128
PREVIEW_QUALITY = 75
#: bytes kept free for each later image's preview (a 128 px JPEG is about 3-8 KB in base64)
PREVIEW_RESERVE = 10 * 1024


# -- definitions -------------------------------------------------------------------------------


def input_schema(spec: ToolSpec) -> dict[str, Any]:
    schema = client_schema(spec.input_model.model_json_schema(), inputs=True)
    schema.pop("title", None)
    if not spec.stateless:
        schema.setdefault("properties", {})["session"] = dict(SESSION_PROPERTY)
    return schema


def output_schema(spec: ToolSpec) -> dict[str, Any] | None:
    try:
        schema = spec.output_model.model_json_schema(mode="serialization")
    except Exception:  # an output model pydantic cannot describe: publish none rather than fail
        return None
    return client_schema(schema, inputs=False)


def client_schema(schema: dict[str, Any], *, inputs: bool) -> dict[str, Any]:
    """Pydantic's JSON schema, rewritten so that simple MCP clients read every property's type.

    Clients that build arguments from a form or a command line (the MCP Inspector) look at a
    property's top-level ``type`` only; pydantic writes ``Optional[T]`` as ``anyOf [T, null]``
    without one, and those clients then send strings. So, recursively:

    - an optional input (``anyOf [T, null]``, default null) becomes ``T`` and stays out of
      ``required``: leaving it out means null (the server still accepts an explicit null);
    - a nullable output stays ``anyOf [T, null]``, one type per branch (a type array such
      as ``["string", "null"]`` is less portable: the MCP Inspector's ``--strict`` warns);
    - ``anyOf`` branches of one and the same type merge into one schema of that type;
    - an input ``anyOf`` of several types gets their union as its top-level ``type``;
    - pydantic's generated ``title`` of each property goes (the description says more).
    """
    rewritten: dict[str, Any] = _rewrite(copy.deepcopy(schema), inputs=inputs, defs=schema.get("$defs", {}))
    return rewritten


def _type_of(branch: dict[str, Any], defs: dict[str, Any]) -> list[str] | None:
    ref = branch.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        branch = defs.get(ref.rsplit("/", 1)[1], {})
    kind = branch.get("type")
    if isinstance(kind, str):
        return [kind]
    if isinstance(kind, list):
        return [str(k) for k in kind]
    if "anyOf" in branch:
        kinds = [_type_of(b, defs) for b in branch["anyOf"]]
        if all(kinds):
            return list(dict.fromkeys(k for ks in kinds for k in ks or []))
    return None


def _merge_same_type(branches: list[dict[str, Any]]) -> dict[str, Any]:
    """One schema for branches of one type: the keywords all share, the descriptions joined."""
    merged = {k: v for k, v in branches[0].items() if k != "description" and all(b.get(k) == v for b in branches)}
    notes = list(dict.fromkeys(b["description"] for b in branches if b.get("description")))
    if notes and all(b.get("description") for b in branches):  # one branch's words would mislead
        merged["description"] = ", or ".join(notes)
    return merged


def _rewrite(schema: Any, *, inputs: bool, defs: dict[str, Any]) -> Any:
    if isinstance(schema, list):
        return [_rewrite(item, inputs=inputs, defs=defs) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _rewrite(v, inputs=inputs, defs=defs) if k not in ("enum", "const", "default", "examples") else v
           for k, v in schema.items()}
    for prop in (out.get("properties") or {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    branches = out.get("anyOf")
    if isinstance(branches, list) and "type" not in out:
        non_null = [b for b in branches if b != {"type": "null"}]
        nullable = len(non_null) < len(branches)
        kinds = [_type_of(b, defs) for b in non_null]
        single = {k[0] if k and len(k) == 1 else None for k in kinds}
        if non_null and len(single) == 1 and None not in single:  # one type, perhaps or null
            merged = _merge_same_type(non_null)
            outer = {k: v for k, v in out.items() if k != "anyOf"}
            if nullable and inputs and outer.get("default", 0) is None:
                outer.pop("default")  # leaving the argument out means null
                nullable = False
            if not nullable:
                out = {**merged, **outer}
            else:  # an output that may be null: one branch per type, as strict checkers prefer
                out = {"description": merged["description"]} if "description" in merged else {}
                out |= {**outer, "anyOf": [{k: v for k, v in merged.items() if k != "description"}, {"type": "null"}]}
        elif inputs and all(kinds):  # an input of several types: name them all at the top
            out["type"] = list(dict.fromkeys([*(k for ks in kinds for k in ks or []), *(["null"] if nullable else [])]))
    return out


def tool_annotations(spec: ToolSpec) -> ToolAnnotations:
    """MCP's behaviour hints, from the spec's flags only (never from its name)."""
    return ToolAnnotations(
        title=spec.summary.rstrip("."),
        read_only_hint=spec.read_only,
        destructive_hint=spec.destructive,
        idempotent_hint=spec.idempotent,
        open_world_hint=spec.open_world,
    )


def tool_definition(spec: ToolSpec) -> Tool:
    """The MCP tool a client lists for ``spec``."""
    return Tool(
        name=spec.name,
        title=spec.summary.rstrip("."),
        description=spec.doc,
        input_schema=input_schema(spec),
        output_schema=output_schema(spec),
        annotations=tool_annotations(spec),
        _meta={"aim/plugin": spec.plugin},
    )


# -- running -----------------------------------------------------------------------------------


class Progress:
    """Thread-side progress reporter: ``progress(done, total=None, message="")``; cheap to call often."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._lock = threading.Lock()
        self._done: tuple[float, float] | None = None
        self._message = ""
        self.updates = 0

    def __call__(self, done: float, total: float | None = None, message: str = "") -> None:
        with self._lock:
            if total and total > 0:
                self._done = (min(max(float(done), 0.0), float(total)), float(total))
            if message:
                self._message = str(message)
            self.updates += 1

    def snapshot(self) -> tuple[tuple[float, float] | None, str]:
        """(done, total) as the tool last reported it (None: it reported no total), and its message."""
        with self._lock:
            return self._done, self._message


#: a count a tool does not report itself, read while it runs: (done, total), or None
Counter = Callable[[], "tuple[float, float] | None"]


async def run_blocking(
    reporter: Any | None,
    fn: Callable[[Progress], Any],
    label: str,
    *,
    interval: float = 1.0,
    counter: Counter | None = None,
) -> Any:
    """Run ``fn(progress)`` in a worker thread; report progress through ``reporter`` meanwhile.

    ``reporter`` has ``async report_progress(progress, total, message)`` (the request's
    ``ServerSession``; a no-op when the client asked for no progress). Each notification is
    the tool's own count (``done`` of ``total``, e.g. images processed), sent when it changed;
    else ``counter``'s (e.g. the images a generator has made so far, of the prompts); while
    there is no count, the seconds it has run, without a total (MCP allows an unknown
    total), and at the end one more with the total equal to it. Values only ever increase,
    as MCP requires.
    """
    progress = Progress(label)
    started = time.monotonic()
    last: tuple[float, float | None] = (-1.0, None)
    outcome: dict[str, Any] = {}

    async def send(value: float, total: float | None, message: str) -> None:
        nonlocal last
        if total is not None and last[1] is not None and total != last[1]:
            last = (-1.0, total)  # the tool moved to another stage with its own total
        if (value, total) == last or value < last[0]:
            return
        last = (value, total)
        if reporter is None:
            return
        try:
            await reporter.report_progress(value, total, message)
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

        async def watch() -> None:
            while True:
                await anyio.sleep(interval)
                done, message = progress.snapshot()
                elapsed = time.monotonic() - started
                if done is None and counter is not None:
                    done = counter()
                if done is not None:
                    await send(done[0], done[1], message or f"{label}: {done[0]:g} of {done[1]:g}")
                elif last[1] is None:
                    await send(round(elapsed), None, message or f"{label}: running for {elapsed:.0f} s")

        tg.start_soon(watch)
        await anyio.to_thread.run_sync(work)
        tg.cancel_scope.cancel()
    done, message = progress.snapshot()
    if done is None and counter is not None and "error" not in outcome:  # finished: all of the count
        counted = counter()  # (identical images are stored once: the count itself may stop short)
        done = (counted[1], counted[1]) if counted is not None else None
    if done is not None:
        await send(done[0], done[1], message or f"{label}: {done[0]:g} of {done[1]:g}")
    else:  # no total from the tool: the last count is the total, so the client sees it complete
        final = max(last[0] + 1.0, 1.0)
        await send(final, final, f"{label}: done in {time.monotonic() - started:.1f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


# -- results -----------------------------------------------------------------------------------


def error_result(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


def image_uri(iid: str, handle: str | None = None) -> str:
    return f"aim://image/{iid}" + (f"?session={handle}" if handle else "")


def preview_base64(image: Any, side: int = PREVIEW_SIDE) -> str:
    """A small JPEG of ``image`` (at most ``side`` pixels a side), base64: a few KB a chat model can see."""
    small = image.convert("RGB")
    small.thumbnail((side, side))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=PREVIEW_QUALITY)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def output_result(
    output: ToolOutput,
    ctx: ToolContext,
    *,
    max_images: int = 32,
    max_bytes: int = MAX_RESULT_BYTES,
    handle: str | None = None,
) -> CallToolResult:
    """Structured content + JSON text + image content, the whole under ``max_bytes`` when encoded.

    Images inline as PNG while they fit, leaving room for the rest: each image that does not
    fit (or comes beyond ``max_images``) is a downscaled JPEG preview inline (so a chat model
    that cannot fetch links still sees its pixels), followed by a resource link to the full
    image, ``aim://image/<id>`` (with ``?session=<handle>`` when the call named a session handle).
    """
    structured = output_data(output, ctx)
    text = json.dumps(structured, ensure_ascii=False)
    used = 2 * len(text.encode())  # structuredContent and its text copy
    if used > max_bytes // 2:  # a large result: keep one copy, the structured one
        text = f"the result ({len(text)} characters of JSON) is in structuredContent"
        used = used // 2 + len(text)
    content: list[Any] = [TextContent(type="text", text=text)]
    images = output.all_images()
    ids = [ctx.images.ensure(image) for image in images]
    full = 0
    linked: list[str] = []
    previews = 0
    for position, (image, iid) in enumerate(zip(images, ids, strict=True)):
        if iid in linked:
            continue
        after = min(len(images) - position - 1, max_images)  # room kept for later images' previews
        data = to_base64(image) if full < max_images and not linked else ""
        if data and used + len(data) + _IMAGE_OVERHEAD + after * PREVIEW_RESERVE <= max_bytes:
            content.append(ImageContent(type="image", data=data, mime_type="image/png"))
            used += len(data) + _IMAGE_OVERHEAD
            full += 1
            continue
        linked.append(iid)
        preview = preview_base64(image) if previews < max_images else ""
        link = ResourceLink(type="resource_link", uri=image_uri(iid, handle), name=iid, mime_type="image/png")
        used += len(link.uri) + len(iid) + _IMAGE_OVERHEAD
        if preview and used + len(preview) + _IMAGE_OVERHEAD <= max_bytes:
            content.append(ImageContent(type="image", data=preview, mime_type="image/jpeg"))
            used += len(preview) + _IMAGE_OVERHEAD
            previews += 1
        content.append(link)
    if linked:
        content.append(
            TextContent(
                type="text",
                text=f"{len(linked)} of {len(images)} images are not inlined at full size (one result stays under "
                f"{max_bytes // 1024} KiB and {max_images} images): {previews} of them come as previews of at most "
                f"{PREVIEW_SIDE} px (JPEG), each followed by its resource link (aim://image/<id>) to the full PNG; "
                "or pass their ids to later calls",
            )
        )
    return CallToolResult(content=content, structured_content=structured)
