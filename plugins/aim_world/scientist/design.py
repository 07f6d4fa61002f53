"""Experiment design for each phase: survey, screen, pairs (2x2), context search, coverage, causal edits and
replication, each as images that contain exactly the concepts of its cells."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from aim_world import vocabulary as vocab
from aim_world.scene import TEXTURE_ADJECTIVES
from aim_world.scientist.concepts import OBJECT_KINDS, Concept, _with_article, noun_category
from aim_world.scientist.experiment import Experiment
from aim_world.scientist.hypotheses import Hyp
from aim_world.scientist.reading import Reading, is_member
from aim_world.scientist.scenes import (
    CONTEXT_BACKGROUNDS,
    NEUTRAL_COLORS,
    NEUTRAL_NOUNS,
    Obj,
    Palette,
    Spec,
    _cycle,
    realize,
)

SCREEN_CONTEXTS = 5  # a critic wants about five images of a concept, in three or more contexts
PAIR_CONTEXTS = 3
EDIT_CONTEXTS = 4
SURVEY_BACKGROUND_IMAGES = 3  # images of each background in the survey
SweepItem = tuple[str, Concept | None]  # (prompt, the companion it adds to the concept; None: the concept alone)


@dataclass(frozen=True)
class SurveyItem:
    """One survey image: its prompt and the one concept it stands for (a noun, a background, a colour...)."""

    prompt: str
    concept: Concept


@cache
def survey_items() -> tuple[SurveyItem, ...]:
    """The whole world vocabulary, one concept per image: every object alone on a plain background (in a
    natural colour), every background with neutral objects, every colour and every texture on a neutral object."""
    items: list[SurveyItem] = []
    for k, noun in enumerate(vocab.NOUNS):
        color = noun.colors[k % len(noun.colors)]
        items.append(SurveyItem(Spec((Obj(noun.name, color),), "plain").prompt(), Concept("object", noun.name)))
    backgrounds = [b for b in CONTEXT_BACKGROUNDS if b != "plain"]
    for b, bg in enumerate(backgrounds):
        for j in range(SURVEY_BACKGROUND_IMAGES):
            k = b * SURVEY_BACKGROUND_IMAGES + j
            obj = Obj(NEUTRAL_NOUNS[k % len(NEUTRAL_NOUNS)], NEUTRAL_COLORS[(5 * k + 1) % len(NEUTRAL_COLORS)])
            items.append(SurveyItem(Spec((obj,), bg).prompt(), Concept("background", bg)))
    for k, color in enumerate(NEUTRAL_COLORS):
        obj = Obj(NEUTRAL_NOUNS[(k + 3) % len(NEUTRAL_NOUNS)], color)
        items.append(SurveyItem(Spec((obj,), "plain").prompt(), Concept("color", color)))
    for k, texture in enumerate(vocab.TEXTURES):
        obj = Obj(NEUTRAL_NOUNS[k], NEUTRAL_COLORS[(3 * k + 2) % len(NEUTRAL_COLORS)], texture)
        items.append(SurveyItem(Spec((obj,), "plain").prompt(), Concept("texture", texture)))
    unique: dict[str, SurveyItem] = {}
    for item in items:
        unique.setdefault(item.prompt, item)
    return tuple(unique.values())


def survey_prompts() -> list[str]:
    return [item.prompt for item in survey_items()]


def design_survey() -> Experiment:
    note = (f"survey: one image of each of the world's {len(vocab.NOUNS)} objects alone, of each background, "
            "colour and texture: what else, besides the exemplars' concepts, drives the unit?")
    return Experiment("survey", note, survey_prompts())


def cells_experiment(phase: str, note: str, cells: list[list[Concept]], contexts: Iterable[int],
                     palette: Palette) -> Experiment:
    """One image of every cell (a set of concepts) in each of ``contexts`` (scene indices for :func:`realize`)."""
    prompts: list[str] = []
    for i in contexts:
        for cell in cells:
            spec = realize(cell, i, palette)
            if spec is not None and spec.prompt() not in prompts:
                prompts.append(spec.prompt())
    return Experiment(phase, note, prompts)


def design_screen(reading: Reading) -> Experiment:
    """Each candidate concept alone, across contexts, with neutral controls."""
    palette = Palette.avoiding(reading.candidates, reading.mentioned)
    cells = [[c] for c in reading.candidates] + [[]]
    names = ", ".join(c.phrase for c in reading.candidates)
    note = (f"screen: each candidate ({names}) alone on {SCREEN_CONTEXTS} backgrounds with other colours and "
            "objects, plus neutral controls without any candidate")
    return cells_experiment("screen", note, cells, range(SCREEN_CONTEXTS), palette)


PATTERN_NOUNS = 8  # nouns the pattern design draws every texture on


def pattern_nouns(reading: Reading) -> list[str]:
    """Nouns for the pattern design: the exemplars' most frequent nouns first (is it them, or their pattern?),
    then one noun of each other vocabulary category in turn (a pattern unit fires on any of them)."""
    seen = [c.name for c in sorted(reading.scores, key=lambda c: (-reading.scores[c], c)) if c.kind == "object"]
    nouns = seen[:3]
    categories = list(dict.fromkeys(n.category for n in vocab.NOUNS))
    k = 0
    while len(nouns) < PATTERN_NOUNS and k < 4 * len(categories):
        members = [n.name for n in vocab.NOUNS if n.category == categories[k % len(categories)]]
        noun = members[(7 * (k // len(categories)) + 3) % len(members)]
        if noun not in nouns:
            nouns.append(noun)
        k += 1
    return nouns


def design_patterns(reading: Reading, offset: int) -> Experiment:
    """Every texture on many nouns, and the same nouns plain: a pattern unit fires on the patterned versions of
    every noun (and an object unit on its noun whatever the pattern), so the pattern and the nouns are told
    apart on the same images."""
    palette = Palette.avoiding([], [])
    prompts: list[str] = []
    for k, noun in enumerate(pattern_nouns(reading)):
        color = palette.color_for(noun, offset + k)
        background = palette.background(offset + k)
        for texture in (None, *vocab.TEXTURES):
            prompt = Spec((Obj(noun, color, texture),), background).prompt()
            if prompt not in prompts:
                prompts.append(prompt)
    note = ("patterns: every texture of the world on each of several nouns (the exemplars' and others), and each "
            "noun plain: is it the pattern, whatever the object, or the object, whatever its pattern?")
    return Experiment("patterns", note, prompts)


def design_pairs(reading: Reading, pairs: list[Hyp], offset: int) -> Experiment:
    """The 2x2 design (A+B, A only, B only, neither) for each OR / conditional hypothesis."""
    palette = Palette.avoiding(reading.candidates, reading.mentioned)
    cells: list[list[Concept]] = []
    for h in pairs:
        assert h.b is not None
        for cell in ([h.a, h.b], [h.a], [h.b], []):
            if cell not in cells:
                cells.append(cell)
    names = "; ".join(f"{h.a.phrase} with/without {h.b.phrase}" for h in pairs if h.b)
    note = f"pairs: 2x2 designs ({names}) on {PAIR_CONTEXTS} new backgrounds"
    return cells_experiment("pairs", note, cells, range(offset, offset + PAIR_CONTEXTS), palette)


def design_coverage(reading: Reading, lead: Concept, others: list[Concept], offset: int) -> Experiment:
    """Concepts that explain strong images the leading concept leaves out, each alone, next to the lead and
    controls: does each drive the unit on its own (then the unit responds to either)?"""
    palette = Palette.avoiding([lead, *others], reading.mentioned)
    names = ", ".join(o.phrase for o in others)
    note = (f"coverage: strong exemplars or survey images show {names} but no {lead.phrase}; does each drive the "
            "unit on its own (then it responds to either)?")
    cells = [[o] for o in others] + [[lead], []]
    return cells_experiment("coverage", note, cells, range(offset, offset + SCREEN_CONTEXTS), palette)


def sweep_items(reading: Reading, a: Concept, offset: int) -> list[SweepItem]:
    """``a`` alone on every context background, then ``a`` with each companion the world offers: every
    object, background, colour and texture (each once, the context background cycling)."""
    palette = Palette.avoiding([a], [])
    items: list[SweepItem] = []
    for i in range(len(palette.backgrounds)):
        spec = realize([a], offset + i, palette)
        if spec is not None:
            items.append((spec.prompt(), None))
    companions = [Concept("object", n.name) for n in vocab.NOUNS]
    companions += [Concept("background", b) for b in CONTEXT_BACKGROUNDS]
    companions += [Concept("color", c) for c in NEUTRAL_COLORS] + [Concept("texture", t) for t in vocab.TEXTURES]
    for k, c in enumerate(companions):
        if c == a or is_member(a, c) or is_member(c, a) or c.kind == a.kind == "background":
            continue
        spec = realize([a, c], offset + k, palette)
        if spec is not None:
            items.append((spec.prompt(), c))
    unique: dict[str, SweepItem] = {}
    for prompt, c in items:
        unique.setdefault(prompt, (prompt, c))
    return list(unique.values())


def design_context(reading: Reading, a: Concept, offset: int) -> Experiment:
    """The context sweep: ``a`` alone, and ``a`` next to every companion the world offers, looking for a
    condition it needs (the exemplars may hold only the weak response of a conditional unit)."""
    items = sweep_items(reading, a, offset)
    note = (f"context sweep: {a.phrase} alone on every background, and with each of the world's objects, "
            "backgrounds, colours and textures: does anything in the scene switch the response on?")
    return Experiment("context", note, [p for p, _ in items])


def _removal_edit(spec: Spec, c: Concept, i: int, palette: Palette) -> str:
    """An instruction that takes concept ``c`` out of the image of ``spec``."""
    main = spec.objects[0].noun
    if c.kind in OBJECT_KINDS:
        target = next((o.noun for o in spec.objects if o.noun in c.members or
                       (c.kind == "category" and noun_category(o.noun) == c.name)), main)
        if len(spec.objects) > 1 and target != main:
            return f"remove the {target}"
        return f"replace the {target} with {_with_article(palette.noun(i))}"
    if c.kind == "color":
        return f"change the color of the {main} to {palette.color_for(main, i + 1)}"
    if c.kind in ("background", "region"):
        return f"change the background to {palette.background(i)}"
    return f"replace the {main} with {_with_article(palette.color_for(palette.noun(i), i))} {palette.noun(i)}"


def design_edits(reading: Reading, h: Hyp, offset: int) -> Experiment:
    """Causal pairs: remove each concept of the hypothesis from images where it fires, and add it back."""
    palette = Palette.avoiding(h.concepts, reading.mentioned)
    originals: list[str] = []
    edits: list[str] = []
    for k in range(EDIT_CONTEXTS):
        i = offset + k
        if h.kind == "single":
            removed = h.a
            cell = [h.a]
        elif h.kind == "or":
            removed = h.a if k % 2 == 0 else h.b
            cell = [removed]
        else:
            removed = h.b if k % 2 == 0 else h.a
            cell = [h.a, h.b]
        assert removed is not None
        spec = realize(cell, i, palette)
        if spec is None:
            continue
        originals.append(spec.prompt())
        edits.append(_removal_edit(spec, removed, i, palette))
    adding = _adding_edit(h, offset + EDIT_CONTEXTS, palette)
    if adding:
        originals.append(adding[0])
        edits.append(adding[1])
    note = (f"edits: causal pairs for '{h.short()}': remove or replace "
            f"{' / '.join(c.phrase for c in h.concepts)} (activation should drop) and add it (should rise)")
    return Experiment("edits", note, originals, edits)


def _adding_edit(h: Hyp, i: int, palette: Palette) -> tuple[str, str] | None:
    """An original where the hypothesis does not fire and an edit that makes it fire."""
    if h.kind == "conditional":
        assert h.b is not None
        spec = realize([h.a], i, palette)
        return (spec.prompt(), _adding_instruction(spec, h.b, i, palette, beside=True)) if spec else None
    spec = realize([], i, palette)
    return (spec.prompt(), _adding_instruction(spec, h.a, i, palette)) if spec else None


def _adding_instruction(spec: Spec, c: Concept, i: int, palette: Palette, beside: bool = False) -> str:
    """An instruction that puts concept ``c`` into the image (next to what is there when ``beside``)."""
    main = spec.objects[0].noun
    if c.kind == "object":
        return f"add {_with_article(c.name)}" if beside else f"replace the {main} with {_with_article(c.name)}"
    if c.kind == "category":
        return f"replace the {main} with {_with_article(palette.member(c.name, i))}"
    if c.kind == "group":
        return f"replace the {main} with {_with_article(_cycle(c.members, i))}"
    if c.kind == "background":
        return f"change the background to {c.name}"
    if c.kind == "region":
        return f"change the background to {palette.background_with([c.name], i)}"
    if c.kind == "color":
        return f"change the color of the {main} to {c.name}"
    return f"replace the {main} with a {TEXTURE_ADJECTIVES[_cycle(c.textures, i)]} {main}"


def design_replication(reading: Reading, h: Hyp, offset: int, n: int = 6) -> Experiment:
    """The hypothesis's positive and negative cells again, on new contexts."""
    palette = Palette.avoiding(h.concepts, reading.mentioned)
    cells: list[list[Concept]] = [list(h.concepts)] if h.kind != "or" else [[h.a], [h.b]]  # type: ignore[list-item]
    if h.kind == "conditional":
        cells += [[h.a], [h.b]]  # type: ignore[list-item]
    cells.append([])
    note = f"replication: '{h.short()}' with and without its concepts on {n} new contexts"
    return cells_experiment("replication", note, cells, range(offset, offset + n), palette)
