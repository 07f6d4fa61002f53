"""One definition per tool.

A tool is a function ``fn(ctx: ToolContext, args: SomeInput) -> SomeOutput`` decorated with
:func:`tool`. The input and output are pydantic models; the docstring is written for the
agent. From that single definition come:

- the ``Tools`` object handed to model-written code (``tools.text2image(["a dog"])``),
- LangChain tools for tool-calling agents (``aim_agent.tools.adapters``),
- MCP tools (``aim_agent.mcp_server``),
- the API section of the agent's prompt (``aim_agent.tools.api_text``).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from PIL import Image
from pydantic import BaseModel, ConfigDict, PlainSerializer, PlainValidator, ValidationError, WithJsonSchema

from aim_agent.images import STORE, load_image

if TYPE_CHECKING:
    from aim_agent.log import ExperimentLog
    from aim_agent.providers import Describer, ImageEditor, TextToImage
    from aim_agent.system import System


def _validate_image(value: Any) -> Image.Image:
    return load_image(value)


def _serialize_image(image: Image.Image) -> str:
    return STORE.ensure(image)


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


def validation_text(exc: ValidationError) -> str:
    """A pydantic validation error as one line an agent can act on: ``field: problem; ...``."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors())


class ToolError(RuntimeError):
    """A tool could not run; the message is shown to the agent as is, so it says what to do."""


@dataclass
class ToolContext:
    """Everything a tool may use: the unit under study, providers, the experiment log."""

    system: System | None = None
    text2image: TextToImage | None = None
    editor: ImageEditor | None = None
    describer: Describer | None = None
    log: ExperimentLog | None = None
    image_size: int = 224
    seed: int = 0
    extras: dict[str, Any] = field(default_factory=dict)

    def require_system(self) -> System:
        if self.system is None:
            raise ToolError("no system is loaded: load a model, layer and unit first (tool load_system)")
        return self.system

    def require(self, kind: str) -> Any:
        provider = getattr(self, kind)
        if provider is None:
            raise ToolError(f"no {kind} provider is configured; choose one with --{kind} or aim.toml")
        return provider


@dataclass(frozen=True)
class ToolSpec:
    """A tool: name, agent-facing doc, typed input/output, implementation."""

    name: str
    doc: str
    input_model: type[ToolInput]
    output_model: type[ToolOutput]
    fn: Callable[[ToolContext, Any], ToolOutput]
    positional: tuple[str, ...] = ()
    plugin: str = "aim_agent"

    @property
    def summary(self) -> str:
        return self.doc.strip().splitlines()[0] if self.doc.strip() else self.name

    def parse(self, *args: Any, **kwargs: Any) -> ToolInput:
        """Validate Python-style arguments (positional in ``positional`` order) into the input model."""
        if len(args) > len(self.positional):
            raise TypeError(
                f"{self.name}() takes at most {len(self.positional)} positional arguments "
                f"({', '.join(self.positional) or 'none'}); got {len(args)}"
            )
        merged = dict(zip(self.positional, args, strict=False))
        clash = set(merged) & set(kwargs)
        if clash:
            raise TypeError(f"{self.name}() got multiple values for {', '.join(sorted(clash))}")
        merged.update(kwargs)
        return self.input_model.model_validate(merged)

    def invoke(self, ctx: ToolContext, args: ToolInput | dict[str, Any]) -> ToolOutput:
        """Run the tool on validated (or raw dict) arguments."""
        parsed = args if isinstance(args, self.input_model) else self.input_model.model_validate(args)
        return self.fn(ctx, parsed)


def tool(
    name: str | None = None, *, positional: tuple[str, ...] = ()
) -> Callable[[Callable[[ToolContext, Any], ToolOutput]], ToolSpec]:
    """Declare a tool from a typed function ``fn(ctx, args: Input) -> Output``."""

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
        )

    return decorate


class Tools:
    """The ``tools`` object of model-written code: one method per registered tool.

    ``tools.text2image(["a dog on grass"])`` validates the arguments against the tool's input
    model, runs it, and returns ``output.python()`` (MAIA-style plain values).
    """

    def __init__(self, ctx: ToolContext, specs: list[ToolSpec]) -> None:
        self._ctx = ctx
        self._specs = {spec.name: spec for spec in specs}

    @property
    def specs(self) -> list[ToolSpec]:
        return list(self._specs.values())

    def __dir__(self) -> list[str]:
        return sorted(self._specs)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        specs = self.__dict__.get("_specs", {})
        if name not in specs:
            raise AttributeError(f"tools has no tool {name!r}; available: {', '.join(sorted(specs))}")
        spec = specs[name]

        def call(*args: Any, **kwargs: Any) -> Any:
            return spec.invoke(self._ctx, spec.parse(*args, **kwargs)).python()

        call.__name__ = name
        call.__doc__ = spec.doc
        return call
