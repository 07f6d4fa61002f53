"""Parsing text into scenes: which objects (with colour and texture), backgrounds and background regions a
describer's description or an experiment prompt names."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache, lru_cache

from aim_world import vocabulary as vocab
from aim_world.scientist.concepts import PATTERN, Concept, noun_category

MIN_OBJECT_SHARE = 10  # % of a highlighted region an object must fill to count (slivers are noise)
MIN_REGION_SHARE = 25  # % of a highlighted region a background part must fill to count as a concept

_PREPOSITIONS = {"on", "in", "at", "over", "against", "across", "under", "of", "through", "into", "onto"}
_ARTICLES = {"a", "an", "the", "some", "its", "their"}
_NEGATIONS = {"no", "not", "without", "never", "nor", "lacking"}
_SCENE_WORDS = {"background", "backdrop", "scene", "setting", "landscape"}
# Vocabulary synonyms that are far more often ordinary English words in a description.
_STOP_WORDS = {"present", "lead", "figure", "someone", "world", "plant", "drop", "spirit", "light", "bow",
               "pin", "seat", "figures", "home", "camp", "nothing"}
_CLAUSE_SPLIT = re.compile(r"[.;:!?()\[\]\n]|,|\band\b|\bwhile\b|\bbut\b")
_TOKEN = re.compile(r"[a-z][a-z'\-]*")
# The world describer lists a scene's parts ("background of the beach scene: sky (20%), sand (30%)"):
# the scene is a background concept; a part is a region concept when it fills enough of the region and
# several backgrounds have it (sky, grass, water); parts like trees or a room's window are not objects.
_SCENE_PARTS = re.compile(r"background of the ([a-z ]+?) scene\s*:([^.;]*)")
_PART_SHARE = re.compile(r"([a-z][a-z ]*?)\s*\((\d+)%\)")
_NOT_REGIONS = {"wall", "window", "floor", "trees", "dark ground"}
# "... contains the middle of a red camel (2% of the region); ...": an object phrase and its share.
_SLIVERS = re.compile(r"([^;:()]*?)\s*\((\d+)% of the region\)")


def _sliver_dropper(min_share: int) -> Callable[[re.Match[str]], str]:
    def drop(m: re.Match[str]) -> str:
        """Keep an object phrase of the describer only when it fills enough of the highlighted region."""
        if int(m.group(2)) >= min_share:
            return m.group(0)
        return " contains " if m.group(1).strip().startswith("contains") else " "
    return drop


@dataclass
class Thing:
    """An object mentioned in a text, with the attributes written next to it."""

    noun: str
    color: str | None = None
    texture: str | None = None


@dataclass
class Parsed:
    """What a text says is in an image: objects and backgrounds, plus free colour/texture words."""

    things: list[Thing] = field(default_factory=list)
    backgrounds: list[str] = field(default_factory=list)
    colors: list[str] = field(default_factory=list)
    textures: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)

    def concepts(self) -> list[Concept]:
        """Every concept the text mentions, in order of first mention, without repeats."""
        found: list[Concept] = []
        for thing in self.things:
            found.append(Concept("object", thing.noun))
            if thing.color:
                found.append(Concept("color", thing.color))
            if thing.texture:
                found.append(Concept("texture", thing.texture))
        found += [Concept("color", c) for c in self.colors]
        found += [Concept("texture", t) for t in self.textures]
        found += [Concept("background", b) for b in self.backgrounds]
        found += [Concept("region", r) for r in self.regions]
        return list(dict.fromkeys(found))

    def features(self) -> frozenset[str]:
        """What an image with this prompt shows, as concept keys: the concepts named, the category of
        each object, the regions of its background and the objects its parts are (the trees of a forest),
        and object-attribute compounds ('object:car|color:red', 'category:vehicle|color:red')."""
        feats = {c.key for c in self.concepts()}
        for bg in self.backgrounds:
            feats |= {f"region:{r}" for r in regions_of(bg)}
            for noun in noun_parts(bg):
                feats |= {f"object:{noun}", f"category:{noun_category(noun)}"}
        for thing in self.things:
            category = noun_category(thing.noun)
            feats.add(f"category:{category}")
            pattern = PATTERN if thing.texture else None  # any texture is a patterned surface
            for attr, value in (("color", thing.color), ("texture", thing.texture), ("pattern", pattern)):
                if value:
                    feats |= {f"object:{thing.noun}|{attr}:{value}", f"category:{category}|{attr}:{value}",
                              f"{attr}:{value}"}
        if self.textures:
            feats.add(f"pattern:{PATTERN}")
        return frozenset(feats)


def _canonical_part(part: str) -> str | None:
    """The background a background part is named after ('sea' -> water, 'meadow' -> grass), if any."""
    if part in _NOT_REGIONS:
        return None
    return vocab.lookup_background(part) or next(iter(parse_text("on " + part).backgrounds), None)


@cache
def _parts_table() -> dict[str, tuple[str, ...]]:
    """Background -> the canonical names of its parts, from the world's own background renderer."""
    from aim_world.render import background_parts

    table = {}
    for bg in vocab.BACKGROUND_BY_NAME:
        _, parts = background_parts(bg, 16, 0)
        table[bg] = tuple(dict.fromkeys(c for c in (_canonical_part(p) for p in parts) if c))
    return table


