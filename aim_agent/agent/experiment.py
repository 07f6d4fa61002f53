"""Running one experiment: model-written code in the sandbox, or a list of tool calls.

Both ways go through the same tool registry and the same :class:`Recorder`, which notes every
image the unit was run on (with the prompt behind it, when a tool generated or edited it) so
that the critic can count evidence no matter how the scientist chose to log it.

Tool-calling mode chains calls with references: an argument value ``"$0.images"`` is the
``images`` field of the output of call 0 (calls are numbered from 0 within one round);
``"$1.images.2"`` is its third item. Inside a list, a reference to a list is spliced in, so
``{"images": ["$0.images", "$1.images"]}`` passes both lists' images.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from PIL import Image
from pydantic import BaseModel

from aim_agent.agent.schema import Observation, ToolCall
from aim_agent.agent.state import Measurement
from aim_agent.images import ImageStore, current_store, image_id, load_image, use_store
from aim_agent.providers import EditChange
from aim_agent.tools.base import (
    ToolContext,
    ToolError,
    ToolInput,
    ToolOutput,
    ToolSpec,
    invoke,
    output_data,
    parse_args,
    tool_method,
)

if TYPE_CHECKING:
    from aim_agent.agent.sandbox import ObjectHandler, SandboxResult

#: most images one observation shows the scientist (the log keeps them all)
MAX_OBSERVATION_IMAGES = 24
#: most characters of one observation's text (a tool-calling round's, and the default cut of :func:`_cut`)
MAX_TEXT = 6000
#: most characters of what the experiment code printed that the scientist reads back
PRINTED_TEXT = 3000
#: most characters of the JSON of what ``run_experiment`` returned, as the scientist reads it
RETURNED_TEXT = 2000
#: most characters of the numbered listing of code that failed (the traceback's line numbers point into it)
FAILED_CODE_TEXT = 4000
#: most characters of one tool call's arguments, and of its result, in a tool-calling round's observation
CALL_ARGS_TEXT, CALL_RESULT_TEXT = 400, 1500
#: most characters of the scientist's remarks after its tool calls, as the next turn reads them
REMARKS_TEXT = 1500
#: most tool notes ('text2image: prompt 1 NOT DRAWN ...') one observation lists
MAX_NOTES = 20
#: how an edit reads in the text of an image's provenance ('a dog on grass | edit: replace the dog with a cat')
EDIT_SEP = " | edit: "
_REF = re.compile(r"^\$(\d+)\.([A-Za-z_]\w*)(?:\.(\d+))?$")


# --------------------------------------------------------------------------------------------
# recording


@dataclass
class Recorder:
    """Collects what an experiment did: measurements, prompts of new images, images to show.

    The experiment runner hands it each tool call's output as the call returns
    (:meth:`tool_output`) and each raw measurement of ``system.activations`` (:meth:`measure`);
    ``images`` is the store of the context the experiment runs in (given at construction).
    """

    round: int
    known_prompts: dict[str, str] = field(default_factory=dict)
    new_prompts: dict[str, str] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)
    overlays: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    images: ImageStore = field(default_factory=current_store)

    def provenance(self, iid: str) -> tuple[str, list[EditChange | None], str]:
        """How image ``iid`` was made, from the image store: (source prompt, edits, text for people).

        The source prompt is the text-to-image prompt of the image or of the original it was
        edited from; the edits are what each editor reported it changed (None where it could
        not say). Nothing is parsed from instruction text.
        """
        source = ""
        edits: list[EditChange | None] = []
        instructions: list[str] = []
        for record in self.images.lineage(iid):
            if "instruction" in record.meta:
                edits.append(EditChange.model_validate(record.edit) if record.edit else None)
                instructions.append(str(record.meta["instruction"]))
            elif record.meta.get("prompt"):
                source = str(record.meta["prompt"])
                break
        if not source:
            return "", [], self.known_prompts.get(iid, "")
        edits.reverse()
        instructions.reverse()
        return source, edits, source + "".join(f"{EDIT_SEP}{text}" for text in instructions)

    def prompt_of(self, iid: str) -> str:
        """The text for people of how image ``iid`` was made ('prompt | edit: instruction'), or ''."""
        return self.provenance(iid)[2]

    def tool_output(self, spec: ToolSpec, args: BaseModel, output: ToolOutput) -> None:
        """Learn from a tool's output: how its images were made, its notes, the activations it measured."""
        images = output.all_images()
        for image in images:
            iid = self.images.ensure(image)
            text = self.prompt_of(iid)
            if text:
                self.new_prompts[iid] = text
        notes = getattr(output, "notes", None)
        if isinstance(notes, list):
            self.notes += [f"{spec.name}: {n}" for n in notes]
        activations = getattr(output, "activations", None)
        inputs = getattr(args, "images", None)
        if isinstance(activations, list) and isinstance(inputs, list) and len(inputs) == len(activations):
            self.measure(inputs, activations, images, f"tools.{spec.name}")

    def measure(
        self,
        images: Sequence[Image.Image],
        activations: Sequence[float],
        overlays: Sequence[Image.Image] | None,
        source: str,
    ) -> None:
        """Note one measurement per image (with how it was made) and keep the overlays to show."""
        for image, act in zip(images, activations, strict=True):
            iid = self.images.ensure(image)
            source_prompt, edits, text = self.provenance(iid)
            if text:
                self.new_prompts.setdefault(iid, text)
            self.measurements.append(
                Measurement(round=self.round, image_id=iid, activation=float(act), prompt=text, source=source,
                            source_prompt=source_prompt, edits=edits)
            )
        for overlay in overlays or []:
            if isinstance(overlay, Image.Image):
                self.overlays.append(self.images.ensure(overlay))

    def observation(self, *, ok: bool, text: str, shown: Sequence[str], error: str | None,
                    traceback: str | None = None, round: int | None = None) -> Observation:
        """The round's :class:`Observation`: ``shown`` images (at most :data:`MAX_OBSERVATION_IMAGES`) and
        every measurement's activation and prompt (``round`` defaults to the recorder's)."""
        return Observation(
            round=self.round if round is None else round,
            ok=ok,
            text=text,
            image_ids=list(shown)[:MAX_OBSERVATION_IMAGES],
            activations=[m.activation for m in self.measurements],
            prompts=[m.prompt for m in self.measurements],
            error=error,
            traceback=traceback,
        )

    def notes_text(self) -> str:
        """The tool notes as one block for an observation ('' without notes)."""
        return "tool notes:\n" + "\n".join(self.notes[:MAX_NOTES]) if self.notes else ""


