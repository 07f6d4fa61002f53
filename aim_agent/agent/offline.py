"""The offline scientist: a deterministic, rule-based experimenter for the embedded world.

It is AIM's baseline and what ``aim demo`` runs: no VLM, no network, the same run for the
same inputs. It uses exactly the tools any agent uses, in tool-calling mode (tool calls
chained with ``$k.field`` references) or in code mode (a ``run_experiment(system, tools)``
source run in the sandbox).

Strategy
--------
1. **Read.** Parse the blind describer's exemplar descriptions with the world vocabulary
   into concepts: objects, colours, textures, backgrounds, background regions shared by
   several scenes (sky, grass, water), and, when the exemplars show several different
   nouns, a vocabulary category (animals) and a group of the nouns seen (birds; or "bird,
   eagle or owl"). Score each concept by how often it occurs across the top exemplars,
   weighting every exemplar by its activation.
2. **Hypothesize.** A *single* hypothesis for every frequent concept; an *OR* hypothesis for
   two concepts that each explain different exemplars; a *conditional* hypothesis "A only
   when B" for a concept A whose exemplars almost always also contain B.
3. **Experiment**, in fixed phases, each one experiment through the tools:

   - ``screen``: each candidate concept alone in several contexts (other backgrounds,
     colours, objects) plus neutral controls (``text2image``);
   - ``pairs``: for OR and conditional candidates, the 2x2 design A+B, A only, B only,
     neither, in several contexts (``text2image``);
   - ``context``: the leading concept A alone and next to each plausible companion (other
     exemplar concepts, regions, common companion objects), looking for a condition the
     describer could not see: exemplars may hold only the weak "leak" response of a
     conditional unit (``text2image``);
   - ``coverage``: when strongly firing exemplars show no sign of the leading concept,
     what they do show, alone (is the unit polysemantic?) (``text2image``);
   - ``edits``: causal pairs for the leading hypothesis: replace the object, change its
     colour or the background, remove or add the condition (``edit_images``);
   - ``critic``: then what the critic's last report asks for (new concepts, edits, more
     contexts), at most :data:`MAX_CRITIC_ROUNDS` times.

4. **Measure.** Every image is known by the features of its prompt (or of the edit applied
   to its original), so each hypothesis is a predicate on features. It is scored by the
   rank separation (AUC) of activations where it predicts firing against where it does
   not, by the effect relative to the run's largest activation, by its consistency across
   backgrounds and by the edit pairs; an OR or conditional hypothesis must also fit its
   2x2 cells (each part alone fires for OR; neither alone fires for a conditional).
   Statuses and confidences are recomputed from all evidence every round, so the scientist
   holds no hidden state: a resumed run continues exactly where it stopped.
5. **Conclude** with the supported hypothesis that separates best; near ties go to the
   one explaining more variance, with a small price on every extra concept, so "dog OR
   car" wins over "dog" only when the cars matter. MAIA's format, with the numbers.

When the descriptions hold no world vocabulary (a real model described by a VLM), it says
so and concludes without pretending: such units need a VLM scientist.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Literal

from aim_world import vocabulary as vocab
from aim_world.scene import TEXTURE_ADJECTIVES

from aim_agent.agent.schema import (
    Conclusion,
    Hypothesis,
    Observation,
    Proposal,
    ScientistView,
    ToolCall,
)

ConceptKind = Literal["object", "group", "category", "color", "texture", "background", "region"]

MAX_CANDIDATES = 4  # single-concept hypotheses tested in the screen
MAX_PAIRS = 2  # OR / conditional hypotheses tested in the pairs phase
MAX_CRITIC_ROUNDS = 3  # experiments run on the critic's requests before concluding anyway
MIN_SCORE = 0.3  # exemplar frequency a concept needs to become a hypothesis
CHUNK = 60  # images per text2image / edit_images call (the tools take at most 64 prompts)
SCREEN_CONTEXTS = 5  # a critic wants about five images of a concept, in three or more contexts
PAIR_CONTEXTS = 3
EDIT_CONTEXTS = 4

NON_WORLD_NOTE = (
    "The exemplar descriptions contain no words of the world's vocabulary (objects, colours, "
    "textures, backgrounds), so these are not world images and the rule-based offline scientist "
    "cannot design experiments for them. A VLM backend is needed for non-world models: run with "
    "--backend google_genai (or openai, anthropic, ollama)."
)
SILENT_NOTE = (
    "The unit fired on none of its exemplars nor on any image of a survey of every object and texture the "
    "world can draw: it may be a dead unit, or detect something the world cannot show."
)
_EMPTY_REGION = re.compile(r"nothing is highlighted|region is empty", re.I)
NO_EXEMPLARS_NOTE = (
    "No exemplar descriptions were available (the dataset exemplars or the describer failed; see the "
    "run notes), and the unit fired on no image of a survey of every object and texture the world can "
    "draw. Give an exemplar dataset (--dataset), or use a VLM backend (--backend google_genai, openai, ...)."
)

# --------------------------------------------------------------------------- concepts


@dataclass(frozen=True, order=True)
class Concept:
    """One testable concept of the world.

    ``object`` (a noun: dog), ``group`` (any of several nouns the exemplars show: bird, eagle,
    owl), ``category`` (every noun of a vocabulary category: animal),
    ``color`` and ``texture`` (of any object), ``background`` (a whole scene: beach), ``region``
    (a part shared by several backgrounds: the sky above grass, beach, snow, ...).
    """

    kind: ConceptKind
    name: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def phrase(self) -> str:
        """How the concept reads in a label."""
        if self.kind == "background":
            return f"{self.name} background"
        if self.kind == "texture":
            return f"{TEXTURE_ADJECTIVES[self.name]} texture"
        if self.kind == "category":
            return CATEGORY_PHRASES.get(self.name, f"{self.name}s")
        if self.kind == "region":
            return f"{self.name} regions"
        if self.kind == "group":
            named = next((h for h, nouns in HYPERNYMS.items() if tuple(self.members) == nouns), None)
            *head, last = self.members
            return named or f"{', '.join(head)} or {last}"
        return self.name

    @property
    def members(self) -> list[str]:
        """The nouns of an object or group concept."""
        return self.name.split("+") if self.kind == "group" else [self.name]

    @property
    def term(self) -> str:
        """The word the experiment prompts use for it ('dog', 'red', 'striped', 'grass')."""
        return TEXTURE_ADJECTIVES[self.name] if self.kind == "texture" else self.members[0]


KIND_ORDER: dict[str, int] = {"object": 0, "group": 1, "category": 2, "color": 3, "texture": 4, "background": 5,
                              "region": 6}
OBJECT_KINDS = ("object", "group", "category")
ATTRIBUTE_KINDS = ("color", "texture")
CATEGORY_PHRASES = {"animal": "animals", "vehicle": "vehicles", "food": "food", "plant": "plants",
                    "building": "buildings", "person": "people", "instrument": "musical instruments",
                    "clothing": "clothing", "electronics": "electronics", "sport": "sports gear",
                    "nature": "nature things", "object": "household objects"}
MIN_CATEGORY_NOUNS = 3  # distinct nouns among the exemplars before their group and category become concepts
MAX_GROUP = 6  # nouns named in a group concept
# Everyday names for sets of vocabulary nouns (what a person would call them; finer than the categories).
HYPERNYMS: dict[str, tuple[str, ...]] = {
    "birds": ("bird", "eagle", "owl", "parrot", "duck", "chicken", "penguin", "flamingo", "peacock", "swan"),
    "insects": ("beetle", "ant", "bee", "ladybug", "spider", "butterfly"),
    "boats": ("boat", "ocean liner", "canoe", "speedboat"),
    "trucks": ("truck", "pickup truck", "fire truck"),
    "fruit": ("apple", "banana", "orange", "lemon", "grapes", "strawberry", "cherry", "pear", "pineapple",
              "watermelon"),
    "flowers": ("flower", "tulip", "sunflower", "rose"),
    "trees": ("tree", "pine tree", "palm tree"),
    "big cats": ("lion", "tiger", "leopard"),
    "buildings": ("house", "castle", "church", "factory", "hut"),
    "lights": ("light bulb", "lamp", "candle", "flashlight"),
    "balls": ("ball", "basketball", "baseball", "volleyball", "football"),
}
MIN_OBJECT_SHARE = 10  # % of a highlighted region an object must fill to count (slivers are noise)
MIN_REGION_SHARE = 25  # % of a highlighted region a background part must fill to count as a concept
BACKGROUND_PHRASES = {
    "plain": "on a plain background", "sky": "in the sky", "grass": "on grass", "water": "on water",
    "snow": "on snow", "beach": "on a beach", "desert": "in the desert", "road": "on a road",
    "brick wall": "against a brick wall", "forest": "in a forest", "room": "in a room",
    "night": "at night", "mountains": "in the mountains",
}
# Contexts the experiments vary: backgrounds, neutral objects, neutral colours (fixed orders).
CONTEXT_BACKGROUNDS = ("grass", "snow", "beach", "room", "road", "plain", "water", "desert", "forest",
                       "night", "mountains", "brick wall", "sky")
NEUTRAL_NOUNS = ("cup", "chair", "umbrella", "book", "clock", "bucket", "lamp", "guitar", "apple", "shoe",
                 "bell", "teapot", "kite", "drum")
NEUTRAL_COLORS = ("blue", "green", "yellow", "purple", "gray", "orange", "pink", "white", "red", "black",
                  "brown", "cyan", "magenta", "beige")
# Companions a context search puts next to the leading concept (looking for a condition it needs).
COMPANION_NOUNS = ("leash", "person", "tree", "glove", "spoon", "tie", "umbrella", "dog", "cat", "bird", "car",
                   "hat", "ball", "mountain")
COMPANION_REGIONS = ("sky", "grass", "water")
COMPANION_COLORS = ("blue", "red", "yellow")  # for a background or region: objects of a colour
MAX_COMPANIONS = 20

# --------------------------------------------------------------------------- parsing text

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


def _drop_sliver(m: re.Match[str]) -> str:
    """Keep an object phrase of the describer only when it fills enough of the highlighted region."""
    if int(m.group(2)) >= MIN_OBJECT_SHARE:
        return m.group(0)
    return " contains " if m.group(1).strip().startswith("contains") else " "


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
        each object, the regions of its background, and object-attribute compounds
        ('object:car|color:red', 'category:vehicle|color:red')."""
        feats = {c.key for c in self.concepts()}
        for bg in self.backgrounds:
            feats |= {f"region:{r}" for r in regions_of(bg)}
        for thing in self.things:
            category = noun_category(thing.noun)
            feats.add(f"category:{category}")
            for attr, value in (("color", thing.color), ("texture", thing.texture)):
                if value:
                    feats |= {f"object:{thing.noun}|{attr}:{value}", f"category:{category}|{attr}:{value}"}
        return frozenset(feats)


