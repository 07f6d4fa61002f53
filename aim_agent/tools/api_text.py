"""The API section of the agent's prompt, generated from the tool registry and :class:`System`.

Nothing here is written by hand about a particular tool: signatures come from each tool's
``positional`` order and input model (types, defaults, field descriptions), the return from
the output model and its ``python()`` method, the prose from the tool's docstring. Add a tool
and it appears; change a default and the prompt follows.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import textwrap
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

from PIL import Image
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from aim_agent.system import SYSTEM_ATTRIBUTES, SYSTEM_METHODS
from aim_agent.tools.base import ToolSpec

Style = Literal["python", "json"]


# --------------------------------------------------------------------------------------------
# types as text


def type_text(annotation: Any, style: Style = "python") -> str:
    """A short, readable rendering of a type annotation (images read as ``Image`` or ``image id``)."""
    image = "Image" if style == "python" else "image id"
    if annotation is None or annotation is type(None):
        return "None"
    if annotation is Any:
        return "Any"
    if annotation is inspect.Parameter.empty:
        return "Any"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_text(args[0], style)
    if isinstance(annotation, type) and issubclass(annotation, Image.Image):
        return image
    if origin in (typing.Union, types.UnionType):
        parts = [type_text(a, style) for a in args if a is not type(None)]
        unique = list(dict.fromkeys(parts))
        if type(None) in args:
            unique.append("None")
        return " | ".join(unique)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (list, set, frozenset, Sequence, Iterable):
        return f"list[{type_text(args[0], style)}]" if args else "list"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"tuple[{type_text(args[0], style)}, ...]"
        return f"tuple[{', '.join(type_text(a, style) for a in args)}]"
    if origin is dict:
        return f"dict[{type_text(args[0], style)}, {type_text(args[1], style)}]" if args else "dict"
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_text(a, style) for a in args)}]" if args else name
    if isinstance(annotation, type):
        return annotation.__name__
    if isinstance(annotation, str):
        return annotation.replace("Image.Image", image).replace("ImageLike", f"Image | {image}")
    return str(annotation).replace("typing.", "")


def _default_text(field: FieldInfo) -> str | None:
    """The default as Python source, or None when the field is required."""
    if field.is_required():
        return None
    if field.default is not PydanticUndefined:
        return repr(field.default)
    factory = field.default_factory
    if factory is not None:
        try:
            return repr(factory())  # type: ignore[call-arg]
        except TypeError:
            return "..."
    return "None"


# --------------------------------------------------------------------------------------------
# signatures


def _ordered_fields(spec: ToolSpec) -> list[tuple[str, FieldInfo, bool]]:
    """(name, field, positional?) in call order: positional ones first, then keyword ones."""
    fields = spec.input_model.model_fields
    order = [n for n in spec.positional if n in fields] + [n for n in fields if n not in spec.positional]
    return [(n, fields[n], n in spec.positional) for n in order]


def signature_text(spec: ToolSpec, style: Style = "python") -> str:
    """``tools.name(a: T, b: U = default, *, c: V = default) -> R`` for one tool."""
    parts: list[str] = []
    star_added = False
    ordered = _ordered_fields(spec)
    # a positional default is only shown when every later positional argument also has one,
    # so the signature stays valid Python; the argument list below still gives the default
    last_required = max((i for i, (_, f, pos) in enumerate(ordered) if pos and f.is_required()), default=-1)
    for i, (name, field, positional) in enumerate(ordered):
        if not positional and not star_added and style == "python":
            parts.append("*")
            star_added = True
        default = None if positional and i < last_required else _default_text(field)
        text = f"{name}: {type_text(field.annotation, style)}"
        parts.append(text if default is None else f"{text} = {default}")
    ret = python_return(spec)[0] if style == "python" else spec.output_model.__name__
    prefix = "tools." if style == "python" else ""
    return f"{prefix}{spec.name}({', '.join(parts)}) -> {ret}"


def _returned_attributes(method: Callable[..., Any]) -> list[str] | None:
    """Names of ``self`` fields a ``python()`` returns (``return self.a, self.b`` -> [a, b])."""
    try:
        source = textwrap.dedent(inspect.getsource(method))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return None
    returns = [n for n in ast.walk(tree) if isinstance(n, ast.Return) and n.value is not None]
    if len(returns) != 1:
        return None
    value = returns[0].value
    items = value.elts if isinstance(value, ast.Tuple) else [value]
    names = []
    for item in items:
        if isinstance(item, ast.Attribute) and isinstance(item.value, ast.Name) and item.value.id == "self":
            names.append(item.attr)
        else:
            return None
    return names


def python_return(spec: ToolSpec) -> tuple[str, str]:
    """(type text, explanation) of what ``tools.<name>(...)`` returns in Python."""
    model = spec.output_model
    method = model.python
    fields = model.model_fields
    from aim_agent.tools.base import ToolOutput

    if method is ToolOutput.python:  # not overridden: the output object itself
        described = ", ".join(f".{n}: {type_text(f.annotation)}" for n, f in fields.items())
        return model.__name__, f"an object with fields {described}"
    names = _returned_attributes(method)
    if names and all(n in fields for n in names):
        types_ = [type_text(fields[n].annotation) for n in names]
        if len(names) == 1:
            return types_[0], f"the {names[0]}"
        return f"tuple[{', '.join(types_)}]", "(" + ", ".join(names) + ")"
    hint = typing.get_type_hints(method).get("return", Any)
    return type_text(hint), "see the description"


def _field_lines(
    model: type[BaseModel], style: Style, indent: str, fields_order: list[str] | None = None, inputs: bool = True
) -> list[str]:
    lines = []
    names = fields_order or list(model.model_fields)
    for name in names:
        field = model.model_fields[name]
        default = _default_text(field)
        need = ("" if not inputs else ", required" if default is None else f", default {default}")
        desc = f": {field.description}" if field.description else ""
        lines.append(f"{indent}{name} ({type_text(field.annotation, style)}{need}){desc}")
    return lines


def tool_text(spec: ToolSpec, style: Style = "python") -> str:
    """Signature, docstring, arguments and return of one tool."""
    lines = [signature_text(spec, style)]
    doc = spec.doc.strip()
    if style == "json":  # the Python usage lines are noise for tool calling
        doc = "\n".join(line for line in doc.splitlines() if not line.strip().startswith("Python:"))
    if doc:
        lines += [textwrap.indent(doc, "    ")]
    order = [n for n, _, _ in _ordered_fields(spec)]
    if order:
        lines.append("    Arguments:")
        lines += _field_lines(spec.input_model, style, "      ", order)
    if style == "python":
        ret_type, meaning = python_return(spec)
        lines.append(f"    Returns {ret_type}: {meaning}.")
    else:
        lines.append("    Result (JSON; images appear as image ids):")
        lines += _field_lines(spec.output_model, style, "      ", inputs=False)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# the System API


def _method_signature(fn: Callable[..., Any], prefix: str) -> str:
    sig = inspect.signature(fn)
    hints = typing.get_type_hints(fn, include_extras=False, localns={"Image": Image})
    parts = []
    for name, param in sig.parameters.items():
        if name == "self":
            continue
        ann = type_text(hints.get(name, param.annotation))
        ann = ann.replace("Image | str | bytes", "Image | image id")
        has_default = param.default is not inspect.Parameter.empty
        parts.append(f"{name}: {ann} = {param.default!r}" if has_default else f"{name}: {ann}")
    ret = type_text(hints.get("return", sig.return_annotation))
    return f"{prefix}{fn.__name__}({', '.join(parts)}) -> {ret}"


def _field_comments(cls: type) -> str:
    """The ``# comment`` after each field in a dataclass's source, when there are any."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return ""
    notes = re.findall(r"^\s+(\w+): [^#\n]+#\s*(.+)$", source, flags=re.M)
    return (" (" + "; ".join(f"{n}: {c.strip()}" for n, c in notes) + ")") if notes else ""


