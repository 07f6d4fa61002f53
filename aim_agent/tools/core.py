"""The core experiment tools (MAIA's API, typed). Each is defined once, here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from aim_agent.images import image_id
from aim_agent.providers import Edited, Generated, ProviderError
from aim_agent.tools.base import AimImage, ToolContext, ToolError, ToolInput, ToolOutput, tool

MAX_PROMPTS = 64  # one call; more is almost always a mistake, and costs minutes on a CPU
MAX_IMAGES = 256
MAX_PROMPT_CHARS = 1000  # a scene description; longer text is a mistake or an attack on memory
MAX_NOTES = 8  # per image: what a generator or editor could not do

#: one prompt or edit instruction, bounded in length
Prompt = Annotated[str, StringConstraints(max_length=MAX_PROMPT_CHARS)]
#: text2image takes longer prompts and refuses each one over MAX_PROMPT_CHARS on its own (the rest are drawn);
#: this bound only keeps a call's size sane
MAX_PROMPT_INPUT_CHARS = 100_000
BatchPrompt = Annotated[str, StringConstraints(max_length=MAX_PROMPT_INPUT_CHARS)]


def _short(text: str, limit: int = 60) -> str:
    """A prompt as quoted in a note: short, so notes stay linear in the input, not quadratic."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


class ExemplarsInput(ToolInput):
    k: int = Field(default=15, ge=1, le=100, description="how many top-activating dataset images")


class ActivationsOutput(ToolOutput):
    activations: list[float] = Field(description="the unit's activation on each image")
    images: list[AimImage] = Field(description="overlays: where the unit fires is bright and outlined")

    def python(self) -> tuple[list[float], list[Any]]:
        return self.activations, self.images


@tool(positional=("k",), idempotent=True, needs_system=True)
def dataset_exemplars(ctx: ToolContext, args: ExemplarsInput) -> ActivationsOutput:
    """Top-activating images of the unit in the exemplar dataset, highest first.

    Returns the activations and overlay images in which the region where the unit fires
    above its threshold is kept and outlined and the rest is dimmed. Start every
    investigation here: exemplars show what the unit responds to in natural data.
    Python: ``activations, images = tools.dataset_exemplars()``.
    """
    from aim_agent.exemplars import exemplars_for_system

    system = ctx.require_system()
    def report(done: int, total: int) -> None:
        ctx.progress(done, total, f"dataset_exemplars: {done} of {total} dataset images")

    found = exemplars_for_system(system, k=args.k, dataset=ctx.exemplar_dataset, on_images=report)
    if ctx.log is not None:
        ctx.log.add("exemplars", f"top {len(found.images)} dataset exemplars", images=found.images,
                    activations=found.activations)
    return ActivationsOutput(activations=found.activations, images=found.images)


class NeuronInput(ToolInput):
    images: list[AimImage] = Field(min_length=1, max_length=MAX_IMAGES, description="images to test")


@tool(positional=("images",), read_only=True, idempotent=True, needs_system=True)
def neuron(ctx: ToolContext, args: NeuronInput) -> ActivationsOutput:
    """Run the unit on images: its activation on each and an overlay of where it fires.

    Use it on images from text2image or edit_images to test a hypothesis: compare the
    activation on images with the concept against images without it.
    Python: ``activations, overlays = system.neuron(images)`` (same call).
    """
    system = ctx.require_system()
    acts: list[float] = []
    overlays: list[Any] = []
    step = max(1, system.batch_size)
    for start in range(0, len(args.images), step):  # batch by batch, so a caller sees images done of total
        batch_acts, batch_overlays = system.neuron(args.images[start : start + step])
        acts += batch_acts
        overlays += batch_overlays
        ctx.progress(len(acts), len(args.images), f"neuron: {len(acts)} of {len(args.images)} images")
    return ActivationsOutput(activations=acts, images=overlays)


class Text2ImageInput(ToolInput):
    prompts: list[BatchPrompt] = Field(min_length=1, max_length=MAX_PROMPTS, description="one image per prompt")
    seed: int | None = Field(default=None, description="random seed; default: the session seed")


class Text2ImageOutput(ToolOutput):
    images: list[AimImage | None] = Field(description="one per prompt; None where the prompt could not be drawn")
    prompts: list[str] = Field(description="the prompt behind each image")
    notes: list[str] = Field(default_factory=list, description="what the generator could not draw")
    errors: list[str | None] = Field(
        default_factory=list, description="one per prompt: None when drawn, else why it could not be"
    )

    def python(self) -> list[Any]:
        return self.images