def recorded_invoke(spec: ToolSpec, args: ToolInput | Mapping[str, Any], ctx: ToolContext,
                    recorder: Recorder | None) -> ToolOutput:
    """:func:`invoke` one call and hand its output to ``recorder`` (when given) as the call returns."""
    parsed = parse_args(spec, args, ctx)
    output = invoke(spec, parsed, ctx)
    if recorder is not None:
        recorder.tool_output(spec, parsed, output)
    return output


# --------------------------------------------------------------------------------------------
# code mode


def system_handler(ctx: ToolContext, recorder: Recorder | None = None) -> ObjectHandler:
    """``system`` as model-written code sees it: :data:`aim_agent.system.SYSTEM_METHODS` and attributes only.

    ``system.neuron`` is the ``neuron`` tool (one call path); ``system.activations`` gives
    raw numbers. ``recorder`` (when given) notes every measurement of both.
    """
    from aim_agent.agent.sandbox import ObjectHandler
    from aim_agent.system import SYSTEM_ATTRIBUTES, SYSTEM_METHODS, System
    from aim_agent.tools.core import ActivationsOutput
    from aim_agent.tools.core import neuron as neuron_tool

    system = ctx.require_system()

    def neuron(image_list: Sequence[Any]) -> tuple[list[float], list[Image.Image]]:
        output = recorded_invoke(neuron_tool, {"images": list(image_list)}, ctx, recorder)
        assert isinstance(output, ActivationsOutput)
        return output.python()

    def activations(images: Sequence[Any]) -> Any:
        with use_store(ctx.images):
            pil = [load_image(x) for x in images]
            response = system.activations(pil)
        if recorder is not None:
            recorder.measure(pil, [float(a) for a in response.activations], None, "system.activations")
        return response

    neuron.__doc__ = System.neuron.__doc__
    activations.__doc__ = System.activations.__doc__
    implementations: dict[str, Callable[..., Any]] = {
        "neuron": neuron, "call_neuron": neuron, "activations": activations, "describe": system.describe,
    }
    return ObjectHandler(
        methods={name: implementations[name] for name in SYSTEM_METHODS},
        attributes={name: getattr(system, name) for name in SYSTEM_ATTRIBUTES},
        doc=system.describe(),
    )


def tools_handler(ctx: ToolContext, specs: Sequence[ToolSpec], recorder: Recorder | None = None) -> ObjectHandler:
    """``tools`` as model-written code sees it: one method per tool, each through :func:`invoke`
    (its output handed to ``recorder``, when given)."""
    from aim_agent.agent.sandbox import ObjectHandler

    def run(spec: ToolSpec, args: dict[str, Any]) -> ToolOutput:
        return recorded_invoke(spec, args, ctx, recorder)

    return ObjectHandler(methods={spec.name: tool_method(spec, run) for spec in specs if not spec.session},
                         doc="experiment tools")


