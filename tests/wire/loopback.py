"""Scripted VLM servers on 127.0.0.1 that speak each provider's documented HTTP protocol.

The real LangChain clients (langchain-google-genai, -openai, -anthropic, -ollama) are pointed at a
:class:`LoopbackServer` by base URL. The server decodes every request strictly (the shapes the
providers document: image parts, tool schemas, tool-call/tool-result pairing, role order) into a
provider-neutral :class:`Request`, asks a *brain* (a function ``Request -> Reply``: the scripted
VLM) what to answer, and encodes the :class:`Reply` in the provider's response format, streamed
when the client asked for a stream. A request that breaks the protocol is answered with the
provider's own 400 error (and kept in :attr:`LoopbackServer.violations`), so a test fails the way
a real provider would fail the run.

Faults (429 with ``retry-after``, 500, 529) are queued with :meth:`LoopbackServer.fail_next` and
served before the next normal reply. Servers bind a free port, serve from a daemon thread, stop
themselves after ``lifetime_s`` and when the ``with`` block ends.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

# --------------------------------------------------------------------------------------------
# the neutral conversation


@dataclass
class Part:
    """One piece of a message: text, an image, a tool call, or a tool result."""

    kind: str  # text | image | call | result
    text: str = ""
    image: Image.Image | None = None
    name: str = ""
    args: Any = None
    call_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Turn:
    role: str  # user | assistant | tool
    parts: list[Part] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(p.text for p in self.parts if p.kind in ("text", "result"))


@dataclass
class Request:
    """A decoded request: what the client sent, in a form the brains and the tests can read."""

    provider: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    model: str = ""
    system: str = ""
    turns: list[Turn] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)  # name, description, parameters
    stream: bool = False
    at: float = 0.0
    status: int = 200  # what the server answered

    def parts(self, kind: str) -> list[Part]:
        return [p for t in self.turns for p in t.parts if p.kind == kind]

    @property
    def images(self) -> list[Image.Image]:
        return [p.image for p in self.parts("image") if p.image is not None]

    def text(self) -> str:
        """Everything the model reads as text (system, messages, tool results)."""
        return "\n".join([self.system, *(t.text() for t in self.turns)])

    def last_user_text(self) -> str:
        for turn in reversed(self.turns):
            if turn.role == "user" and any(p.kind == "text" for p in turn.parts):
                return turn.text()
        return ""

    @property
    def results(self) -> list[Part]:
        return self.parts("result")

    @property
    def calls(self) -> list[Part]:
        return self.parts("call")

    def tool_names(self) -> list[str]:
        return [t["name"] for t in self.tools]


@dataclass
class Call:
    name: str
    args: dict[str, Any] | str  # a str is sent as is: a malformed call (OpenAI-style JSON text)


@dataclass
class Reply:
    """What the scripted VLM answers, before a protocol encodes it."""

    text: str = ""
    calls: list[Call] = field(default_factory=list)
    usage: tuple[int, int] = (0, 0)  # input, output tokens
    thoughts: int = 0  # reasoning tokens (billed as output by Gemini)
    finish: str | None = None  # None: stop/tool use; "refusal", "length", "safety"
    refusal: str | None = None


class ProtocolViolation(Exception):
    """A request that the real provider would reject with 400."""


def need(condition: Any, message: str) -> None:
    if not condition:
        raise ProtocolViolation(message)


def png_from_base64(data: str, where: str) -> Image.Image:
    """A base64 PNG (standard or URL-safe alphabet, as google-genai writes bytes) as an image."""
    need(isinstance(data, str) and data, f"{where}: image data must be a non-empty base64 string")
    try:
        raw = base64.b64decode(data, altchars=b"-_" if ("-" in data or "_" in data) else None, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolViolation(f"{where}: image data is not base64 ({exc})") from exc
    need(raw.startswith(b"\x89PNG\r\n\x1a\n"), f"{where}: image bytes are not a PNG")
    image = Image.open(io.BytesIO(raw))
    image.load()
    return image.convert("RGB")


def _texts(content: Any, where: str) -> list[str]:
    if isinstance(content, str):
        return [content]
    need(isinstance(content, list), f"{where}: content must be a string or a list of parts")
    out = []
    for block in content:
        need(isinstance(block, dict) and block.get("type") == "text",
             f"{where}: expected text parts, got {block!r:.80}")
        out.append(block["text"])
    return out


# --------------------------------------------------------------------------------------------
# protocols


class Protocol:
    """One provider's HTTP dialect: where requests go, how they look, how replies look."""

    name = "base"
    stream_content_type = "text/event-stream"

    def route(self, method: str, path: str) -> bool:
        raise NotImplementedError

    def decode(self, req: Request) -> None:
        """Fill ``req`` (system, turns, tools, model, stream) from ``req.body``; raise ProtocolViolation."""
        raise NotImplementedError

    def encode(self, reply: Reply, req: Request, seq: int) -> dict[str, Any]:
        raise NotImplementedError

    def chunks(self, reply: Reply, req: Request, seq: int) -> Iterator[bytes]:
        raise NotImplementedError(f"{self.name} does not stream")

    def error(self, status: int, message: str) -> dict[str, Any]:
        raise NotImplementedError

    def key_of(self, headers: dict[str, str]) -> str | None:
        auth = headers.get("authorization", "")
        return auth.removeprefix("Bearer ").strip() or None