def noun_category(noun: str) -> str:
    return vocab.NOUN_BY_NAME[noun].category


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


def regions_of(background: str) -> tuple[str, ...]:
    """The regions a background contains ('grass' -> sky, grass; 'beach' -> sky, water)."""
    return tuple(p for p in _parts_table().get(background, ()) if p in region_names())


def backgrounds_with(region: str) -> list[str]:
    return [bg for bg, parts in _parts_table().items() if region in parts and region in region_names()]


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


def parse_text(text: str) -> Parsed:
    """Objects (with colour and texture), backgrounds and free attributes named in ``text``.

    Negated mentions ("no leash", "without a hat") are dropped; words that are both an object
    and a background ("mountains") are backgrounds after a preposition or before
    "background"; a colour that is also an object ("orange") is a colour when it modifies
    the next word.
    """
    out = Parsed()
    lowered = _SLIVERS.sub(_drop_sliver, text.lower().replace("_", " "))
    for m in _SCENE_PARTS.finditer(lowered):
        for part, share in _PART_SHARE.findall(m.group(2)):
            name = _canonical_part(part.strip())
            if name in region_names() and int(share) >= MIN_REGION_SHARE:
                out.regions.append(name)
    lowered = _SCENE_PARTS.sub(r"on a \1 background.", lowered)
    for clause in _CLAUSE_SPLIT.split(lowered):
        tokens = [t.strip("'-") for t in _TOKEN.findall(clause)]
        tokens = [t for t in tokens if t]
        if tokens:
            _parse_clause(tokens, out)
    out.backgrounds = list(dict.fromkeys(out.backgrounds))
    out.regions = list(dict.fromkeys(out.regions))
    return out


# --------------------------------------------------------------------------- edits on parsed scenes

_EDIT_VERB = re.compile(r"^\s*(replace|change|remove|add|make|turn|put|delete|swap)\b", re.I)
_REPLACE = re.compile(r"^\s*(?:replace|swap)\s+(?:the\s+|a\s+|an\s+)?(.+?)\s+(?:with|by|for)\s+(.+)$", re.I)
_RECOLOR = re.compile(r"^\s*(?:change|make|turn)\s+the\s+colou?r\s+of\s+(?:the\s+)?(.+?)\s+(?:to|into)\s+(.+)$",
                      re.I)
_BACKGROUND = re.compile(r"^\s*(?:change|replace|make|turn)\s+the\s+background\s+(?:to|into|with)\s+(.+)$", re.I)
_REMOVE = re.compile(r"^\s*(?:remove|delete)\s+(?:the\s+|a\s+|an\s+)?(.+)$", re.I)
_ADD = re.compile(r"^\s*(?:add|put)\s+(.+)$", re.I)


def is_edit_instruction(text: str) -> bool:
    return bool(_EDIT_VERB.match(text))


def _first_noun(text: str) -> str | None:
    things = parse_text(text).things
    return things[0].noun if things else None


