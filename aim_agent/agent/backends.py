"""VLM backends: which chat model to build, how to call it robustly, what it costs.

A backend is named ``provider:model`` (``google_genai:gemini-2.5-flash``, ``openai:gpt-4o``,
``anthropic:claude-sonnet-4-6``, ``ollama:qwen2.5vl``), or ``openai:MODEL`` with a ``base_url``
for any OpenAI-compatible server (vLLM, llama.cpp, LM Studio). Keys come from the environment
only (``GOOGLE_API_KEY``, ``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``); an OpenAI-compatible server
at a ``base_url`` gets ``AIM_SERVER_API_KEY`` (or a placeholder), never the OpenAI key. A name that a plugin registers
as a scientist (hook ``aim_scientists``) needs no chat model: ``offline`` is the world plugin's
rule-based scientist. With no backend named, AIM takes ``google_genai`` when ``GOOGLE_API_KEY``
is set and ``offline`` otherwise (an error says how to choose a VLM when the world is absent).

:class:`ChatClient` wraps a chat model for one role (agent, describer, critic): it retries
rate limits and transient server errors with exponential backoff, and records every call's
token use and estimated cost in a :class:`UsageMeter`. A reply that carries nothing (no text, no
tool call) or a refusal raises :class:`ModelReplyError`; a request the provider rejects raises
:class:`ModelCallError`; both say which backend, what happened and what to try.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from langchain.chat_models import init_chat_model
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger("aim.backends")

#: default model of each provider when only the provider is named
DEFAULT_MODELS = {
    "google_genai": "gemini-2.5-flash",
    "openai": "gpt-4o",
    "anthropic": "claude-sonnet-4-6",
    "ollama": "qwen2.5vl",
}
#: environment variable holding each hosted provider's key
KEY_ENV = {"google_genai": "GOOGLE_API_KEY", "openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
PROVIDERS = ("offline", *DEFAULT_MODELS)
#: the chat-model backends, as a user types them (help texts, errors)
BACKEND_CHOICES = " | ".join(f"{p}[:MODEL]" for p in DEFAULT_MODELS)
_ALIASES = {"google": "google_genai", "gemini": "google_genai", "claude": "anthropic", "vllm": "openai"}
#: environment variable holding the key of an OpenAI-compatible server at a base URL (vLLM --api-key)
SERVER_KEY_ENV = "AIM_SERVER_API_KEY"
#: the SDKs' own retries are switched off (ChatClient retries, with backoff and accounting); the value
#: that means "one try only" differs: google-genai reads 0 as "its default of 5 retries"
_NO_SDK_RETRIES = {"google_genai": 1, "openai": 0, "anthropic": 0}
#: providers whose LangChain class streams on request (ollama always streams)
_STREAMS = {"google_genai", "openai", "anthropic"}


class BackendError(ValueError):
    """A backend cannot be built (unknown provider, missing package or key); the text says what to do."""


class ModelCallError(ValueError):
    """A model call failed for good: the provider rejected it, or kept failing after every retry."""


class ModelReplyError(ModelCallError):
    """The model answered, but with nothing usable: a refusal, or no text and no tool call."""


class BackendSpec(BaseModel):
    """Which chat model to use for one role, and how to reach it."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(description="offline, google_genai, openai, anthropic, ollama, or a plugin backend")
    model: str | None = Field(default=None, description="model name; default: the provider's usual VLM")
    base_url: str | None = Field(default=None, description="server URL (OpenAI-compatible servers, ollama, proxies)")
    streaming: bool = Field(default=False, description="stream replies (token usage still reported)")
    temperature: float | None = 0.2
    timeout_s: float | None = 120.0
    max_output_tokens: int | None = None
    extra: dict[str, Any] = Field(default_factory=dict, description="passed to the LangChain chat class as is")

    @classmethod
    def parse(
        cls,
        text: str | None,
        *,
        base_url: str | None = None,
        streaming: bool = False,
        like: BackendSpec | None = None,
        env: Mapping[str, str] | None = None,
    ) -> BackendSpec:
        """``provider[:model]`` as a spec; None/empty picks :func:`default_backend`.

        ``like``: another role's spec (the scientist's); a spec of the same provider reaches the same
        server (its ``base_url`` and ``streaming``) unless ``base_url`` is given here.
        """
        if not text:
            spec = default_backend(env)
            return spec.model_copy(update={"base_url": base_url, "streaming": streaming}) if base_url else spec
        provider, _, model = text.partition(":")
        provider = provider.strip().lower()
        provider = _ALIASES.get(provider, provider)
        if like is not None and like.provider == provider and base_url is None:
            base_url, streaming = like.base_url, streaming or like.streaming
        if base_url and provider == "offline":
            raise BackendError("--base-url names a model server; the offline scientist has none")
        if base_url and not base_url.startswith(("http://", "https://")):
            raise BackendError(f"--base-url must be an http:// or https:// URL, got {base_url!r}")
        return cls(provider=provider, model=model.strip() or None, base_url=base_url, streaming=streaming)

    @property
    def offline(self) -> bool:
        return self.provider == "offline"

    @property
    def model_name(self) -> str:
        """The model name actually used (the provider default when none was given)."""
        if self.offline:
            return "offline"
        return self.model or DEFAULT_MODELS.get(self.provider, "")

    def label(self) -> str:
        where = f" at {self.base_url}" if self.base_url else ""
        return f"{self.provider}:{self.model_name}{where}" if not self.offline else "offline"