def code_handlers(ctx: ToolContext, specs: Sequence[ToolSpec],
                  recorder: Recorder | None = None) -> dict[str, ObjectHandler]:
    """``{"system": ..., "tools": ...}`` for the sandbox (the agent's code mode and MCP's run_code); ``recorder``
    (the agent's round) notes what every call measured."""
    from aim_agent.agent.sandbox import ObjectHandler

    system = system_handler(ctx, recorder) if ctx.system is not None else ObjectHandler(doc="no system is loaded")
    return {"system": system, "tools": tools_handler(ctx, specs, recorder)}


def plain_value(value: Any, depth: int = 0) -> Any:
    """A returned value as JSON-ready data: images become ids, arrays lists, records dicts."""
    if depth > 8:
        return "..."
    if isinstance(value, Image.Image):
        return current_store().ensure(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, np.generic):
        return plain_value(value.item(), depth)
    if isinstance(value, np.ndarray):
        return plain_value(value.tolist() if value.size <= 4096 else f"array{value.shape}", depth)
    if isinstance(value, dict):
        return {str(k): plain_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [plain_value(v, depth + 1) for v in value]
    if isinstance(value, BaseModel):
        return plain_value(dict(value), depth + 1)
    fields = getattr(value, "__dict__", None)
    if isinstance(fields, dict):
        return {k: plain_value(v, depth + 1) for k, v in fields.items() if not k.startswith("_")}
    try:  # torch tensors and similar
        return plain_value(np.asarray(value), depth)
    except Exception:
        return repr(value)[:200]


def image_ids_in(value: Any) -> list[str]:
    """Every ``img_…`` id inside a JSON-ready value, in order."""
    found: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, str) and v.startswith("img_"):
            found.append(v)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(value)
    return found


def _cut(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 30] + "\n[... cut ...]"


@dataclass
class ExperimentOutcome:
    """The result of running a proposal: the observation and what was recorded on the way."""

    observation: Observation
    recorder: Recorder
    extra: dict[str, Any] = field(default_factory=dict)


def run_code_experiment(
    code: str,
    ctx: ToolContext,
    specs: Sequence[ToolSpec],
    recorder: Recorder,
    *,
    timeout_s: float = 180.0,
    unsafe_sandbox: bool = False,
) -> ExperimentOutcome:
    """Run ``def run_experiment(system, tools)`` in the sandbox; its output, errors and traceback.

    ``unsafe_sandbox`` lets the code run on a machine where no isolation layer works (the
    person who started AIM asked for it with ``--unsafe-sandbox``).
    """
    from aim_agent.agent.sandbox import SandboxLimits, run_code

    handlers = code_handlers(ctx, specs, recorder)
    limits = SandboxLimits(wall_time_s=timeout_s, cpu_time_s=max(1, int(timeout_s)), allow_unsafe=unsafe_sandbox)
    with use_store(ctx.images):
        result: SandboxResult = run_code(code, entry="run_experiment", handlers=handlers, limits=limits)
    with use_store(ctx.images):
        returned = plain_value(result.return_value) if result.ok else None
    parts = []
    calls: dict[str, int] = {}
    for call in result.calls:
        key = f"{call.object}.{call.method}"
        calls[key] = calls.get(key, 0) + 1
    parts.append("calls: " + (", ".join(f"{k} x{n}" if n > 1 else k for k, n in calls.items()) or "none"))
    if result.stdout.strip():
        parts.append("printed:\n" + _cut(result.stdout.rstrip(), PRINTED_TEXT))
    if result.ok and returned is not None:
        parts.append("returned: " + _cut(json.dumps(returned), RETURNED_TEXT))
    if recorder.notes:
        parts.append(recorder.notes_text())
    if not result.ok:
        numbered = "\n".join(f"{i:3d}  {line}" for i, line in enumerate(code.splitlines(), 1))
        parts.append(f"the code that failed ({result.kind}):\n{_cut(numbered, FAILED_CODE_TEXT)}")
    image_ids = list(dict.fromkeys([*recorder.overlays, *image_ids_in(returned)]))
    observation = recorder.observation(
        ok=result.ok,
        text="\n".join(parts),
        shown=image_ids,
        error=None if result.ok else (result.error or result.kind or "failed"),
        traceback=None if result.ok else result.traceback,
    )
    return ExperimentOutcome(observation, recorder, {"kind": result.kind, "wall_time_s": result.wall_time_s})


# --------------------------------------------------------------------------------------------
# tool-calling mode


class BadReference(ValueError):
    """A ``$k.field`` reference that does not resolve."""