def apply_edit(scene: Parsed, instruction: str) -> Parsed | None:
    """The parsed scene after an edit instruction, or None when the instruction is not understood."""
    new = Parsed([replace(t) for t in scene.things], list(scene.backgrounds), list(scene.colors),
                 list(scene.textures))
    if m := _BACKGROUND.match(instruction):
        bg = parse_text("on " + m.group(1)).backgrounds or [vocab.lookup_background(m.group(1)) or ""]
        if not bg[0]:
            return None
        new.backgrounds = bg[:1]
        return new
    if m := _RECOLOR.match(instruction):
        noun, color = _first_noun(m.group(1)), vocab.lookup_color(m.group(2).strip())
        targets = [t for t in new.things if t.noun == noun]
        if not targets or color is None:
            return None
        for t in targets:
            t.color = color
        return new
    if m := _REPLACE.match(instruction):
        old, repl = _first_noun(m.group(1)), parse_text(m.group(2)).things
        targets = [t for t in new.things if t.noun == old]
        if not targets or not repl:
            return None
        for t in targets:
            # the world editor keeps the old colour and texture unless the instruction names new ones
            t.noun, t.color, t.texture = repl[0].noun, repl[0].color or t.color, repl[0].texture or t.texture
        return new
    if m := _REMOVE.match(instruction):
        noun = _first_noun(m.group(1))
        if noun is None or noun not in [t.noun for t in new.things]:
            return None
        new.things = [t for t in new.things if t.noun != noun]
        return new
    if m := _ADD.match(instruction):
        added = parse_text(m.group(1)).things
        if not added:
            return None
        new.things += added
        return new
    return None


# --------------------------------------------------------------------------- evidence


@dataclass(frozen=True)
class Record:
    """One image of an experiment: what it contains (features), the activation, its context."""

    features: frozenset[str]
    activation: float
    round: int
    background: str | None
    pair: int | None = None  # index of the original when this image is an edit of it


def evidence_from(observations: Sequence[Observation]) -> list[Record]:
    """Records from every successful observation that pairs prompts with activations.

    A prompt is a scene ("a red dog on grass"), an edit instruction following its original
    (``edit_images`` interleaves them), or both in one string ("a red dog on grass | edit:
    replace the dog with a cat").
    """
    records: list[Record] = []
    for obs in observations:
        if not obs.activations or len(obs.prompts) != len(obs.activations):
            continue  # (a failed experiment's measurements still count: they were measured)
        originals: dict[str, int] = {}
        last: tuple[Parsed, int] | None = None
        for prompt, act in zip(obs.prompts, obs.activations, strict=True):
            base, _, instruction = prompt.partition(" | edit: ")
            if not instruction and is_edit_instruction(prompt):
                base, instruction = "", prompt
            pair: int | None = None
            if instruction:
                source = (parse_text(base), originals.get(base)) if base else last
                if source is None:
                    continue
                scene, pair = apply_edit(source[0], instruction), source[1]
            else:
                scene = parse_text(prompt)
            if scene is None or not scene.concepts():
                continue
            if not instruction:
                originals[prompt] = len(records)
                last = (scene, len(records))
            bg = scene.backgrounds[0] if scene.backgrounds else "plain"
            records.append(Record(scene.features(), float(act), obs.round, bg, pair))
    return records


# --------------------------------------------------------------------------- hypotheses


@dataclass(frozen=True)
class Hyp:
    """A hypothesis as a predicate on image features."""

    kind: Literal["single", "or", "conditional"]
    a: Concept
    b: Concept | None = None

    def fires(self, features: frozenset[str]) -> bool:
        if self.kind == "single":
            return present(self.a, features)
        assert self.b is not None
        if self.kind == "or":
            return present(self.a, features) or present(self.b, features)
        joint = _joint_keys(self.a, self.b)
        if joint:
            return any(k in features for k in joint)
        return present(self.a, features) and present(self.b, features)

    @property
    def concepts(self) -> list[Concept]:
        return [self.a] if self.b is None else [self.a, self.b]

    @property
    def complexity(self) -> int:
        """How much the hypothesis claims: one per extra concept, one per set of nouns (a group is an OR)."""
        return (self.kind != "single") + sum(c.kind in ("group", "category") for c in self.concepts)

    def labels(self) -> list[str]:
        if self.kind == "single":
            return [self.a.phrase]
        assert self.b is not None
        if self.kind == "or":
            return [self.a.phrase, self.b.phrase]
        return [f"{self.a.phrase}, {condition_phrase(self.a, self.b)}"]

    def short(self) -> str:
        """The hypothesis in a few words: 'dog', 'dog OR car', 'dog, only when a leash is present'."""
        return " OR ".join(self.labels())

    def statement(self) -> str:
        if self.kind == "single":
            return f"The unit detects {self.a.phrase}, whatever the context."
        assert self.b is not None
        if self.kind == "or":
            return f"The unit is polysemantic: it detects {self.a.phrase} OR {self.b.phrase}."
        return f"The unit detects {self.a.phrase}, {condition_phrase(self.a, self.b)}."


def present(c: Concept, features: frozenset[str]) -> bool:
    """Whether an image with these features shows concept ``c``."""
    if c.kind == "group":
        return any(f"object:{m}" in features for m in c.members)
    return c.key in features


def _joint_keys(a: Concept, b: Concept) -> list[str]:
    """Compound features of an object-like concept with an attribute ('object:car|color:red'), if that is the pair."""
    thing, attr = sorted([a, b], key=lambda c: KIND_ORDER[c.kind])
    if thing.kind not in OBJECT_KINDS or attr.kind not in ATTRIBUTE_KINDS:
        return []
    if thing.kind == "group":
        return [f"object:{m}|{attr.key}" for m in thing.members]
    return [f"{thing.key}|{attr.key}"]


def condition_phrase(a: Concept, b: Concept) -> str:
    """'only when a leash is present', 'only on a grass background', 'only when it is red'."""
    if b.kind == "object":
        return f"only when {_with_article(b.name)} {'are' if _plural_only(b.name) else 'is'} present"
    if b.kind == "group":
        return f"only when a {b.phrase} is present"
    if b.kind == "background":
        return f"only on a {b.name} background"
    if b.kind == "region":
        return f"only when the scene has {b.name}"
    if b.kind == "category":
        return f"only when {b.phrase} are present"
    if b.kind in ATTRIBUTE_KINDS and a.kind not in OBJECT_KINDS:  # water, only when blue objects are present
        return f"only when {TEXTURE_ADJECTIVES.get(b.name, b.name)} objects are present"
    if b.kind == "color":
        return f"only when it is {b.name}"
    return f"only when it is {TEXTURE_ADJECTIVES[b.name]}"


def _plural_only(noun: str) -> bool:
    """Nouns used in the plural ('sunglasses', 'grapes', 'scissors')."""
    return noun.endswith("s") and not noun.endswith(("ss", "us"))


