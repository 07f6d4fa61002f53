"""Experiment design for each phase: survey, screen, pairs (2x2), context search, coverage, causal edits and
replication, each as images that contain exactly the concepts of its cells."""

from __future__ import annotations

from collections.abc import Iterable

from aim_world import vocabulary as vocab
from aim_world.scene import TEXTURE_ADJECTIVES
from aim_world.scientist.concepts import OBJECT_KINDS, Concept, _with_article, noun_category
from aim_world.scientist.experiment import Experiment
from aim_world.scientist.hypotheses import Hyp
from aim_world.scientist.reading import Reading, _is_member
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
# Companions a context search puts next to the leading concept (looking for a condition it needs).
COMPANION_NOUNS = ("leash", "person", "tree", "glove", "spoon", "tie", "umbrella", "dog", "cat", "bird", "car",
                   "hat", "ball", "mountain")
COMPANION_REGIONS = ("sky", "grass", "water")
COMPANION_COLORS = ("blue", "red", "yellow")  # for a background or region: objects of a colour
MAX_COMPANIONS = 20


def survey_prompts() -> list[str]:
    """One image of every noun of the vocabulary (natural colour, backgrounds in turn), then every texture."""
    prompts = []
    for k, noun in enumerate(vocab.NOUNS):
        color = noun.colors[k % len(noun.colors)]
        bg = CONTEXT_BACKGROUNDS[k % len(CONTEXT_BACKGROUNDS)]
        prompts.append(Spec((Obj(noun.name, color),), bg).prompt())
    for k, texture in enumerate(vocab.TEXTURES):
        prompts.append(Spec((Obj(NEUTRAL_NOUNS[k], NEUTRAL_COLORS[k], texture),), "plain").prompt())
    return prompts


def design_survey() -> Experiment:
    note = (f"survey: the exemplars show nothing to start from, so one image of each of the world's "
            f"{len(vocab.NOUNS)} objects (each on another background) and of each texture")
    return Experiment("survey", note, survey_prompts())


def _cells_experiment(phase: str, note: str, cells: list[list[Concept]], contexts: Iterable[int],
                      palette: Palette) -> Experiment:
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
    return _cells_experiment("screen", note, cells, range(SCREEN_CONTEXTS), palette)


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
    return _cells_experiment("pairs", note, cells, range(offset, offset + PAIR_CONTEXTS), palette)


def companions(reading: Reading, a: Concept) -> list[Concept]:
    """Concepts that might be a condition of ``a``: other exemplar concepts first, then regions (or, for a
    background, colours of objects), then common companion objects."""
    attribute_like = a.kind in ("background", "region")
    kinds = ("object", "color") if attribute_like else ("object", "background", "region")
    seen = [c for c in sorted(reading.scores, key=lambda c: (-reading.scores[c], c))
            if c.kind in kinds and reading.scores[c] > 0][:4]
    extra = [Concept("color", c) for c in COMPANION_COLORS] if attribute_like else \
        [Concept("region", r) for r in COMPANION_REGIONS]
    found = [*seen, *extra, *(Concept("object", n) for n in COMPANION_NOUNS)]
    found = [c for c in found if c != a and not _is_member(c, a) and not _is_member(a, c)]
    return list(dict.fromkeys(found))[:MAX_COMPANIONS]


def design_coverage(reading: Reading, lead: Concept, other: Concept, offset: int) -> Experiment:
    """``other`` (from exemplars the leading concept leaves unexplained) alone, next to ``lead`` and controls."""
    palette = Palette.avoiding([lead, other], reading.mentioned)
    note = (f"coverage: some top exemplars show {other.phrase} but no {lead.phrase}; does {other.phrase} "
            "drive the unit on its own (then it responds to either)?")
    return _cells_experiment("coverage", note, [[other], [lead], []], range(offset, offset + SCREEN_CONTEXTS),
                             palette)


def design_context(reading: Reading, a: Concept, offset: int) -> Experiment:
    """``a`` together with each plausible companion, twice, to find a condition it needs."""
    comps = companions(reading, a)
    palette = Palette.avoiding([a, *comps], [])
    cells = [[a, c] for c in comps] + [[a]]
    note = (f"context search: {a.phrase} alone, and with each of {', '.join(c.phrase for c in comps)} "
            "(does anything in the scene switch the response on or off?)")
    return _cells_experiment("context", note, cells, range(offset, offset + 2), palette)


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
    return f"replace the {main} with a {TEXTURE_ADJECTIVES[c.name]} {main}"


def design_replication(reading: Reading, h: Hyp, offset: int, n: int = 6) -> Experiment:
    """The hypothesis's positive and negative cells again, on new contexts."""
    palette = Palette.avoiding(h.concepts, reading.mentioned)
    cells: list[list[Concept]] = [list(h.concepts)] if h.kind != "or" else [[h.a], [h.b]]  # type: ignore[list-item]
    if h.kind == "conditional":
        cells += [[h.a], [h.b]]  # type: ignore[list-item]
    cells.append([])
    note = f"replication: '{h.short()}' with and without its concepts on {n} new contexts"
    return _cells_experiment("replication", note, cells, range(offset, offset + n), palette)