def default_backend(env: Mapping[str, str] | None = None) -> BackendSpec:
    """google_genai when ``GOOGLE_API_KEY`` is set, else the offline scientist."""
    env = os.environ if env is None else env
    if env.get("GOOGLE_API_KEY"):
        return BackendSpec(provider="google_genai", model=DEFAULT_MODELS["google_genai"])
    return BackendSpec(provider="offline")


def _plugin_backend(name: str) -> Any | None:
    """A VLM backend a plugin offers under ``name`` (hook ``aim_vlm_backends``), or None."""
    from aim_agent.plugins import plugin_manager

    pm = plugin_manager()
    return pm.provider("vlm", name) if name in pm.provider_names("vlm") else None


def make_chat_model(spec: BackendSpec, *, env: Mapping[str, str] | None = None) -> BaseChatModel:
    """The LangChain chat model for ``spec`` (built by ``init_chat_model``; no request is sent)."""
    env = os.environ if env is None else env
    if spec.offline:
        raise BackendError("the offline scientist is not a chat model: it comes from the aim_scientists hook "
                           "(aim_agent.agent.runtime.build_scientist builds it)")
    plugin = _plugin_backend(spec.provider)
    if plugin is not None:
        made: BaseChatModel = plugin.make(spec)
        return made
    if spec.provider not in DEFAULT_MODELS:
        raise BackendError(
            f"unknown backend {spec.provider!r}; valid: {', '.join(PROVIDERS)} "
            "(or openai:MODEL with --base-url for an OpenAI-compatible server such as vLLM)"
        )
    kwargs: dict[str, Any] = dict(spec.extra)
    if spec.temperature is not None:
        kwargs.setdefault("temperature", spec.temperature)
    if spec.timeout_s is not None and spec.provider != "ollama":
        kwargs.setdefault("timeout", spec.timeout_s)
    if spec.max_output_tokens is not None:
        key = {"google_genai": "max_output_tokens", "ollama": "num_predict"}.get(spec.provider, "max_tokens")
        kwargs.setdefault(key, spec.max_output_tokens)
    if spec.provider in _NO_SDK_RETRIES:
        kwargs.setdefault("max_retries", _NO_SDK_RETRIES[spec.provider])
    if spec.streaming and spec.provider in _STREAMS:
        kwargs.setdefault("streaming", True)
        if spec.provider == "openai":
            kwargs.setdefault("stream_usage", True)  # the last chunk carries the token counts
    if spec.base_url:
        kwargs["base_url"] = spec.base_url
    key_env = KEY_ENV.get(spec.provider)
    if spec.provider == "openai" and spec.base_url:
        # a server of the user's choosing: never hand it the OpenAI key (the SDK would read OPENAI_API_KEY)
        kwargs.setdefault("api_key", env.get(SERVER_KEY_ENV) or "EMPTY")
        kwargs.setdefault("use_responses_api", False)  # vLLM, llama.cpp and LM Studio serve chat completions
    elif key_env and not env.get(key_env) and "api_key" not in kwargs:
        raise BackendError(
            f"backend {spec.provider} needs an API key: set {key_env}, or pick another backend "
            "(--backend offline runs without any model)"
        )
    try:
        model: BaseChatModel = init_chat_model(spec.model_name, model_provider=spec.provider, **kwargs)
        return model
    except ImportError as exc:
        package = {"google_genai": "langchain-google-genai"}.get(spec.provider, f"langchain-{spec.provider}")
        raise BackendError(
            f"backend {spec.provider} needs the package {package}: pip install 'aim-agent[vlm]'"
        ) from exc