@contextmanager
def _provider_errors() -> Iterator[None]:
    """Turn a provider's failure into a ToolError, whose message the agent sees."""
    try:
        yield
    except ProviderError as exc:
        raise ToolError(str(exc)) from exc


def _prompt_error(prompt: str) -> str | None:
    """Why text2image will not send ``prompt`` to its generator (None: it will)."""
    if not prompt.strip():
        return "the prompt is empty; each prompt must describe an image"
    if len(prompt) > MAX_PROMPT_CHARS:
        return f"the prompt has {len(prompt)} characters; at most {MAX_PROMPT_CHARS} characters are allowed"
    return None


def _generate(ctx: ToolContext, prompts: list[str], seed: int) -> list[Generated]:
    """One result per prompt: the generator's for the prompts it can take, an error for the empty or too long."""
    refused = {i: error for i, p in enumerate(prompts) if (error := _prompt_error(p)) is not None}
    asked = [p for i, p in enumerate(prompts) if i not in refused]
    provider = ctx.require("text2image")
    with _provider_errors():
        made = iter(provider.generate(asked, size=ctx.image_size, seed=seed) if asked else [])
    return [Generated(image=None, prompt=p[:MAX_PROMPT_CHARS], error=refused[i]) if i in refused else next(made)
            for i, p in enumerate(prompts)]


def _check_prompts(prompts: list[str]) -> None:
    empty = [i for i, p in enumerate(prompts) if not p.strip()]
    if empty:
        raise ToolError(f"prompts at positions {empty} are empty; each prompt must describe an image")


@tool(positional=("prompts",), read_only=True, idempotent=True)
def text2image(ctx: ToolContext, args: Text2ImageInput) -> Text2ImageOutput:
    """Generate one image per text prompt.

    Write prompts that describe whole scenes ("a red dog on the beach"). Use several
    prompts per concept and vary the context (background, colour, size) so a result does
    not hinge on one image. Words the generator could not draw come back in ``notes``; a
    prompt it cannot draw at all gives ``None`` in its place and its reason in ``errors``
    (the other images are still made).
    Python: ``images = tools.text2image(["a dog on grass", "a car on a road"])``.
    """
    made = _generate(ctx, list(args.prompts), ctx.seed if args.seed is None else args.seed)
    if made and all(g.image is None for g in made):
        raise ToolError("; ".join(f"prompt {i} ({_short(g.prompt)}): {g.error}" for i, g in enumerate(made)))
    for g in made:  # provenance: what the image was made from travels with it in the context's store
        if g.image is not None:
            ctx.images.register(g.image, meta={"prompt": g.prompt})
    notes = [f"prompt {i} ({_short(g.prompt)}): NOT DRAWN: {g.error}" for i, g in enumerate(made) if g.image is None]
    notes += [f"prompt {i} ({_short(g.prompt)}): {n}" for i, g in enumerate(made) for n in g.notes[:MAX_NOTES]]
    errors = [None if g.image is not None else g.error or "not drawn" for g in made]
    return Text2ImageOutput(images=[g.image for g in made], prompts=[g.prompt for g in made], notes=notes,
                            errors=errors if any(errors) else [])


class EditInput(ToolInput):
    prompts: list[Prompt] | None = Field(
        default=None, max_length=MAX_PROMPTS, description="prompts of the original images to generate"
    )
    images: list[AimImage] | None = Field(default=None, max_length=MAX_IMAGES, description="or existing images")
    edits: list[Prompt] = Field(min_length=1, max_length=MAX_PROMPTS, description="one instruction per image")


class EditOutput(ToolOutput):
    images: list[AimImage | None] = Field(
        description="original, edited, original, edited, ... (None, None where an original could not be drawn)"
    )
    prompts: list[str] = Field(description="the prompt or instruction behind each image")
    applied: list[bool] = Field(description="for each edit, whether the editor could apply it")
    notes: list[str] = Field(default_factory=list, description="what the editor could not do, per edit")

    def python(self) -> tuple[list[Any], list[str]]:
        return self.images, self.prompts