def _with_article(noun: str) -> str:
    if _plural_only(noun):
        return noun
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def hyp_id(h: Hyp) -> str:
    """A stable id from the hypothesis itself, so ids survive re-derivation every round."""
    if h.kind == "single":
        return f"H:{h.a.key}"
    assert h.b is not None
    return f"H:{h.a.key}{' OR ' if h.kind == 'or' else ' | '}{h.b.key}"


@dataclass
class Scored:
    """A hypothesis with the numbers behind its status."""

    hyp: Hyp
    n_pos: int = 0
    n_neg: int = 0
    mean_pos: float = 0.0
    mean_neg: float = 0.0
    auc: float = 0.5
    edits_total: int = 0
    edits_agree: int = 0
    contexts_total: int = 0
    contexts_agree: int = 0
    r2: float = 0.0  # share of the activation variance the prediction explains
    cells: dict[str, tuple[float, int]] = field(default_factory=dict)  # pair hypotheses: mean, n per 2x2 cell
    flaw: str = ""  # why a pair hypothesis fails although it separates (a cell that contradicts it)
    status: Literal["open", "supported", "refuted"] = "open"
    confidence: float = 0.5

    @property
    def effect(self) -> float:
        return self.mean_pos - self.mean_neg


# --------------------------------------------------------------------------- reading exemplars


@dataclass
class Reading:
    """What the exemplars suggest: ranked concepts and the hypotheses built from them."""

    scores: dict[Concept, float]
    mentions: list[set[Concept]]
    weights: list[float]
    candidates: list[Concept]
    hypotheses: list[Hyp]
    mentioned: set[Concept]
    first_pos: dict[Concept, float]
    start: int = 0  # observations before the plan (1 when a survey stood in for the exemplars)
    texts: list[str] = field(default_factory=list)  # what was read: exemplar descriptions or survey prompts


def _weights(activations: Sequence[float], n: int) -> list[float]:
    acts = [max(0.0, float(a)) for a in activations[:n]] + [0.0] * max(0, n - len(activations))
    top = max(acts, default=0.0)
    if top <= 0:
        return [1.0] * n
    return [a / top for a in acts]


def read_exemplars(descriptions: Sequence[str], activations: Sequence[float]) -> Reading:
    """Score concepts by activation-weighted frequency and form single/OR/conditional hypotheses."""
    parsed = [parse_text(d) for d in descriptions]
    weights = _weights(activations, len(descriptions))
    mentions = _with_categories([set(p.concepts()) for p in parsed], weights)
    total = sum(weights) or 1.0
    scores: dict[Concept, float] = {}
    first: dict[Concept, list[int]] = {}
    for p, ms, w in zip(parsed, mentions, weights, strict=True):
        for c in ms:
            scores[c] = scores.get(c, 0.0) + w / total
        for pos, c in enumerate(p.concepts()):
            first.setdefault(c, []).append(pos)
    first_pos = {c: sum(v) / len(v) for c, v in first.items()}
    ranked = sorted(scores, key=lambda c: (-round(scores[c], 6), KIND_ORDER[c.kind], first_pos.get(c, 99), c.name))
    candidates = [c for c in ranked if scores[c] >= MIN_SCORE][:MAX_CANDIDATES]
    if not candidates and ranked:
        candidates = ranked[:1]
    for group in [c for c in candidates if c.kind in ("group", "category")]:
        # a set of nouns is a hedge: its two most frequent members are tested on their own too
        members = [c for c in ranked if c.kind == "object" and (c.name in group.members or (
            group.kind == "category" and noun_category(c.name) == group.name))]
        candidates += [c for c in members[:2] if c not in candidates]
    reading = Reading(scores, mentions, weights, candidates, [], set(scores), first_pos, texts=list(descriptions))
    reading.hypotheses = _initial_hypotheses(reading)
    return reading


SURVEY_TOP = 15  # survey images read as exemplars