def _split(text: str, n: int = 3) -> list[str]:
    """A text in a few pieces (streams send it in chunks)."""
    if not text:
        return []
    size = max(1, len(text) // n)
    return [text[i : i + size] for i in range(0, len(text), size)]


class OpenAIChat(Protocol):
    """``POST {base}/chat/completions`` (OpenAI, vLLM, llama.cpp server, LM Studio)."""

    name = "openai"

    def route(self, method: str, path: str) -> bool:
        return method == "POST" and path.rstrip("/").endswith("/chat/completions")

    def decode(self, req: Request) -> None:
        body = req.body
        need(isinstance(body.get("model"), str) and body["model"], "model is required")
        need(isinstance(body.get("messages"), list) and body["messages"], "messages must be a non-empty list")
        req.model, req.stream = body["model"], bool(body.get("stream"))
        pending: dict[str, str] = {}
        for i, msg in enumerate(body["messages"]):
            role, where = msg.get("role"), f"messages[{i}]"
            if role in ("system", "developer"):
                req.system += "\n".join(_texts(msg.get("content"), where))
                continue
            need(not pending or role == "tool",
                 f"{where}: an assistant message with 'tool_calls' must be followed by tool messages responding "
                 f"to each 'tool_call_id'. Missing: {', '.join(pending)}")
            if role == "user":
                turn = Turn("user")
                content = msg.get("content")
                for j, block in enumerate([content] if isinstance(content, str) else content):
                    if isinstance(block, str):
                        turn.parts.append(Part("text", text=block))
                    elif block.get("type") == "text":
                        turn.parts.append(Part("text", text=block["text"]))
                    elif block.get("type") == "image_url":
                        url = block.get("image_url", {}).get("url", "")
                        m = re.match(r"^data:image/png;base64,(.*)$", url, re.S)
                        need(m, f"{where}.content[{j}]: image_url must be a data:image/png;base64 URL")
                        turn.parts.append(Part("image", image=png_from_base64(m.group(1), f"{where}.content[{j}]")))
                    else:
                        raise ProtocolViolation(f"{where}.content[{j}]: unknown part type {block.get('type')!r}")
                req.turns.append(turn)
            elif role == "assistant":
                turn = Turn("assistant")
                if msg.get("content"):
                    turn.parts += [Part("text", text=t) for t in _texts(msg["content"], where)]
                for call in msg.get("tool_calls") or []:
                    need(call.get("type") == "function" and call.get("id"), f"{where}: tool calls need an id and type")
                    fn = call["function"]
                    need(isinstance(fn.get("arguments"), str), f"{where}: function.arguments must be a JSON string")
                    turn.parts.append(Part("call", name=fn["name"], args=fn["arguments"], call_id=call["id"]))
                    pending[call["id"]] = fn["name"]
                req.turns.append(turn)
            elif role == "tool":
                cid = msg.get("tool_call_id")
                need(cid in pending, f"{where}: tool message answers unknown or already answered tool_call_id {cid!r}")
                name = pending.pop(cid)
                text = "\n".join(_texts(msg.get("content"), where))
                req.turns.append(Turn("tool", [Part("result", text=text, name=name, call_id=cid)]))
            else:
                raise ProtocolViolation(f"{where}: unknown role {role!r}")
        need(not pending, f"tool calls without results: {', '.join(pending)}")
        for i, tool in enumerate(body.get("tools") or []):
            need(tool.get("type") == "function", f"tools[{i}].type must be 'function'")
            fn = tool["function"]
            need(re.match(r"^[a-zA-Z0-9_-]{1,64}$", fn.get("name", "")), f"tools[{i}]: invalid function name")
            need(fn.get("parameters", {}).get("type") == "object", f"tools[{i}].parameters must be an object schema")
            req.tools.append({"name": fn["name"], "description": fn.get("description", ""),
                              "parameters": fn["parameters"]})

    def _calls(self, reply: Reply, seq: int) -> list[dict[str, Any]]:
        return [{"id": f"call_{seq}_{i}", "type": "function",
                 "function": {"name": c.name, "arguments": c.args if isinstance(c.args, str) else json.dumps(c.args)}}
                for i, c in enumerate(reply.calls)]

    def _finish(self, reply: Reply) -> str:
        if reply.finish == "length":
            return "length"
        if reply.finish == "safety":
            return "content_filter"
        return "tool_calls" if reply.calls else "stop"

    def _usage(self, reply: Reply) -> dict[str, Any]:
        return {"prompt_tokens": reply.usage[0], "completion_tokens": reply.usage[1],
                "total_tokens": reply.usage[0] + reply.usage[1]}

    def encode(self, reply: Reply, req: Request, seq: int) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None, "refusal": reply.refusal}
        if reply.calls:
            message["tool_calls"] = self._calls(reply, seq)
        return {"id": f"chatcmpl-{seq}", "object": "chat.completion", "created": 1700000000, "model": req.model,
                "choices": [{"index": 0, "message": message, "finish_reason": self._finish(reply)}],
                "usage": self._usage(reply)}

    def chunks(self, reply: Reply, req: Request, seq: int) -> Iterator[bytes]:
        head = {"id": f"chatcmpl-{seq}", "object": "chat.completion.chunk", "created": 1700000000, "model": req.model}

        def event(choices: list[dict[str, Any]], **more: Any) -> bytes:
            return f"data: {json.dumps({**head, 'choices': choices, **more})}\n\n".encode()

        yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        for piece in _split(reply.text):
            yield event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
        for i, call in enumerate(self._calls(reply, seq)):
            args = call["function"]["arguments"]
            first = {"index": i, "id": call["id"], "type": "function",
                     "function": {"name": call["function"]["name"], "arguments": ""}}
            yield event([{"index": 0, "delta": {"tool_calls": [first]}, "finish_reason": None}])
            for piece in _split(args):
                yield event([{"index": 0, "delta": {"tool_calls": [{"index": i, "function": {"arguments": piece}}]},
                              "finish_reason": None}])
        yield event([{"index": 0, "delta": {}, "finish_reason": self._finish(reply)}])
        if (req.body.get("stream_options") or {}).get("include_usage"):
            yield event([], usage=self._usage(reply))
        yield b"data: [DONE]\n\n"

    def error(self, status: int, message: str) -> dict[str, Any]:
        kind = {400: "invalid_request_error", 401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status,
                                                                                                      "server_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


class Anthropic(Protocol):
    """``POST {base}/v1/messages`` (Claude)."""

    name = "anthropic"

    def route(self, method: str, path: str) -> bool:
        return method == "POST" and path.rstrip("/").endswith("/v1/messages")

    def key_of(self, headers: dict[str, str]) -> str | None:
        return headers.get("x-api-key") or super().key_of(headers)

    def decode(self, req: Request) -> None:
        body = req.body
        need(isinstance(body.get("max_tokens"), int) and body["max_tokens"] > 0, "max_tokens: field required")
        need(isinstance(body.get("messages"), list) and body["messages"], "messages: at least one message is required")
        req.model, req.stream = body.get("model", ""), bool(body.get("stream"))
        system = body.get("system", "")
        req.system = "\n".join(_texts(system, "system")) if system else ""
        expect, pending = "user", {}
        for i, msg in enumerate(body["messages"]):
            role, where = msg.get("role"), f"messages.{i}"
            need(role == expect, f"{where}: roles must alternate between 'user' and 'assistant', starting with 'user'")
            expect = "assistant" if role == "user" else "user"
            content = msg.get("content")
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            need(isinstance(blocks, list) and blocks, f"{where}: content must be non-empty")
            turn = Turn(role)
            answered: set[str] = set()
            seen_other = False
            for j, block in enumerate(blocks):
                kind, at = block.get("type"), f"{where}.content.{j}"
                if kind == "text":
                    need(block.get("text", "").strip(), f"{at}: text content blocks must contain non-whitespace text")
                    turn.parts.append(Part("text", text=block["text"]))
                    seen_other = True
                elif kind == "image":
                    need(role == "user", f"{at}: images are allowed in user messages only")
                    src = block.get("source", {})
                    need(src.get("type") == "base64" and src.get("media_type") == "image/png",
                         f"{at}: image.source must be base64 with media_type image/png")
                    turn.parts.append(Part("image", image=png_from_base64(src.get("data"), at)))
                    seen_other = True
                elif kind == "tool_use":
                    need(role == "assistant", f"{at}: tool_use blocks belong to assistant messages")
                    need(re.match(r"^[a-zA-Z0-9_-]+$", block.get("id", "")), f"{at}: tool_use.id: invalid id")
                    need(isinstance(block.get("input"), dict), f"{at}: tool_use.input must be an object")
                    turn.parts.append(Part("call", name=block["name"], args=block["input"], call_id=block["id"]))
                    pending[block["id"]] = block["name"]
                elif kind == "tool_result":
                    need(role == "user", f"{at}: tool_result blocks belong to user messages")
                    need(not seen_other, f"{at}: tool_result blocks must come first in the user message content")
                    cid = block.get("tool_use_id")
                    need(cid in pending, f"{at}: unexpected `tool_use_id` found in `tool_result` blocks: {cid}")
                    answered.add(cid)
                    inner = block.get("content", "")
                    text = inner if isinstance(inner, str) else "\n".join(
                        b.get("text", "") for b in inner if b.get("type") == "text")
                    turn.parts.append(Part("result", text=text, name=pending[cid], call_id=cid,
                                           extra={"is_error": bool(block.get("is_error"))}))
                else:
                    raise ProtocolViolation(f"{at}: unknown content block type {kind!r}")
            if role == "user" and pending:
                missing = set(pending) - answered
                need(not missing, f"{where}: `tool_use` ids were found without `tool_result` blocks immediately "
                                  f"after: {', '.join(sorted(missing))}")
                pending = {}
            req.turns.append(turn)
        need(body["messages"][-1]["role"] == "user", "the last message must be a user message")
        for i, tool in enumerate(body.get("tools") or []):
            need(re.match(r"^[a-zA-Z0-9_-]{1,128}$", tool.get("name", "")), f"tools.{i}.name: invalid")
            need(tool.get("input_schema", {}).get("type") == "object", f"tools.{i}.input_schema: must be an object")
            req.tools.append({"name": tool["name"], "description": tool.get("description", ""),
                              "parameters": tool["input_schema"]})

    def _message(self, reply: Reply, req: Request, seq: int) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
        content += [{"type": "tool_use", "id": f"toolu_{seq}_{i}", "name": c.name,
                     "input": c.args if isinstance(c.args, dict) else {"raw": c.args}}
                    for i, c in enumerate(reply.calls)]
        stop = {"refusal": "refusal", "length": "max_tokens"}.get(reply.finish or "",
                                                                   "tool_use" if reply.calls else "end_turn")
        return {"id": f"msg_{seq}", "type": "message", "role": "assistant", "model": req.model, "content": content,
                "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": reply.usage[0], "output_tokens": reply.usage[1]}}

    def encode(self, reply: Reply, req: Request, seq: int) -> dict[str, Any]:
        return self._message(reply, req, seq)

    def chunks(self, reply: Reply, req: Request, seq: int) -> Iterator[bytes]:
        message = self._message(reply, req, seq)

        def event(kind: str, data: dict[str, Any]) -> bytes:
            return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()

        start = {**message, "content": [], "stop_reason": None,
                 "usage": {"input_tokens": reply.usage[0], "output_tokens": 1}}
        yield event("message_start", {"message": start})
        for i, block in enumerate(message["content"]):
            if block["type"] == "text":
                yield event("content_block_start", {"index": i, "content_block": {"type": "text", "text": ""}})
                for piece in _split(block["text"]):
                    yield event("content_block_delta", {"index": i, "delta": {"type": "text_delta", "text": piece}})
            else:
                yield event("content_block_start", {"index": i, "content_block": {**block, "input": {}}})
                for piece in _split(json.dumps(block["input"])):
                    yield event("content_block_delta", {"index": i, "delta": {"type": "input_json_delta",
                                                                              "partial_json": piece}})
            yield event("content_block_stop", {"index": i})
        # the usage of message_delta is cumulative: input tokens again, output tokens in all
        yield event("message_delta", {"delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                                      "usage": {"input_tokens": reply.usage[0], "output_tokens": reply.usage[1]}})
        yield event("message_stop", {})

    def error(self, status: int, message: str) -> dict[str, Any]:
        kind = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error",
                529: "overloaded_error"}.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}