@tool(positional=("prompts", "edits"), read_only=True, idempotent=True)
def edit_images(ctx: ToolContext, args: EditInput) -> EditOutput:
    """Make controlled pairs: an original image and the same image with one change.

    Give ``prompts`` (originals are generated) or ``images``, and one instruction per image,
    phrased positively: "replace the dog with a cat", "change the color of the car to
    green", "change the background to snow", "add a tree". The result interleaves originals
    and edits; compare the unit's activation across each pair to test causality.
    Python: ``images, prompts = tools.edit_images(["a dog on grass"], ["replace the dog with a cat"])``.
    """
    if (args.prompts is None) == (args.images is None):
        raise ToolError("give exactly one of prompts (to generate originals) or images")
    if args.prompts is not None:
        _check_prompts(args.prompts)
        made = text2image.fn(ctx, Text2ImageInput(prompts=args.prompts))
        assert isinstance(made, Text2ImageOutput)
        originals = made.images
        titles = list(args.prompts)
        failed: dict[int, str | None] = {i: made.errors[i] for i, image in enumerate(originals) if image is None}
    else:
        originals = list(args.images or [])
        titles = [f"image {i}" for i in range(len(originals))]
        failed = {}
    if len(args.edits) == 1 and len(originals) > 1:
        edits = args.edits * len(originals)
    elif len(args.edits) != len(originals):
        raise ToolError(f"{len(originals)} images but {len(args.edits)} edits: give one edit per image, or one for all")
    else:
        edits = list(args.edits)
    drawn = [i for i, image in enumerate(originals) if image is not None]
    with _provider_errors():
        done_drawn = ctx.require("editor").edit([image for image in originals if image is not None],
                                                [edits[i] for i in drawn], seed=ctx.seed)
    done: list[Edited | None] = [None] * len(originals)
    for i, result in zip(drawn, done_drawn, strict=True):
        done[i] = result
    images: list[Any] = []
    prompts: list[str] = []
    applied: list[bool] = []
    notes: list[str] = []
    for k, (title, result) in enumerate(zip(titles, done, strict=True)):
        if result is None:  # its original could not be drawn: the other pairs still are
            images += [None, None]
            prompts += [title, edits[k]]
            applied.append(False)
            notes.append(f"edit {k} ({_short(edits[k])}): NOT DONE: its original could not be drawn: {failed[k]}")
            continue
        if result.applied and image_id(result.edited) != image_id(result.original):
            # provenance: the parent, the instruction and what the editor says it changed (None: it cannot say)
            ctx.images.register(result.edited, parent=ctx.images.ensure(result.original),
                                edit=result.change.model_dump() if result.change is not None else None,
                                meta={"instruction": result.instruction})
        images += [result.original, result.edited]
        prompts += [title, result.instruction]
        applied.append(result.applied)
        notes += [f"edit {len(applied) - 1} ({_short(result.instruction)}): {n}" for n in result.notes[:MAX_NOTES]]
    return EditOutput(images=images, prompts=prompts, applied=applied, notes=notes)


class ImagesInput(ToolInput):
    images: list[AimImage] = Field(
        min_length=1, max_length=MAX_IMAGES, description="overlay images (ids from dataset_exemplars or neuron)"
    )


class DescribeOutput(ToolOutput):
    descriptions: list[str] = Field(description="one description per image, in order")

    def python(self) -> list[str]:
        return self.descriptions


@tool(positional=("images",), read_only=True, idempotent=True)
def describe_images(ctx: ToolContext, args: ImagesInput) -> DescribeOutput:
    """Describe what lies inside the highlighted region of each overlay image.

    The describer never sees your hypotheses, so its words are an unbiased check.
    Python: ``descriptions = tools.describe_images(overlays)``.
    """
    with _provider_errors():
        return DescribeOutput(descriptions=ctx.require("describer").describe(args.images))


class SummaryOutput(ToolOutput):
    summary: str = Field(description="what the highlighted regions have in common")

    def python(self) -> str:
        return self.summary


@tool(positional=("images",), read_only=True, idempotent=True)
def summarize_images(ctx: ToolContext, args: ImagesInput) -> SummaryOutput:
    """Say what the highlighted regions of a set of images have in common.

    Python: ``summary = tools.summarize_images(exemplar_overlays)``.
    """
    with _provider_errors():
        return SummaryOutput(summary=ctx.require("describer").summarize(args.images))


class LogInput(ToolInput):
    note: str = Field(default="", max_length=20_000, description="what this experiment tested and what it showed")
    activations: list[float] = Field(
        default_factory=list, max_length=MAX_IMAGES, description="the unit's activation on each image, in order"
    )
    images: list[AimImage] = Field(default_factory=list, max_length=MAX_IMAGES, description="the images tested")
    prompts: list[Prompt] = Field(
        default_factory=list, max_length=MAX_IMAGES, description="the prompt or edit behind each image"
    )
    descriptions: list[Annotated[str, StringConstraints(max_length=4000)]] = Field(
        default_factory=list, max_length=MAX_IMAGES, description="what the describer said of each image"
    )


class LogOutput(ToolOutput):
    entry: int = Field(description="index of the new log entry")

    def python(self) -> int:
        return self.entry