def reading_for(view: ScientistView) -> Reading:
    """What to start from: the exemplars; or, when they show nothing (none, or all silent), a survey.

    The survey is one image of every object the world can draw (each on another background)
    plus every texture; its most activating images are then read like exemplars.
    """
    reading = read_exemplars(view.exemplar_descriptions, view.exemplar_activations)
    if _has_signal(reading) or not _needs_survey(view):
        return reading
    if not view.observations:
        reading.start = 1
        return reading
    survey = view.observations[0]
    ranked = sorted(zip(survey.activations, survey.prompts, strict=False), key=lambda x: (-x[0], x[1]))
    kept = []
    if ranked:
        top, median = ranked[0][0], ranked[len(ranked) // 2][0]
        if top > 0 and top > 1.5 * max(median, 0.0):  # something stands out of the crowd
            kept = [(a, p) for a, p in ranked if a >= median + 0.5 * (top - median)][:SURVEY_TOP]
    reading = read_exemplars([p for _, p in kept], [a for a, _ in kept])
    reading.start = 1
    return reading


def _has_signal(reading: Reading) -> bool:
    return any(w > 0 and ms for w, ms in zip(reading.weights, reading.mentions, strict=True))


def _needs_survey(view: ScientistView) -> bool:
    """No exemplar descriptions, or the unit fired on none of them."""
    texts = view.exemplar_descriptions
    return not texts or all(_EMPTY_REGION.search(t) for t in texts)


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


def _with_categories(mentions: list[set[Concept]], weights: list[float]) -> list[set[Concept]]:
    """Add broader object concepts when the firing exemplars show several different nouns.

    A ``category`` (animals) when three or more nouns of one vocabulary category fire; a
    ``group`` for every everyday set (:data:`HYPERNYMS`: birds) of which three or more members
    fire; else a ``group`` of the nouns seen when no single noun dominates.
    """
    weight: dict[str, float] = {}
    for ms, w in zip(mentions, weights, strict=True):
        for c in ms:
            if w > 0 and c.kind == "object":
                weight[c.name] = weight.get(c.name, 0.0) + w
    by_category: dict[str, set[str]] = {}
    for noun in weight:
        by_category.setdefault(noun_category(noun), set()).add(noun)
    broad = {cat for cat, nouns in by_category.items() if len(nouns) >= MIN_CATEGORY_NOUNS}
    groups = [Concept("group", "+".join(nouns)) for nouns in HYPERNYMS.values()
              if len(set(nouns) & set(weight)) >= MIN_CATEGORY_NOUNS]
    total = sum(w for w in weights if w > 0) or 1.0
    if not groups and len(weight) >= MIN_CATEGORY_NOUNS and max(weight.values()) / total < 0.6:
        groups = [Concept("group", "+".join(sorted(weight, key=lambda n: (-weight[n], n))[:MAX_GROUP]))]
    out = []
    for ms in mentions:
        nouns = {c.name for c in ms if c.kind == "object"}
        more = {Concept("category", noun_category(n)) for n in nouns if noun_category(n) in broad}
        more |= {g for g in groups if nouns & set(g.members)}
        out.append(ms | more)
    return out


def _share(reading: Reading, pred: Callable[[set[Concept]], bool]) -> float:
    total = sum(reading.weights) or 1.0
    return sum(w for ms, w in zip(reading.mentions, reading.weights, strict=True) if pred(ms)) / total


def _focus_first(reading: Reading, a: Concept, b: Concept) -> tuple[Concept, Concept]:
    """Order a conditional pair: what the highlighted regions show most is the focus (the unit fires on
    it), the other the condition; an object and its own colour or texture (about equally frequent)
    read as "car, only when it is red"."""
    sa, sb = reading.scores.get(a, 0.0), reading.scores.get(b, 0.0)
    if abs(sa - sb) < 0.1:
        if a.kind in ATTRIBUTE_KINDS and b.kind in OBJECT_KINDS:
            return b, a
        if b.kind in ATTRIBUTE_KINDS and a.kind in OBJECT_KINDS:
            return a, b

    def rank(c: Concept) -> tuple:
        return (-round(reading.scores.get(c, 0.0), 1), KIND_ORDER[c.kind], reading.first_pos.get(c, 99), c)
    return (a, b) if rank(a) <= rank(b) else (b, a)


def _explained_by_another(reading: Reading, a: Concept, b: Concept) -> bool:
    """Whether a more frequent concept is in (nearly) every exemplar that has ``a`` or ``b``.

    Then the pair is two attributes of that concept (a brown dog, a black dog), not OR or AND.
    """
    either = _share(reading, lambda ms: a in ms or b in ms)
    for c, sc in reading.scores.items():
        if c in (a, b) or c.kind in ("category", "group") or sc <= max(reading.scores[a], reading.scores[b]):
            continue  # (a category does not explain away its members: dog OR bird is not just "animals")
        if _share(reading, lambda ms, c=c: c in ms and (a in ms or b in ms)) >= 0.9 * either:
            return True
    return False


def _is_member(a: Concept, b: Concept) -> bool:
    """Whether ``b`` is part of the broader ``a`` (dog and animals, or dog and 'dog, cat or cow', are not a pair)."""
    if b.kind not in ("object", "group"):
        return False
    if a.kind == "category":
        return all(noun_category(m) == a.name for m in b.members)
    return a.kind == "group" and set(b.members) <= set(a.members) and a != b


def _initial_hypotheses(reading: Reading) -> list[Hyp]:
    hyps: list[Hyp] = [Hyp("single", c) for c in reading.candidates]
    pool = sorted(reading.scores, key=lambda c: (-reading.scores[c], KIND_ORDER[c.kind], c))[:8]
    pairs: list[tuple[float, Hyp]] = []
    for i, a in enumerate(pool):
        for b in pool[i + 1 :]:
            if a.kind == b.kind == "background":
                continue
            pa, pb = reading.scores[a], reading.scores[b]
            if _explained_by_another(reading, a, b) or _is_member(a, b) or _is_member(b, a):
                continue
            both = _share(reading, lambda ms, a=a, b=b: a in ms and b in ms)
            either = _share(reading, lambda ms, a=a, b=b: a in ms or b in ms)
            if min(pa, pb) >= 0.25 and either >= 0.7 and both <= 0.5 * min(pa, pb):
                pairs.append((pa + pb, Hyp("or", *sorted([a, b], key=lambda c: -reading.scores[c]))))
            elif max(pa, pb) >= 0.4 and min(pa, pb) >= MIN_SCORE:
                focus, cond = _focus_first(reading, a, b)
                if both / max(reading.scores[focus], 1e-9) >= 0.8:
                    pairs.append((pa + pb, Hyp("conditional", focus, cond)))
    pairs.sort(key=lambda x: (-round(x[0], 6), hyp_id(x[1])))
    hyps += [h for _, h in pairs[:MAX_PAIRS]]
    return hyps


# --------------------------------------------------------------------------- designing images


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
        bgs = [b for b in CONTEXT_BACKGROUNDS
               if b not in names["background"] and not set(regions_of(b)) & names["region"]]
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


@dataclass
class Experiment:
    """One experiment: a phase name, a note, and prompts (text2image) or prompts + edits (edit_images)."""

    phase: str
    note: str
    prompts: list[str]
    edits: list[str] | None = None

    def tool_calls(self) -> list[ToolCall]:
        """make images -> neuron -> log, once per chunk of at most :data:`CHUNK` images (a tool's limit)."""
        calls: list[ToolCall] = []
        for start in range(0, len(self.prompts), CHUNK):
            prompts = self.prompts[start : start + CHUNK]
            k = len(calls)
            if self.edits is None:
                calls.append(ToolCall(tool="text2image", args={"prompts": prompts}))
            else:
                edits = self.edits[start : start + CHUNK]
                calls.append(ToolCall(tool="edit_images", args={"prompts": prompts, "edits": edits}))
            calls.append(ToolCall(tool="neuron", args={"images": f"${k}.images"}))
            calls.append(ToolCall(tool="log_experiment", args={
                "note": self.note, "activations": f"${k + 1}.activations", "images": f"${k + 1}.images",
                "prompts": f"${k}.prompts"}))
        return calls

    def code(self) -> str:
        """The same experiment as ``def run_experiment(system, tools)`` for code mode."""

        def listing(name: str, items: list[str]) -> list[str]:
            return [f"    {name} = ["] + [f"        {item!r}," for item in items] + ["    ]"]

        lines = ["def run_experiment(system, tools):"]
        lines += [f"    # {line}" for line in textwrap.wrap(_one_line(self.note), 90)]
        note = repr(self.phase + " experiment")
        if self.edits is None and len(self.prompts) > CHUNK:
            lines += listing("prompts", self.prompts)
            lines += [
                "    activations = []",
                f"    for start in range(0, len(prompts), {CHUNK}):  # a tool call takes at most {CHUNK} prompts",
                f"        chunk = prompts[start:start + {CHUNK}]",
                "        acts, overlays = system.neuron(tools.text2image(chunk))",
                f"        tools.log_experiment(acts, overlays, chunk, note={note})",
                "        activations += acts",
            ]
        else:
            if self.edits is None:
                lines += listing("prompts", self.prompts)
                lines += ["    images = tools.text2image(prompts)"]
            else:
                lines += listing("originals", self.prompts) + listing("edits", self.edits)
                lines += ["    images, prompts = tools.edit_images(originals, edits)"]
            lines += [
                "    activations, overlays = system.neuron(images)",
                f"    tools.log_experiment(activations, overlays, prompts, note={note})",
            ]
        lines.append('    return {"prompts": prompts, "activations": activations}')
        return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())


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


# --------------------------------------------------------------------------- scoring


def _auc(pos: list[float], neg: list[float]) -> float:
    """Probability that a random positive outranks a random negative (ties count half)."""
    if not pos or not neg:
        return 0.5
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


