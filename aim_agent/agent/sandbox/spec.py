"""What goes into a sandbox run and what comes out: handlers, limits, results."""

from __future__ import annotations

import inspect
import keyword
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aim_agent.agent.sandbox import wire

FailureKind = Literal[
    "syntax_error",  # the code does not compile (found before any process starts)
    "missing_entry",  # the code compiles but defines no entry function
    "runtime_error",  # the code raised (a tool's error included) or returned something unsendable
    "timeout",  # the wall-clock or CPU-time limit was reached; the process group was killed
    "memory",  # the memory limit was reached (MemoryError in the child, or the child died of it)
    "killed",  # the child died without a result: os._exit, a signal, a segfault
    "protocol_error",  # the child broke the protocol (garbage on the channel, malformed values)
]

#: names of environment variables that must never reach the child, whatever allow-list is used
SECRET_ENV = re.compile(
    r"(KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION)"
    r"|^(GOOGLE|GEMINI|OPENAI|AZURE|ANTHROPIC|CLAUDE|HF|HUGGING|AWS|GCP|GCLOUD|COHERE|MISTRAL|GROQ|TOGETHER"
    r"|REPLICATE|LANGCHAIN|LANGSMITH|WANDB|GITHUB|GH|GITLAB)_",
    re.IGNORECASE,
)


class SandboxUnavailable(RuntimeError):
    """This machine offers no isolation layer (no namespaces, no seccomp) and none was waived."""


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
        raise ValueError(f"{what} {name!r} must be a public Python identifier (no leading underscore)")
    return name


@dataclass
class ObjectHandler:
    """What the model's code may do with one object (``system``, ``tools``): nothing more.

    ``methods`` is the allow-list: name -> callable run in the parent when the child calls
    ``proxy.name(...)``. ``attributes`` are plain values the child reads directly
    (``system.layer``); they are sent once, when the run starts. An attribute that is itself
    an :class:`ObjectHandler` becomes a nested proxy (``tools.world.render(...)``).
    """

    methods: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    attributes: Mapping[str, Any] = field(default_factory=dict)
    doc: str = ""

    def __post_init__(self) -> None:
        for name, fn in self.methods.items():
            _check_name(name, "method name")
            if not callable(fn):
                raise TypeError(f"handler method {name!r} is not callable")
        for name in self.attributes:
            _check_name(name, "attribute name")
        both = set(self.methods) & set(self.attributes)
        if both:
            raise ValueError(f"{', '.join(sorted(both))} is both a method and an attribute")

    @classmethod
    def from_object(
        cls, obj: Any, methods: Iterable[str], attributes: Iterable[str] = (), doc: str | None = None
    ) -> ObjectHandler:
        """Expose the named methods of ``obj`` and a snapshot of the named attributes."""
        bound = {name: getattr(obj, name) for name in methods}
        values = {name: getattr(obj, name) for name in attributes}
        return cls(methods=bound, attributes=values, doc=(inspect.getdoc(obj) or "") if doc is None else doc)

    def lookup(self, path: list[str]) -> ObjectHandler | None:
        """The nested handler at ``path`` (attribute names), or None."""
        handler: ObjectHandler | None = self
        for part in path:
            nested = handler.attributes.get(part) if handler is not None else None
            handler = nested if isinstance(nested, ObjectHandler) else None
        return handler

    def spec(self, name: str, limit: int) -> dict[str, Any]:
        """What the child needs to build the proxy: method names and docs, attribute values."""
        plain = {k: v for k, v in self.attributes.items() if not isinstance(v, ObjectHandler)}
        try:
            attributes = wire.encode(plain, limit=limit)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"an attribute of {name!r} cannot be sent to the sandbox: {exc}") from None
        return {
            "name": name,
            "doc": self.doc[:4000],
            "methods": [
                {"name": k, "signature": _signature(fn), "doc": (inspect.getdoc(fn) or "")[:4000]}
                for k, fn in self.methods.items()
            ],
            "attributes": attributes,
            "children": [v.spec(k, limit) for k, v in self.attributes.items() if isinstance(v, ObjectHandler)],
        }