@tool(positional=("activations", "images", "prompts", "descriptions"))
def log_experiment(ctx: ToolContext, args: LogInput) -> LogOutput:
    """Record an experiment (images, prompts, activations, a note) in the experiment log.

    Only logged results count as evidence for your conclusion, so log every experiment.
    """
    if ctx.log is None:
        raise ToolError("no experiment log in this session")
    if args.activations and args.images and len(args.activations) != len(args.images):
        raise ToolError(f"{len(args.activations)} activations but {len(args.images)} images; they must pair up")
    ctx.log.add("experiment", args.note, images=args.images, activations=args.activations,
                prompts=args.prompts, descriptions=args.descriptions)
    return LogOutput(entry=len(ctx.log.entries) - 1)


class SearchInput(ToolInput):
    concepts: list[Annotated[str, StringConstraints(max_length=100)]] = Field(
        default_factory=list, max_length=16,
        description="find images whose description names any of these; empty: any image (controls)")
    without: list[Annotated[str, StringConstraints(max_length=100)]] = Field(
        default_factory=list, max_length=64, description="leave out images whose description names any of these")
    n: int = Field(default=12, ge=1, le=MAX_PROMPTS, description="how many images at most")
    skip: int = Field(default=0, ge=0, le=100_000, description="skip this many matches (to get different images)")
    include_exemplars: bool = Field(
        default=False, description="also return images already shown as this unit's exemplars (left out by "
        "default: a test on the images that chose the hypothesis proves nothing)")


class SearchOutput(ToolOutput):
    images: list[AimImage] = Field(description="the images found, strongest match first")
    descriptions: list[str] = Field(description="the blind describer's description of each whole image")

    def python(self) -> tuple[list[Any], list[str]]:
        return self.images, self.descriptions


#: described pools by (dataset fingerprint, describer name): describing a dataset costs a pass of the describer
_POOLS: dict[tuple[str, str], Any] = {}


@tool(positional=("concepts", "without", "n"), read_only=True, idempotent=True)
def dataset_search(ctx: ToolContext, args: SearchInput) -> SearchOutput:
    """Find images in the exemplar dataset that show a concept, or controls that show none of a list.

    Every dataset image is described once, whole, by the blind describer (never by its file name or
    label); a search returns images whose description names any of ``concepts`` (strongest first),
    leaving out those that name any of ``without`` and the unit's exemplars already shown. With no
    ``concepts`` it returns controls in a fixed shuffled order (``skip`` pages through them). Use it
    where text2image cannot draw what the model saw (photos): measure the found images with
    ``system.neuron`` and compare with controls.
    Python: ``images, descriptions = tools.dataset_search(["dog"], [], 12)``.
    """
    from aim_agent.exemplars import resolve_dataset
    from aim_agent.exemplars.pool import described_pool

    describer = ctx.require("describer")
    folder = resolve_dataset(ctx.exemplar_dataset)
    key = (folder.fingerprint(), describer.name)
    if key not in _POOLS:
        with _provider_errors():
            _POOLS[key] = described_pool(folder, describer, progress=lambda done, total: ctx.progress(
                done, total, f"dataset_search: described {done} of {total} dataset images (once per dataset)"))
    pool = _POOLS[key]
    shown = set() if args.include_exemplars else {
        str(r.meta.get("file")) for r in ctx.images.records() if r.meta.get("exemplar")}
    found = pool.search(args.concepts, args.without, args.n, skip=args.skip, leave_out=shown)
    images = []
    for item in found:
        image = folder.load(item.index, register=False)
        # what the image shows, as its provenance: the describer's words (the critic reads them like a prompt)
        ctx.images.register(image, meta={"prompt": f"photo: {item.description}", "retrieved": True})
        images.append(image)
    return SearchOutput(images=images, descriptions=[item.description for item in found])


class DisplayInput(ToolInput):
    items: list[Annotated[str, StringConstraints(max_length=20_000)] | AimImage] = Field(
        min_length=1, max_length=64,
        description="what to show, in order: each item is text or an image id ('img_…')"
    )


@tool(positional=("items",))
def display(ctx: ToolContext, args: DisplayInput) -> LogOutput:
    """Show text and images to yourself: they appear in your next observation."""
    if ctx.log is None:
        raise ToolError("no experiment log in this session")
    texts = [x for x in args.items if isinstance(x, str)]
    images = [x for x in args.items if not isinstance(x, str)]
    ctx.log.add("display", "\n".join(texts), images=images)
    return LogOutput(entry=len(ctx.log.entries) - 1)


CORE_TOOLS = [dataset_exemplars, dataset_search, neuron, text2image, edit_images, describe_images,
              summarize_images, log_experiment, display]