def resolve_refs(value: Any, outputs: Sequence[ToolOutput | None]) -> Any:
    """Replace ``"$k.field"`` / ``"$k.field.i"`` strings by values of earlier outputs of the round."""
    if isinstance(value, str):
        m = _REF.match(value)
        if not m:
            return value
        k, name, index = int(m.group(1)), m.group(2), m.group(3)
        if k >= len(outputs):
            raise BadReference(f"{value!r} refers to call {k}, but only calls 0..{len(outputs) - 1} ran before it")
        out = outputs[k]
        if out is None:
            raise BadReference(f"{value!r} refers to call {k}, which failed")
        if name not in type(out).model_fields:
            raise BadReference(f"{value!r}: call {k} returned no field {name!r}; fields: "
                                  f"{', '.join(type(out).model_fields)}")
        got = getattr(out, name)
        if index is not None:
            try:
                return got[int(index)]
            except (IndexError, TypeError) as exc:
                raise BadReference(f"{value!r}: no item {index} in field {name!r}") from exc
        return got
    if isinstance(value, list):
        result: list[Any] = []
        for item in value:
            resolved = resolve_refs(item, outputs)
            if isinstance(item, str) and _REF.match(item) and isinstance(resolved, list):
                result.extend(resolved)
            else:
                result.append(resolved)
        return result
    if isinstance(value, dict):
        return {k: resolve_refs(v, outputs) for k, v in value.items()}
    return value


class ToolStep(BaseModel):
    """One executed tool call: its arguments and JSON result (images as ids) or its error."""

    index: int
    call: ToolCall
    ok: bool
    result: Any = None
    error: str | None = None
    image_ids: list[str] = []


class ToolCallResult(NamedTuple):
    """What one tool call of a round gave: the step the scientist reads, and the output later calls refer to."""

    step: ToolStep
    """the call, its JSON result (images as ids) or its error"""
    output: ToolOutput | None
    """the tool's output (what ``$k.field`` resolves in), or None when the call failed"""


def run_tool_call(
    index: int,
    call: ToolCall,
    ctx: ToolContext,
    specs: dict[str, ToolSpec],
    recorder: Recorder,
    earlier: Sequence[ToolOutput | None],
) -> ToolCallResult:
    """Run one call (resolving references to the ``earlier`` outputs of the round); its step and output."""
    spec = specs.get(call.tool)
    try:
        if call.error:  # the model's call could not be read (e.g. its arguments were not JSON)
            raise ToolError(call.error)
        if spec is None or spec.session:
            raise ToolError(f"unknown tool {call.tool!r}; available: {', '.join(sorted(specs))}")
        args = resolve_refs(call.args, earlier)
        output = recorded_invoke(spec, args, ctx, recorder)
    except (ToolError, BadReference) as exc:
        return ToolCallResult(ToolStep(index=index, call=call, ok=False, error=f"{type(exc).__name__}: {exc}"), None)
    data = output_data(output, ctx)
    step = ToolStep(index=index, call=call, ok=True, result=data, image_ids=[image_id(i) for i in output.all_images()])
    return ToolCallResult(step, output)


def run_tool_calls(
    calls: Sequence[ToolCall],
    ctx: ToolContext,
    specs: dict[str, ToolSpec],
    recorder: Recorder,
    earlier: Sequence[ToolOutput | None] = (),
) -> tuple[list[ToolStep], list[ToolOutput | None]]:
    """Run ``calls`` in order, numbered after the ``earlier`` outputs of the round (each may refer to those and
    to the calls before it); their steps and outputs."""
    steps: list[ToolStep] = []
    outputs = list(earlier)
    for call in calls:
        step, output = run_tool_call(len(outputs), call, ctx, specs, recorder, outputs)
        steps.append(step)
        outputs.append(output)
    return steps, outputs[len(earlier):]


def step_text(step: ToolStep, limit: int = CALL_RESULT_TEXT) -> str:
    args = json.dumps(step.call.args)
    head = f"[{step.index}] {step.call.tool}({_cut(args, CALL_ARGS_TEXT)})"
    if not step.ok:
        return f"{head} -> ERROR {step.error}"
    return f"{head} -> {_cut(json.dumps(step.result), limit)}"


def tool_steps_observation(round: int, steps: Sequence[ToolStep], recorder: Recorder, remarks: str = "") -> Observation:
    """The observation of a tool-calling round."""
    lines = [step_text(s) for s in steps] or ["no tool calls were made"]
    if recorder.notes:
        lines.append(recorder.notes_text())
    if remarks.strip():
        lines.append("your remarks after the calls:\n" + textwrap.shorten(remarks, REMARKS_TEXT))
    failed = [s for s in steps if not s.ok]
    shown = list(dict.fromkeys([*recorder.overlays, *(i for s in steps for i in s.image_ids)]))
    return recorder.observation(
        round=round,
        ok=bool(steps) and not failed,
        text=_cut("\n".join(lines)),
        shown=shown,
        error="; ".join(f"call {s.index} ({s.call.tool}): {s.error}" for s in failed) or
              (None if steps else "no tool calls were made"),
    )