@cache
def region_names() -> frozenset[str]:
    """Parts that several backgrounds share (sky, grass, water): concepts of their own."""
    counts: dict[str, int] = {}
    for parts in _parts_table().values():
        for part in parts:
            counts[part] = counts.get(part, 0) + 1
    return frozenset(p for p, n in counts.items() if n >= 2)


@cache
def _raw_parts() -> dict[str, tuple[str, ...]]:
    from aim_world.render import background_parts

    return {bg: tuple(background_parts(bg, 16, 0)[1]) for bg in vocab.BACKGROUND_BY_NAME}


@cache
def part_noun(part: str) -> str | None:
    """The vocabulary noun a background part is drawn as, if any ('trees' -> tree, 'window' -> window)."""
    return vocab.lookup_noun(part)


def noun_parts(background: str) -> tuple[str, ...]:
    """The objects a background shows as its parts (forest: tree; room: window; mountains: mountain)."""
    return tuple(n for n in (part_noun(p) for p in _raw_parts().get(background, ())) if n)


def backgrounds_showing(noun: str) -> list[str]:
    """The backgrounds whose parts show ``noun`` (tree: forest)."""
    return [bg for bg in vocab.BACKGROUND_BY_NAME if noun in noun_parts(bg)]


@cache
def regions_of(background: str) -> tuple[str, ...]:
    """The regions a background contains: the parts several backgrounds share, under their common name, and
    every part of a scene drawn from several parts, under its own ('beach' -> sky, water, sea, sand)."""
    raw = _raw_parts().get(background, ())
    own = raw if len(raw) > 1 else ()
    return tuple(dict.fromkeys([*(p for p in _parts_table().get(background, ()) if p in region_names()), *own]))


def backgrounds_with(region: str) -> list[str]:
    return [bg for bg in vocab.BACKGROUND_BY_NAME if region in regions_of(bg)]


SINGLED_OUT = 0.9  # share of a highlight's background one part must hold to be what the unit fires on ...
SCENE_SHARE = 0.8  # ... when that part fills at most this share of its scene


@cache
def _scene_shares(background: str) -> dict[str, float]:
    """Part -> the share of the scene it fills, from the world's renderer (a few variants)."""
    from aim_world.render import background_parts

    totals: dict[str, float] = {}
    variants = 4
    for v in range(variants):
        labels, parts = background_parts(background, 32, v)
        for i, part in enumerate(parts):
            totals[part] = totals.get(part, 0.0) + float((labels == i).mean()) / variants
    return totals


def singled_out(background: str, shares: dict[str, int]) -> str | None:
    """The one part of ``background`` a highlight is made of, when it holds far more of the highlight than of
    the scene (the unit fires on the sand of a beach, not on the beach): then the region, not the whole scene,
    is what the describer saw the unit respond to."""
    total = sum(shares.values())
    if total <= 0 or len(_raw_parts().get(background, ())) < 2:
        return None
    part, top = max(shares.items(), key=lambda kv: kv[1])
    if top / total >= SINGLED_OUT and _scene_shares(background).get(part, 1.0) <= SCENE_SHARE:
        return part
    return None


def _lookups(phrase: str) -> dict[str, str]:
    """Every vocabulary reading of a phrase: kind -> canonical name."""
    found = {}
    for kind, fn in (("noun", vocab.lookup_noun), ("background", vocab.lookup_background),
                     ("color", vocab.lookup_color), ("texture", vocab.lookup_texture)):
        name = fn(phrase)
        if name:
            found[kind] = name
    return found


def _spans(tokens: list[str]) -> list[tuple[int, int, dict[str, str]]]:
    """Longest vocabulary matches, left to right: (start, end, readings)."""
    spans, i = [], 0
    while i < len(tokens):
        for n in range(min(4, len(tokens) - i), 0, -1):
            phrase = " ".join(tokens[i : i + n])
            if n == 1 and phrase in _STOP_WORDS:
                continue
            readings = _lookups(phrase)
            if readings:
                spans.append((i, i + n, readings))
                i += n
                break
        else:
            i += 1
    return spans


def _negated(tokens: list[str], start: int) -> bool:
    before = tokens[max(0, start - 3) : start]
    return any(t in _NEGATIONS for t in before)


def _as_background(tokens: list[str], start: int, end: int) -> bool:
    """Whether a word that can be an object or a background is used as a background here."""
    prev = [t for t in tokens[max(0, start - 2) : start] if t not in _ARTICLES]
    after = tokens[end] if end < len(tokens) else ""
    return bool(prev and prev[-1] in _PREPOSITIONS) or after in _SCENE_WORDS


