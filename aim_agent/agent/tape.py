"""Record and replay a session's model exchanges (``aim interpret --record DIR`` / ``--replay DIR``).

A recording is a folder::

    DIR/tape.json          {"format": "aim-tape/1", "created_at", "aim_version", "config": the RunConfig}
    DIR/exchanges.jsonl    one model exchange a line, in the order they happened
    DIR/images/<sha256>.png  every image sent to a model, once, named by the SHA-256 of its PNG bytes

An exchange line holds ``seq``, ``role`` (agent, describer, critic), ``backend`` (the spec's label),
``spec`` (the BackendSpec), ``tools`` (names of the tools bound, with ``tools_sha256`` over their
schemas), ``request`` (the messages: ``type``, ``content``, and for tool turns ``tool_calls``,
``tool_call_id``, ``name``; every image block becomes ``{"type": "image", "sha256", "file"}``),
``request_sha256``, ``reply`` (the AIMessage: content, tool calls, usage and response metadata),
``usage`` (tokens, cost, attempts, seconds as AIM counted them) and ``error`` (the message of a call
that failed for good, else null). API keys are never part of an exchange: requests hold messages, and
specs hold no keys.

Replaying reruns the session with :class:`ReplayChatModel` in place of every chat model: each call
must send exactly the request that was recorded at that point (same role, tools, texts and image
hashes) and gets the recorded reply back (or the recorded error). The first difference raises
:class:`ReplayDivergence`, naming the exchange and the first differing message; a replay that ends
before the recording does is a divergence too (:meth:`Tape.finish`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import hashlib
import json
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict

from aim_agent.agent.backends import BackendSpec, ModelCallError
from aim_agent.agent.backends import active_tape as active_tape  # the active tape lives with the chat clients
from aim_agent.agent.backends import use_tape as use_tape

FORMAT = "aim-tape/1"
TAPE_FILE, EXCHANGES_FILE, IMAGE_DIR = "tape.json", "exchanges.jsonl", "images"
_DATA_URL = re.compile(r"^data:(image/[\w.+-]+);base64,(.*)$", re.S)

__all__ = ["ReplayChatModel", "ReplayDivergence", "Tape", "TapeError", "active_tape", "use_tape"]


class TapeError(ValueError):
    """A recording folder that cannot be used (missing, not a recording, already holding one)."""


class ReplayDivergence(ModelCallError):
    """The replayed session asked something other than what was recorded."""


# --------------------------------------------------------------------------------------------
# messages as JSON, images as hashes


def _jsonable(value: Any) -> Any:
    """Plain JSON: bytes (e.g. Gemini thought signatures) as ``{"__bytes__": base64}``."""
    if isinstance(value, bytes):
        return {"__bytes__": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    dump = getattr(value, "model_dump", None)
    return _jsonable(dump(mode="json")) if callable(dump) else str(value)


def _restore(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__bytes__"}:
            return base64.b64decode(value["__bytes__"])
        return {k: _restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v) for v in value]
    return value


def _inline_image(block: Any) -> bool:
    """A standard (v1) image block with its data inline."""
    return isinstance(block, dict) and block.get("type") == "image" and bool(block.get("base64") or block.get("data"))


class _Images:
    """Writes (when ``folder`` is set) and names images by the SHA-256 of their bytes."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def block(self, data: str, mime: str) -> dict[str, Any]:
        try:
            raw = base64.b64decode(data, altchars=b"-_" if ("-" in data or "_" in data) else None)
        except (binascii.Error, ValueError):
            raw = data.encode()
        digest = hashlib.sha256(raw).hexdigest()
        ext = mime.split("/")[-1].replace("jpeg", "jpg")
        name = f"{IMAGE_DIR}/{digest}.{ext}"
        if self.folder is not None:
            path = self.folder / name
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(raw)
                tmp.replace(path)
        return {"type": "image", "sha256": digest, "file": name}

    def content(self, content: Any) -> Any:
        if isinstance(content, str):
            return content
        out = []
        for block in content:
            if isinstance(block, dict) and block.get("type") == "image_url":
                url = block.get("image_url")
                url = url.get("url", "") if isinstance(url, dict) else str(url)
                m = _DATA_URL.match(url)
                out.append(self.block(m.group(2), m.group(1)) if m else {"type": "image", "url": url})
            elif _inline_image(block):
                data = block.get("base64") or block.get("data")
                out.append(self.block(str(data), str(block.get("mime_type", "image/png"))))
            else:
                out.append(_jsonable(block))
        return out


