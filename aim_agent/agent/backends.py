"""VLM backends: which chat model to build, how to call it robustly, what it costs.

A backend is named ``provider:model`` (``google_genai:gemini-2.5-flash``, ``openai:gpt-4o``,
``anthropic:claude-sonnet-4-5``, ``ollama:qwen2.5vl``), or ``openai:MODEL`` with a ``base_url``
for any OpenAI-compatible server (vLLM, llama.cpp, LM Studio). A name that a plugin registers
as a scientist (hook ``aim_scientists``) needs no chat model: ``offline`` is the world plugin's
rule-based scientist. With no backend named, AIM takes ``google_genai`` when ``GOOGLE_API_KEY``
is set and ``offline`` otherwise (an error says how to choose a VLM when the world is absent).

:class:`ChatClient` wraps a chat model for one role (agent, describer, critic): it retries
rate limits and transient server errors with exponential backoff, and records every call's
token use and estimated cost in a :class:`UsageMeter`.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain.chat_models import init_chat_model
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from pydantic import BaseModel, ConfigDict, Field

#: default model of each provider when only the provider is named
DEFAULT_MODELS = {
    "google_genai": "gemini-2.5-flash",
    "openai": "gpt-4o",
    "anthropic": "claude-sonnet-4-5",
    "ollama": "qwen2.5vl",
}
#: environment variable holding each hosted provider's key
KEY_ENV = {"google_genai": "GOOGLE_API_KEY", "openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
PROVIDERS = ("offline", *DEFAULT_MODELS)
#: the chat-model backends, as a user types them (help texts, errors)
BACKEND_CHOICES = " | ".join(f"{p}[:MODEL]" for p in DEFAULT_MODELS)
_ALIASES = {"google": "google_genai", "gemini": "google_genai", "claude": "anthropic", "vllm": "openai"}
#: keyword arguments each LangChain chat class accepts besides the common ones
_TAKES_MAX_RETRIES = {"google_genai", "openai", "anthropic"}


class BackendError(ValueError):
    """A backend cannot be built (unknown provider, missing package or key); the text says what to do."""


class BackendSpec(BaseModel):
    """Which chat model to use for one role, and how to reach it."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(description="offline, google_genai, openai, anthropic, ollama, or a plugin backend")
    model: str | None = Field(default=None, description="model name; default: the provider's usual VLM")
    base_url: str | None = Field(default=None, description="server URL (OpenAI-compatible servers, ollama)")
    temperature: float | None = 0.2
    timeout_s: float | None = 120.0
    max_output_tokens: int | None = None
    extra: dict[str, Any] = Field(default_factory=dict, description="passed to the LangChain chat class as is")

    @classmethod
    def parse(
        cls, text: str | None, *, base_url: str | None = None, env: Mapping[str, str] | None = None
    ) -> BackendSpec:
        """``provider[:model]`` as a spec; None/empty picks :func:`default_backend`."""
        if not text:
            spec = default_backend(env)
            return spec.model_copy(update={"base_url": base_url}) if base_url else spec
        provider, _, model = text.partition(":")
        provider = provider.strip().lower()
        provider = _ALIASES.get(provider, provider)
        if base_url and provider not in ("openai", "ollama", "anthropic"):
            raise BackendError(f"--base-url works with openai-compatible servers and ollama, not {provider!r}")
        return cls(provider=provider, model=model.strip() or None, base_url=base_url)

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
    if spec.provider in _TAKES_MAX_RETRIES:
        kwargs.setdefault("max_retries", 0)  # ChatClient retries, with backoff and accounting
    if spec.base_url:
        kwargs["base_url"] = spec.base_url
    key_env = KEY_ENV.get(spec.provider)
    if spec.provider == "openai" and spec.base_url and not env.get("OPENAI_API_KEY"):
        kwargs.setdefault("api_key", "EMPTY")  # self-hosted servers accept any key
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
        names = {cls.__name__ for cls in type(current).__mro__}
        if names & TRANSIENT_NAMES or isinstance(current, TimeoutError | ConnectionError):
            return True
        current = current.__cause__ or current.__context__
    return False


def _retry_after(exc: BaseException) -> float | None:
    headers = getattr(getattr(exc, "response", None), "headers", None)
    try:
        value = headers.get("retry-after") if headers is not None else None
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class RetryPolicy(BaseModel):
    attempts: int = Field(default=6, ge=1, description="tries in all, the first included")
    base_delay_s: float = Field(default=2.0, ge=0)
    max_delay_s: float = Field(default=60.0, ge=0)

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
    """(USD, note): 0 for local models, None with a note when the model has no known price."""
    if provider == "ollama":
        return 0.0, "local model (ollama): no charge"
    if base_url:
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


class ChatClient:
    """A chat model used for one role, with retries and usage accounting."""

    def __init__(
        self,
        model: BaseChatModel | Any,
        spec: BackendSpec,
        *,
        role: str = "agent",
        meter: UsageMeter | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.model = model
        self.spec = spec
        self.role = role
        self.meter = meter or UsageMeter()
        self.retry = retry or RetryPolicy()
        self.sleep = sleep

    @classmethod
    def from_spec(cls, spec: BackendSpec, *, role: str = "agent", meter: UsageMeter | None = None) -> ChatClient:
        return cls(make_chat_model(spec), spec, role=role, meter=meter)

    def bind_tools(self, tools: Sequence[Any]) -> ChatClient:
        bound = self.model.bind_tools(list(tools))
        return ChatClient(bound, self.spec, role=self.role, meter=self.meter, retry=self.retry, sleep=self.sleep)

    def invoke(self, messages: Sequence[BaseMessage]) -> AIMessage:
        started = time.perf_counter()
        reply, attempts = call_with_retries(lambda: self.model.invoke(list(messages)), self.retry, sleep=self.sleep)
        tokens_in, tokens_out = usage_of(reply)
        cost, note = estimate_cost(
            self.spec.provider, self.spec.model_name, tokens_in, tokens_out, base_url=self.spec.base_url
        )
        if not tokens_in and not tokens_out and cost is None:
            note = note or "the backend reported no token use"
        self.meter.add(
            CallUsage(
                role=self.role,
                backend=self.spec.label(),
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                seconds=round(time.perf_counter() - started, 3),
                attempts=attempts,
                cost_usd=cost,
                note=note,
            )
        )
        if not isinstance(reply, AIMessage):
            reply = AIMessage(content=getattr(reply, "content", str(reply)))
        return reply