def _resolve(tokens: list[str], spans: list, idx: int) -> tuple[str, str]:
    """Choose one reading of span ``idx`` from its neighbours."""
    start, end, readings = spans[idx]
    if "noun" in readings and "background" in readings:
        return ("background", readings["background"]) if _as_background(tokens, start, end) \
            else ("noun", readings["noun"])
    if "noun" in readings and ("color" in readings or "texture" in readings):
        nxt = spans[idx + 1] if idx + 1 < len(spans) else None
        modifies = nxt is not None and nxt[0] == end and ("noun" in nxt[2] or "texture" in nxt[2]
                                                        or "color" in nxt[2])
        if modifies:
            kind = "color" if "color" in readings else "texture"
            return kind, readings[kind]
        return "noun", readings["noun"]
    for kind in ("background", "noun", "color", "texture"):
        if kind in readings:
            return kind, readings[kind]
    raise AssertionError("a span always has a reading")


def _parse_clause(tokens: list[str], out: Parsed) -> None:
    spans = _spans(tokens)
    colors: list[str] = []
    textures: list[str] = []
    last: Thing | None = None
    for idx, (start, _end, _readings) in enumerate(spans):
        kind, name = _resolve(tokens, spans, idx)
        if _negated(tokens, start):
            continue
        if kind == "noun":
            last = Thing(name, colors[-1] if colors else None, textures[-1] if textures else None)
            out.things.append(last)
            colors, textures = [], []
        elif kind == "background":
            out.backgrounds.append(name)
        elif kind == "color":
            colors.append(name)
        else:
            textures.append(name)
    for color in colors:  # attributes after the noun ("a dog, brown") or free ("blue background")
        if last is not None and last.color is None:
            last.color = color
        else:
            out.colors.append(color)
    for texture in textures:
        if last is not None and last.texture is None:
            last.texture = texture
        else:
            out.textures.append(texture)


@lru_cache(maxsize=65536)
def prompt_features(text: str) -> frozenset[str]:
    """``parse_text(text).features()``, remembered (experiments repeat prompts; the scientist re-reads its
    whole evidence, and the exemplars' descriptions, every round)."""
    return _parse_shared(text, MIN_OBJECT_SHARE).features()


@lru_cache(maxsize=16384)
def text_concepts(text: str) -> tuple[Concept, ...]:
    """``parse_text(text).concepts()``, remembered (the same descriptions are read every round)."""
    return tuple(_parse_shared(text, MIN_OBJECT_SHARE).concepts())


def parse_text(text: str, min_object_share: int = MIN_OBJECT_SHARE) -> Parsed:
    """Objects (with colour and texture), backgrounds and free attributes named in ``text``.

    A text is parsed once per process (a run reads the same descriptions and prompts every round);
    each call returns its own copy, which the caller may change.

    A describer's object phrase counts when it fills ``min_object_share`` % of the highlighted region (0: every
    object named, for a whole image where a small companion matters as much as a large one).

    Negated mentions ("no leash", "without a hat") are dropped; words that are both an object
    and a background ("mountains") are backgrounds after a preposition or before
    "background"; a colour that is also an object ("orange") is a colour when it modifies
    the next word.
    """
    shared = _parse_shared(text, min_object_share)
    return Parsed([replace(t) for t in shared.things], list(shared.backgrounds), list(shared.colors),
                  list(shared.textures), list(shared.regions))


@lru_cache(maxsize=16384)
def _parse_shared(text: str, min_object_share: int) -> Parsed:
    """:func:`parse_text`'s parse, remembered; shared by every caller, so never changed."""
    out = Parsed()
    part_things: list[Thing] = []
    lowered = _SLIVERS.sub(_sliver_dropper(min_object_share), text.lower().replace("_", " "))
    whole_scene: dict[str, str] = {}  # scene phrase -> what replaces it: the background, or nothing
    for m in _SCENE_PARTS.finditer(lowered):
        scene = m.group(1).strip()
        shares = {part.strip(): int(share) for part, share in _PART_SHARE.findall(m.group(2))}
        background = vocab.lookup_background(scene)
        own = regions_of(background) if background else ()
        only = singled_out(background, shares) if background else None
        whole_scene[m.group(0)] = "." if only else f"on a {scene} background."
        for part, share in shares.items():
            if share < MIN_REGION_SHARE:
                continue
            if part in own:
                out.regions.append(part)  # the part under its own name (the sea of a beach) ...
            name = _canonical_part(part)
            if name in region_names():
                out.regions.append(name)  # ... and under the name several backgrounds share (water)
            noun = part_noun(part)
            if noun is not None:  # a part drawn as an object (the trees of a forest): the object, seen
                part_things.append(Thing(noun))
    lowered = _SCENE_PARTS.sub(lambda m: whole_scene[m.group(0)], lowered)
    for clause in _CLAUSE_SPLIT.split(lowered):
        tokens = [t.strip("'-") for t in _TOKEN.findall(clause)]
        tokens = [t for t in tokens if t]
        if tokens:
            _parse_clause(tokens, out)
    out.things += part_things
    out.backgrounds = list(dict.fromkeys(out.backgrounds))
    out.regions = list(dict.fromkeys(out.regions))
    return out