# --------------------------------------------------------------------------------------------
# retries

#: HTTP statuses worth another try (rate limit, timeouts, server trouble, Anthropic "overloaded")
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504, 529})
#: exception class names (anywhere in the MRO) that mean "try again later"
TRANSIENT_NAMES = frozenset({
    "RateLimitError", "APITimeoutError", "APIConnectionError", "InternalServerError", "ServiceUnavailable",
    "ResourceExhausted", "TooManyRequests", "DeadlineExceeded", "OverloadedError", "ServerError",
    "TimeoutException", "ReadTimeout", "ConnectTimeout", "ConnectError", "RemoteProtocolError",
})


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an SDK exception carries, if any."""
    for holder in (exc, getattr(exc, "response", None)):
        for attr in ("status_code", "status", "code", "http_status"):
            value = getattr(holder, attr, None)
            if isinstance(value, int) and 100 <= value < 600:
                return value
            if isinstance(value, str) and value.isdigit() and 100 <= int(value) < 600:
                return int(value)
    return None


def is_transient(exc: BaseException) -> bool:
    """True for rate limits, timeouts and server errors; False for bad requests, auth, bugs."""
    current: BaseException | None = exc
    for _ in range(4):  # SDK errors are often wrapped by LangChain: look at a few causes too
        if current is None:
            break
        status = status_of(current)
        if status is not None:
            return status in RETRY_STATUS
        retryable = getattr(current, "is_retryable", None)  # langchain_core.exceptions.ModelError
        if isinstance(retryable, bool):
            return retryable
        names = {cls.__name__ for cls in type(current).__mro__}
        if names & TRANSIENT_NAMES or isinstance(current, TimeoutError | ConnectionError):
            return True
        current = current.__cause__ or current.__context__
    return False


def _retry_after(exc: BaseException) -> float | None:
    """The server's ``retry-after`` (seconds) on the error or on one of its causes."""
    current: BaseException | None = exc
    for _ in range(4):
        if current is None:
            break
        headers = getattr(getattr(current, "response", None), "headers", None)
        try:
            value = headers.get("retry-after") if headers is not None else None
            if value is not None:
                return float(value)
        except (TypeError, ValueError, AttributeError):
            pass
        current = current.__cause__ or current.__context__
    return None


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        raise BackendError(f"{name} must be a number, got {os.environ[name]!r}") from None


class RetryPolicy(BaseModel):
    """Exponential backoff. Defaults come from ``AIM_RETRY_ATTEMPTS``, ``AIM_RETRY_BASE_S`` and
    ``AIM_RETRY_MAX_S`` when set (6 tries, 2 s doubling, at most 60 s between tries)."""

    attempts: int = Field(default_factory=lambda: int(_env_float("AIM_RETRY_ATTEMPTS", 6)), ge=1,
                          description="tries in all, the first included")
    base_delay_s: float = Field(default_factory=lambda: _env_float("AIM_RETRY_BASE_S", 2.0), ge=0)
    max_delay_s: float = Field(default_factory=lambda: _env_float("AIM_RETRY_MAX_S", 60.0), ge=0)

    def delay(self, attempt: int, exc: BaseException | None = None) -> float:
        """Seconds to wait after failed try number ``attempt`` (0-based): doubling, capped, jittered."""
        hinted = _retry_after(exc) if exc is not None else None
        base = min(self.max_delay_s, self.base_delay_s * (2**attempt))
        return float(min(self.max_delay_s, max(hinted or 0.0, base * (1.0 + 0.25 * random.random()))))


