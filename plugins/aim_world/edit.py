"""Edits of a scene graph, the way MAIA phrases them: "replace the dog with a cat", "make the car
green", "change the background to snow", "add a tree", "remove the dog", "make the dog bigger",
"move the car to the left", "make the ball striped". An object added "behind" another is drawn before it
(partly hidden), one added "in front of" it after it.

An edit changes the scene graph and nothing else, so after re-rendering, the pixels outside the
edited object's old and new masks are exactly the original's (a background change leaves
every object's pixels unchanged). An instruction the editor cannot read or apply is refused
with a reason (``EditResult.applied`` is False, the scene is returned unchanged): never
silently half-done.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import numpy as np

from aim_world.parse import (
    MAX_OBJECTS,
    OVERLAPPING,
    Token,
    _attach,
    _Box,
    _grounded,
    _overlap,
    _place_relative,
    _x_range,
    _y_range,
    occlusion_order,
    read,
    tokenize,
)
from aim_world.render import Rendered, glyph_extent, record_visibility
from aim_world.scene import Scene, SceneObject, SceneRelation
from aim_world.variety import object_look
from aim_world.vocabulary import BACKGROUND_BY_NAME, NOUN_BY_NAME, lookup_background, lookup_color

MOVE_STEP = 0.2  # fraction of the image side a "move" shifts an object
RESIZE = {"bigger": 1.4, "larger": 1.4, "greater": 1.4, "smaller": 0.7, "tinier": 0.5, "shorter": 0.7,
          "taller": 1.4, "wider": 1.4}
_REFERENCE_PRONOUNS = {"it", "them", "object", "objects", "thing", "everything"}

HELP = (
    "the world's editor understands: 'replace the X with a Y', 'change the color of the X to C' / 'make "
    "the X C', 'make the X striped|dotted|checkered|spiral|wavy|outlined|solid', 'change the background "
    "to B', 'make it night|snowy|day', 'add a (C) Y (next to|behind|in front of the X)', 'remove the X' / "
    "'remove one X' / 'remove two of the X' / 'remove the left one', 'make the X bigger|smaller', "
    "'move the X left|right|up|down'"
)


@dataclass
class EditResult:
    """What an edit did: ``changed_old``/``changed_new`` are the indices of the edited objects in the
    original and in the edited scene (added objects only in the new, removed only in the old)."""

    applied: bool
    notes: list[str] = field(default_factory=list)
    kind: str = "none"
    changed_old: list[int] = field(default_factory=list)
    changed_new: list[int] = field(default_factory=list)
    background_changed: bool = False


class _Refused(Exception):
    """An instruction that cannot be applied; ``firm``: the instruction was understood, so this reason wins
    over those of other readings of it."""

    def __init__(self, reason: str, firm: bool = False) -> None:
        super().__init__(reason)
        self.firm = firm


# --------------------------------------------------------------------------- references


def _clean(text: str) -> str:
    text = text.lower().strip().rstrip(".!?").replace("colour", "color").replace("grey", "gray")
    text = re.sub(r"^(?:please\s+|can you\s+|could you\s+)+|\s+please$", "", " ".join(text.split()))
    return text


def _meaningful(tokens: list[Token]) -> list[Token]:
    return [t for t in tokens if t.kind not in {"stop", "and"}]


#: words that pick some of the matching objects: "the left one", "the biggest balloon", "the second car"
SELECTORS: dict[str, tuple[str, bool]] = {  # word -> (what to sort by, largest first)
    "left": ("x", False), "leftmost": ("x", False), "right": ("x", True), "rightmost": ("x", True),
    "top": ("y", False), "topmost": ("y", False), "upper": ("y", False), "highest": ("y", False),
    "bottom": ("y", True), "bottommost": ("y", True), "lower": ("y", True), "lowest": ("y", True),
    "biggest": ("size", True), "largest": ("size", True), "bigger": ("size", True), "larger": ("size", True),
    "smallest": ("size", False), "smaller": ("size", False), "middle": ("centre", False), "center": ("centre", False),
    "centre": ("centre", False), "first": ("x", False), "last": ("x", True),
}
ORDINALS = {"second": 1, "third": 2, "fourth": 3, "fifth": 4}
QUANTITIES = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
              "ten": 10, "eleven": 11, "twelve": 12, "a": 1, "an": 1, "single": 1, "a single": 1}
_EVERY = {"all", "every", "each", "both"}
#: words that stress a quantity without changing it ("just one", "exactly two", "only the red one")
_HEDGES = {"just", "only", "exactly", "precisely", "merely", "simply"}
#: "all but one balloon", "every cat except two", "all the dogs but one": the complement of a count
_ALL_BUT = re.compile(r"^(?:all|every|each|everything|every\s+one)\s+(?:of\s+)?(?:the\s+)?(?P<first>.*?)\s*"
                      r"(?:but|except\s+for|except|save|apart\s+from)\s+(?P<n>\w+)\s*(?:of\s+)?(?:the\s+)?"
                      r"(?P<rest>.*)$")


def resolve(scene: Scene, reference: str, notes: list[str] | None = None) -> list[int]:
    """Indices of the objects a phrase refers to: 'the red dog', 'the cars', 'one balloon', 'two of the cats',
    'the left one', 'the biggest balloon', 'the second car' (refused if none). When a phrase picks fewer
    objects than match, or asks for more than there are, ``notes`` says which were taken."""
    kept = _ALL_BUT.match(reference)
    if kept and (kept["n"] in QUANTITIES or kept["n"].isdigit()) and (kept["first"] or kept["rest"]):
        return _all_but(scene, kept["first"] or kept["rest"], kept["n"], notes)
    words = [w for w in reference.split() if w not in _HEDGES]
    words = words[1:] if words[:1] == ["the"] else words
    quantity: int | None = None
    every = False
    if words[:1] == ["any"]:  # "any one balloon", "any balloon": one of them
        words = words[1:] if len(words) > 1 and (words[1] in QUANTITIES or words[1].isdigit()) else ["one", *words[1:]]
        words = words[2:] if words[:2] == ["one", "of"] else words
        words = ["one", *words] if words and words[0] not in QUANTITIES and not words[0].isdigit() else words
    if words and (words[0] in QUANTITIES or words[0].isdigit()):
        quantity = int(words[0]) if words[0].isdigit() else QUANTITIES[words[0]]
        words = words[2:] if quantity == 1 and words[1:2] == ["single"] else words[1:]  # "a single balloon"
    elif words and words[0] in _EVERY:
        every, words = True, words[1:]
    while words[:1] in (["of"], ["the"]):
        words = words[1:]
    order: tuple[str, bool] | None = None
    skip = 0
    while words and (words[0] in SELECTORS or words[0] in ORDINALS):
        if words[0] in ORDINALS:
            skip, order = ORDINALS[words[0]], ("x", False)
        else:
            order = SELECTORS[words[0]]
        words = words[1:]
    attrs = _modifiers(" ".join(words[:-1])) if len(words) > 1 and words[-1] in {"one", "ones"} else None
    if attrs and set(attrs) <= {"color", "texture", "style"}:  # "the red one": any object that looks so
        hits = [i for i, o in enumerate(scene.objects)
                if o.attached_to is None and all(getattr(o, k) == v for k, v in attrs.items())]
        if not hits:
            raise _Refused(f"there is no {reference!r} in this scene; it has {_inventory(scene)}")
    elif not words or words in (["one"], ["ones"]):
        hits = [i for i, o in enumerate(scene.objects) if o.attached_to is None]
        kinds = {scene.objects[i].noun for i in hits}
        if len(kinds) != 1 and order is None:  # "the left one" is the leftmost object, whatever it is
            raise _Refused(f"{reference!r} is ambiguous: the scene has {_inventory(scene)}; name the object")
    else:
        hits = _matching(scene, " ".join(words))
    if quantity is None and order is None:
        return hits
    if every:
        return hits
    key_name, largest = order or ("x", False)
    def key(i: int) -> float:
        o = scene.objects[i]
        value = {"x": o.x, "y": o.y, "size": o.size, "centre": abs(o.x - 0.5) + abs(o.y - 0.5)}[key_name]
        return -value if largest else value
    ranked = sorted(hits, key=key)
    want = quantity or 1
    noun = scene.objects[hits[0]].noun if len({scene.objects[i].noun for i in hits}) == 1 else "object"
    if skip + want > len(ranked):
        if skip:
            raise _Refused(f"there is no {reference!r}: the scene has {len(ranked)} {noun}(s)")
        if notes is not None:
            notes.append(f"asked for {want} {noun}(s) but the scene has {len(ranked)}: took all {len(ranked)}")
        return sorted(ranked)
    picked = ranked[skip : skip + want]
    if notes is not None and len(picked) < len(hits):
        how = (f"the {' '.join(w for w in reference.split() if w in SELECTORS or w in ORDINALS)}"
               if order else "from the left")
        notes.append(f"took {len(picked)} of the {len(hits)} {noun}(s) ({how}); {len(hits) - len(picked)} left as "
                     "they were")
    return sorted(picked)


def _all_but(scene: Scene, reference: str, count: str, notes: list[str] | None) -> list[int]:
    """'all but one balloon': every matching object except ``count`` of them (those on the left are kept)."""
    keep = int(count) if count.isdigit() else QUANTITIES[count]
    hits = sorted(_matching(scene, reference), key=lambda i: scene.objects[i].x)
    if keep >= len(hits):
        raise _Refused(f"'all but {count}' leaves nothing: the scene has {len(hits)} matching {reference!r}",
                       firm=True)
    if notes is not None:
        notes.append(f"kept the {keep} leftmost of the {len(hits)} ({reference}); took the other {len(hits) - keep}")
    return sorted(hits[keep:])


def _matching(scene: Scene, reference: str) -> list[int]:
    """Every object a plain phrase ('the red dog', 'cars', 'it', 'the dog on the left') matches."""
    words = reference.split()
    if (len(words) == 1 and words[0] in _REFERENCE_PRONOUNS) or reference in {"the object", "the objects"}:
        if len(scene.objects) == 1 or words[-1] in {"them", "objects", "everything"}:
            return list(range(len(scene.objects)))
        raise _Refused(f"{reference!r} is ambiguous: the scene has {_inventory(scene)}; name the object")
    tokens = _meaningful(tokenize(reference))
    nouns = [t for t in tokens if t.kind == "noun"]
    unknown = [t.text for t in tokens if t.kind == "unknown"]
    counted = [t.text for t in tokens if t.kind == "number"]
    if counted:  # "a few of the cats", "several dogs": how many is not a number the editor can act on
        raise _Refused(f"cannot tell how many objects {counted[0]!r} means in {reference!r}; say 'one', 'two', "
                       "'all' or 'all but one'", firm=True)
    if unknown or len(nouns) != 1:
        raise _Refused(f"cannot tell which object {reference!r} means; the scene has {_inventory(scene)}")
    noun = str(nouns[0].value)
    want = {t.kind: t.value for t in tokens if t.kind in {"color", "texture", "style"}}
    hits = [
        i for i, o in enumerate(scene.objects)
        if o.noun == noun
        and o.color == want.get("color", o.color)
        and o.texture == want.get("texture", o.texture)
        and o.style == want.get("style", o.style)
    ]
    if not hits:
        raise _Refused(f"there is no {reference.removeprefix('the ')} in this scene; it has {_inventory(scene)}")
    hint = next((t.value for t in tokens if t.kind == "hint"), None)
    if hint and len(hits) > 1:  # "the dog on the left"
        axis, where = hint  # type: ignore[misc]
        key = (lambda i: scene.objects[i].x) if axis == "x" else (lambda i: scene.objects[i].y)
        hits = [min(hits, key=key) if where in {"left", "top"} else max(hits, key=key)]
    return hits


def _inventory(scene: Scene) -> str:
    if not scene.objects:
        return f"no objects (only the {scene.background} background)"
    return ", ".join(o.phrase() for o in scene.objects)


def _modifiers(text: str) -> dict[str, object] | None:
    """Attributes named by ``text`` ('green', 'striped and big', 'outlined'); None if anything else."""
    tokens = _meaningful(tokenize(text))
    words = [w for w in text.split() if w not in {"and", "a", "an", "more", "much", "even", "very", "bit", "little"}]
    if not tokens and not words:
        return None
    if len(words) == 1 and words[0] in RESIZE:
        return {"resize": RESIZE[words[0]]}
    out: dict[str, object] = {}
    raw = text.split()
    for t in tokens:
        if t.kind == "noun" and lookup_color(t.text) and not _after_article(raw, t.text):
            out["color"] = lookup_color(t.text)  # "make the car orange": the colour, not the fruit
        elif t.kind in {"color", "texture", "style"}:
            if t.kind in out and out[t.kind] != t.value:  # "make the car red and orange"
                raise _Refused(f"{text!r} names two {t.kind}s ({out[t.kind]}, {t.value}); an object has one "
                               f"{t.kind}: edit one object at a time ('make the left one {out[t.kind]}')", firm=True)
            out[t.kind] = t.value
        elif t.kind == "size":
            out["resize"] = float(out.get("resize", 1.0)) * float(t.value)  # type: ignore[arg-type]
        elif t.text in RESIZE:
            out["resize"] = RESIZE[t.text]
        else:
            return None
    return out or None


def _after_article(words: list[str], word: str) -> bool:
    """Whether ``word`` follows 'a'/'an' in ``words`` ("an orange" is the fruit)."""
    return any(w == word and k and words[k - 1] in {"a", "an"} for k, w in enumerate(words))


# --------------------------------------------------------------------------- geometry


def _box(o: SceneObject) -> _Box:
    return _Box(o.noun, o.size, NOUN_BY_NAME[o.noun].zone, {}, o.x, o.y)


def _fits(noun: str, size: float, x: float, y: float) -> tuple[float, float]:
    wf, hf = glyph_extent(noun)
    hw, hh = wf * size / 2, hf * size / 2
    x = min(max(x, hw), 1 - hw) if hw < 0.5 else 0.5
    y = min(max(y, hh), 1 - hh) if hh < 0.5 else 0.5
    return round(float(x), 4), round(float(y), 4)


def _rng(scene: Scene, instruction: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{scene.seed}|{scene.prompt}|{instruction}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


# --------------------------------------------------------------------------- edits


def _set_attrs(scene: Scene, idx: list[int], attrs: dict[str, object], what: str) -> tuple[Scene, EditResult]:
    new = scene.model_copy(deep=True)
    changed: list[int] = []
    notes: list[str] = []
    for i in idx:
        o = new.objects[i]
        before = o.model_copy()
        for key in ("color", "texture", "style"):
            if key in attrs:
                setattr(o, key, attrs[key])
        if "resize" in attrs:
            changed += _resize(new, i, float(attrs["resize"]))  # type: ignore[arg-type]
        if o != before:
            changed.append(i)
        else:
            notes.append(f"the {before.phrase()} already looks like that")
    if not changed:
        raise _Refused("; ".join(notes) or "nothing to change")
    changed = sorted(set(changed))
    return new, EditResult(True, notes, what, changed, changed)


def _resize(scene: Scene, i: int, factor: float) -> list[int]:
    """Scale object ``i`` (and what is attached to it) about its centre; returns the changed indices."""
    o = scene.objects[i]
    new_size = float(min(max(o.size * factor, 0.05), 0.95))
    if abs(new_size - o.size) < 1e-4:
        raise _Refused(f"the {o.noun} cannot get {'bigger' if factor > 1 else 'smaller'}")
    f = new_size / o.size
    cx, cy = o.x, o.y
    o.size = round(new_size, 4)
    o.x, o.y = _fits(o.noun, o.size, cx, cy)
    dx, dy = o.x - cx, o.y - cy
    changed = [i]
    for j in scene.attachments(i):
        a = scene.objects[j]
        a.size = round(float(min(max(a.size * f, 0.03), 0.95)), 4)
        a.x, a.y = _fits(a.noun, a.size, cx + (a.x - cx) * f + dx, cy + (a.y - cy) * f + dy)
        changed.append(j)
    return changed


def _move(scene: Scene, idx: list[int], direction: str) -> tuple[Scene, EditResult]:
    dx, dy = {"left": (-MOVE_STEP, 0), "right": (MOVE_STEP, 0), "up": (0, -MOVE_STEP), "top": (0, -MOVE_STEP),
              "down": (0, MOVE_STEP), "bottom": (0, MOVE_STEP)}[direction]
    new = scene.model_copy(deep=True)
    changed: list[int] = []
    notes = []
    for i in idx:
        o = new.objects[i]
        x, y = _fits(o.noun, o.size, o.x + dx, o.y + dy)
        mx, my = x - o.x, y - o.y
        if abs(mx) < 1e-4 and abs(my) < 1e-4:
            notes.append(f"the {o.noun} is already at the {direction} edge")
            continue
        o.x, o.y = x, y
        changed.append(i)
        for j in new.attachments(i):
            a = new.objects[j]
            a.x, a.y = _fits(a.noun, a.size, a.x + mx, a.y + my)
            changed.append(j)
    if not changed:
        raise _Refused("; ".join(notes))
    changed = sorted(set(changed))
    return new, EditResult(True, notes, "move", changed, changed)


def _replace(scene: Scene, idx: list[int], target: str) -> tuple[Scene, EditResult]:
    parsed = read(target)
    if parsed.unknown or len(parsed.groups) != 1 or parsed.relations or parsed.background:
        bad = ", ".join(repr(w) for w in parsed.unknown)
        raise _Refused(f"cannot draw {target!r}" + (f" (unknown: {bad})" if bad else "") + "; name one object")
    g = parsed.groups[0]
    new = scene.model_copy(deep=True)
    for i in idx:
        o = new.objects[i]
        o.noun = g.noun
        o.color = g.color or o.color
        o.texture = g.texture if g.texture is not None else o.texture
        o.style = g.style or o.style  # type: ignore[assignment]
        if g.size != 1.0:
            _resize(new, i, g.size)
        o.x, o.y = _fits(o.noun, o.size, o.x, o.y)
    changed = sorted({j for i in idx for j in [i, *(new.attachments(i) if g.size != 1.0 else [])]})
    if all(new.objects[i] == scene.objects[i] for i in changed):
        raise _Refused(f"the scene already shows {target!r}")
    return new, EditResult(True, [], "replace", changed, changed)


def _background(scene: Scene, target: str) -> tuple[Scene, EditResult]:
    target = re.sub(r"\b(background|setting|scene|backdrop)\b", " ", target)
    name = lookup_background(" ".join(target.split()).removeprefix("the ").removeprefix("a ").strip())
    if name is None:
        tokens = _meaningful(tokenize(target))
        names = [t.value for t in tokens if t.kind == "background"]
        if len(names) != 1 or len(tokens) != 1:
            valid = ", ".join(BACKGROUND_BY_NAME)
            raise _Refused(f"{target.strip()!r} is not a background the world can draw; valid: {valid}")
        name = str(names[0])
    if name == scene.background:
        raise _Refused(f"the background is already {name}")
    new = scene.model_copy(deep=True)
    new.background = name
    return new, EditResult(True, [], "background", [], [], background_changed=True)


def _remove(scene: Scene, idx: list[int]) -> tuple[Scene, EditResult]:
    keep = [i for i in range(len(scene.objects)) if i not in idx]
    remap = {old: new for new, old in enumerate(keep)}
    notes = []
    objects = []
    for i in keep:
        o = scene.objects[i].model_copy()
        if o.attached_to is not None:
            if o.attached_to in remap:
                o.attached_to = remap[o.attached_to]
            else:
                notes.append(f"kept the {o.noun} that belonged to the removed {scene.objects[o.attached_to].noun}")
                o.attached_to = None
        objects.append(o)
    relations = [
        SceneRelation(subject=remap[r.subject], relation=r.relation, object=remap[r.object])
        for r in scene.relations
        if r.subject in remap and r.object in remap
    ]
    negations = []
    for neg in scene.negations:  # an attribute exclusion follows its objects; one about removed objects goes
        kept = [remap[i] for i in neg.objects if i in remap]
        if kept or not neg.objects:
            negations.append(neg.model_copy(update={"objects": kept}))
    new = scene.model_copy(deep=True, update={"objects": objects, "relations": relations, "negations": negations})
    return new, EditResult(True, notes, "remove", sorted(idx), [])


def _add(scene: Scene, text: str, instruction: str) -> tuple[Scene, EditResult]:
    parsed = read(text)
    if parsed.unknown:
        raise _Refused(f"cannot draw {', '.join(repr(w) for w in parsed.unknown)}")
    if not parsed.groups:
        raise _Refused(f"nothing to add in {text!r}; name an object, e.g. 'add a red tree'")
    new_group = parsed.groups[0]
    if any(g.parent is not None for g in parsed.groups[1:]) or len(parsed.groups) > 2:
        raise _Refused("add one kind of object at a time")
    reference: list[int] = []
    relation = None
    if parsed.relations:
        _, relation, ref_group = parsed.relations[0]
        g = parsed.groups[ref_group]
        reference = resolve(scene, " ".join([g.color or "", g.noun]).strip())
    elif len(parsed.groups) == 2:
        raise _Refused(f"add one object at a time (read {len(parsed.groups)} in {text!r})")
    count = new_group.count if new_group.count > 0 else 2
    if len(scene.objects) + count > MAX_OBJECTS:
        raise _Refused(f"a scene holds at most {MAX_OBJECTS} objects")
    rng = _rng(scene, instruction)
    noun = NOUN_BY_NAME[new_group.noun]
    mains = [o for o in scene.objects if o.attached_to is None]
    size = float(np.clip(np.median([o.size for o in mains]) if mains else 0.4, 0.12, 0.5)) * new_group.size
    horizon = scene.backdrop.horizon
    new = scene.model_copy(deep=True)
    added = []
    if reference and relation == "on top of" and noun.worn:
        # "put a hat on the dog": the hat is worn, drawn on the dog's head
        for r in reference[:count]:
            parent = _box(new.objects[r])
            b = _Box(noun.name, new.objects[r].size * 0.42 * new_group.size, noun.zone, {})
            _attach(b, parent, "with", True, rng)
            x, y = _fits(noun.name, b.size, b.x, b.y)
            color = new_group.color or str(rng.choice(noun.colors))
            new.objects.append(SceneObject(noun=noun.name, color=color, texture=new_group.texture,
                                           style=new_group.style or "filled", x=x, y=y, size=round(b.size, 4),
                                           attached_to=r, **object_look(rng, noun.name)))  # type: ignore[arg-type]
            added.append(len(new.objects) - 1)
            new.relations.append(SceneRelation(subject=r, relation="with", object=added[-1]))
        return new, EditResult(True, [], "add", [], added)
    for _ in range(count):
        occupied = [_box(o) for o in new.objects]
        best = None
        for _attempt in range(200):
            b = _Box(noun.name, size, noun.zone, new_group.hint)
            b.x = rng.uniform(*_x_range(b))
            b.y = rng.uniform(*_y_range(b, horizon))
            if reference:
                ref = _box(new.objects[reference[0]])
                _place_relative(b, relation or "next to", ref, rng, _grounded(b, relation or "next to", ref, horizon))
            inside = b.hw <= b.x <= 1 - b.hw and b.hh <= b.y <= 1 - b.hh
            # overlapping the reference is what "on top of", "behind" and "in front of" ask for
            cost = sum(_overlap(b, o) for k, o in enumerate(occupied)
                       if not (relation in OVERLAPPING and k in reference[:1])) + (0 if inside else 10)
            if best is None or cost < best[0]:
                best = (cost, b)
            if cost < 0.05:
                break
        assert best is not None
        b = best[1]
        x, y = _fits(noun.name, b.size, b.x, b.y)
        color = new_group.color or str(rng.choice(noun.colors))
        new.objects.append(SceneObject(noun=noun.name, color=color, texture=new_group.texture,
                                       style=new_group.style or "filled", x=x, y=y, size=round(b.size, 4),
                                       **object_look(rng, noun.name)))  # type: ignore[arg-type]
        added.append(len(new.objects) - 1)
        if reference and relation:
            new.relations.append(SceneRelation(subject=added[-1], relation=relation, object=reference[0]))  # type: ignore[arg-type]
    notes = [] if best[0] < 0.05 else ["no free space left: the new object overlaps others"]
    order = occlusion_order(new)  # "add a dog behind the car": the dog is drawn before the car, partly hidden
    return new.reordered(order), EditResult(True, notes, "add", [], sorted(order.index(i) for i in added))


def _weather(scene: Scene, target: str) -> tuple[Scene, EditResult]:
    """'make it night', 'make the scene snowy', 'make it day', 'make it a beach'."""
    name = WEATHER.get(target) or lookup_background(target)
    if name is None:
        raise _Refused(f"{target!r} is not a time of day, weather or background the world can draw; "
                       f"valid: night, snowy, day, {', '.join(BACKGROUND_BY_NAME)}")
    if name != "day":
        return _background(scene, name)
    if scene.background != "night":
        raise _Refused(f"it is already day: the background is {scene.background}", firm=True)
    new, result = _background(scene, DAY_BACKGROUND)
    result.notes.append(f"the world has no daytime version of the night scene; drew the {DAY_BACKGROUND} background")
    return new, result


# --------------------------------------------------------------------------- instruction reader

_OBJ = r"(?P<art>the\s+|a\s+|an\s+)?(?P<ref>.+?)"
_SCENE = r"(?:it|everything|the\s+(?:scene|image|picture|photo|world|weather|sky|setting|background))"
#: "make it night": times of day and weather the world draws as a background
WEATHER: dict[str, str] = {
    "night": "night", "nighttime": "night", "night time": "night", "dark": "night", "midnight": "night",
    "snowy": "snow", "snowing": "snow", "wintry": "snow", "winter": "snow", "icy": "snow", "snow": "snow",
    "day": "day", "daytime": "day", "daylight": "day", "sunny": "day", "bright": "day", "morning": "day",
}
DAY_BACKGROUND = "sky"  # what "make it day" draws instead of the night background
_BG_WORDS = r"(?:background|setting|scene|backdrop|location|place|environment)"
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("background", re.compile(rf"^(?:change|set|switch|turn|make|replace|swap)\s+(?:the\s+)?{_BG_WORDS}"
                              rf"(?:\s+to|\s+into|\s+with|\s+for|\s+by)?\s+(?P<target>.+)$")),
    ("background", re.compile(rf"^(?:put|place|move|set)\s+(?:it|them|everything|{_OBJ})\s+"
                              r"(?:in|on|at|into|onto|to)\s+(?P<target>.+)$")),
    ("weather", re.compile(rf"^(?:make|turn|set|change|switch)\s+{_SCENE}\s+(?:to\s+|into\s+)?(?:a\s+|an\s+)?"
                           r"(?P<target>.+)$")),
    ("recolor", re.compile(rf"^(?:change|set|make|turn)\s+the\s+color\s+of\s+{_OBJ}\s+(?:to|into)\s+(?P<target>.+)$")),
    ("replace", re.compile(rf"^(?:replace|swap|substitute|exchange)\s+{_OBJ}\s+(?:with|for|by)\s+(?P<target>.+)$")),
    ("change", re.compile(rf"^(?:change|turn|transform|convert|morph)\s+{_OBJ}\s+(?:into|to)\s+(?P<target>.+)$")),
    ("remove", re.compile(rf"^(?:remove|delete|erase|take\s+away|take\s+out|get\s+rid\s+of|hide)\s+{_OBJ}"
                          r"(?:\s+from\s+the\s+\w+)?$")),
    ("move", re.compile(rf"^(?:move|shift|slide|push|put)\s+{_OBJ}\s+(?:to\s+the\s+|towards\s+the\s+|further\s+|"
                        r"more\s+to\s+the\s+)?(?P<dir>left|right|up|down|top|bottom)(?:\s+side|\s+edge|wards)?$")),
    ("resize", re.compile(rf"^(?P<verb>enlarge|grow|shrink|scale\s+up|scale\s+down|magnify|reduce)\s+{_OBJ}$")),
    ("texture", re.compile(rf"^(?:add|give|put|paint|draw)\s+(?P<target>.+?)\s+(?:to|on|onto)\s+{_OBJ}$")),
    ("give", re.compile(rf"^(?:give|cover)\s+{_OBJ}\s+(?:with\s+)?(?P<target>.+)$")),
    ("add", re.compile(r"^(?:add|insert|put|place|draw|include|introduce)\s+(?P<target>.+)$")),
    ("make", re.compile(rf"^(?:make|paint|color|turn|dye|render|set)\s+{_OBJ}\s+(?P<target>.+)$")),
]


def edit_scene(scene: Scene, instruction: str) -> tuple[Scene, EditResult]:
    """Apply one instruction to a scene graph. Refusals come back as ``applied=False`` and the same scene."""
    text = _clean(instruction)
    reasons: list[str] = []
    firm: list[str] = []
    for kind, pattern in _PATTERNS:
        m = pattern.match(text)
        if not m:
            continue
        notes: list[str] = []
        try:
            new, result = _apply(scene, kind, m.groupdict(), instruction, notes)
        except _Refused as exc:
            if exc.firm:
                firm.append(str(exc))
            reasons.append(str(exc))
            continue
        result.notes = notes + result.notes
        broken = new.broken_negations()
        if broken:  # the scene graph stays true: a negation the edit undid is no longer claimed
            new.negations = [n for n in new.negations if n not in broken]
            result.notes += [f"the prompt's {n.phrase!r} no longer holds after this edit" for n in broken]
            # the backdrop draws again what that negation had removed ("add a tree" to a forest with no trees)
            result.background_changed |= new.omitted_details() != scene.omitted_details()
        return record_visibility(new), result
    reason = firm[0] if firm else reasons[-1] if reasons else f"cannot read the instruction {instruction!r}; {HELP}"
    return scene, EditResult(False, [reason])


def _apply(
    scene: Scene, kind: str, g: dict[str, str | None], instruction: str, notes: list[str]
) -> tuple[Scene, EditResult]:
    ref = g.get("ref")
    if ref and (g.get("art") or "").strip() in {"a", "an"}:
        ref = f"a {ref}"  # "remove a balloon": one of them
    target = (g.get("target") or "").strip()

    def resolve(scene: Scene, reference: str) -> list[int]:
        return _resolve(scene, reference, notes)

    if kind == "background":
        return _background(scene, target)
    if kind == "weather":
        return _weather(scene, target)
    if kind == "recolor":
        attrs = _modifiers(target)
        if not attrs or set(attrs) != {"color"}:
            raise _Refused(f"{target!r} is not a colour the world knows")
        return _set_attrs(scene, resolve(scene, ref or ""), attrs, "recolor")
    if kind == "replace":
        return _replace(scene, resolve(scene, ref or ""), target)
    if kind == "change":
        if re.fullmatch(_BG_WORDS, (ref or "").strip()):
            return _background(scene, target)
        attrs = _modifiers(target)
        idx = resolve(scene, ref or "")
        if attrs:
            return _set_attrs(scene, idx, attrs, "attributes")
        return _replace(scene, idx, target)
    if kind == "remove":
        if ref and re.fullmatch(r"(?:the\s+)?(?:stripes|dots|texture|pattern|spots|checkers|spiral|waves)", ref):
            raise _Refused("say which object to remove the pattern from, e.g. 'make the dog plain'")
        return _remove(scene, resolve(scene, ref or ""))
    if kind == "move":
        return _move(scene, resolve(scene, ref or ""), g["dir"] or "")
    if kind == "resize":
        verb = g.get("verb") or ""
        factor = 1.4 if verb in {"enlarge", "grow", "scale up", "magnify"} else 0.7
        return _set_attrs(scene, resolve(scene, ref or ""), {"resize": factor}, "resize")
    if kind in {"texture", "give"}:
        attrs = _modifiers(target)
        if not attrs or not set(attrs) <= {"texture", "color"}:
            raise _Refused(f"{target!r} is not a texture the world can draw")
        return _set_attrs(scene, resolve(scene, ref or ""), attrs, "texture")
    if kind == "add":
        return _add(scene, target, instruction)
    if kind == "make":
        # "make the red dog blue": find where the object ends and the new attributes begin
        words = f"{ref} {target}".split()
        missing: _Refused | None = None  # the new look was readable but the object was not found
        for cut in range(len(words) - 1, 0, -1):
            if words[cut - 1] in {"a", "an", "the", "into", "and", "or"} or words[cut] in {"and", "or"}:
                continue  # "make the car an orange": the article starts the tail; "red and orange" is one tail
            head, tail = " ".join(words[:cut]), " ".join(words[cut:])
            plain = tail in {"plain", "solid color", "without pattern", "plain colored"}
            attrs = {"texture": None} if plain else _modifiers(tail)
            replace = attrs is None and tail.startswith(("a ", "an ", "into "))
            if attrs is None and not replace:
                continue
            try:
                idx = resolve(scene, head)
            except _Refused as exc:
                missing = missing or exc
                continue
            if replace:
                return _replace(scene, idx, tail.removeprefix("into "))
            return _set_attrs(scene, idx, attrs, "texture" if plain else "attributes")  # type: ignore[arg-type]
        if missing is not None:
            raise missing
        raise _Refused(f"cannot draw {target!r} for {ref!r}; {HELP}")
    raise _Refused(HELP)  # pragma: no cover


# --------------------------------------------------------------------------- checking an edit


def changed_region(before: Rendered, after: Rendered, result: EditResult) -> np.ndarray:
    """The pixels an edit may change: the old and new masks of the edited objects (and of the
    background, for a background change)."""
    region = np.zeros_like(before.background_mask)
    for i in result.changed_old:
        region |= before.masks[i]
    for i in result.changed_new:
        region |= after.masks[i]
    if result.background_changed:
        region |= before.background_mask | after.background_mask
    return region



_resolve = resolve