class Gemini(Protocol):
    """``POST {base}/{version}/models/{model}:generateContent`` (Gemini API, REST)."""

    name = "google_genai"

    def __init__(self) -> None:
        self.signatures: dict[str, str] = {}  # function-call name+args -> thought signature issued

    def route(self, method: str, path: str) -> bool:
        return method == "POST" and bool(re.search(r"/models/[^/:]+:(generateContent|streamGenerateContent)", path))

    def key_of(self, headers: dict[str, str]) -> str | None:
        return headers.get("x-goog-api-key")

    @staticmethod
    def _call_key(name: str, args: Any) -> str:
        return f"{name}:{json.dumps(args, sort_keys=True)}"

    def decode(self, req: Request) -> None:
        body = req.body
        m = re.search(r"/models/([^/:]+):(\w+)", req.path)
        assert m is not None
        req.model, req.stream = m.group(1), m.group(2) == "streamGenerateContent"
        system = body.get("systemInstruction") or body.get("system_instruction")
        if system:
            req.system = "\n".join(p.get("text", "") for p in system.get("parts", []))
        contents = body.get("contents")
        need(isinstance(contents, list) and contents, "contents must not be empty")
        open_calls: list[str] = []
        for i, content in enumerate(contents):
            role, where = content.get("role"), f"contents[{i}]"
            need(role in ("user", "model", "function"), f"{where}: role must be 'user' or 'model'")
            parts = content.get("parts")
            need(isinstance(parts, list) and parts, f"{where}: contents.parts must not be empty")
            turn = Turn("assistant" if role == "model" else "user")
            responses = 0
            for j, part in enumerate(parts):
                at = f"{where}.parts[{j}]"
                inline = part.get("inlineData") or part.get("inline_data")
                call = part.get("functionCall") or part.get("function_call")
                response = part.get("functionResponse") or part.get("function_response")
                if "text" in part:
                    turn.parts.append(Part("text", text=part["text"]))
                elif inline is not None:
                    mime = inline.get("mimeType") or inline.get("mime_type")
                    need(mime == "image/png", f"{at}: inline_data.mime_type must be image/png, got {mime!r}")
                    turn.parts.append(Part("image", image=png_from_base64(inline.get("data"), at)))
                elif call is not None:
                    need(role == "model", f"{at}: function_call parts belong to model turns")
                    key = self._call_key(call["name"], call.get("args", {}))
                    sig = part.get("thoughtSignature") or part.get("thought_signature")
                    issued = self.signatures.get(key)
                    need(issued is None or sig == issued,
                         f"{at}: Function call is missing a thought_signature in functionCall parts "
                         "(it must be sent back as it was received)")
                    turn.parts.append(Part("call", name=call["name"], args=call.get("args", {}),
                                           call_id=call.get("id", ""), extra={"signature": sig}))
                    open_calls.append(call["name"])
                elif response is not None:
                    responses += 1
                    need(open_calls, f"{at}: function_response without a preceding function_call")
                    data = response.get("response")
                    if isinstance(data, dict) and set(data) == {"output"}:  # how LangChain wraps a text result
                        data = data["output"]
                    text = data if isinstance(data, str) else json.dumps(data)
                    turn.parts.append(Part("result", text=text, name=response.get("name", ""),
                                           call_id=response.get("id", "")))
                else:
                    raise ProtocolViolation(f"{at}: unknown part {sorted(part)}")
            if turn.role == "user" and open_calls:
                need(responses == len(open_calls),
                     f"{where}: Please ensure that the number of function response parts is equal to the number of "
                     f"function call parts of the function call turn ({responses} != {len(open_calls)}).")
                open_calls = []
            req.turns.append(turn)
        for group in body.get("tools") or []:
            for decl in group.get("functionDeclarations") or group.get("function_declarations") or []:
                schema = decl.get("parameters") or decl.get("parametersJsonSchema") or decl.get(
                    "parameters_json_schema")
                need(isinstance(schema, dict), f"function declaration {decl.get('name')!r} has no parameters schema")
                req.tools.append({"name": decl["name"], "description": decl.get("description", ""),
                                  "parameters": schema})

    def encode(self, reply: Reply, req: Request, seq: int) -> dict[str, Any]:
        usage = {"promptTokenCount": reply.usage[0], "candidatesTokenCount": reply.usage[1],
                 "totalTokenCount": reply.usage[0] + reply.usage[1] + reply.thoughts}
        if reply.thoughts:
            usage["thoughtsTokenCount"] = reply.thoughts
        if reply.finish in ("safety", "refusal"):
            return {"candidates": [{"finishReason": "SAFETY", "index": 0,
                                    "safetyRatings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                                                       "probability": "HIGH", "blocked": True}]}],
                    "usageMetadata": usage, "modelVersion": req.model}
        parts: list[dict[str, Any]] = [{"text": reply.text}] if reply.text else []
        for i, call in enumerate(reply.calls):
            signature = base64.b64encode(f"sig-{seq}-{i}".encode()).decode()
            self.signatures[self._call_key(call.name, call.args)] = signature
            parts.append({"functionCall": {"name": call.name, "args": call.args}, "thoughtSignature": signature})
        candidate: dict[str, Any] = {"finishReason": "MAX_TOKENS" if reply.finish == "length" else "STOP", "index": 0}
        if parts:
            candidate["content"] = {"role": "model", "parts": parts}
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": req.model,
                "responseId": f"resp-{seq}"}

    def chunks(self, reply: Reply, req: Request, seq: int) -> Iterator[bytes]:
        yield f"data: {json.dumps(self.encode(reply, req, seq))}\r\n\r\n".encode()

    def error(self, status: int, message: str) -> dict[str, Any]:
        state = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 429: "RESOURCE_EXHAUSTED",
                 503: "UNAVAILABLE"}.get(status, "INTERNAL")
        return {"error": {"code": status, "message": message, "status": state}}