def request_json(messages: Sequence[BaseMessage], images: _Images) -> list[dict[str, Any]]:
    """The messages as a recording keeps (and a replay compares) them."""
    out = []
    for message in messages:
        item: dict[str, Any] = {"type": message.type, "content": images.content(message.content)}
        calls = getattr(message, "tool_calls", None)
        if calls:
            item["tool_calls"] = [{"name": c["name"], "args": _jsonable(c["args"]), "id": c.get("id")} for c in calls]
        bad = getattr(message, "invalid_tool_calls", None)
        if bad:
            item["invalid_tool_calls"] = [{"name": c.get("name"), "args": c.get("args"), "id": c.get("id")}
                                          for c in bad]
        if message.type == "tool":
            item["tool_call_id"] = getattr(message, "tool_call_id", None)
            item["name"] = message.name
        out.append(item)
    return out


def reply_json(reply: AIMessage) -> dict[str, Any]:
    data: dict[str, Any] = _jsonable({
        "content": reply.content,
        "additional_kwargs": reply.additional_kwargs,
        "response_metadata": reply.response_metadata,
        "tool_calls": list(reply.tool_calls),
        "invalid_tool_calls": list(reply.invalid_tool_calls),
        "usage_metadata": reply.usage_metadata,
        "id": reply.id,
    })
    return data


def tools_json(tools: Sequence[Any]) -> tuple[list[str], str | None]:
    """Names of bound tools and a hash over their schemas (None when no tools are bound)."""
    if not tools:
        return [], None
    schemas = [convert_to_openai_tool(t) for t in tools]
    digest = hashlib.sha256(json.dumps(schemas, sort_keys=True).encode()).hexdigest()
    return [s["function"]["name"] for s in schemas], digest


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _first_difference(recorded: Any, now: Any, where: str = "request") -> str:
    """Where two JSON values first differ, with a short excerpt of each side."""
    if type(recorded) is not type(now):
        return f"{where}: recorded {type(recorded).__name__}, now {type(now).__name__}"
    if isinstance(recorded, dict):
        for key in sorted(set(recorded) | set(now)):
            if recorded.get(key) != now.get(key):
                return _first_difference(recorded.get(key), now.get(key), f"{where}.{key}")
    if isinstance(recorded, list):
        for i, (a, b) in enumerate(zip(recorded, now, strict=False)):
            if a != b:
                return _first_difference(a, b, f"{where}[{i}]")
        if len(recorded) != len(now):
            return f"{where}: recorded {len(recorded)} items, now {len(now)}"
    if isinstance(recorded, str) and isinstance(now, str):
        i = next((k for k, (a, b) in enumerate(zip(recorded, now, strict=False)) if a != b), min(len(recorded),
                                                                                                len(now)))
        lo = max(0, i - 40)
        return f"{where} at character {i}: recorded {recorded[lo:i + 60]!r}, now {now[lo:i + 60]!r}"
    return f"{where}: recorded {recorded!r:.120}, now {now!r:.120}"


# --------------------------------------------------------------------------------------------
# the tape


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aim-agent")
    except PackageNotFoundError:
        return "unknown"