def call_with_retries(
    fn: Callable[[], Any],
    policy: RetryPolicy | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> tuple[Any, int]:
    """``(fn(), tries)``, retrying transient failures with exponential backoff; others raise at once."""
    policy = policy or RetryPolicy()
    for attempt in range(policy.attempts):
        try:
            return fn(), attempt + 1
        except Exception as exc:
            if not is_transient(exc) or attempt + 1 >= policy.attempts:
                raise
            wait = policy.delay(attempt, exc)
            if on_retry is not None:
                on_retry(attempt + 1, exc, wait)
            sleep(wait)
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------
# tokens and cost

#: USD per million (input, output) tokens, list prices; matched by the longest name prefix.
#: A guide for budgets, not an invoice: check your provider's page for current prices.
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "gemini-2.5-pro": (1.25, 10.0),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.0-flash-lite": (0.075, 0.30),
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-1.5-pro": (1.25, 5.0),
    "gemini-1.5-flash": (0.075, 0.30),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.0),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.0, 8.0),
    "o4-mini": (1.10, 4.40),
    "claude-opus-4": (15.0, 75.0),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-3-7-sonnet": (3.0, 15.0),
    "claude-3-5-sonnet": (3.0, 15.0),
    "claude-haiku-4": (1.0, 5.0),
    "claude-3-5-haiku": (0.80, 4.0),
}


def estimate_cost(
    provider: str, model: str, input_tokens: int, output_tokens: int, *, base_url: str | None = None
) -> tuple[float | None, str | None]:
    """(USD, note): 0 for local models, None with a note when the model has no known price.

    An OpenAI-compatible server at a ``base_url`` has no known price; Gemini or Claude reached through
    a ``base_url`` (a proxy, a gateway) are priced as the provider's own API.
    """
    if provider == "ollama":
        return 0.0, "local model (ollama): no charge"
    if base_url and provider == "openai":
        return None, f"self-hosted server {base_url}: no price known"
    name = model.split("/")[-1].lower()
    matches = [key for key in PRICES_PER_MTOK if name.startswith(key)]
    if not matches:
        return None, f"no price known for model {model!r}"
    price_in, price_out = PRICES_PER_MTOK[max(matches, key=len)]
    return (input_tokens * price_in + output_tokens * price_out) / 1e6, None


class CallUsage(BaseModel):
    """One model call: who made it, tokens, time, estimated cost."""

    role: str
    backend: str
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    attempts: int = 1
    cost_usd: float | None = None
    note: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class UsageSummary(BaseModel):
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float | None = 0.0
    cost_known_usd: float = 0.0
    cost_note: str | None = None
    by_role: dict[str, dict[str, float]] = Field(default_factory=dict)


def summarize_usage(calls: Sequence[CallUsage]) -> UsageSummary:
    """Totals of a run; the cost is None (with a note) when any call's price is unknown."""
    summary = UsageSummary()
    notes: list[str] = []
    for call in calls:
        summary.calls += 1
        summary.input_tokens += call.input_tokens
        summary.output_tokens += call.output_tokens
        role = summary.by_role.setdefault(call.role, {"calls": 0, "tokens": 0, "cost_usd": 0.0})
        role["calls"] += 1
        role["tokens"] += call.total_tokens
        if call.cost_usd is None:
            if call.note and call.note not in notes:
                notes.append(call.note)
        else:
            summary.cost_known_usd += call.cost_usd
            role["cost_usd"] += call.cost_usd
    summary.total_tokens = summary.input_tokens + summary.output_tokens
    summary.cost_usd = None if notes else round(summary.cost_known_usd, 6)
    summary.cost_known_usd = round(summary.cost_known_usd, 6)
    summary.cost_note = "; ".join(notes) if notes else None
    return summary


