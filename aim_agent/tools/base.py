"""One definition per tool.

A tool is a function ``fn(ctx: ToolContext, args: SomeInput) -> SomeOutput`` decorated with
:func:`tool`. The input and output are pydantic models; the docstring is written for the
agent. From that single definition come:

- the ``Tools`` object handed to model-written code (``tools.text2image(["a dog"])``),
- LangChain tools for tool-calling agents (``aim_agent.tools.adapters``),
- MCP tools (``aim_agent.mcp_server``),
- the API section of the agent's prompt (``aim_agent.tools.api_text``).

Every call, whatever the caller (Python, model code in the sandbox, a tool-calling VLM,
LangChain, an MCP client), goes through :func:`invoke`: one validation, one error policy,
one place where the context's image store is bound and observers are told what ran.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from PIL import Image
from pydantic import (
    BaseModel,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    SerializationInfo,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
)

from aim_agent.config import DEFAULTS
from aim_agent.images import ImageStore, current_store, load_image, pixel_budget, use_store
from aim_agent.providers import ProviderError

if TYPE_CHECKING:
    from aim_agent.log import ExperimentLog
    from aim_agent.providers import Describer, ImageEditor, TextToImage
    from aim_agent.system import System


def _store_of(info: ValidationInfo | SerializationInfo) -> ImageStore:
    """The image store a (de)serialisation works in: the one in its context, else the bound one."""
    context = info.context
    store = context.get("images") if isinstance(context, dict) else None
    return store if isinstance(store, ImageStore) else current_store()


def _validate_image(value: Any, info: ValidationInfo) -> Image.Image:
    if isinstance(value, str) and value.startswith("img_"):
        return _store_of(info).pixels(value)
    return load_image(value)


def _serialize_image(image: Image.Image, info: SerializationInfo) -> str:
    return _store_of(info).ensure(image)


#: An image field: accepts a PIL image, an ``img_…`` id or base64; serialises to its id.
AimImage = Annotated[
    Image.Image,
    PlainValidator(_validate_image),
    PlainSerializer(_serialize_image, return_type=str),
    WithJsonSchema({"type": "string", "description": "image id ('img_…') returned by a tool, or base64 PNG"}),
]


class ToolInput(BaseModel):
    """Base of tool inputs: unknown arguments are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class ToolOutput(BaseModel):
    """Base of tool outputs. ``python()`` is what model-written code receives."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def python(self) -> Any:
        return self

    def all_images(self) -> list[Image.Image]:
        """Every image in this output, in field order (for MCP image content and reports)."""
        found: list[Image.Image] = []

        def walk(value: Any) -> None:
            if isinstance(value, Image.Image):
                found.append(value)
            elif isinstance(value, BaseModel):
                for name in type(value).model_fields:
                    walk(getattr(value, name))
            elif isinstance(value, list | tuple):
                for item in value:
                    walk(item)

        walk(self)
        return found


class ToolError(RuntimeError):
    """A tool could not run; the message is shown to the caller as is, so it says what to do."""


#: what a tool reports to whoever called it: ``observer(spec, args, output)`` after each call
Observer = Callable[["ToolSpec", "ToolInput", "ToolOutput"], None]
#: how a running tool reports progress: ``progress(done, total, message)`` (``total`` None when unknown)
Progress = Callable[[float, "float | None", str], None]


@dataclass(frozen=True)
class Caller:
    """Who is calling, for the length of one call: set by the MCP server around each call, None elsewhere."""

    client: str
    """who the caller is (an MCP client's identity; its sessions and runs are its own)"""
    progress: Progress | None = None
    """where the running tool's progress goes (an MCP client sees it as a fraction)"""
    session: object | None = None
    """the caller's MCP session (``aim_agent.mcp_server.sessions.McpSession``; None for ``stateless`` tools),
    which the MCP session tools read"""


@dataclass
class ToolContext:
    """Everything a tool may use: the unit under study, providers, the experiment log, the images.

    ``images`` is this context's own image store: ids a tool returns resolve only here, so two
    contexts (two runs, two MCP sessions) never see each other's images. ``observers`` are
    told about every successful call (for callers outside AIM; the agent's recorder is handed
    each output by the experiment runner instead).
    """

    system: System | None = None
    text2image: TextToImage | None = None
    editor: ImageEditor | None = None
    describer: Describer | None = None
    log: ExperimentLog | None = None
    image_size: int = DEFAULTS["image_size"]
    seed: int = DEFAULTS["seed"]
    images: ImageStore = field(default_factory=ImageStore)
    observers: list[Observer] = field(default_factory=list)
    exemplar_dataset: str | None = None
    """the dataset ``dataset_exemplars`` and ``dataset_search`` read (a name or a folder); None: the default one"""
    saes: dict[str, str] = field(default_factory=dict)
    """SAEs offered by name (name -> path) to the circuit tools' ``sae`` argument"""
    caller: Caller | None = None
    """who is calling now (MCP); None outside a server call"""

    def require_system(self) -> System:
        if self.system is None:
            raise ToolError("no system is loaded: load a model, layer and unit first (tool load_system)")
        return self.system

    def require(self, kind: str) -> Any:
        provider = getattr(self, kind)
        if provider is None:
            raise ToolError(f"no {kind} provider is configured; choose one with --{kind} or aim.toml")
        return provider

    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        """Report progress of the running tool (an MCP client sees it as a fraction); a no-op elsewhere."""
        if self.caller is not None and self.caller.progress is not None:
            self.caller.progress(done, total, message)


@dataclass(frozen=True)
class ToolSpec:
    """A tool: name, agent-facing doc, typed input/output, implementation, and what kind of tool it is.

    The flags describe behaviour, so nobody has to key behaviour on tool names:
    ``read_only`` (changes nothing: no log entry, no loaded unit), ``destructive`` (may undo
    or overwrite earlier work: a new session, a new unit), ``idempotent`` (the same call twice
    does no more than once), ``open_world`` (reaches outside AIM: a remote API),
    ``needs_system`` (runs on the loaded unit), ``session`` (manages an MCP session; not
    offered to model code), ``stateless`` (uses nothing a session owns, so it runs without
    one: a stateless HTTP client may call it before ``new_session``).
    """

    name: str
    doc: str
    input_model: type[ToolInput]
    output_model: type[ToolOutput]
    fn: Callable[[ToolContext, Any], ToolOutput]
    positional: tuple[str, ...] = ()
    plugin: str = "aim_agent"
    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False
    open_world: bool = False
    needs_system: bool = False
    session: bool = False
    stateless: bool = False

    @property
    def summary(self) -> str:
        return self.doc.strip().splitlines()[0] if self.doc.strip() else self.name

    def bind(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Python-style arguments (positional in ``positional`` order) as one argument dict."""
        if len(args) > len(self.positional):
            raise ToolError(
                f"{self.name}() takes at most {len(self.positional)} positional arguments "
                f"({', '.join(self.positional) or 'none'}); got {len(args)}"
            )
        merged = dict(zip(self.positional, args, strict=False))
        clash = set(merged) & set(kwargs)
        if clash:
            raise ToolError(f"{self.name}() got multiple values for {', '.join(sorted(clash))}")
        merged.update(kwargs)
        return merged

    def invoke(self, ctx: ToolContext, args: ToolInput | Mapping[str, Any]) -> ToolOutput:
        """Shorthand for :func:`invoke` ``(self, args, ctx)``."""
        return invoke(self, args, ctx)


def tool(
    name: str | None = None,
    *,
    positional: tuple[str, ...] = (),
    read_only: bool = False,
    destructive: bool = False,
    idempotent: bool = False,
    open_world: bool = False,
    needs_system: bool = False,
    session: bool = False,
    stateless: bool = False,
) -> Callable[[Callable[[ToolContext, Any], ToolOutput]], ToolSpec]:
    """Declare a tool from a typed function ``fn(ctx, args: Input) -> Output`` (flags: see :class:`ToolSpec`)."""

    def decorate(fn: Callable[[ToolContext, Any], ToolOutput]) -> ToolSpec:
        hints = typing.get_type_hints(fn)
        params = list(inspect.signature(fn).parameters)
        if len(params) != 2:
            raise TypeError(f"tool {fn.__name__} must take (ctx, args)")
        input_model = hints[params[1]]
        output_model = hints["return"]
        if not (issubclass(input_model, ToolInput) and issubclass(output_model, ToolOutput)):
            raise TypeError(f"tool {fn.__name__}: args must be a ToolInput and the return a ToolOutput")
        return ToolSpec(
            name=name or fn.__name__,
            doc=inspect.cleandoc(fn.__doc__ or ""),
            input_model=input_model,
            output_model=output_model,
            fn=fn,
            positional=positional,
            plugin=fn.__module__.split(".")[0],
            read_only=read_only,
            destructive=destructive,
            idempotent=idempotent,
            open_world=open_world,
            needs_system=needs_system,
            session=session,
            stateless=stateless,
        )

    return decorate


# -- the one call path ---------------------------------------------------------------------------


def _limits(schema: dict[str, Any]) -> str:
    for option in schema.get("anyOf", []):  # Optional[...] fields keep their limits one level down
        if isinstance(option, dict) and option.get("type") != "null":
            schema = {**option, **schema}
    parts = []
    for key, text in (
        ("minItems", "at least {} items"),
        ("maxItems", "at most {} items"),
        ("minimum", ">= {}"),
        ("maximum", "<= {}"),
        ("minLength", "at least {} characters"),
        ("maxLength", "at most {} characters"),
    ):
        if key in schema:
            parts.append(text.format(schema[key]))
    return ", ".join(parts)


def describe_validation_error(spec: ToolSpec, exc: ValidationError) -> str:
    """What was wrong with a call's arguments, one line per problem, with each field's limits."""
    properties = spec.input_model.model_json_schema().get("properties", {})
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = [str(p) for p in error.get("loc", ())]
        name = loc[0] if loc else ""
        where = ".".join(loc) or "arguments"
        kind = error.get("type", "")
        if kind == "extra_forbidden":
            valid = ", ".join(p for p in properties) or "none"
            lines.append(f"unknown argument {name!r}; valid arguments: {valid}")
            continue
        if kind == "missing":
            desc = properties.get(name, {}).get("description")
            lines.append(f"missing required argument {name!r}" + (f" ({desc})" if desc else ""))
            continue
        line = f"{where}: {error.get('msg', 'invalid value')}"
        limits = _limits(properties.get(name, {}))
        if limits:
            hint = "; split larger work into several calls" if kind == "too_long" else ""
            line += f" (allowed: {limits}{hint})"
        lines.append(line)
    return f"{spec.name}: invalid arguments:\n" + "\n".join(f"  - {line}" for line in lines)


def validation_text(exc: ValidationError) -> str:
    """A pydantic validation error as one line: ``field: problem; ...`` (for short messages)."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors())


def _maybe_json(value: Any) -> Any:
    """Some clients send lists/objects as JSON text; decode those (and only those)."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def parse_args(spec: ToolSpec, args: ToolInput | Mapping[str, Any], ctx: ToolContext) -> ToolInput:
    """Validate ``args`` against the tool's input model (image ids resolve in ``ctx.images``).

    Raises :class:`ToolError` with a message that names every wrong argument and its limits.
    """
    if isinstance(args, spec.input_model):
        return args
    if isinstance(args, BaseModel):
        args = args.model_dump()
    if not isinstance(args, Mapping):
        raise ToolError(f"{spec.name}: arguments must be an object of named values, not {type(args).__name__}")
    context = {"images": ctx.images}
    try:
        try:
            return spec.input_model.model_validate(dict(args), context=context)
        except ValidationError as first:
            decoded = {k: _maybe_json(v) for k, v in args.items()}
            if decoded != dict(args):
                with contextlib.suppress(ValidationError):
                    return spec.input_model.model_validate(decoded, context=context)
            raise ToolError(describe_validation_error(spec, first)) from None
    except KeyError as exc:  # an unknown image id inside a list of images
        raise ToolError(f"{spec.name}: invalid arguments: {exc.args[0] if exc.args else exc}") from None
    except (TypeError, ValueError) as exc:
        raise ToolError(f"{spec.name}: invalid arguments: {exc}") from None


def error_text(spec: ToolSpec, exc: BaseException) -> str:
    """What the caller reads when a tool failed: the message of expected errors, a hint otherwise."""
    if isinstance(exc, ToolError | ProviderError):
        return str(exc)
    if isinstance(exc, KeyError):
        return f"{spec.name} failed: {exc.args[0] if exc.args else exc}"
    if isinstance(exc, ValueError | LookupError | TypeError | FileNotFoundError | NotImplementedError):
        return f"{spec.name} failed: {exc}"
    if isinstance(exc, MemoryError):
        return f"{spec.name} ran out of memory; try fewer or smaller images"
    return (
        f"{spec.name} failed unexpectedly ({type(exc).__name__}: {exc}); check the arguments, "
        "or report this with the log"
    )


def invoke(spec: ToolSpec, args: ToolInput | Mapping[str, Any], ctx: ToolContext) -> ToolOutput:
    """Run one tool call: validate ``args``, bind ``ctx.images``, run, tell ``ctx.observers``.

    Every way of calling a tool comes through here. Any failure, bad arguments included, is
    raised as :class:`ToolError` with a message meant for the caller (the original exception
    is its ``__cause__``); nothing else escapes, so callers need one ``except``.
    """
    with use_store(ctx.images), pixel_budget():  # images given as bytes share one pixel budget per call
        parsed = parse_args(spec, args, ctx)
        try:
            if spec.needs_system:
                ctx.require_system()
            output = spec.fn(ctx, parsed)
        except ToolError:
            raise
        except Exception as exc:
            raise ToolError(error_text(spec, exc)) from exc
        if not isinstance(output, ToolOutput):
            raise ToolError(f"{spec.name} returned {type(output).__name__}, not its output model")
        for observer in list(ctx.observers):
            observer(spec, parsed, output)
    return output


def output_data(output: ToolOutput, ctx: ToolContext) -> dict[str, Any]:
    """A tool's output as JSON data: images become ids in ``ctx.images``."""
    with use_store(ctx.images):
        return output.model_dump(mode="json", context={"images": ctx.images})


def tool_method(spec: ToolSpec, run: Callable[[ToolSpec, dict[str, Any]], ToolOutput]) -> Callable[..., Any]:
    """``spec`` as a Python method of model-written code: Python-style arguments (:meth:`ToolSpec.bind`) go
    to ``run(spec, args)`` (which calls :func:`invoke`), and the caller gets ``output.python()``."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return run(spec, spec.bind(*args, **kwargs)).python()

    call.__name__ = spec.name
    call.__doc__ = spec.doc
    return call


class Tools:
    """The ``tools`` object of model-written code: one method per registered tool.

    ``tools.text2image(["a dog on grass"])`` goes through :func:`invoke` and returns
    ``output.python()`` (MAIA-style plain values).
    """

    def __init__(self, ctx: ToolContext, specs: list[ToolSpec]) -> None:
        self._ctx = ctx
        self._specs = {spec.name: spec for spec in specs if not spec.session}

    @property
    def specs(self) -> list[ToolSpec]:
        return list(self._specs.values())

    def __dir__(self) -> list[str]:
        return sorted(self._specs)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        specs = self.__dict__.get("_specs", {})
        if name not in specs:
            raise AttributeError(f"tools has no tool {name!r}; available: {', '.join(sorted(specs))}")
        return tool_method(specs[name], lambda spec, args: invoke(spec, args, self._ctx))