def system_text(system: Any | None = None) -> str:
    """The ``system`` object's API (its methods' signatures and docstrings, its attributes)."""
    from aim_agent.system import System

    lines = ["system: the unit under study."]
    for name, meaning in SYSTEM_ATTRIBUTES.items():
        value = f" = {getattr(system, name)!r}" if system is not None and hasattr(system, name) else ""
        lines.append(f"system.{name}{value}    # {meaning}")
    for name in SYSTEM_METHODS:
        fn = getattr(System, name)
        lines.append("")
        lines.append(_method_signature(fn, "system."))
        doc = inspect.getdoc(fn) or ""
        if doc:
            lines.append(textwrap.indent(doc, "    "))
        returned = typing.get_type_hints(fn).get("return")
        if dataclasses.is_dataclass(returned):
            described = ", ".join(f".{f.name}" for f in dataclasses.fields(returned))
            kind = returned if isinstance(returned, type) else type(returned)
            lines.append(f"    {kind.__name__} fields: {described}" + _field_comments(kind))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# the whole section


def api_text(specs: Sequence[ToolSpec], *, system: Any | None = None, style: Style = "python") -> str:
    """The API section of the agent's system prompt.

    ``style="python"`` documents ``system`` and ``tools`` for code mode (``def run_experiment(system,
    tools)``); ``style="json"`` documents the same tools for tool calling (arguments and results as
    JSON, images as ids).
    """
    blocks: list[str] = []
    if style == "python":
        blocks.append("## The `system` object\n\n" + system_text(system))
        blocks.append(
            "## The `tools` object\n\nEach call validates its arguments; a wrong argument raises an error that "
            "says what was expected. Images are PIL images; image ids ('img_…') are accepted wherever an "
            "image is."
        )
    else:
        blocks.append(
            "## Tools\n\nCall the tools below. Results come back as JSON in which every image is an id "
            "('img_…'); pass those ids to other tools wherever an image is expected."
        )
    for spec in specs:
        blocks.append(tool_text(spec, style))
    return "\n\n".join(blocks) + "\n"
