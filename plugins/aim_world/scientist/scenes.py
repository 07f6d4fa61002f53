"""Scenes to draw: the objects and background of one image, realized from a set of concepts, with context
material (backgrounds, nouns, colours) that never touches the concepts under test."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aim_world import vocabulary as vocab
from aim_world.scene import TEXTURE_ADJECTIVES
from aim_world.scientist.concepts import KIND_ORDER, Concept, noun_category
from aim_world.scientist.parsing import noun_parts, regions_of

BACKGROUND_PHRASES = {
    "plain": "on a plain background", "sky": "in the sky", "grass": "on grass", "water": "on water",
    "snow": "on snow", "beach": "on a beach", "desert": "in the desert", "road": "on a road",
    "brick wall": "against a brick wall", "forest": "in a forest", "room": "in a room",
    "night": "at night", "mountains": "in the mountains",
}
# Contexts the experiments vary, all from the world vocabulary in fixed orders: every background but the plain
# one (plain comes last: objects in isolation are the survey's business), every colour, and as neutral objects
# every fifth of the vocabulary's household objects (its "object" category, in vocabulary order).
CONTEXT_BACKGROUNDS = (*(b.name for b in vocab.BACKGROUNDS if b.name != "plain"), "plain")
NEUTRAL_NOUNS = tuple(n.name for n in vocab.NOUNS if n.category == "object")[::5]
NEUTRAL_COLORS = tuple(vocab.COLORS)


@dataclass(frozen=True)
class Obj:
    noun: str
    color: str
    texture: str | None = None

    def phrase(self) -> str:
        tex = f" {TEXTURE_ADJECTIVES[self.texture]}" if self.texture else ""
        article = "an" if self.color[0] in "aeiou" else "a"
        return f"{article} {self.color}{tex} {self.noun}"


@dataclass(frozen=True)
class Spec:
    """One image to generate: objects and a background."""

    objects: tuple[Obj, ...]
    background: str

    def prompt(self) -> str:
        first, *rest = self.objects
        text = first.phrase() + "".join(f" with {o.phrase()}" for o in rest)
        return f"{text} {BACKGROUND_PHRASES.get(self.background, 'on ' + self.background)}"


@dataclass
class Palette:
    """Context material the experiments draw from: never one of the concepts under test.

    ``backgrounds``, ``nouns`` and ``colors`` are the neutral contexts (no tested background,
    no background holding a tested region, no noun the exemplars mention or of a tested
    category, no tested colour); ``excluded_*`` are never used, not even for positive cells.
    """

    backgrounds: list[str]
    nouns: list[str]
    colors: list[str]
    excluded_backgrounds: frozenset[str] = frozenset()
    excluded_nouns: frozenset[str] = frozenset()

    @classmethod
    def avoiding(cls, tested: Iterable[Concept], mentioned: Iterable[Concept] = ()) -> Palette:
        tested = list(tested)
        names = {kind: {c.name for c in tested if c.kind == kind} for kind in KIND_ORDER}
        avoid_nouns = names["object"] | {m for c in [*tested, *mentioned] if c.kind == "group" for m in c.members}
        avoid_nouns |= {c.name for c in mentioned if c.kind == "object"}
        tested_nouns = names["object"] | {m for c in tested if c.kind == "group" for m in c.members}
        bgs = [b for b in CONTEXT_BACKGROUNDS
               if b not in names["background"] and not set(regions_of(b)) & names["region"]
               and not set(noun_parts(b)) & tested_nouns
               and not {noun_category(n) for n in noun_parts(b)} & names["category"]]
        nouns = [n for n in NEUTRAL_NOUNS if n not in avoid_nouns and noun_category(n) not in names["category"]]
        if not nouns:
            nouns = [n.name for n in vocab.NOUNS if n.name not in avoid_nouns and n.category not in
                     names["category"]][:12]
        colors = [c for c in NEUTRAL_COLORS if c not in names["color"]]
        return cls(bgs or ["plain"], nouns, colors, frozenset(names["background"]), frozenset(avoid_nouns))

    def background(self, i: int) -> str:
        return self.backgrounds[i % len(self.backgrounds)]

    def noun(self, i: int) -> str:
        return self.nouns[(3 * i + 1) % len(self.nouns)]

    def member(self, category: str, i: int) -> str:
        """A noun of ``category`` for context i (a different one in each context)."""
        members = [n.name for n in vocab.NOUNS if n.category == category and n.name not in self.excluded_nouns]
        return members[(5 * i + 2) % len(members)] if members else self.noun(i)

    def background_with(self, regions: Sequence[str], i: int) -> str | None:
        """A background holding every region in ``regions``, for context i."""
        options = [b for b in CONTEXT_BACKGROUNDS if set(regions) <= set(regions_of(b))]
        options = [b for b in options if b not in self.excluded_backgrounds] or options
        return options[i % len(options)] if options else None

    def color_for(self, noun: str, i: int) -> str:
        """A natural colour of ``noun`` (cycling with i) that is not under test."""
        natural = [c for c in vocab.NOUN_BY_NAME[noun].colors if c in self.colors] if noun in vocab.NOUN_BY_NAME \
            else []
        pool = natural or self.colors
        return pool[i % len(pool)]


def _cycle(items: Sequence[str], i: int) -> str:
    return items[i % len(items)]


def realize(cell: Sequence[Concept], i: int, palette: Palette) -> Spec | None:
    """The image of context ``i`` that contains exactly the concepts of ``cell`` (None if impossible)."""
    def named(kind: str) -> list[str]:
        return [c.name for c in cell if c.kind == kind]

    objects = named("object") + [palette.member(cat, i) for cat in named("category")]
    objects += [_cycle(c.members, i) for c in cell if c.kind == "group"]
    colors, textures = named("color"), named("texture")
    # a pattern: a different texture in each context, so its images show every texture of the world in turn
    textures += [_cycle(c.textures, i) for c in cell if c.kind == "pattern"]
    backgrounds, regions = named("background"), named("region")
    if len(backgrounds) > 1 or (backgrounds and not set(regions) <= set(regions_of(backgrounds[0]))):
        return None
    background = backgrounds[0] if backgrounds else palette.background_with(regions, i) if regions \
        else palette.background(i)
    if background is None:
        return None
    nouns = objects or [palette.noun(i)]
    while len(nouns) < max(len(colors), len(textures)):
        nouns.append(palette.noun(i + len(nouns)))
    objs = [Obj(n, colors[k] if k < len(colors) else palette.color_for(n, i + k),
                textures[k] if k < len(textures) else None) for k, n in enumerate(nouns)]
    return Spec(tuple(objs), background)