class UsageMeter:
    """Collects :class:`CallUsage` records from every client of a run (thread-safe)."""

    def __init__(self) -> None:
        self.calls: list[CallUsage] = []
        self._drained = 0
        self._lock = threading.Lock()

    def add(self, usage: CallUsage) -> None:
        with self._lock:
            self.calls.append(usage)

    def drain(self) -> list[CallUsage]:
        """Records added since the last drain (the graph moves them into its state)."""
        with self._lock:
            new = self.calls[self._drained :]
            self._drained = len(self.calls)
            return new


def usage_of(message: BaseMessage) -> tuple[int, int]:
    """(input, output) tokens from a reply's ``usage_metadata`` (0, 0 when the backend gives none)."""
    meta = getattr(message, "usage_metadata", None) or {}
    return int(meta.get("input_tokens", 0) or 0), int(meta.get("output_tokens", 0) or 0)


#: finish reasons that mean the provider withheld the answer (lower case; Gemini, OpenAI, Anthropic)
REFUSAL_REASONS = frozenset({"safety", "content_filter", "prohibited_content", "blocklist", "spii", "recitation",
                             "image_safety", "refusal", "language"})


def finish_reason(reply: BaseMessage) -> str:
    """Why the model stopped, as the provider said it (``stop``, ``length``, ``SAFETY``, ``end_turn``...)."""
    meta = getattr(reply, "response_metadata", None) or {}
    return str(meta.get("finish_reason") or meta.get("stop_reason") or meta.get("done_reason") or "")


def reply_problem(reply: BaseMessage) -> str | None:
    """What makes a reply unusable (a refusal, or nothing in it), or None when it is fine."""
    finish = finish_reason(reply)
    refusals = [str(b.get("refusal") or "") for b in reply.content_blocks if b.get("type") == "refusal"]
    if refusals or finish.lower() in REFUSAL_REASONS:
        why = "; ".join(r for r in refusals if r) or f"finish reason {finish}"
        return f"refused to answer ({why})"
    text = "".join(str(b.get("text", "")) for b in reply.content_blocks if b.get("type") == "text").strip()
    calls = getattr(reply, "tool_calls", None) or getattr(reply, "invalid_tool_calls", None)
    if text or calls:
        return None
    if finish.lower() in ("length", "max_tokens"):
        return (f"returned an empty reply: it reached its output-token limit (finish reason {finish}) before "
                "writing any text; raise the limit (thinking models spend it on reasoning first)")
    return f"returned an empty reply: no text and no tool call (finish reason {finish or 'not given'})"


def _call_failure(exc: BaseException, spec: BackendSpec, role: str, attempts: int) -> ModelCallError:
    """A failed call as an error a user can act on (the SDK error stays attached as the cause)."""
    if isinstance(exc, ModelCallError):
        return exc
    status = None
    current: BaseException | None = exc
    for _ in range(4):
        if current is None or status is not None:
            break
        status = status_of(current)
        current = current.__cause__ or current.__context__
    what = f"HTTP {status} " if status else ""
    detail = f"{what}{type(exc).__name__}: {str(exc)[:500]}"
    where = spec.base_url or spec.provider
    if is_transient(exc):
        hint = (f"still failing after {attempts} tries; try again later (AIM_RETRY_ATTEMPTS and AIM_RETRY_MAX_S "
                "allow more patience)")
        if status is None:
            hint = f"cannot reach {where} after {attempts} tries: is the server running and the URL right?"
    elif status in (401, 403):
        key = SERVER_KEY_ENV if spec.provider == "openai" and spec.base_url else KEY_ENV.get(spec.provider, "the key")
        hint = f"the provider refused the credentials: check {key}"
    elif status == 404:
        hint = f"check the model name ({spec.model_name!r}) and the server URL ({where})"
    elif status is not None and 400 <= status < 500:
        hint = "the provider rejected the request"
    else:
        hint = "the call failed"
    return ModelCallError(f"the {role} model ({spec.label()}): {hint}. {detail}")


# --------------------------------------------------------------------------------------------
# the active tape (one per process: ``aim interpret`` opens it around one run); a
# :class:`aim_agent.agent.tape.Tape`, kept here so that chat clients find it without importing the tape