class Tape:
    """A recording folder, open for writing (``record``) or for answering calls (``replay``)."""

    def __init__(self, folder: Path, mode: str) -> None:
        self.folder = Path(folder)
        self.mode = mode
        self.exchanges: list[dict[str, Any]] = []
        self.cursor = 0
        self.diverged: str | None = None
        self.meta: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._images = _Images(self.folder if mode == "record" else None)

    @property
    def recording(self) -> bool:
        return self.mode == "record"

    @property
    def replaying(self) -> bool:
        return self.mode == "replay"

    # -- opening
    @classmethod
    def record(cls, folder: str | Path, config: Any) -> Tape:
        """A new recording in ``folder`` (created; it must not hold one already)."""
        folder = Path(folder)
        if (folder / TAPE_FILE).exists() or (folder.exists() and any(folder.iterdir())):
            raise TapeError(f"{folder} is not empty: record into a new folder (a recording is never overwritten)")
        folder.mkdir(parents=True, exist_ok=True)
        tape = cls(folder, "record")
        tape.meta = {"format": FORMAT, "created_at": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                     "aim_version": _version(), "config": config.model_dump(mode="json")}
        (folder / TAPE_FILE).write_text(json.dumps(tape.meta, indent=2))
        (folder / EXCHANGES_FILE).touch()
        return tape

    @classmethod
    def replay(cls, folder: str | Path) -> Tape:
        """A recording, opened to answer a rerun of its session."""
        folder = Path(folder)
        path = folder / TAPE_FILE
        if not path.exists():
            raise TapeError(f"no recording at {folder} ({TAPE_FILE} is missing): make one with "
                            "`aim interpret ... --record DIR`")
        tape = cls(folder, "replay")
        tape.meta = json.loads(path.read_text())
        if tape.meta.get("format") != FORMAT:
            raise TapeError(f"{path} is in format {tape.meta.get('format')!r}; this AIM reads {FORMAT!r}")
        lines = (folder / EXCHANGES_FILE).read_text().splitlines() if (folder / EXCHANGES_FILE).exists() else []
        tape.exchanges = [json.loads(line) for line in lines if line.strip()]
        return tape

    def config(self, **changes: Any) -> Any:
        """The RunConfig of the recorded run (``changes`` applied: run_id, runs_dir)."""
        from aim_agent.agent.config import RunConfig

        data = {**self.meta["config"], **{k: v for k, v in changes.items() if v is not None}}
        return RunConfig.model_validate(data)

    # -- recording
    def write(self, client: Any, messages: Sequence[BaseMessage], reply: AIMessage | None, usage: Any,
              *, error: str | None = None) -> None:
        """Append one exchange (called by :class:`~aim_agent.agent.backends.ChatClient`)."""
        request = request_json(messages, self._images)
        names, schema_hash = tools_json(client.tools)
        with self._lock:
            entry = {
                "seq": len(self.exchanges),
                "role": client.role,
                "backend": client.spec.label(),
                "spec": client.spec.model_dump(mode="json"),
                "tools": names,
                "tools_sha256": schema_hash,
                "request": request,
                "request_sha256": _digest(request),
                "reply": reply_json(reply) if reply is not None else None,
                "usage": usage.model_dump(mode="json") if usage is not None else None,
                "error": error,
            }
            self.exchanges.append(entry)
            with (self.folder / EXCHANGES_FILE).open("a") as f:
                f.write(json.dumps(entry) + "\n")

    # -- replaying
    def chat_model(self, spec: BackendSpec, role: str) -> ReplayChatModel:
        return ReplayChatModel(tape=self, role=role, backend=spec.label())

    def answer(self, role: str, backend: str, messages: Sequence[BaseMessage], tools: Sequence[Any]) -> AIMessage:
        """The recorded reply to this call, after checking it is the call that was recorded."""
        with self._lock:
            if self.diverged:
                raise ReplayDivergence(self.diverged)
            seq = self.cursor
            if seq >= len(self.exchanges):
                self._diverge(f"replay diverged: call {seq + 1} ({role}) has no recorded exchange; the recording "
                              f"({self.folder}) holds {len(self.exchanges)}")
            entry = self.exchanges[seq]
            request = request_json(messages, self._images)
            names, schema_hash = tools_json(tools)
            if entry["role"] != role or entry["backend"] != backend:
                self._diverge(f"replay diverged at exchange {seq}: the recording has a call of the {entry['role']} "
                              f"model ({entry['backend']}), the replay made one of the {role} model ({backend})")
            if entry["tools"] != names or entry["tools_sha256"] != schema_hash:
                self._diverge(f"replay diverged at exchange {seq} ({role}): tools recorded {entry['tools']}, now "
                              f"{names}" + (" (same names, different schemas)" if entry["tools"] == names else ""))
            if entry["request_sha256"] != _digest(request):
                self._diverge(f"replay diverged at exchange {seq} ({role}): "
                              + _first_difference(entry["request"], request))
            self.cursor += 1
        if entry.get("error"):
            raise ModelCallError(entry["error"])
        data = _restore(entry["reply"])
        meta = dict(data.get("response_metadata") or {})
        meta["aim_replay"] = {"seq": seq, "attempts": (entry.get("usage") or {}).get("attempts", 1)}
        return AIMessage(
            content=data["content"],
            additional_kwargs=data.get("additional_kwargs") or {},
            response_metadata=meta,
            tool_calls=data.get("tool_calls") or [],
            invalid_tool_calls=data.get("invalid_tool_calls") or [],
            usage_metadata=data.get("usage_metadata"),
            id=data.get("id"),
        )

    def _diverge(self, message: str) -> None:
        self.diverged = message  # sticky: a caller that swallows the error (describer, critic) cannot hide it
        raise ReplayDivergence(message)

    def finish(self) -> None:
        """Raise :class:`ReplayDivergence` when the replay diverged or left recorded exchanges unused."""
        if not self.replaying:
            return
        if self.diverged:
            raise ReplayDivergence(self.diverged)
        left = len(self.exchanges) - self.cursor
        if left:
            entry = self.exchanges[self.cursor]
            raise ReplayDivergence(f"replay diverged: the run ended after {self.cursor} exchanges but the recording "
                                   f"holds {left} more (next: exchange {entry['seq']}, {entry['role']})")