class Ollama(Protocol):
    """``POST {host}/api/chat`` (Ollama; newline-delimited JSON when streaming)."""

    name = "ollama"
    stream_content_type = "application/x-ndjson"

    def route(self, method: str, path: str) -> bool:
        return method == "POST" and path.rstrip("/") == "/api/chat"

    def key_of(self, headers: dict[str, str]) -> str | None:
        return None

    def decode(self, req: Request) -> None:
        body = req.body
        need(body.get("model"), "model is required")
        req.model, req.stream = body["model"], body.get("stream", True) is not False
        pending: list[str] = []
        for i, msg in enumerate(body.get("messages") or []):
            role, where = msg.get("role"), f"messages[{i}]"
            need(isinstance(msg.get("content", ""), str), f"{where}: content must be a string")
            if role == "system":
                req.system += msg.get("content", "")
                continue
            if role == "tool":
                need(pending, f"{where}: a tool message without a tool call before it")
                name = msg.get("tool_name") or pending[0]
                need(name in pending, f"{where}: tool_name {name!r} answers no pending call")
                pending.remove(name)
                req.turns.append(Turn("tool", [Part("result", text=msg.get("content", ""), name=name)]))
                continue
            need(role in ("user", "assistant"), f"{where}: unknown role {role!r}")
            turn = Turn(role)
            if msg.get("content"):
                turn.parts.append(Part("text", text=msg["content"]))
            for j, data in enumerate(msg.get("images") or []):
                need(not str(data).startswith("data:"), f"{where}.images[{j}]: raw base64 expected, not a data URL")
                turn.parts.append(Part("image", image=png_from_base64(data, f"{where}.images[{j}]")))
            for call in msg.get("tool_calls") or []:
                fn = call.get("function", {})
                need(isinstance(fn.get("arguments"), dict),
                     f"{where}: tool_calls[].function.arguments must be an object")
                turn.parts.append(Part("call", name=fn["name"], args=fn["arguments"]))
                pending.append(fn["name"])
            req.turns.append(turn)
        for i, tool in enumerate(body.get("tools") or []):
            need(tool.get("type") == "function", f"tools[{i}].type must be 'function'")
            fn = tool["function"]
            req.tools.append({"name": fn["name"], "description": fn.get("description", ""),
                              "parameters": fn.get("parameters", {})})

    def _message(self, reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if reply.calls:
            message["tool_calls"] = [{"function": {"name": c.name, "arguments": c.args}} for c in reply.calls]
        return message

    def _final(self, reply: Reply, req: Request) -> dict[str, Any]:
        return {"model": req.model, "created_at": "2026-01-01T00:00:00Z", "done": True,
                "done_reason": "length" if reply.finish == "length" else "stop", "total_duration": 1000,
                "prompt_eval_count": reply.usage[0], "eval_count": reply.usage[1]}

    def encode(self, reply: Reply, req: Request, seq: int) -> dict[str, Any]:
        return {**self._final(reply, req), "message": self._message(reply)}

    def chunks(self, reply: Reply, req: Request, seq: int) -> Iterator[bytes]:
        head = {"model": req.model, "created_at": "2026-01-01T00:00:00Z", "done": False}
        for piece in _split(reply.text):
            yield (json.dumps({**head, "message": {"role": "assistant", "content": piece}}) + "\n").encode()
        if reply.calls:
            message = {**self._message(reply), "content": ""}
            yield (json.dumps({**head, "message": message}) + "\n").encode()
        final = {**self._final(reply, req), "message": {"role": "assistant", "content": ""}}
        yield (json.dumps(final) + "\n").encode()

    def error(self, status: int, message: str) -> dict[str, Any]:
        return {"error": message}


PROTOCOLS: dict[str, Callable[[], Protocol]] = {
    "openai": OpenAIChat, "anthropic": Anthropic, "google_genai": Gemini, "ollama": Ollama,
}


# --------------------------------------------------------------------------------------------
# the server


@dataclass
class Fault:
    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)