def signature_of(fn: Callable[..., Any]) -> inspect.Signature | None:
    """The signature of a handler method, or None when it has none worth checking (``*args, **kwargs``)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    if all(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in sig.parameters.values()) and sig.parameters:
        return None
    return sig


def _signature(fn: Callable[..., Any]) -> str:
    sig = signature_of(fn)
    return "(...)" if sig is None else str(sig.replace(return_annotation=inspect.Signature.empty))[:1000]


class SandboxLimits(BaseModel):
    """Limits of one run. Sizes in bytes, times in seconds; None means "no limit" for rlimits.

    ``wall_time_s`` is enforced by the parent, which kills the child's whole process group.
    With ``count_handler_time`` (the default) it counts everything from the start of the
    child to its result, time spent in handlers (model forward passes, image generation)
    included; set it to False to give the code ``wall_time_s`` of its *own* time, with
    handler time added to the deadline as it is spent. ``cpu_time_s`` is an RLIMIT_CPU on
    the child alone (handlers run in the parent and do not count).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    wall_time_s: float = Field(60.0, gt=0)
    count_handler_time: bool = True
    cpu_time_s: int | None = Field(60, gt=0)
    memory_bytes: int | None = Field(4 * 2**30, gt=0, description="RLIMIT_AS of the child")
    file_size_bytes: int | None = Field(256 * 2**20, ge=0, description="RLIMIT_FSIZE: largest file it may write")
    open_files: int | None = Field(256, gt=16)
    max_processes: int | None = Field(
        1,
        gt=0,
        description="processes the code may have at once, itself included. 1: seccomp refuses fork, so "
        "memory_bytes caps the whole run; N > 1: forks allowed, RLIMIT_NPROC=N (it counts threads and every "
        "process of the sandbox user); None: no limit",
    )
    workdir_bytes: int | None = Field(
        512 * 2**20,
        gt=0,
        description="quota of the work directory: it is a tmpfs of this size where a mount namespace exists "
        "(its pages count on top of memory_bytes); None: a bind mount of the host directory, no quota",
    )
    max_message_bytes: int = Field(wire.MAX_MESSAGE_BYTES, gt=1024)
    max_image_pixels: int = Field(wire.MAX_IMAGE_PIXELS, gt=0, description="pixels of all images in one message")
    max_items: int = Field(
        wire.MAX_ITEMS,
        gt=0,
        description="values (list items, dict fields) the parent reads from one message of the code (its "
        "arguments, its return value), counted before anything is converted; an array counts as one",
    )
    max_stdout_chars: int = Field(20_000, gt=100)
    max_calls: int = Field(10_000, gt=0)
    max_code_chars: int = Field(1_000_000, gt=0)
    landlock: bool = Field(True, description="restrict files, TCP and signals with Linux Landlock when available")
    require_landlock: bool = Field(False, description="fail (kind=killed) instead of running without Landlock")
    namespaces: bool = Field(
        True,
        description="run the code in new PID, network, IPC, UTS and mount namespaces (a user namespace too when "
        "not root) with a read-only file system except the work directory. Either way the code runs without "
        "capabilities and never as root: as a fresh uid of its own when AIM is root",
    )
    seccomp: bool = Field(True, description="refuse sockets, exec, fork, keyring, ptrace, mounts with seccomp")
    allow_unsafe: bool = Field(
        False,
        description="run even when neither namespaces nor seccomp work here, or both are turned off "
        "(else run_code raises SandboxUnavailable)",
    )
    read_paths: tuple[str, ...] = Field((), description="extra paths the child may read under Landlock")
    hidden_paths: tuple[str, ...] | None = Field(
        None,
        description="directories the code may not see at all (an empty tmpfs over each, in the mount "
        "namespace); None: AIM's own packages and every loaded plugin's, so the code can neither import "
        "AIM's internals nor read a synthetic neuron's ground truth",
    )
    extra_env: dict[str, str] = Field(default_factory=dict, description="extra environment variables (no secrets)")

    @field_validator("extra_env")
    @classmethod
    def _no_secrets(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if SECRET_ENV.search(k)]
        if bad:
            raise ValueError(f"environment variables that look like secrets may not enter the sandbox: {bad}")
        return value


class CallRecord(BaseModel):
    """One call the model's code made through a proxy."""

    object: str
    method: str
    duration_s: float
    ok: bool
    error: str | None = None


class SandboxResult(BaseModel):
    """The outcome of :func:`run_code`. ``ok`` is True exactly when ``kind`` is None."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    ok: bool
    return_value: Any = None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    traceback: str | None = None
    kind: FailureKind | None = None
    wall_time_s: float = 0.0
    calls: list[CallRecord] = Field(default_factory=list)
    exit_code: int | None = None
    isolation: str = ""

    def report(self, max_chars: int = 6000) -> str:
        """What the agent reads about this run: outcome, calls, error and traceback, printed output."""
        counts: dict[str, int] = {}
        for call in self.calls:
            key = f"{call.object}.{call.method}"
            counts[key] = counts.get(key, 0) + 1
        calls = ", ".join(f"{k} x{n}" if n > 1 else k for k, n in counts.items()) or "none"
        head = "finished" if self.ok else f"failed ({self.kind})"
        parts = [f"Experiment {head} in {self.wall_time_s:.1f} s; calls: {calls}."]
        if self.error:
            parts.append(f"Error: {self.error}")
        if self.traceback:
            parts.append(self.traceback.rstrip())
        if self.stdout:
            parts.append("Printed output:\n" + self.stdout.rstrip())
        text = "\n".join(parts)
        return text if len(text) <= max_chars else text[: max_chars - 40] + "\n[... report cut ...]"