class ReplayChatModel(BaseChatModel):
    """A chat model that answers from a :class:`Tape` (and fails clearly on divergence)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    tape: Any
    role: str
    backend: str
    tools: list[Any] = []  # noqa: RUF012 (a pydantic field: copied per instance)

    @property
    def _llm_type(self) -> str:
        return "aim-replay"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ReplayChatModel:
        return self.model_copy(update={"tools": list(tools)})

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        reply = self.tape.answer(self.role, self.backend, messages, self.tools)
        return ChatResult(generations=[ChatGeneration(message=reply)])


# --------------------------------------------------------------------------------------------
# reading a recording


def _text_of(content: Any, limit: int) -> str:
    if isinstance(content, str):
        parts = [content]
    else:
        parts = []
        for block in content:
            if block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            elif block.get("type") == "image":
                parts.append(f"![image]({block.get('file', block.get('url', ''))})")
    text = "\n".join(parts).strip()
    return text if len(text) <= limit else text[:limit] + f"\n... ({len(text) - limit} more characters)"


def transcript(folder: str | Path, *, limit: int = 1500) -> str:
    """A recording as Markdown: each exchange's newest message and the reply (images as file links)."""
    tape = Tape.replay(folder)
    lines = [f"# Recorded session ({len(tape.exchanges)} model exchanges)", ""]
    shown_system: set[str] = set()
    for entry in tape.exchanges:
        usage = entry.get("usage") or {}
        lines += [f"## {entry['seq']}. {entry['role']} ({entry['backend']}): "
                  f"{usage.get('input_tokens', 0)} tokens in, {usage.get('output_tokens', 0)} out", ""]
        request = entry["request"]
        system = next((m for m in request if m["type"] == "system"), None)
        if system is not None and system["content"] not in shown_system:
            shown_system.add(system["content"])
            lines += ["**system**", "", "```text", _text_of(system["content"], limit), "```", ""]
        last = request[-1]
        if entry["tools"]:
            lines += [f"tools: {', '.join(entry['tools'])}", ""]
        if len(request) > 2:
            lines += [f"(this round so far: {len(request) - 3} messages of calls and results)", ""]
            for message in request[2:-1]:
                if message["type"] == "ai":
                    calls = [f"{c['name']}({json.dumps(c['args'])[:120]})" for c in message.get("tool_calls", [])]
                    lines += [f"- ai: calls {', '.join(calls)}"]
                elif message["type"] == "tool":
                    lines += [f"- tool {message.get('name')}: {_text_of(message['content'], 160)}"]
            lines += [""]
        lines += [f"**{last['type']}**", "", "```text", _text_of(last["content"], limit), "```", ""]
        reply = entry.get("reply")
        if entry.get("error"):
            lines += [f"**error**: {entry['error']}", ""]
        elif reply is not None:
            lines += ["**reply**", "", "```text", _text_of(reply["content"], limit), "```", ""]
            for call in reply.get("tool_calls") or []:
                lines += [f"- call `{call['name']}({json.dumps(call['args'])[:300]})`"]
            lines += [""] if reply.get("tool_calls") else []
    return "\n".join(lines)


if __name__ == "__main__":  # python -m aim_agent.agent.tape DIR: a recording as Markdown
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python -m aim_agent.agent.tape DIR   (a folder written by aim interpret --record DIR)")
    print(transcript(sys.argv[1]))