def _r2(pos: list[float], neg: list[float]) -> float:
    """Squared point-biserial correlation between 'predicted to fire' and the activation."""
    values = pos + neg
    if not pos or not neg:
        return 0.0
    mean = sum(values) / len(values)
    total = sum((v - mean) ** 2 for v in values)
    if total <= 1e-12:
        return 0.0
    between = len(pos) * (sum(pos) / len(pos) - mean) ** 2 + len(neg) * (sum(neg) / len(neg) - mean) ** 2
    return between / total


def _scale(records: list[Record], exemplar_acts: Sequence[float]) -> float:
    values = [abs(r.activation) for r in records] + [abs(float(a)) for a in exemplar_acts]
    return max(values, default=1.0) or 1.0


def score(h: Hyp, records: list[Record], scale: float) -> Scored:
    """Separation, effect, per-context consistency and edit agreement of one hypothesis."""
    s = Scored(h)
    pos = [r.activation for r in records if h.fires(r.features)]
    neg = [r.activation for r in records if not h.fires(r.features)]
    s.n_pos, s.n_neg = len(pos), len(neg)
    s.mean_pos = sum(pos) / len(pos) if pos else 0.0
    s.mean_neg = sum(neg) / len(neg) if neg else 0.0
    s.auc = _auc(pos, neg)
    s.r2 = _r2(pos, neg)
    for bg in sorted({r.background or "plain" for r in records}):
        p = [r.activation for r in records if r.background == bg and h.fires(r.features)]
        q = [r.activation for r in records if r.background == bg and not h.fires(r.features)]
        if p and q:
            s.contexts_total += 1
            s.contexts_agree += sum(p) / len(p) - sum(q) / len(q) >= 0.1 * scale
    for r in records:
        if r.pair is None:
            continue
        orig = records[r.pair]
        before, after = h.fires(orig.features), h.fires(r.features)
        delta = r.activation - orig.activation
        if before != after:
            s.edits_total += 1
            s.edits_agree += delta * (1 if after else -1) >= 0.1 * scale
        elif before:
            s.edits_total += 1
            s.edits_agree += r.activation >= 0.5 * orig.activation
    if h.kind != "single":
        _check_cells(s, records)
    _judge(s, scale)
    return s


def _check_cells(s: Scored, records: list[Record]) -> None:
    """The 2x2 cells of an OR or conditional hypothesis, and the cell that contradicts it, if any.

    "A, only when B" needs A alone and B alone to stay low; "A OR B" needs each alone to fire.
    Low and high are measured against the midpoint between the images with neither and the
    strongest cell, so a unit with a high baseline is judged the same way.
    """
    a, b = s.hyp.a, s.hyp.b
    assert b is not None
    groups: dict[str, list[float]] = {"both": [], "a only": [], "b only": [], "neither": []}
    for r in records:
        pa, pb = present(a, r.features), present(b, r.features)
        key = "both" if pa and pb else "a only" if pa else "b only" if pb else "neither"
        groups[key].append(r.activation)
    s.cells = {k: (sum(v) / len(v), len(v)) for k, v in groups.items() if v}
    if "neither" not in s.cells:
        return
    base = s.cells["neither"][0]
    names = {"a only": f"{a.phrase} without {b.phrase}", "b only": f"{b.phrase} without {a.phrase}"}
    if s.hyp.kind == "conditional" and "both" in s.cells:
        mid = base + 0.5 * (s.cells["both"][0] - base)
        for key in ("a only", "b only"):
            if key in s.cells and s.cells[key][1] >= 2 and s.cells[key][0] >= mid:
                s.flaw = f"{names[key]} fires too (mean {s.cells[key][0]:.3g})"
    elif s.hyp.kind == "or":
        alone = {k: s.cells[k] for k in ("a only", "b only") if k in s.cells and s.cells[k][1] >= 2}
        if len(alone) == 2:
            top = max(m for m, _ in alone.values())
            for key, (m, _) in alone.items():
                if m < base + 0.5 * (top - base):
                    s.flaw = f"{names[key]} barely fires (mean {m:.3g} vs {top:.3g})"


def _judge(s: Scored, scale: float) -> None:
    rel = s.effect / scale
    edit_rate = s.edits_agree / s.edits_total if s.edits_total else None
    if s.n_pos < 2 or s.n_neg < 2:
        s.status, s.confidence = "open", 0.5
        return
    if s.auc < 0.65 or rel < 0.05 or (edit_rate is not None and s.edits_total >= 3 and edit_rate < 0.4):
        s.status = "refuted"
    elif s.n_pos >= 3 and s.n_neg >= 3 and s.auc >= 0.85 and rel >= 0.15 and (edit_rate is None or edit_rate >= 0.7):
        s.status = "supported"
    else:
        s.status = "open"
    separation = max(0.0, (s.auc - 0.5) * 2)
    size = min(1.0, (s.n_pos + s.n_neg) / 30)
    edits = edit_rate if edit_rate is not None else 0.8
    s.confidence = round(min(0.97, 0.05 + 0.92 * separation * (0.6 + 0.4 * size) * (0.5 + 0.5 * edits)), 2)
    if s.flaw:
        s.status, s.confidence = "refuted", min(s.confidence, 0.3)


def best(scored: list[Scored]) -> Scored | None:
    """Supported before open before refuted; within a status the best separation (AUC).

    Near ties in AUC (a unit that fires a lot on dogs and a little on cars ranks dog images
    first either way) are settled by the variance explained, with a small price on every
    extra concept, so "dog OR car" wins only if the cars really matter.
    """
    if not scored:
        return None
    rank = {"supported": 0, "open": 1, "refuted": 2}
    top_status = min(rank[s.status] for s in scored)
    group = [s for s in scored if rank[s.status] == top_status]
    top_auc = max(s.auc for s in group)
    near = [s for s in group if s.auc >= top_auc - 0.03]
    return sorted(near, key=lambda s: (-round(s.r2 - 0.05 * s.hyp.complexity, 4), -s.auc, hyp_id(s.hyp)))[0]


# --------------------------------------------------------------------------- the plan


@dataclass
class State:
    """Everything derived from the view (recomputed each call: the scientist keeps no state)."""

    reading: Reading
    hyps: list[Hyp]
    records: list[Record]
    scored: list[Scored]
    scale: float
    done: int  # experiments already run (successful or not)
    context: Concept | None = None  # the concept a context search looks for a condition of
    coverage: tuple[Concept, Concept] | None = None  # (leading concept, concept of exemplars it leaves out)

    @property
    def leader(self) -> Scored | None:
        return best(self.scored)


def critic_concepts(view: ScientistView) -> list[Concept]:
    """Concepts named in any critic request, in order (alternatives the critic wants tested)."""
    found: list[Concept] = []
    for report in view.critic:
        for request in report.requests:
            found += parse_text(re.sub(r"\([^)]*\)", " ", request)).concepts()  # drop "(so far: ...)" asides
    return list(dict.fromkeys(found))