_ACTIVE: list[Any] = []


def active_tape() -> Any | None:
    """The tape chat clients built now record to or replay from (:func:`use_tape`), or None."""
    return _ACTIVE[-1] if _ACTIVE else None


@contextmanager
def use_tape(tape: Any | None) -> Iterator[Any | None]:
    """Make ``tape`` the one chat clients built inside the block record to or replay from."""
    if tape is None:
        yield None
        return
    _ACTIVE.append(tape)
    try:
        yield tape
    finally:
        _ACTIVE.remove(tape)


class ChatClient:
    """A chat model used for one role, with retries, usage accounting and reply checks.

    When a tape is active (:mod:`aim_agent.agent.tape`: ``aim interpret --record/--replay``) every
    exchange is written to it, or answered from it.
    """

    def __init__(
        self,
        model: BaseChatModel | Any,
        spec: BackendSpec,
        *,
        role: str = "agent",
        meter: UsageMeter | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        tape: Any | None = None,
        tools: Sequence[Any] = (),
    ) -> None:
        self.model = model
        self.spec = spec
        self.role = role
        self.meter = meter or UsageMeter()
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.tape = tape
        self.tools = list(tools)

    @classmethod
    def from_spec(cls, spec: BackendSpec, *, role: str = "agent", meter: UsageMeter | None = None) -> ChatClient:
        """The client of ``spec``; under an active replay tape its model answers from the recording."""
        tape = active_tape()
        model = tape.chat_model(spec, role) if tape is not None and tape.replaying else make_chat_model(spec)
        return cls(model, spec, role=role, meter=meter, tape=tape)

    def bind_tools(self, tools: Sequence[Any]) -> ChatClient:
        bound = self.model.bind_tools(list(tools))
        return ChatClient(bound, self.spec, role=self.role, meter=self.meter, retry=self.retry, sleep=self.sleep,
                          tape=self.tape, tools=tools)

    def _on_retry(self, attempt: int, exc: BaseException, wait: float) -> None:
        status = status_of(exc)
        log.warning("the %s model (%s) failed (%s%s); try %d of %d in %.1f s", self.role, self.spec.label(),
                    f"HTTP {status} " if status else "", type(exc).__name__, attempt + 1, self.retry.attempts, wait)

    def invoke(self, messages: Sequence[BaseMessage]) -> AIMessage:
        started = time.perf_counter()
        messages = list(messages)
        tries = [0]

        def call() -> Any:
            tries[0] += 1
            return self.model.invoke(messages)

        try:
            reply, attempts = call_with_retries(call, self.retry, sleep=self.sleep, on_retry=self._on_retry)
        except Exception as exc:
            failure = _call_failure(exc, self.spec, self.role, tries[0])
            if self.tape is not None and self.tape.recording:
                self.tape.write(self, messages, None, None, error=str(failure))
            if failure is exc:
                raise
            raise failure from exc
        if not isinstance(reply, AIMessage):
            reply = AIMessage(content=getattr(reply, "content", str(reply)))
        replayed = (reply.response_metadata or {}).get("aim_replay")
        if isinstance(replayed, dict):  # answered from a tape: the attempts the recording made
            attempts = int(replayed.get("attempts", attempts))
        tokens_in, tokens_out = usage_of(reply)
        cost, note = estimate_cost(
            self.spec.provider, self.spec.model_name, tokens_in, tokens_out, base_url=self.spec.base_url
        )
        if not tokens_in and not tokens_out and cost is None:
            note = note or "the backend reported no token use"
        usage = CallUsage(
            role=self.role,
            backend=self.spec.label(),
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            seconds=round(time.perf_counter() - started, 3),
            attempts=attempts,
            cost_usd=cost,
            note=note,
        )
        self.meter.add(usage)
        if self.tape is not None and self.tape.recording:
            self.tape.write(self, messages, reply, usage)
        problem = reply_problem(reply)
        if problem is not None:
            raise ModelReplyError(f"the {self.role} model ({self.spec.label()}) {problem}")
        return reply