Brain = Callable[[Request], Reply]


class LoopbackServer:
    """A scripted provider on ``127.0.0.1:<free port>``; use as a context manager."""

    def __init__(self, provider: str, brain: Brain, *, lifetime_s: float = 120.0) -> None:
        self.protocol = PROTOCOLS[provider]()
        self.provider = provider
        self.brain = brain
        self.requests: list[Request] = []
        self.replies: list[Reply] = []
        self.violations: list[str] = []
        self.faults: list[Fault] = []
        self.unrouted: list[str] = []
        self.lifetime_s = lifetime_s
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._port = 0
        self._timer: threading.Timer | None = None

    # -- the URL a client is given
    @property
    def port(self) -> int:
        assert self._port, "the server is started by `with LoopbackServer(...) as server:`"
        return self._port

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What ``--base-url`` takes for this provider (OpenAI-compatible servers serve under /v1)."""
        return f"{self.root}/v1" if self.provider == "openai" else self.root

    def fail_next(self, status: int, message: str = "", **headers: str) -> None:
        """Answer the next request with an error (queued; faults are served in order)."""
        self.faults.append(Fault(status, message or f"scripted error {status}", headers))

    # -- lifecycle
    def __enter__(self) -> LoopbackServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                server._handle(self)

            do_GET = do_POST

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._port = int(self._httpd.server_address[1])
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self._timer = threading.Timer(self.lifetime_s, self.close)  # never outlives a hung test
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._httpd is not None:
            httpd, self._httpd = self._httpd, None
            httpd.shutdown()
            httpd.server_close()

    # -- one exchange
    def _send(self, handler: BaseHTTPRequestHandler, status: int, data: Any, headers: dict[str, str] | None = None,
              ) -> None:
        body = json.dumps(data).encode()
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.send_header("content-length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        if not self.protocol.route(handler.command, path.split("?")[0]):
            self.unrouted.append(f"{handler.command} {path}")
            self._send(handler, 404, self.protocol.error(404, f"no route {handler.command} {path}"))
            return
        headers = {k.lower(): v for k, v in handler.headers.items()}
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._send(handler, 400, self.protocol.error(400, "the body is not JSON"))
            return
        req = Request(self.protocol.name, path, headers, body, at=time.monotonic())
        with self._lock:  # one exchange at a time: brains are scripts
            self.requests.append(req)
            if self.faults:
                fault = self.faults.pop(0)
                req.status = fault.status
                self._send(handler, fault.status, self.protocol.error(fault.status, fault.message), fault.headers)
                return
            try:
                self.protocol.decode(req)
                reply = self.brain(req)
            except ProtocolViolation as exc:
                self.violations.append(str(exc))
                req.status = 400
                self._send(handler, 400, self.protocol.error(400, str(exc)))
                return
            seq = len(self.replies)
            self.replies.append(reply)
            if req.stream:
                handler.send_response(200)
                handler.send_header("content-type", self.protocol.stream_content_type)
                handler.send_header("transfer-encoding", "chunked")
                handler.end_headers()
                for chunk in self.protocol.chunks(reply, req, seq):
                    handler.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                handler.wfile.write(b"0\r\n\r\n")
                handler.wfile.flush()
            else:
                self._send(handler, 200, self.protocol.encode(reply, req, seq))

    # -- what the tests read
    def served(self) -> list[Request]:
        """Requests that got a normal reply (not a fault, not a protocol violation)."""
        return [r for r in self.requests if r.status == 200]