def derive(view: ScientistView) -> State:
    """Hypotheses, evidence and scores from the view (the same view always gives the same state)."""
    reading = reading_for(view)
    hyps, focus = base_hypotheses(view, reading)
    coverage = coverage_target(view, reading, hyps)
    if coverage is not None:
        lead, other = coverage
        hyps += [h for h in (Hyp("single", other), Hyp("or", lead, other)) if h not in hyps]
    named = {c for h in hyps for c in h.concepts}
    hyps += [Hyp("single", c) for c in critic_concepts(view) if c not in named]  # alternatives the critic raised
    records = evidence_from(view.observations)
    scale = _scale(records, view.exemplar_activations)
    scored = [score(h, records, scale) for h in hyps]
    return State(reading, hyps, records, scored, scale, len(view.observations), focus, coverage)


def base_hypotheses(view: ScientistView, reading: Reading) -> tuple[list[Hyp], Concept | None]:
    """The exemplars' hypotheses plus, once the context search is due, one conditional per companion."""
    hyps = list(reading.hypotheses)
    focus = context_target(view, reading)
    if focus is not None:
        for c in companions(reading, focus):
            h = Hyp("conditional", *_focus_first(reading, focus, c))
            if h not in hyps:
                hyps.append(h)
    return hyps, focus


def _first_phases(reading: Reading) -> int:
    """Observations before the context search: the survey (if any), the screen, the pairs (if any)."""
    return reading.start + (2 if _pair_hyps(reading) else 1)


def _pair_hyps(reading: Reading) -> list[Hyp]:
    return [h for h in reading.hypotheses if h.kind != "single"]


def next_experiment(view: ScientistView, state: State) -> Experiment | None:
    """The next experiment of the plan, or None when it is time to conclude."""
    phases = _planned_phases(view, state)
    if state.done < len(phases):
        return phases[state.done]()
    critic_rounds = state.done - len(phases)
    if critic_rounds >= MAX_CRITIC_ROUNDS or not view.critic:
        return None
    last = view.critic[-1]
    if last.satisfied or not last.requests:
        return None
    return design_for_requests(view, state, last.requests, offset=20 + 6 * critic_rounds)


def _planned_phases(view: ScientistView, state: State) -> list[Callable[[], Experiment]]:
    """The fixed phases; each is designed only when it is its turn, from the evidence so far."""
    reading = state.reading
    phases: list[Callable[[], Experiment]] = [design_survey] if reading.start else []
    if reading.start and len(view.observations) < reading.start:
        return phases
    phases.append(lambda: design_screen(reading))
    pairs = _pair_hyps(reading)
    if pairs:
        phases.append(lambda: design_pairs(reading, pairs, offset=SCREEN_CONTEXTS))
    if state.done < len(phases):
        return phases
    focus = state.context
    if focus is not None:
        phases.append(lambda: design_context(reading, focus, offset=8))
    coverage = state.coverage
    if coverage is not None:
        phases.append(lambda: design_coverage(reading, *coverage, offset=17))
    phases.append(lambda: design_edits(reading, _edit_target(state), offset=12))
    return phases


def context_target(view: ScientistView, reading: Reading) -> Concept | None:
    """The concept a context search is about, once the screen (and pairs) ran: the best single
    hypothesis on that evidence (the top exemplar concept when none is better than chance).

    The search always runs: exemplars may show only a weak response (a conditional unit
    "leaks" a little without its condition), so what the describer saw is not enough to rule
    out a condition it could not see. Decided on the first experiments only, so the plan
    stays the same whatever later experiments show.
    """
    if not reading.candidates:
        return None
    first = _first_phases(reading)
    if len(view.observations) < first:
        return None
    records = evidence_from(view.observations[:first])
    scale = _scale(records, view.exemplar_activations)
    singles = [score(h, records, scale) for h in reading.hypotheses if h.kind == "single"]
    lead = best([s for s in singles if s.status != "refuted" and s.auc > 0.6])
    return lead.hyp.a if lead is not None else reading.candidates[0]


def coverage_target(view: ScientistView, reading: Reading, hyps: list[Hyp]) -> tuple[Concept, Concept] | None:
    """(leading concept, another concept) when the leading single hypothesis, after the screen, pairs and
    context search, leaves strongly firing exemplars unexplained: the unit may respond to both (OR).

    Decided on those first experiments only, so the plan does not change afterwards.
    """
    done = _first_phases(reading) + (1 if context_target(view, reading) is not None else 0)
    if len(view.observations) < done or not reading.candidates:
        return None
    records = evidence_from(view.observations[:done])
    scale = _scale(records, view.exemplar_activations)
    lead = best([score(h, records, scale) for h in hyps])
    if lead is None or lead.hyp.kind != "single":
        return None
    left_out = uncovered(reading, lead.hyp)
    counts: dict[Concept, float] = {}
    for i in left_out:
        for c in reading.mentions[i]:
            if c != lead.hyp.a and not _is_member(c, lead.hyp.a) and not _is_member(lead.hyp.a, c):
                counts[c] = counts.get(c, 0.0) + reading.weights[i]
    if not counts:
        return None
    other = min(counts, key=lambda c: (-round(counts[c], 6), c.kind not in OBJECT_KINDS, KIND_ORDER[c.kind], c))
    return lead.hyp.a, other


def uncovered(reading: Reading, h: Hyp) -> list[int]:
    """Strongly firing exemplars (at least half the top activation) where ``h`` predicts no response."""
    out = []
    for i, (text, w) in enumerate(zip(reading.texts, reading.weights, strict=True)):
        if w < 0.5:
            continue
        features = parse_text(text).features() | {c.key for c in reading.mentions[i]}
        if not h.fires(frozenset(features)):
            out.append(i)
    return out


def _edit_target(state: State) -> Hyp:
    lead = state.leader
    if lead is not None:
        return lead.hyp
    return Hyp("single", state.reading.candidates[0])


def design_for_requests(view: ScientistView, state: State, requests: list[str], offset: int) -> Experiment:
    """Answer the critic: test concepts it names, run edits when it asks for causal evidence, else replicate."""
    text = " ".join(requests).lower()
    known = {c for h in state.hyps for c in h.concepts if any(c.key in r.features for r in state.records)}
    new = [c for c in critic_concepts(view) if c not in known]
    lead = state.leader.hyp if state.leader else Hyp("single", state.reading.candidates[0])
    asked = "; ".join(requests)
    if new:
        palette = Palette.avoiding([*lead.concepts, *new], state.reading.mentioned)
        cells = [[c] for c in new] + [list(lead.concepts)] + [[]]
        note = f"critic: testing the concepts it named ({', '.join(c.phrase for c in new)}); it asked: {asked}"
        return _cells_experiment("critic", note, cells, range(offset, offset + SCREEN_CONTEXTS), palette)
    if any(w in text for w in ("edit", "causal", "remove", "replace", "intervention", "counterfactual")):
        exp = design_edits(state.reading, lead, offset)
        exp.phase, exp.note = "critic", f"critic asked for causal evidence ({asked}); {exp.note}"
        return exp
    exp = design_replication(state.reading, lead, offset)
    exp.phase, exp.note = "critic", f"critic asked: {asked}; {exp.note}"
    return exp


