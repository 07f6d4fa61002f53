"""Prompt -> scene graph.

A small, deterministic reader of prompts like "three striped cats next to a blue car on the
beach" or "a person holding a red umbrella in the snow". It knows articles, numbers, colours,
textures, sizes, styles, spatial relations, compositions ("X with Y", "X holding Y") and
backgrounds; every other word is reported in :attr:`Scene.unknown_words`, never silently
dropped. Placement is random but deterministic for a (prompt, seed) pair, respects the
relations and keeps objects from covering each other.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from aim_agent.providers import ProviderError
from aim_world.render import glyph_extent
from aim_world.scene import Scene, SceneObject, SceneRelation
from aim_world.vocabulary import (
    BACKGROUND_BY_NAME,
    DEFAULT_BACKGROUND,
    NOUN_BY_NAME,
    SIZES,
    STYLES,
    TEXTURE_SYNONYMS,
    background_lexicon,
    closest_words,
    color_lexicon,
    describe_vocabulary,
    noun_lexicon,
    plurals,
)

MAX_OBJECTS = 12

STOP_WORDS = frozenset({
    "a", "an", "the", "of", "and", "or", "is", "are", "was", "were", "be", "been", "being", "to", "that",
    "this", "these", "those", "there", "here", "it", "its", "their", "his", "her", "them", "they", "he",
    "she", "we", "you", "i", "my", "your", "our", "very", "really", "some", "any", "with", "in", "on",
    "at", "by", "near", "under", "over", "against", "from", "for", "into", "onto", "as", "while", "which",
    "who", "whom", "whose", "photo", "photograph", "picture", "image", "drawing", "illustration",
    "painting", "render", "scene", "background", "view", "shot", "closeup", "close", "up", "together",
    "also", "just", "another", "other", "each", "every", "all", "both", "s", "has", "have", "having",
    "stands", "featuring", "shows", "showing", "depicting", "containing", "contains", "set", "placed",
    "sits", "standing", "sitting",
})

NUMBERS: dict[str, int] = {
    "one": 1, "single": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a pair of": 2, "pair of": 2, "a couple of": 2,
    "couple of": 2, "several": 3, "a few": 3, "few": 3, "many": 5, "lots of": 5, "a lot of": 5,
    "a group of": 4, "group of": 4, "a bunch of": 4, "bunch of": 4, "a dozen": 12, "dozen": 12,
    "a herd of": 4, "a flock of": 4, "a row of": 4, "row of": 4, "twin": 2, "twins": 2,
}
RELATIONS: dict[str, str] = {
    "left of": "left of", "to the left of": "left of", "on the left of": "left of",
    "on the left side of": "left of", "right of": "right of", "to the right of": "right of",
    "on the right of": "right of", "on the right side of": "right of",
    "above": "above", "over": "above", "below": "below", "under": "below", "underneath": "below",
    "beneath": "below", "next to": "next to", "beside": "next to", "besides": "next to", "near": "next to",
    "by": "next to", "alongside": "next to", "close to": "next to", "on top of": "on top of",
    "atop": "on top of", "on": "on top of", "upon": "on top of", "onto": "on top of", "riding": "on top of",
    "on the back of": "on top of",
}
COMPOSE: dict[str, str] = {
    "with": "with", "holding": "holding", "carrying": "holding", "wearing": "with", "has": "with",
    "having": "with", "and its": "with", "with its": "with", "on a leash": "with", "grabbing": "holding",
}
HINTS: dict[str, tuple[str, str]] = {
    "on the left": ("x", "left"), "at the left": ("x", "left"), "to the left": ("x", "left"),
    "on the right": ("x", "right"), "at the right": ("x", "right"), "to the right": ("x", "right"),
    "at the top": ("y", "top"), "on top": ("y", "top"), "at the bottom": ("y", "bottom"),
    "in the middle": ("x", "middle"), "in the center": ("x", "middle"), "in the centre": ("x", "middle"),
}
BG_PREPOSITIONS = frozenset({"in", "on", "at", "by", "near", "under", "over", "against", "across", "inside",
                             "within", "into", "onto", "through", "along", "beneath", "amid", "among",
                             "above", "below", "underneath", "atop", "upon", "beside"})
AND_WORDS = frozenset({"and", "plus", "also"})


@dataclass
class Token:
    kind: str  # noun color texture size style number relation compose hint background and stop unknown
    value: object
    text: str
    plural: bool = False


@dataclass
class Group:
    """One noun phrase: ``count`` objects sharing attributes."""

    noun: str
    count: int = 1
    color: str | None = None
    texture: str | None = None
    size: float = 1.0
    style: str | None = None
    parent: int | None = None  # group index this one is attached to
    attach: str | None = None  # with / holding
    hint: dict[str, str] = field(default_factory=dict)
    text: str = ""


@dataclass
class Parsed:
    groups: list[Group]
    relations: list[tuple[int, str, int]]
    background: str | None
    unknown: list[str]
    notes: list[str]


# --------------------------------------------------------------------------- tokens


def normalize(text: str) -> list[str]:
    text = text.lower().replace("'s ", " ").replace("’s ", " ")
    return re.findall(r"[a-z]+|\d+", text.replace("-", " "))


@cache
def _plural_forms() -> frozenset[str]:
    singular = set()
    plural = set()
    for noun in NOUN_BY_NAME.values():
        for form in (noun.name, *noun.synonyms):
            f = " ".join(form.replace("-", " ").split())
            singular.add(f)
            plural.update(" ".join(p.replace("-", " ").split()) for p in plurals(form))
    return frozenset(plural - singular)


def _lexicon_kinds(phrase: str) -> list[tuple[str, object]]:
    tables: tuple[tuple[str, Mapping[str, object]], ...] = (
        ("hint", HINTS), ("relation", RELATIONS), ("compose", COMPOSE), ("number", NUMBERS),
        ("texture", TEXTURE_SYNONYMS), ("noun", noun_lexicon()), ("color", color_lexicon()), ("size", SIZES),
        ("style", STYLES), ("background", background_lexicon()),
    )
    kinds: list[tuple[str, object]] = [(kind, table[phrase]) for kind, table in tables if phrase in table]
    if phrase in AND_WORDS:
        kinds.append(("and", None))
    return kinds


def tokenize(text: str) -> list[Token]:
    """Longest-match the words of ``text`` against the vocabulary (ambiguities resolved by context)."""
    words = normalize(text)
    out: list[Token] = []
    i = 0
    while i < len(words):
        for n in range(min(5, len(words) - i), 0, -1):
            phrase = " ".join(words[i : i + n])
            kinds = _lexicon_kinds(phrase)
            if kinds:
                break
        else:
            n, phrase = 1, words[i]
            kinds = [("number", int(phrase))] if phrase.isdigit() else []
        i += n
        if not kinds:
            kind = "stop" if phrase in STOP_WORDS else "unknown"
            out.append(Token(kind, None, phrase))
            continue
        out.append(_choose(kinds, phrase, out, words[i:]))
    return out


def _choose(kinds: list[tuple[str, object]], phrase: str, before: list[Token], after: list[str]) -> Token:
    """Pick one meaning of an ambiguous phrase from its neighbours."""
    names = [k for k, _ in kinds]
    value = dict(kinds)
    prev = next((t for t in reversed(before) if t.kind != "stop"), None)
    prev_word = before[-1].text if before else ""
    prev2 = before[-2].text if len(before) > 1 else ""
    after_prep = prev_word in BG_PREPOSITIONS or (prev_word in {"the", "a", "an"} and prev2 in BG_PREPOSITIONS)
    if "background" in names and "noun" in names:
        # "in the mountains" is a place, "a mountain" is an object
        if after_prep and not (prev and prev.kind in {"color", "size", "texture", "style", "number"}):
            return Token("background", value["background"], phrase)
        return Token("noun", value["noun"], phrase, plural=phrase in _plural_forms())
    if "color" in names and "noun" in names:  # "an orange cat" vs "an orange"
        nxt = _lexicon_kinds(after[0]) if after else []
        if any(k in {"noun", "color", "texture", "size", "style"} for k, _ in nxt):
            return Token("color", value["color"], phrase)
        return Token("noun", value["noun"], phrase, plural=phrase in _plural_forms())
    if "relation" in names and "compose" in names:
        return Token("relation", value["relation"], phrase)
    kind, val = kinds[0]
    return Token(kind, val, phrase, plural=kind == "noun" and phrase in _plural_forms())


# --------------------------------------------------------------------------- grammar


def read(prompt: str) -> Parsed:
    """The noun phrases, relations and background of a prompt (no placement yet)."""
    tokens = tokenize(prompt)
    groups: list[Group] = []
    relations: list[tuple[int, str, int]] = []
    background: str | None = None
    unknown: list[str] = []
    notes: list[str] = []
    mods: dict[str, object] = {}
    mod_words: list[str] = []
    pending_rel: str | None = None
    pending_compose: str | None = None
    main: int | None = None  # the group relations and compositions refer to

    def flush_mods() -> None:
        """Modifiers with no noun after them describe the last noun ("a dog that is red")."""
        nonlocal mods, mod_words
        if mods and groups:
            g = groups[-1]
            for key, val in mods.items():
                if key == "count":
                    continue
                if key == "size":
                    g.size *= float(val)  # type: ignore[arg-type]
                elif getattr(g, key) is None:
                    setattr(g, key, val)
        elif mods:
            unknown.extend(mod_words)
        mods, mod_words = {}, []

    modifier_kinds = {"color", "texture", "size", "style", "number"}

    def names_a_noun(k: int) -> bool:
        """Whether the modifiers from token ``k`` on end in a noun ("with a gray spiral spoon")."""
        while k < len(tokens) and tokens[k].kind in modifier_kinds:
            k += 1
        return k < len(tokens) and tokens[k].kind == "noun"

    for index, tok in enumerate(tokens):
        if tok.kind in modifier_kinds:
            key = "count" if tok.kind == "number" else tok.kind
            if tok.kind == "texture" and pending_compose == "with" and groups and not names_a_noun(index):
                # "a dog with stripes": a texture, not a second object
                groups[-1].texture = str(tok.value)
                pending_compose = None
                if mods:
                    unknown.extend(mod_words)
                    mods, mod_words = {}, []
                continue
            if tok.kind == "size" and "size" in mods:
                mods["size"] = float(mods["size"]) * float(tok.value)  # type: ignore[arg-type]
            else:
                mods[key] = tok.value
            mod_words.append(tok.text)
        elif tok.kind == "noun":
            noun = str(tok.value)
            count = int(mods.pop("count", 0) or 0)  # type: ignore[arg-type]
            if count == 0:
                count = 0 if tok.plural else 1  # 0: "some", filled in at layout
            g = Group(
                noun=noun, count=count, color=mods.get("color"), texture=mods.get("texture"),  # type: ignore[arg-type]
                size=float(mods.get("size", 1.0)), style=mods.get("style"), text=tok.text,  # type: ignore[arg-type]
            )
            mods, mod_words = {}, []
            groups.append(g)
            gi = len(groups) - 1
            if pending_compose and main is not None:
                g.parent, g.attach = main, pending_compose
                pending_compose = None
                if pending_rel:
                    pending_rel = None
            else:
                if pending_rel and main is not None:
                    relations.append((main, pending_rel, gi))
                pending_rel = None
                main = gi
        elif tok.kind == "relation":
            flush_mods()
            pending_rel, pending_compose = str(tok.value), None
        elif tok.kind == "compose":
            flush_mods()
            pending_compose, pending_rel = str(tok.value), None
        elif tok.kind == "hint":
            flush_mods()
            if groups:
                axis, where = tok.value  # type: ignore[misc]
                groups[main if main is not None else -1].hint[axis] = where
            else:
                unknown.append(tok.text)
        elif tok.kind == "background":
            flush_mods()
            if background and background != tok.value:
                notes.append(f"several backgrounds named; drew {tok.value!r}, not {background!r}")
            background = str(tok.value)
            pending_rel = pending_compose = None
        elif tok.kind == "and":
            flush_mods()
            pending_rel = pending_compose = None
        elif tok.kind == "unknown":
            unknown.append(tok.text)
    flush_mods()
    seen: set[str] = set()
    unknown = [w for w in unknown if not (w in seen or seen.add(w))]  # type: ignore[func-returns-value]
    return Parsed(groups, relations, background, unknown, notes)


# --------------------------------------------------------------------------- layout


def _rng(prompt: str, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}|{' '.join(normalize(prompt))}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


_BASE_SIZE = {1: 0.5, 2: 0.38, 3: 0.31, 4: 0.27, 5: 0.24, 6: 0.22, 7: 0.2}


@dataclass
class _Box:
    noun: str
    size: float
    zone: str
    hint: dict[str, str]
    x: float = 0.5
    y: float = 0.5
    hw: float = field(init=False)  # half width and half height, fractions of the image side
    hh: float = field(init=False)

    def __post_init__(self) -> None:
        wf, hf = glyph_extent(self.noun)
        self.hw, self.hh = wf * self.size / 2, hf * self.size / 2


def _overlap(a: _Box, b: _Box) -> float:
    ix = max(0.0, min(a.x + a.hw, b.x + b.hw) - max(a.x - a.hw, b.x - b.hw))
    iy = max(0.0, min(a.y + a.hh, b.y + b.hh) - max(a.y - a.hh, b.y - b.hh))
    small = min(4 * a.hw * a.hh, 4 * b.hw * b.hh)
    return ix * iy / small if small > 0 else 0.0


def _y_range(box: _Box, horizon: float | None) -> tuple[float, float]:
    lo, hi = box.hh, 1 - box.hh
    if box.hint.get("y") == "top":
        return lo, max(lo, min(hi, 0.38))
    if box.hint.get("y") == "bottom":
        return min(hi, max(lo, 0.62)), hi
    if horizon is not None and box.zone == "ground":
        g_lo, g_hi = horizon + 0.1 - box.hh, 0.97 - box.hh
        if g_hi >= max(lo, g_lo):
            return max(lo, g_lo), g_hi
        return hi, hi
    if box.zone == "sky":
        top = (horizon if horizon is not None else 0.6) - box.hh
        return lo, max(lo, min(hi, top))
    return lo, hi


def _x_range(box: _Box) -> tuple[float, float]:
    lo, hi = box.hw, 1 - box.hw
    where = box.hint.get("x")
    if where == "left":
        return lo, max(lo, min(hi, 0.35))
    if where == "right":
        return min(hi, max(lo, 0.65)), hi
    if where == "middle":
        return max(lo, min(hi, 0.4)), min(hi, max(lo, 0.6))
    return lo, hi


def _place_relative(s: _Box, rel: str, o: _Box, rng: np.random.Generator, grounded: bool) -> None:
    gap = rng.uniform(0.01, 0.06)
    if rel == "next to":
        rel = "left of" if rng.random() < 0.5 else "right of"
    if rel in {"left of", "right of"}:
        sign = -1 if rel == "left of" else 1
        s.x = o.x + sign * (o.hw + s.hw + gap)
        s.y = o.y + o.hh - s.hh if grounded else o.y + rng.uniform(-0.3, 0.3) * o.hh
    elif rel in {"above", "below", "on top of"}:
        sign = -1 if rel != "below" else 1
        touch = rel == "on top of"
        s.y = o.y + sign * (o.hh + s.hh + (-0.2 * min(o.hh, s.hh) if touch else gap))
        s.x = o.x + rng.uniform(-0.25, 0.25) * o.hw


def _attach(child: _Box, parent: _Box, kind: str, worn: bool, rng: np.random.Generator) -> None:
    if worn:
        child.x = parent.x + rng.uniform(-0.15, 0.15) * parent.hw
        child.y = parent.y - parent.hh + 0.35 * child.hh
        return
    side = 1 if parent.x <= 0.5 else -1
    child.x = parent.x + side * (parent.hw + 0.25 * child.hw)
    lift = -0.35 if kind == "holding" else 0.15
    child.y = parent.y + lift * parent.hh


def _inside(b: _Box) -> bool:
    eps = 1e-6
    return b.hw - eps <= b.x <= 1 - b.hw + eps and b.hh - eps <= b.y <= 1 - b.hh + eps


def layout(parsed: Parsed, rng: np.random.Generator) -> tuple[list[SceneObject], list[SceneRelation], list[str]]:
    """Expand groups into objects and place them; returns objects, relations (object indices), notes."""
    notes: list[str] = []
    # expand counts
    members: list[list[int]] = []
    specs: list[Group] = []
    parents: list[int | None] = []
    total = 0
    for g in parsed.groups:
        count = g.count if g.count > 0 else int(rng.integers(2, 4))
        if total + count > MAX_OBJECTS:
            notes.append(f"at most {MAX_OBJECTS} objects: drew {max(0, MAX_OBJECTS - total)} of {count} {g.noun}")
            count = max(0, MAX_OBJECTS - total)
        members.append(list(range(total, total + count)))
        for _ in range(count):
            specs.append(g)
            parents.append(None)
        total += count
    for gi, g in enumerate(parsed.groups):  # attached groups: member k belongs to parent member k
        if g.parent is not None and members[g.parent]:
            for k, idx in enumerate(members[gi]):
                parents[idx] = members[g.parent][min(k, len(members[g.parent]) - 1)]
    relations = [
        (s, rel, members[o][0])
        for (sg, rel, o) in parsed.relations
        if members[o]
        for s in members[sg]
    ]
    horizon = BACKGROUND_BY_NAME[parsed.background or DEFAULT_BACKGROUND].horizon
    n_main = sum(1 for p in parents if p is None)
    base = _BASE_SIZE.get(n_main, 0.18)
    colors = [spec.color or str(rng.choice(NOUN_BY_NAME[spec.noun].colors)) for spec in specs]
    jitter = rng.uniform(0.92, 1.08, size=len(specs))

    def sizes(shrink: float) -> list[float]:
        out = []
        for i, spec in enumerate(specs):
            if parents[i] is None:
                out.append(base * spec.size * jitter[i] * shrink)
            else:
                worn = NOUN_BY_NAME[spec.noun].worn
                out.append(out[parents[i]] * (0.42 if worn else 0.5) * spec.size)  # type: ignore[index]
        return [float(np.clip(s, 0.05, 0.9)) for s in out]

    best: tuple[float, list[_Box]] | None = None
    shrink = 1.0
    for attempt in range(160):
        if attempt and attempt % 40 == 0:  # crowded: shrink everything a little and try again
            shrink *= 0.85
        boxes = [_Box(spec.noun, sz, NOUN_BY_NAME[spec.noun].zone, spec.hint)
                 for spec, sz in zip(specs, sizes(shrink), strict=True)]
        for i, b in enumerate(boxes):
            if parents[i] is None:
                b.x = rng.uniform(*_x_range(b))
                b.y = rng.uniform(*_y_range(b, horizon))
        for _ in range(2):  # twice, so chains of relations settle
            for s, rel, o in relations:
                grounded = horizon is not None and boxes[s].zone == boxes[o].zone == "ground"
                _place_relative(boxes[s], rel, boxes[o], rng, grounded)
        for i, b in enumerate(boxes):
            if parents[i] is not None:
                _attach(b, boxes[parents[i]], specs[i].attach or "with", NOUN_BY_NAME[specs[i].noun].worn, rng)
        penalty = 0.0
        for i, b in enumerate(boxes):
            if not _inside(b):
                penalty += 1.0
            for j in range(i):
                if parents[i] == j or parents[j] == i or (parents[i] is not None and parents[i] == parents[j]):
                    continue
                if any({s, o} == {i, j} and rel == "on top of" for s, rel, o in relations):
                    continue
                ov = _overlap(b, boxes[j])
                if ov > 0.12:
                    penalty += ov
        if best is None or penalty < best[0]:
            best = (penalty, boxes)
        if penalty == 0:
            break
    assert best is not None or not specs
    boxes = best[1] if best else []
    if best and best[0] > 0:
        notes.append("could not place every object without overlap or inside the frame; drew the best layout")
    objects = []
    for i, b in enumerate(boxes):
        spec = specs[i]
        x = float(np.clip(b.x, b.hw, 1 - b.hw)) if b.hw < 0.5 else 0.5
        y = float(np.clip(b.y, b.hh, 1 - b.hh)) if b.hh < 0.5 else 0.5
        objects.append(SceneObject(
            noun=spec.noun, color=colors[i], texture=spec.texture, style=spec.style or "filled",  # type: ignore[arg-type]
            x=round(x, 4), y=round(y, 4), size=round(b.size, 4), attached_to=parents[i],
        ))
    scene_relations = [SceneRelation(subject=s, relation=rel, object=o) for s, rel, o in relations]  # type: ignore[arg-type]
    for i, p in enumerate(parents):
        if p is not None:
            scene_relations.append(SceneRelation(subject=p, relation=specs[i].attach or "with", object=i))  # type: ignore[arg-type]
    return objects, scene_relations, notes


# --------------------------------------------------------------------------- entry point


def parse(prompt: str, seed: int = 0) -> Scene:
    """Read a prompt into a scene graph (deterministic for a (prompt, seed) pair).

    Raises :class:`ProviderError` when nothing in the prompt can be drawn.
    """
    parsed = read(prompt)
    if not parsed.groups and parsed.background is None:
        close = sorted({c for w in parsed.unknown for c in closest_words(w)})
        hint = f" Close words the world knows: {', '.join(close)}." if close else ""
        unknown = ", ".join(repr(w) for w in parsed.unknown) or "none"
        raise ProviderError(
            f"the world cannot draw anything in {prompt!r} (unknown words: {unknown}).{hint} "
            f"It draws {describe_vocabulary()}."
        )
    objects, relations, notes = layout(parsed, _rng(prompt, seed))
    return Scene(
        background=parsed.background or DEFAULT_BACKGROUND, objects=objects, relations=relations,
        seed=seed, prompt=prompt, unknown_words=parsed.unknown, notes=parsed.notes + notes,
    )