# --------------------------------------------------------------------------- the scientist


def _hypotheses_out(state: State) -> list[Hypothesis]:
    out = []
    for s in state.scored:
        h = s.hyp
        out.append(Hypothesis(
            id=hyp_id(h),
            statement=h.statement(),
            # plain prompt words, so any reader of prompts (the critic) can count the images that show them
            concepts=[h.a.term] if h.kind == "conditional" else [c.term for c in h.concepts],
            kind=h.kind,
            condition=h.b.term if h.kind == "conditional" and h.b else None,
            status=s.status,
            confidence=s.confidence if s.n_pos >= 2 and s.n_neg >= 2 else _prior(state.reading, h),
        ))
    return out


def _prior(reading: Reading, h: Hyp) -> float:
    return round(0.2 + 0.5 * min(reading.scores.get(c, 0.0) for c in h.concepts), 2)


def _summary(s: Scored) -> str:
    text = (f"{s.hyp.short()}: {s.status} (AUC {s.auc:.2f}; mean {s.mean_pos:.3g} where it predicts "
            f"firing, n={s.n_pos}, vs {s.mean_neg:.3g}, n={s.n_neg}")
    if s.contexts_total:
        text += f"; holds on {s.contexts_agree}/{s.contexts_total} backgrounds"
    if s.edits_total:
        text += f"; {s.edits_agree}/{s.edits_total} edit pairs agree"
    if s.flaw:
        text += f"; but {s.flaw}"
    return text + ")"


def _ranked(scored: list[Scored]) -> list[Scored]:
    """Supported, then open, then refuted; within each the best separation first."""
    rank = {"supported": 0, "open": 1, "refuted": 2}
    return sorted(scored, key=lambda s: (rank[s.status], -round(s.auc, 3), s.hyp.complexity, hyp_id(s.hyp)))


def _summaries(scored: list[Scored], limit: int, prefix: str = "") -> list[str]:
    """One line per tested hypothesis (the most telling first), the rest counted."""
    tested = [s for s in _ranked(scored) if s.n_pos and s.n_neg]
    lines = [prefix + _summary(s) for s in tested[:limit]]
    rest = tested[limit:]
    if rest:
        counts = {st: sum(1 for s in rest if s.status == st) for st in ("supported", "open", "refuted")}
        what = ", ".join(f"{n} {st}" for st, n in counts.items() if n)
        names = "; ".join(s.hyp.short() for s in rest[:3]) + ("; ..." if len(rest) > 3 else "")
        lines.append(f"{len(rest)} more hypotheses ({what}), e.g. {names}")
    return lines


def _reading_text(reading: Reading) -> str:
    top = sorted(reading.scores, key=lambda c: (-reading.scores[c], c))[:6]
    return "Exemplar concepts (activation-weighted share): " + ", ".join(
        f"{c.phrase} {reading.scores[c]:.2f}" for c in top)


def cannot_start(view: ScientistView, reading: Reading) -> str | None:
    """Why there is nothing to experiment on (non-world images; a unit silent even on the survey), or None."""
    if _has_signal(reading):
        return None
    if reading.start and not view.observations:
        return None  # the survey comes first
    if reading.start:
        return SILENT_NOTE if view.exemplar_descriptions else NO_EXEMPLARS_NOTE
    return NON_WORLD_NOTE


class OfflineScientist:
    """Deterministic rule-based scientist for world units (see the module docstring for the strategy)."""

    name = "offline"

    def propose(self, view: ScientistView) -> Proposal:
        reading = reading_for(view)
        blocked = cannot_start(view, reading)
        if blocked:
            return Proposal(thoughts=blocked, ready_to_conclude=True)
        state = derive(view)
        thoughts = [_reading_text(reading)]
        if state.records:
            thoughts += _summaries(state.scored, limit=5)
        if view.critic and view.critic[-1].requests:
            thoughts.append("Critic requests: " + "; ".join(view.critic[-1].requests))
        exp = None if view.must_conclude or view.round >= view.max_rounds else next_experiment(view, state)
        if exp is None or not exp.prompts:
            thoughts.append("Planned experiments are done and the critic has no open request: concluding.")
            return Proposal(thoughts="\n".join(thoughts), hypotheses=_hypotheses_out(state), ready_to_conclude=True)
        thoughts.append(f"Next ({exp.phase}): {exp.note}")
        proposal = Proposal(thoughts="\n".join(thoughts), hypotheses=_hypotheses_out(state))
        if view.mode == "code":
            proposal.code = exp.code()
        else:
            proposal.tool_calls = exp.tool_calls()
        return proposal

    def conclude(self, view: ScientistView) -> Conclusion:
        reading = reading_for(view)
        blocked = cannot_start(view, reading)
        if blocked:
            label = "uninterpreted: needs a VLM backend" if blocked == NON_WORLD_NOTE else "uninterpreted"
            return Conclusion(description=blocked, labels=[label],
                              evidence=[f"{len(view.exemplar_descriptions)} exemplar descriptions, "
                                        f"{len(reading.scores)} world concepts in them"],
                              confidence=0.0, forced=view.must_conclude)
        state = derive(view)
        lead = state.leader
        if lead is None or not state.records:
            c = reading.candidates[0]
            return Conclusion(
                description=f"Untested guess from the exemplars only: {c.phrase} (no experiment ran).",
                labels=[c.phrase], evidence=[_reading_text(reading)], confidence=0.2, forced=view.must_conclude)
        return Conclusion(description=_description(lead, state), labels=lead.hyp.labels(),
                          evidence=_evidence(lead, state, reading), confidence=lead.confidence,
                          forced=view.must_conclude)


def _description(s: Scored, state: State) -> str:
    h = s.hyp
    if h.kind == "single":
        core = f"Selective for {h.a.phrase}"
    elif h.kind == "or":
        assert h.b is not None
        core = f"Polysemantic: {h.a.phrase} OR {h.b.phrase}"
    else:
        assert h.b is not None
        core = f"Selective for {h.a.phrase}, {condition_phrase(h.a, h.b)}"
    numbers = (f"mean activation {s.mean_pos:.3g} on {s.n_pos} images where this predicts firing vs "
               f"{s.mean_neg:.3g} on {s.n_neg} where it does not (AUC {s.auc:.2f})")
    if s.status == "supported":
        return f"{core}: {numbers}."
    if s.status == "open":
        return f"Tentatively: {core.lower()} ({numbers}); the evidence is not conclusive."
    return (f"No tested hypothesis holds; the least bad is: {core.lower()} ({numbers}). "
            "The unit may respond to something the world vocabulary cannot express.")


def _evidence(lead: Scored, state: State, reading: Reading) -> list[str]:
    lines = [_reading_text(reading), f"Leading: {_summary(lead)}"]
    lines += _summaries([s for s in state.scored if s is not lead], limit=3, prefix="Alternative ")
    lines.append(f"{len(state.records)} images over {state.done} experiments")
    return lines
