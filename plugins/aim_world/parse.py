"""Prompt -> scene graph.

A small, deterministic reader of prompts like "three striped cats next to a blue car on the
beach" or "a person holding a red umbrella in the snow". It knows articles, numbers, colours,
textures, sizes, styles, spatial relations, compositions ("X with Y", "X holding Y"),
backgrounds, negations ("a beach with no people", "a cat that is not black": constraints the
scene obeys, recorded in :attr:`Scene.negations`), idioms ("a cup of coffee", "a glass of water",
"a baseball bat", "a crowd of people", "close-up of a dog"); every other word is reported in
:attr:`Scene.unknown_words`, never silently dropped, and an unknown subject with nothing else to
draw is an error. Placement is random but deterministic for a (prompt, seed) pair, respects the
relations and keeps objects from covering each other.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from aim_agent.providers import ProviderError
from aim_world.relations import failed_relations
from aim_world.render import glyph_extent, record_visibility
from aim_world.scene import Negation, Scene, SceneObject, SceneRelation, backdrop
from aim_world.variety import object_look
from aim_world.vocabulary import (
    BACKGROUND_BY_NAME,
    COLORS,
    DEFAULT_BACKGROUND,
    NOUN_BY_NAME,
    SCALE_STEP,
    SIZES,
    STYLES,
    TEXTURE_SYNONYMS,
    background_lexicon,
    closest_words,
    color_lexicon,
    describe_vocabulary,
    noun_lexicon,
    plurals,
    real_scale,
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
    "a trio of": 3, "trio of": 3, "a triple of": 3, "a quartet of": 4, "half a dozen": 6,
    "a crowd of": 6, "crowd of": 6, "crowds of": 9, "a piece of": 1, "piece of": 1, "a slice of": 1, "slice of": 1,
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
    # occlusion: the subject is partly hidden by the object, or hides part of it
    "behind": "behind", "partly behind": "behind", "partially behind": "behind", "half behind": "behind",
    "hidden behind": "behind", "partly hidden behind": "behind", "partially hidden behind": "behind",
    "half hidden behind": "behind", "peeking out from behind": "behind", "peeking from behind": "behind",
    "occluded by": "behind", "partly occluded by": "behind", "partially occluded by": "behind",
    "partly covered by": "behind", "partially covered by": "behind",
    "in front of": "in front of", "partly in front of": "in front of", "partly covering": "in front of",
    "partially covering": "in front of",
}
COMPOSE: dict[str, str] = {
    "with": "with", "holding": "holding", "carrying": "holding", "wearing": "with", "has": "with",
    "having": "with", "and its": "with", "with its": "with", "on a leash": "with", "grabbing": "holding",
    "wears": "with", "holds": "holding", "carries": "holding", "grabs": "holding", "clutching": "holding",
    "clutches": "holding",
}
#: passive verbs: the phrase after them is the one acting ("a ball held by a person": a person holding a ball)
PASSIVES: dict[str, tuple[str, str]] = {  # words -> ("compose" | "relation", what the active voice says)
    "held by": ("compose", "holding"), "carried by": ("compose", "holding"), "grabbed by": ("compose", "holding"),
    "being held by": ("compose", "holding"), "worn by": ("compose", "with"), "owned by": ("compose", "with"),
    "ridden by": ("relation", "on top of"), "topped by": ("relation", "on top of"),
    "topped with": ("relation", "on top of"),
}
#: a relation to "it": the phrase before it stands so to the thing it belongs to ("a house with a tree to its left")
RELATIVE_TO_IT: dict[str, str] = {
    "to its left": "left of", "on its left": "left of", "to its right": "right of", "on its right": "right of",
    "on top of it": "on top of", "on it": "on top of", "above it": "above", "over it": "above", "below it": "below",
    "under it": "below", "beneath it": "below", "beside it": "next to", "next to it": "next to",
    "behind it": "behind", "in front of it": "in front of",
}
#: "next to each other": the relation holds between the two phrases before it
RECIPROCAL = frozenset({"each other", "one another"})
HINTS: dict[str, tuple[str, str]] = {
    "on the left": ("x", "left"), "at the left": ("x", "left"), "to the left": ("x", "left"),
    "on the right": ("x", "right"), "at the right": ("x", "right"), "to the right": ("x", "right"),
    "at the top": ("y", "top"), "on top": ("y", "top"), "at the bottom": ("y", "bottom"),
    "in the middle": ("x", "middle"), "in the center": ("x", "middle"), "in the centre": ("x", "middle"),
}
#: negation words: "object" excludes what follows ("no people"); "not" excludes an attribute of the
#: noun it describes ("a cat that is not black", "a non-striped cat") or, before a noun, that noun
NEGATIONS: dict[str, str] = {
    "no": "object", "without": "object", "none": "object", "zero": "object", "except": "object",
    "except for": "object", "excluding": "object", "other than": "object", "free of": "object",
    "but no": "object", "lacking": "object", "nor": "object", "neither": "object",
    "devoid of": "object", "empty of": "object", "void of": "object", "free from": "object", "bereft of": "object",
    "missing": "object", "minus": "object", "sans": "object", "not a single": "object", "not any": "object",
    "not one": "object", "no sign of": "object", "anything but": "object", "everything but": "object",
    "anything except": "object", "everything except": "object", "anything other than": "object",
    "not": "not", "non": "not", "never": "not", "but not": "not", "isn t": "not", "aren t": "not",
    "isnt": "not", "arent": "not", "doesn t": "not", "don t": "not", "wasn t": "not", "weren t": "not",
}
#: words that bound or stress a count without changing the number drawn ("at least three cats": three)
COUNT_HEDGES = frozenset({"at least", "at most", "no more than", "no fewer than", "no less than", "up to",
                          "exactly", "precisely", "approximately", "roughly", "about"})
#: "close-up of a dog": one subject filling the frame
CLOSEUP = frozenset({"close up of", "closeup of", "close up shot of", "close up photo of", "close up view of",
                     "macro shot of", "macro photo of", "zoomed in on", "close up", "closeup"})
CLOSEUP_SIZES = (1.0, 1.3)  # a close-up's glyph box, fractions of the frame: it fills it and may be cropped
#: collective numbers a size word scales ("a large crowd of people": more people, not larger ones)
COLLECTIVE_WORDS = frozenset({"crowd", "crowds", "group", "herd", "flock", "bunch", "row", "lot", "lots", "pack"})
#: scene words that are not objects: an unknown one is never reported as an undrawable subject
NOT_OBJECTS = frozenset({"day", "daytime", "morning", "evening", "afternoon", "sunset", "sunrise", "dusk", "dawn",
                         "weather", "time", "light", "daylight", "landscape", "scenery", "setting", "place",
                         "side", "distance", "foreground", "middle", "center", "centre", "front", "back",
                         "corner", "top", "bottom", "left", "right", "style", "color", "colour", "kind", "sort",
                         "lot", "one", "ones", "t", "pattern", "patterns", "print", "design", "motif", "shape",
                         "colors", "colours", "coloring", "colouring", "shade", "tone", "texture"})


@dataclass(frozen=True)
class Idiom:
    """A phrase read as a whole: "a cup of coffee" is one cup, "a baseball bat" is not an animal."""

    noun: str
    note: str | None = None
    count: int | None = None


def _idioms() -> dict[str, Idiom]:
    """Containers of drinks and food, bats, crowds (singular and plural forms)."""
    drinks = ("coffee", "tea", "cocoa", "hot chocolate", "milk", "water", "juice", "soup", "lemonade", "soda",
              "beer", "wine", "cereal", "rice", "ice water", "iced tea", "orange juice", "apple juice")
    containers: dict[str, tuple[str, tuple[str, ...]]] = {  # word -> (noun, what it holds)
        "cup": ("cup", drinks), "mug": ("cup", drinks), "teacup": ("cup", drinks), "coffee cup": ("cup", drinks),
        "glass": ("tumbler", ("water", "milk", "juice", "lemonade", "soda", "ice water", "iced tea",
                              "orange juice", "apple juice")),
        "wine glass": ("glass", ("wine", "red wine", "white wine", "champagne")),
        "bottle": ("bottle", drinks), "bowl": ("bowl", drinks), "bucket": ("bucket", ("water", "milk")),
    }
    table: dict[str, Idiom] = {}
    for word, (noun, contents) in containers.items():
        for content in contents:
            for form in (word, *plurals(word)):
                table[f"{form} of {content}"] = Idiom(noun, f"drew the {noun}; its {content} is not drawn")
    table["glass of wine"] = table["glasses of wine"] = Idiom("glass")
    for sport in ("baseball", "softball", "wooden", "cricket"):
        for form in ("bat", "bats"):
            note = None if sport == "cricket" else (
                f"'{sport} {form}' drawn as the world's one bat object, a cricket bat (with its ball)")
            table[f"{sport} {form}"] = Idiom("cricket bat", note)
    table["crowd"] = Idiom("person", count=6)
    table["crowds"] = Idiom("person", count=9)
    return table


#: figures of speech whose words name things they do not mean: never drawn literally (the meaning is reported)
FIGURATIVE: dict[str, str] = {
    "raining cats and dogs": "heavy rain", "rains cats and dogs": "heavy rain", "rain cats and dogs": "heavy rain",
    "cat out of the bag": "a secret revealed", "when pigs fly": "never", "cat got your tongue": "why so quiet",
    "apple of my eye": "someone dear", "dog days": "hot summer days",
}

IDIOMS: dict[str, Idiom] = {}  # filled below, once the vocabulary's plural rules are imported

BG_PREPOSITIONS = frozenset({"in", "on", "at", "by", "near", "under", "over", "against", "across", "inside",
                             "within", "into", "onto", "through", "along", "beneath", "amid", "among",
                             "above", "below", "underneath", "atop", "upon", "beside"})
#: prepositions that place one thing against another: after them "a mountain" is an object, "the mountains" the
#: background ("a sun above a mountain", "a plane over the mountains")
PLACING_PREPOSITIONS = frozenset({"above", "below", "under", "over", "beneath", "underneath", "atop", "upon",
                                  "beside"})
AND_WORDS = frozenset({"and", "plus", "also", "but"})
IDIOMS.update(_idioms())


@dataclass
class Token:
    kind: str  # noun color texture size style number relation compose hint background and negate closeup stop unknown
    value: object
    text: str
    plural: bool = False
    count: int | None = None  # a noun that carries its number ("a crowd")
    note: str | None = None  # how an idiom was read


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
    closeup: bool = False  # one subject filling the frame
    dropped: bool = False  # excluded by a negation of the same prompt (reported in the notes)
    excluded: dict[str, set[str]] = field(default_factory=dict)  # attribute -> values it must not have


@dataclass
class Excluded:
    """A negation read from the prompt: an object kind (with attributes), a background, or attributes of a group."""

    phrase: str
    noun: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)
    background: str | None = None
    group: int | None = None  # attribute exclusion: the group it is about


@dataclass
class Parsed:
    groups: list[Group]
    relations: list[tuple[int, str, int]]
    background: str | None
    unknown: list[str]
    notes: list[str]
    excluded: list[Excluded] = field(default_factory=list)
    subjects_unknown: list[str] = field(default_factory=list)  # unknown words that name a thing to draw


# --------------------------------------------------------------------------- tokens


def normalize(text: str) -> list[str]:
    """The words of ``text`` (lower case, apostrophes and hyphens split), as the layout's seed reads them."""
    text = text.lower().replace("'s ", " ").replace("’s ", " ")
    return re.findall(r"[a-z]+|\d+", text.replace("-", " "))


def words_of(text: str) -> list[str]:
    """The words of ``text`` as the grammar reads them: :func:`normalize`'s, with accents folded ("café") and
    commas and semicolons kept as ``","`` (they end a noun phrase: "dogs, cats" is two phrases)."""
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    text = folded.lower().replace("'s ", " ").replace("’s ", " ")
    return re.findall(r"[a-z]+|\d+|[,;]", text.replace("-", " "))


def foreign_script(text: str) -> str | None:
    """The name of the first non-Latin script whose letters ``text`` uses ("CJK", "CYRILLIC"), or None."""
    for char in text:
        if char.isalpha() and not char.isascii():
            script = unicodedata.name(char, "UNKNOWN").split()[0]
            if script != "LATIN":
                return script
    return None


#: a prompt quoted in an error keeps this many characters (a 10,000-character prompt is not echoed whole)
QUOTE_CHARS = 80


#: an error lists at most this many unknown words (and how many more there are)
MAX_QUOTED_WORDS = 10


def _listed(words: list[str]) -> str:
    shown = ", ".join(repr(w) for w in words[:MAX_QUOTED_WORDS])
    return shown + (f" and {len(words) - MAX_QUOTED_WORDS} more" if len(words) > MAX_QUOTED_WORDS else "")


def quote(text: str) -> str:
    """``text`` as an error message quotes it: in full when short, else its start and its length."""
    if len(text) <= QUOTE_CHARS:
        return repr(text)
    return f"{text[:QUOTE_CHARS]!r}… ({len(text)} characters)"


@cache
def _plural_forms() -> frozenset[str]:
    """Noun forms that name more than one thing: plurals of a name or synonym ("dogs"), and synonyms that are
    the plural of another form of the same noun ("people", "leaves"); a canonical name ("grapes", "glasses")
    names one glyph."""
    singular = set()
    plural = set()
    for noun in NOUN_BY_NAME.values():
        forms = [" ".join(f.replace("-", " ").split()) for f in (noun.name, *noun.synonyms)]
        own_plurals = {" ".join(p.replace("-", " ").split()) for f in forms for p in plurals(f) if p != f}
        for f in forms:
            if f == forms[0] or f not in own_plurals:
                singular.add(f)
        plural.update(own_plurals)
    return frozenset(plural - singular)


def _lexicon_kinds(phrase: str) -> list[tuple[str, object]]:
    tables: tuple[tuple[str, Mapping[str, object]], ...] = (
        ("hint", HINTS), ("relation", RELATIONS), ("compose", COMPOSE), ("number", NUMBERS),
        ("texture", TEXTURE_SYNONYMS), ("noun", noun_lexicon()), ("color", color_lexicon()), ("size", SIZES),
        ("style", STYLES), ("background", background_lexicon()),
    )
    if phrase in FIGURATIVE:
        return [("figurative", FIGURATIVE[phrase])]
    if phrase in IDIOMS:
        return [("idiom", IDIOMS[phrase])]
    if phrase in CLOSEUP:
        return [("closeup", None)]
    if phrase in COUNT_HEDGES:
        return [("stop", None)]
    if phrase in NEGATIONS:
        return [("negate", NEGATIONS[phrase])]
    if phrase in PASSIVES:
        return [("passive", PASSIVES[phrase])]
    if phrase in RELATIVE_TO_IT:
        return [("relative", RELATIVE_TO_IT[phrase])]
    if phrase in RECIPROCAL:
        return [("reciprocal", None)]
    kinds: list[tuple[str, object]] = [(kind, table[phrase]) for kind, table in tables if phrase in table]
    if phrase in AND_WORDS:
        kinds.append(("and", None))
    return kinds


def tokenize(text: str) -> list[Token]:
    """Longest-match the words of ``text`` against the vocabulary (ambiguities resolved by context)."""
    words = words_of(text)
    out: list[Token] = []
    i = 0
    while i < len(words):
        if words[i] in {",", ";"}:
            out.append(Token("and", None, ","))
            i += 1
            continue
        for n in range(min(5, len(words) - i), 0, -1):
            phrase = " ".join(words[i : i + n])
            kinds = _lexicon_kinds(phrase)
            if kinds:
                break
        else:
            n, phrase = 1, words[i]
            # a count of zero means absence: "0 dogs" is "no dogs"
            kinds = [] if not phrase.isdigit() else [("negate", "object")] if int(phrase) == 0 else [
                ("number", int(phrase))]
        i += n
        if kinds and kinds[0][0] == "figurative":
            out.append(Token("figurative", kinds[0][1], phrase))
            continue
        if not kinds:
            kind = "stop" if phrase in STOP_WORDS else "unknown"
            out.append(Token(kind, None, phrase))
            continue
        if kinds[0][0] == "idiom":
            idiom: Idiom = kinds[0][1]  # type: ignore[assignment]
            plural = idiom.count is None and phrase.split(" of ")[0] in _plural_forms()
            out.append(Token("noun", idiom.noun, phrase, plural=plural, count=idiom.count, note=idiom.note))
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
    if prev_word in {"a", "an"} and prev2 in PLACING_PREPOSITIONS:  # "a sun above a mountain": one thing
        after_prep = False
    if "background" in names and "noun" in names:
        # "in the mountains" is a place, "a mountain" is an object
        if after_prep and not (prev and prev.kind in {"color", "size", "texture", "style", "number"}):
            return Token("background", value["background"], phrase)
        return Token("noun", value["noun"], phrase, plural=phrase in _plural_forms())
    if "color" in names and "noun" in names:  # "an orange cat" vs "an orange"
        nxt = [k for n in range(1, min(4, len(after)) + 1) for k in _lexicon_kinds(" ".join(after[:n]))]
        listed = prev_word in AND_WORDS and prev2 and "color" in dict(_lexicon_kinds(prev2))  # "red and orange"
        if listed or any(k in {"noun", "color", "texture", "size", "style"} for k, _ in nxt):
            return Token("color", value["color"], phrase)
        return Token("noun", value["noun"], phrase, plural=phrase in _plural_forms())
    if "relation" in names and "compose" in names:
        return Token("relation", value["relation"], phrase)
    kind, val = kinds[0]
    return Token(kind, val, phrase, plural=kind == "noun" and phrase in _plural_forms())


# --------------------------------------------------------------------------- compounds

#: suffixes of words that describe rather than name: an unknown word so formed before a noun is a modifier
#: the world does not draw ("a fluffy dog"), not the first half of a compound noun ("a guinea pig")
ADJECTIVE_SUFFIXES = ("y", "ful", "ous", "ed", "ing", "ical", "ial", "ic", "ish", "less", "ive", "able", "ible",
                      "ese", "ian", "ern", "ly", "est", "like")
#: common descriptive words without such a suffix
ADJECTIVES = frozenset({
    "cute", "old", "young", "new", "wild", "fat", "thin", "tall", "short", "long", "sad", "fast", "slow", "cool",
    "cold", "warm", "wet", "dark", "bright", "pale", "fierce", "calm", "brave", "proud", "tame", "lone", "plain",
    "cheap", "rich", "poor", "dead", "live", "sick", "strong", "weak", "soft", "hard", "smooth", "rough", "round",
    "square", "flat", "sharp", "clean", "full", "quiet", "loud", "real", "fake", "vintage", "antique", "classic",
    "toy", "pet", "cartoon", "simple", "nice", "good", "bad", "great", "open", "broken", "ripe", "fresh", "sweet",
    "sour", "cozy", "pretty", "ugly", "happy", "angry", "lost", "alone", "asleep", "awake", "free", "huge", "brown",
    "mother", "father", "female", "male", "adult", "whole", "half", "wide", "deep", "high", "low", "far", "close",
    "wooden", "golden", "frozen", "hidden", "fallen", "rotten", "woolen", "ancient", "elegant", "giant",
    "silent", "vibrant", "brilliant", "royal", "tropical", "ordinary", "gentle", "noble", "purple", "little",
})
#: what a thing is made of: drawn as the thing, the material reported ("a glass bottle", "a stone bridge")
MATERIALS = frozenset({"glass", "metal", "wood", "wooden", "stone", "paper", "plastic", "leather", "rubber", "steel",
                       "iron", "clay", "brick", "ice", "gold", "silver", "cardboard", "concrete", "marble", "china",
                       "cloth", "wool", "cotton", "silk", "crystal", "chocolate", "sugar"})
#: nouns that, before another noun, say how old or grown it is ("a baby elephant": a small elephant)
NOUN_MODIFIERS: dict[str, float] = {"baby": 0.7, "adult": 1.0, "toy": 0.7}
#: words that follow a noun without naming a second thing ("a dog asleep", "a cat outside")
AFTER_NOUN_WORDS = frozenset({"alone", "asleep", "awake", "outside", "inside", "indoors", "outdoors", "today", "now",
                              "again", "too", "everywhere", "somewhere", "nearby", "away", "around", "please",
                              "only", "afloat", "aloft", "ashore", "abroad", "upstairs", "downstairs"})


def _describes(word: str) -> bool:
    """Whether an unknown word looks like a description (adjective, participle, adverb) rather than a noun."""
    return word in ADJECTIVES or word in AFTER_NOUN_WORDS or word.endswith(ADJECTIVE_SUFFIXES)


def _names_a_kind(tok: Token) -> bool:
    """A token that could be half of a compound noun: a known singular noun or an unknown noun-like word."""
    if tok.kind == "noun":
        return not tok.plural and tok.count is None and tok.note is None
    return tok.kind == "unknown" and not tok.text.isdigit() and not _describes(tok.text) and (
        not tok.text.endswith("s") or tok.text.endswith("ss"))


def join_compounds(tokens: list[Token]) -> list[Token]:
    """Two nouns in a row name one thing, and English puts the head last: "a corn dog" is not a dog, "a fire
    hydrant" is not a fire, "a guinea pig" is not a pig. A pair the vocabulary does not list becomes one
    ``compound`` token (reported, never drawn as either half). A material ("a glass bottle") or a noun that
    says how grown the thing is ("a baby elephant") modifies the noun instead."""
    out: list[Token] = []
    k = 0
    while k < len(tokens):
        tok = tokens[k]
        nxt = tokens[k + 1] if k + 1 < len(tokens) else None
        if nxt is None or nxt.kind not in {"noun", "unknown"} or tok.kind not in {"noun", "unknown"}:
            out.append(tok)
            k += 1
            continue
        if tok.text in MATERIALS and nxt.kind == "noun":  # "a glass bottle": a bottle
            out.append(Token("material", None, tok.text))
            k += 1
            continue
        if tok.text in NOUN_MODIFIERS and nxt.kind == "noun":  # "a baby elephant": a small elephant
            out.append(Token("size", NOUN_MODIFIERS[tok.text], tok.text))
            k += 1
            continue
        after = tokens[k + 2] if k + 2 < len(tokens) else None
        head_ends = nxt.kind == "noun" or after is None or after.kind not in {"noun", "unknown"}
        singular_det = k > 0 and tokens[k - 1].text in {"a", "an", "one", "single", "every", "each"}
        head = nxt.kind == "noun" or (nxt.kind == "unknown" and not _describes(nxt.text) and not (
            singular_det and nxt.text.endswith("s") and not nxt.text.endswith("ss")))  # "a dog runs": a verb
        if _names_a_kind(tok) and head_ends and head and not (tok.kind == "unknown" and nxt.kind == "unknown"):
            out.append(Token("compound", None, f"{tok.text} {nxt.text}", plural=nxt.plural))
            k += 2
            continue
        out.append(tok)
        k += 1
    return out


# --------------------------------------------------------------------------- grammar


def read(prompt: str) -> Parsed:
    """The noun phrases, relations, negations and background of a prompt (no placement yet)."""
    tokens = join_compounds(tokenize(prompt))
    groups: list[Group] = []
    relations: list[tuple[int, str, int]] = []
    background: str | None = None
    unknown: list[str] = []
    subjects_unknown: list[str] = []
    notes: list[str] = []
    excluded: list[Excluded] = []
    mods: dict[str, object] = {}
    mod_words: list[str] = []
    pending_rel: str | None = None
    pending_compose: str | None = None
    main: int | None = None  # the group relations and compositions refer to
    closeup_pending = False
    # negation in progress: its kind ("object" / "not"), its words, the attributes it names
    neg: str | None = None
    neg_attr_next = False  # "a not-red car": the attributes belong to the next noun, which is drawn
    neg_words: list[str] = []
    neg_mods: dict[str, str] = {}
    neg_or: bool = False  # just closed a negation: "no dogs or cats" continues it
    passive: tuple[str, str] | None = None  # "held by": the next noun phrase acts on the last one
    # "next to a car, a dog": a relation before any noun phrase; the first phrase is its reference
    fronted: str | None = None
    fronted_ref: int | None = None
    neg_relation: str | None = None  # "not next to": a negated relation, read as the absence of its object
    np_open = False  # the pending modifiers follow an article or a number: they open a noun phrase
    split_from: int | None = None  # "two dogs, one black and ...": the phrase whose members take attributes
    # "a red and a blue car" / "a red and orange car": modifiers waiting for the noun after "and"
    elided: tuple[dict[str, object], list[str], bool] | None = None

    def flush_mods() -> None:
        """Modifiers with no noun after them describe the last noun ("a dog that is red"), unless an article
        opened them: "two oranges and a lime" names a third thing (a lime), not a colour of the oranges."""
        nonlocal mods, mod_words, np_open, split_from
        if mods and np_open and groups and "count" in mods and len(mods) > 1 and mod_words[0] in NUMBERS and split(
                int(mods["count"])):  # type: ignore[call-overload]
            return
        if mods and np_open and groups and mod_words[-1] == "one":  # "a black dog and a white one": another dog
            attrs = {k: v for k, v in mods.items() if k != "count"}
            mods, mod_words, np_open = {}, [], False
            new_group(Token("noun", groups[-1].noun, groups[-1].text), {**attrs, "count": 1}, {})
            return
        if mods and np_open:
            unknown.extend(mod_words)
            subjects_unknown.append(" ".join(mod_words))
        elif mods and groups:
            g = groups[-1]
            for key, val in mods.items():
                if key == "count":
                    continue
                if key == "size":
                    g.size *= float(val)  # type: ignore[arg-type]
                elif getattr(g, key) is None:
                    setattr(g, key, val)
                elif getattr(g, key) != val:
                    notes.append(f"the world draws one {key} per object: drew the {g.text} {getattr(g, key)}, "
                                 f"not {val}")
        elif mods:
            unknown.extend(mod_words)
        mods, mod_words, np_open = {}, [], False

    def split(k: int) -> bool:
        """"two dogs, one black and one white": ``k`` of the last counted phrase take the pending attributes."""
        nonlocal mods, mod_words, np_open, split_from
        src = split_from if split_from is not None else len(groups) - 1
        g = groups[src]
        attrs = {key: val for key, val in mods.items() if key not in {"count", "size"}}
        if not attrs or g.count < k or (g.count == k and split_from is None):
            return False
        mods, mod_words, np_open = {}, [], False
        if g.count == k:  # the last ones of the phrase: the phrase itself takes the attributes
            for key, val in attrs.items():
                setattr(g, key, val)
            split_from = None
            return True
        g.count -= k
        groups.append(Group(noun=g.noun, count=k, text=g.text, size=g.size, style=g.style, texture=g.texture,
                            color=g.color, parent=g.parent, attach=g.attach))
        for key, val in attrs.items():
            setattr(groups[-1], key, val)
        split_from = src
        return True

    def phrase_ahead(k: int) -> bool | None:
        """Whether modifiers from token ``k`` on end in a noun: True when an article or number opens them
        (a second phrase: "and a blue car"), False when not (a list of attributes: "and orange car"), None when
        no noun ends them."""
        opened = False
        while k < len(tokens) and tokens[k].kind == "stop" and tokens[k].text in {"a", "an", "the"}:
            k, opened = k + 1, True
        start = k
        while k < len(tokens) and tokens[k].kind in modifier_kinds:
            opened = opened or tokens[k].kind == "number"
            k += 1
        if k == start or k >= len(tokens) or tokens[k].kind != "noun":
            return None
        return opened

    def phrase_of(words: list[str]) -> str:
        return re.sub(r"n t\b", "n't", " ".join(words))

    def end_negation() -> None:
        """Close a negation that no noun ended: its attributes are about the last noun."""
        nonlocal neg, neg_attr_next, neg_words, neg_mods
        if neg is None:
            return
        phrase = phrase_of(neg_words)
        if neg_mods and groups:
            gi = len(groups) - 1
            for key, val in neg_mods.items():
                groups[gi].excluded.setdefault(key, set()).add(val)
            excluded.append(Excluded(phrase, groups[gi].noun, dict(neg_mods), group=gi))
        elif neg_mods:
            notes.append(f"{phrase!r} names no object; nothing to exclude")
        elif len(neg_words) == 1:
            notes.append(f"could not tell what {phrase!r} excludes")
        neg, neg_attr_next, neg_words, neg_mods = None, False, [], {}

    modifier_kinds = {"color", "texture", "size", "style", "number"}

    def names_a_noun(k: int) -> bool:
        """Whether the modifiers from token ``k`` on end in a noun ("with a gray spiral spoon")."""
        while k < len(tokens) and tokens[k].kind in modifier_kinds:
            k += 1
        return k < len(tokens) and tokens[k].kind == "noun"

    def clothing_ahead(k: int) -> bool:
        """Whether the phrase from token ``k`` on names something worn ("in a red hat": wearing it)."""
        while k < len(tokens) and (tokens[k].kind in modifier_kinds or tokens[k].text in {"a", "an", "the"}):
            k += 1
        return k < len(tokens) and tokens[k].kind == "noun" and (
            NOUN_BY_NAME[str(tokens[k].value)].category == "clothing")

    def before_skipping_articles(k: int) -> Token | None:
        k -= 1
        while k >= 0 and tokens[k].kind == "stop" and tokens[k].text in {"a", "an", "the"}:
            k -= 1
        return tokens[k] if k >= 0 else None

    def is_subject(k: int) -> bool:
        """An unknown word names a thing to draw unless a known word it describes follows it ("rocky coast")."""
        if tokens[k].text in NOT_OBJECTS or _describes(tokens[k].text):  # "driving", "fluffy": not things
            return False
        nxt = tokens[k + 1] if k + 1 < len(tokens) else None
        return nxt is None or nxt.kind not in {"noun", "background", "unknown", *modifier_kinds}

    def new_group(tok: Token, attrs: dict[str, object], neg_attr_next_mods: dict[str, str]) -> None:
        """A noun phrase: its group, with the relation or attachment pending before it."""
        nonlocal closeup_pending, pending_compose, pending_rel, main, passive, fronted, fronted_ref
        noun = str(tok.value)
        count = int(attrs.pop("count", 0) or 0)  # type: ignore[call-overload]
        if count == 0 and tok.count is not None:  # "a crowd", "a large crowd"
            factor = float(attrs.pop("size", 1.0))  # type: ignore[arg-type]
            count = max(2, min(MAX_OBJECTS, round(tok.count * factor)))
        if count == 0:
            count = 0 if tok.plural else 1  # 0: "some", filled in at layout
        g = Group(
            noun=noun, count=count, color=attrs.get("color"), texture=attrs.get("texture"),  # type: ignore[arg-type]
            size=float(attrs.get("size", 1.0)), style=attrs.get("style"), text=tok.text,  # type: ignore[arg-type]
        )
        if tok.note:
            notes.append(tok.note)
        groups.append(g)
        gi = len(groups) - 1
        for key, val in neg_attr_next_mods.items():
            g.excluded.setdefault(key, set()).add(val)
        if neg_attr_next_mods:
            words = " ".join(f"not {v}" for v in neg_attr_next_mods.values())
            excluded.append(Excluded(f"{words} {tok.text}", noun, dict(neg_attr_next_mods), group=gi))
        if closeup_pending:
            g.closeup, closeup_pending = True, False
        if fronted is not None and fronted_ref is None:  # "next to a car, ...": the car is the reference
            fronted_ref, main, pending_rel = gi, gi, None
        elif fronted is not None and fronted_ref is not None and not pending_compose:  # "..., a dog"
            relations.append((gi, fronted, fronted_ref))
            fronted = fronted_ref = pending_rel = None
            main = gi
        elif passive is not None and main is not None:  # "a ball held by a person": the person holds the ball
            how, what = passive
            if how == "compose":
                groups[main].parent, groups[main].attach = gi, what
            else:
                relations.append((gi, what, main))
            passive = pending_compose = pending_rel = None
            main = gi
        elif pending_compose and main is not None:
            g.parent, g.attach = main, pending_compose
            pending_compose = None
            if pending_rel:
                pending_rel = None
        else:
            if pending_rel and main is not None:
                relations.append((main, pending_rel, gi))
            pending_rel = None
            main = gi

    for index, tok in enumerate(tokens):
        if neg_or and not (tok.kind == "stop" and tok.text in {"or", "any", "a", "an", "the"}):
            neg_or = False
        if tok.kind == "stop" and tok.text == "or" and neg_or and neg is None:
            neg, neg_words = "object", ["no"]
            continue
        if neg is not None:
            if tok.kind == "stop" or (tok.kind == "number" and not neg_mods) or (
                    tok.kind == "relation" and tok.text in BG_PREPOSITIONS and not neg_mods):
                neg_words.append(tok.text)
                continue
            if tok.kind in {"compose", "relation"} and not neg_mods and not neg_attr_next:
                # "not wearing a hat", "not holding an umbrella": the negation is about the verb's object;
                # "not next to a cat": a negated relation, drawn as no cat (noted)
                neg_words.append(tok.text)
                neg_relation = tok.text if tok.kind == "relation" else None
                pending_compose = pending_rel = None
                continue
            if tok.kind in {"color", "texture", "style", "size"}:
                if tok.kind in neg_mods:  # "not black or white": one negation per value
                    kind, attr_next = neg, neg_attr_next
                    end_negation()
                    neg, neg_attr_next = kind, attr_next
                neg_words.append(tok.text)
                if tok.kind != "size":  # "not big": drawn at its ordinary size
                    neg_mods[tok.kind] = str(tok.value)
                continue
            if tok.kind == "noun" and not neg_attr_next:
                neg_words.append(tok.text)
                excluded.append(Excluded(phrase_of(neg_words), str(tok.value), dict(neg_mods)))
                if neg_relation:
                    notes.append(f"read {phrase_of(neg_words)!r} (a negated relation) as: no {tok.text}")
                    neg_relation = None
                neg, neg_words, neg_mods = None, [], {}
                neg_or = True
                pending_rel = pending_compose = None
                continue
            if tok.kind == "background":
                neg_words.append(tok.text)
                excluded.append(Excluded(phrase_of(neg_words), background=str(tok.value)))
                neg, neg_words, neg_mods = None, [], {}
                continue
            if tok.kind == "noun":  # "a not-red car": a car, not red
                carried = dict(neg_mods)
                neg, neg_attr_next, neg_words, neg_mods = None, False, [], {}
                neg_attr_next_mods = carried
            else:
                end_negation()
                neg_attr_next_mods = {}
        else:
            neg_attr_next_mods = {}
        if tok.kind == "negate":
            flush_mods()
            prev = tokens[index - 1] if index else None
            neg = str(tok.value)
            neg_attr_next = neg == "not" and prev is not None and prev.text in {"a", "an"}
            neg_words = [tok.text]
            if pending_compose == "with":  # "a dog with no leash": nothing is attached
                pending_compose = None
            continue
        if tok.kind == "closeup":
            flush_mods()
            closeup_pending = True
            continue
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
            if tok.kind == "number" and "size" in mods and any(w in COLLECTIVE_WORDS for w in tok.text.split()):
                # "a large crowd of": the size word says how many, not how big
                factor = float(mods.pop("size"))  # type: ignore[arg-type]
                mods["count"] = max(2, min(MAX_OBJECTS, round(int(tok.value) * factor)))  # type: ignore[call-overload]
                mod_words.append(tok.text)
                continue
            if not mods:
                prev = tokens[index - 1] if index else None
                np_open = tok.kind == "number" or (prev is not None and prev.text in {"a", "an", "another", "the"})
            if tok.kind == "size" and "size" in mods:
                mods["size"] = float(mods["size"]) * float(tok.value)  # type: ignore[arg-type]
            else:
                mods[key] = tok.value
            mod_words.append(tok.text)
        elif tok.kind == "noun":
            attrs, mods, mod_words, np_open = mods, {}, [], False
            if elided is not None:
                first, _, separate = elided
                elided = None
                if separate:  # "a red and a blue car": two cars
                    new_group(tok, first, {})
                else:  # "a red and orange car": one car, its attributes listed
                    for key, val in first.items():
                        if key in attrs and attrs[key] != val and key != "size":
                            notes.append(f"the world draws one {key} per object: drew the {tok.text} {val}, "
                                         f"not {attrs[key]}")
                        attrs[key] = val
            new_group(tok, attrs, neg_attr_next_mods)
        elif tok.kind == "stop" and tok.text == "in" and main is not None and clothing_ahead(index + 1):
            flush_mods()  # "a man in a red hat": wearing it
            pending_compose, pending_rel = "with", None
        elif tok.kind == "passive":
            flush_mods()
            passive, pending_rel, pending_compose = tok.value, None, None  # type: ignore[assignment]
        elif tok.kind == "relation" and not groups and fronted is None:
            fronted = str(tok.value)
        elif tok.kind == "relation" and index + 1 < len(tokens) and tokens[index + 1].kind == "reciprocal":
            flush_mods()  # "a cat and a dog next to each other"
            if len(groups) >= 2:
                relations.append((len(groups) - 2, str(tok.value), len(groups) - 1))
            pending_rel = pending_compose = None
        elif tok.kind == "relative":
            flush_mods()  # "a house with a tree to its left": the tree is left of the house
            last = len(groups) - 1
            owner = groups[last].parent if last >= 0 and groups[last].parent is not None else main
            if owner is not None and owner != last:
                groups[last].parent = groups[last].attach = None
                relations.append((last, str(tok.value), owner))
                main = owner
            else:
                notes.append(f"could not tell what {tok.text!r} refers to")
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
            prev = before_skipping_articles(index)
            if mods and prev is not None and prev.kind in modifier_kinds:
                # "a tiny boat on a huge lake": the words describe the lake, not the boat
                notes.append(f"{' '.join(mod_words)!r} describes the {tok.text}, which is drawn as the "
                             f"{tok.value} background as it is; the objects keep their own size and colour")
                mods, mod_words = {}, []
            flush_mods()
            if fronted is not None and fronted_ref is None:  # "on the beach, a dog": a place, not a relation
                fronted = None
            if background and background != tok.value:
                notes.append(f"several backgrounds named; drew {tok.value!r}, not {background!r}")
            background = str(tok.value)
            pending_rel = pending_compose = None
        elif tok.kind == "and":
            ahead = phrase_ahead(index + 1) if mods and elided is None else None
            if ahead is not None:  # "a red and (a) blue car": these modifiers wait for that noun
                elided = (mods, mod_words, ahead)
                mods, mod_words, np_open = {}, [], False
                continue
            flush_mods()
            pending_rel = pending_compose = None
        elif tok.kind == "figurative":
            notes.append(f"{tok.text!r} is a figure of speech ({tok.value}); the world does not draw it literally")
            unknown.append(tok.text)
            subjects_unknown.append(tok.text)
        elif tok.kind == "compound":
            notes.append(f"read {tok.text!r} as one noun, which the world cannot draw; drew neither half")
            unknown.append(tok.text)
            subjects_unknown.append(tok.text)
        elif tok.kind == "material":
            notes.append(f"{tok.text!r} (what it is made of) is not drawn")
            unknown.append(tok.text)
        elif tok.kind == "unknown":
            unknown.append(tok.text)
            if is_subject(index):
                subjects_unknown.append(tok.text)
    end_negation()
    flush_mods()
    if fronted is not None:
        notes.append(f"{fronted!r} at the start names no second thing to place; drew the objects without it")
    if closeup_pending and groups:
        groups[main if main is not None else 0].closeup = True
    _obey(groups, excluded, notes)
    banned = {e.background for e in excluded if e.background is not None}
    if (background or DEFAULT_BACKGROUND) in banned:
        other = next(b for b in [DEFAULT_BACKGROUND, *BACKGROUND_BY_NAME] if b not in banned)
        if background is not None:
            notes.append(f"the prompt both names and excludes the {background} background; drew {other!r}")
        background = other
    seen: set[str] = set()
    unknown = [w for w in unknown if not (w in seen or seen.add(w))]  # type: ignore[func-returns-value]
    return Parsed(groups, relations, background, unknown, notes, excluded, list(dict.fromkeys(subjects_unknown)))


def _obey(groups: list[Group], excluded: list[Excluded], notes: list[str]) -> None:
    """Make the groups obey the prompt's negations; every conflict is reported."""
    for ex in excluded:
        if ex.noun is None or ex.group is not None:
            continue
        for g in groups:
            if g.noun != ex.noun or g.dropped:
                continue
            named = {"color": g.color, "texture": g.texture, "style": g.style}
            if ex.attrs and not any(named[k] == v for k, v in ex.attrs.items()):
                if all(named[k] is None for k in ex.attrs):  # "cars but no red cars": the others avoid red
                    for key, val in ex.attrs.items():
                        g.excluded.setdefault(key, set()).add(val)
                continue
            g.dropped = True
            notes.append(f"{g.text!r} conflicts with {ex.phrase!r}: not drawn")
    for g in groups:
        for key, values in g.excluded.items():
            if getattr(g, key) in values:
                notes.append(f"the {g.text} is both {getattr(g, key)} and not {getattr(g, key)}: drew it otherwise")
                setattr(g, key, None)


# --------------------------------------------------------------------------- layout


def _rng(prompt: str, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}|{' '.join(normalize(prompt))}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


#: how much real-world scale still counts for an object with a size word (1: fully, 0: not at all)
SIZED_SCALE_WEIGHT = 0.4

#: relations whose two objects may overlap: one stands on the other, or hides part of it
OVERLAPPING = ("on top of", "behind", "in front of")
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


def _grounded(s: _Box, rel: str, o: _Box, horizon: float | None) -> bool:
    """Whether ``s`` placed ``rel`` ``o`` shares its ground line: things that stand share one below the horizon,
    and one behind another does so even on a plain backdrop."""
    both_stand = s.zone == o.zone == "ground"
    return both_stand and (horizon is not None or rel in ("behind", "in front of"))


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
    elif rel in {"behind", "in front of"}:  # overlapping, so the one in front hides part of the other
        sign = -1 if rng.random() < 0.5 else 1
        s.x = o.x + sign * rng.uniform(0.3, 0.5) * (o.hw + s.hw)
        if grounded:  # the one behind stands a little further back
            lift = rng.uniform(0.02, 0.05) * (1 if rel == "behind" else -1)
            s.y = o.y + o.hh - s.hh - lift
        else:
            s.y = o.y + rng.uniform(-0.25, 0.25) * o.hh


def _attach(child: _Box, parent: _Box, kind: str, worn: bool, rng: np.random.Generator) -> None:
    if worn:
        child.x = parent.x + rng.uniform(-0.15, 0.15) * parent.hw
        child.y = parent.y - parent.hh + 0.35 * child.hh
        return
    side = 1 if parent.x <= 0.5 else -1
    child.x = parent.x + side * (parent.hw + 0.25 * child.hw)
    lift = -0.35 if kind == "holding" else 0.15
    child.y = parent.y + lift * parent.hh


def placement_order(relations: list[tuple[int, str, int]]) -> list[tuple[int, str, int]]:
    """The relations in the order to place their subjects: an object is placed against its reference only once
    that reference has stopped moving ("a cat on a car next to a tree": the car goes next to the tree first,
    then the cat on the car). Cycles keep their prompt order."""
    pending = list(relations)
    out: list[tuple[int, str, int]] = []
    while pending:
        moving = {s for s, _, _ in pending}
        ready = [r for r in pending if r[2] not in moving or r[2] == r[0]]
        if not ready:
            ready = pending[:1]
        for r in ready:
            pending.remove(r)
        out += ready
    return out


def occlusion_order(scene: Scene) -> list[int]:
    """Object indices in drawing order such that an object a relation puts behind another ("a dog behind the
    car", "a car in front of the dog") is drawn first and the one in front hides part of it; stable otherwise.
    Apply it with :meth:`Scene.reordered`."""
    occlusions = [(r.subject, r.object) if r.relation == "behind" else (r.object, r.subject)
                  for r in scene.relations if r.relation in ("behind", "in front of")]
    return _draw_order(len(scene.objects), occlusions)


def _draw_order(n: int, occlusions: list[tuple[int, int]]) -> list[int]:
    """Object indices in drawing order so that each (back, front) pair draws ``back`` first (stable otherwise)."""
    order = list(range(n))
    for _ in range(n):
        moved = False
        for back, front in occlusions:
            if order.index(back) > order.index(front):
                order.remove(back)
                order.insert(order.index(front), back)
                moved = True
        if not moved:
            break
    return order


def _inside(b: _Box) -> bool:
    eps = 1e-6
    return b.hw - eps <= b.x <= 1 - b.hw + eps and b.hh - eps <= b.y <= 1 - b.hh + eps


def layout(
    parsed: Parsed, rng: np.random.Generator, seed: int = 0, ordered: bool = False
) -> tuple[list[SceneObject], list[SceneRelation], list[str], list[list[int]]]:
    """Expand groups into objects and place them; returns objects (in group order: :func:`parse` then draws
    them in :func:`occlusion_order`), relations (object indices), notes and the objects of each group.

    Sizes keep real-world proportions (:func:`~aim_world.vocabulary.real_scale`: a tulip next to a tree is
    small), things that stand on the ground stand below the backdrop's horizon (``seed`` picks the backdrop),
    and every object gets a seeded look (:func:`~aim_world.variety.object_look`). ``ordered``: place relations
    in :func:`placement_order` (a retry, after the prompt's order gave a picture that does not show them)."""
    notes: list[str] = []
    # expand counts
    members: list[list[int]] = []
    specs: list[Group] = []
    parents: list[int | None] = []
    total = 0
    for g in parsed.groups:
        count = 0 if g.dropped else g.count if g.count > 0 else int(rng.integers(2, 4))
        if g.closeup and count > 1:
            notes.append(f"a close-up shows one {g.noun}: drew 1 of {count}")
            count = 1
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
    horizon = backdrop(parsed.background or DEFAULT_BACKGROUND, seed).horizon
    n_main = sum(1 for p in parents if p is None)
    base = _BASE_SIZE.get(n_main, 0.18)
    colors = [spec.color or str(rng.choice(_colors(spec))) for spec in specs]
    jitter = rng.uniform(0.92, 1.08, size=len(specs))
    closeup_size = float(rng.uniform(*CLOSEUP_SIZES))
    largest = max((real_scale(spec.noun) for i, spec in enumerate(specs) if parents[i] is None), default=0)

    def sizes(shrink: float) -> list[float]:
        out = [0.0] * len(specs)
        for i, spec in enumerate(specs):  # the main objects first: an attached one is sized after its owner
            if parents[i] is None and spec.closeup:
                out[i] = closeup_size
            elif parents[i] is None:
                real = SCALE_STEP ** (largest - real_scale(spec.noun))
                if spec.size != 1.0:  # "a huge ant next to a tiny elephant": the words outweigh real-world scale
                    real **= SIZED_SCALE_WEIGHT
                # a named thing stays visible (8% of the side) however small it is next to the largest one
                out[i] = float(np.clip(base * real * spec.size * jitter[i] * shrink, 0.08, 0.9))
        for i in _attached_order(parents):
            worn = NOUN_BY_NAME[specs[i].noun].worn
            out[i] = float(np.clip(out[parents[i]] * (0.42 if worn else 0.5) * specs[i].size, 0.05, 0.9))  # type: ignore[index]
        return out

    best: tuple[float, list[_Box]] | None = None
    shrink = 1.0
    for attempt in range(160):
        if attempt and attempt % 40 == 0:  # crowded: shrink everything a little and try again
            shrink *= 0.85
        boxes = [_Box(spec.noun, sz, NOUN_BY_NAME[spec.noun].zone, spec.hint)
                 for spec, sz in zip(specs, sizes(shrink), strict=True)]
        for i, b in enumerate(boxes):
            if parents[i] is None and specs[i].closeup:  # fills the frame, wherever the ground is
                b.x, b.y = 0.5 + rng.uniform(-0.08, 0.08), 0.5 + rng.uniform(-0.08, 0.08)
            elif parents[i] is None:
                b.x = rng.uniform(*_x_range(b))
                # a retry lets a thing something stands below leave the ground band ("a horse below a traffic
                # light at night": the night's ground band is too thin for one under the other)
                lifted = ordered and any(o == i and rel == "below" for _, rel, o in relations)
                b.y = rng.uniform(*_y_range(b, None if lifted else horizon))
        # twice, so chains of relations settle; a retry places each object only once its reference is placed
        for _ in range(2):
            for s, rel, o in (placement_order(relations) if ordered else relations):
                _place_relative(boxes[s], rel, boxes[o], rng, _grounded(boxes[s], rel, boxes[o], horizon))
        for i in _attached_order(parents):
            _attach(boxes[i], boxes[parents[i]], specs[i].attach or "with", NOUN_BY_NAME[specs[i].noun].worn, rng)  # type: ignore[index]
        penalty = 0.0
        for i, b in enumerate(boxes):
            if not _inside(b) and not specs[i].closeup:
                penalty += 1.0
            for j in range(i):
                if parents[i] == j or parents[j] == i or (parents[i] is not None and parents[i] == parents[j]):
                    continue
                if any({s, o} == {i, j} and rel in OVERLAPPING for s, rel, o in relations):
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
        if spec.closeup:  # fills the frame and may be cropped
            x, y = float(np.clip(b.x, 0.0, 1.0)), float(np.clip(b.y, 0.0, 1.0))
        else:
            x = float(np.clip(b.x, b.hw, 1 - b.hw)) if b.hw < 0.5 else 0.5
            y = float(np.clip(b.y, b.hh, 1 - b.hh)) if b.hh < 0.5 else 0.5
        style = spec.style or ("outline" if "filled" in spec.excluded.get("style", ()) else "filled")
        objects.append(SceneObject(
            noun=spec.noun, color=colors[i], texture=spec.texture, style=style,  # type: ignore[arg-type]
            x=round(x, 4), y=round(y, 4), size=round(b.size, 4), attached_to=parents[i],
            **object_look(rng, spec.noun),  # type: ignore[arg-type]
        ))
    scene_relations = [SceneRelation(subject=s, relation=rel, object=o) for s, rel, o in relations]  # type: ignore[arg-type]
    for i, p in enumerate(parents):
        if p is not None:
            scene_relations.append(SceneRelation(subject=p, relation=specs[i].attach or "with", object=i))  # type: ignore[arg-type]
    return objects, scene_relations, notes, members


def _attached_order(parents: list[int | None]) -> list[int]:
    """The attached objects, each after the one it is attached to (an owner may come later in the prompt: "a hat
    worn by a dog")."""
    done = {i for i, p in enumerate(parents) if p is None}
    order: list[int] = []
    while len(done) < len(parents):
        ready = [i for i, p in enumerate(parents) if i not in done and p in done]
        if not ready:  # a cycle cannot come from the grammar; keep the rest in index order
            ready = [i for i in range(len(parents)) if i not in done]
        order += ready
        done.update(ready)
    return order


def _colors(spec: Group) -> tuple[str, ...]:
    """The colours a group may be drawn in when the prompt names none: its natural ones, minus excluded ones."""
    natural = NOUN_BY_NAME[spec.noun].colors
    banned = spec.excluded.get("color")
    if not banned:
        return natural
    allowed = tuple(c for c in natural if c not in banned)
    return allowed or tuple(c for c in COLORS if c not in banned)


def negations(parsed: Parsed, members: list[list[int]]) -> list[Negation]:
    """The scene graph's record of what the prompt excluded."""
    out = []
    for ex in parsed.excluded:
        out.append(Negation(phrase=ex.phrase, noun=ex.noun, background=ex.background,
                            objects=members[ex.group] if ex.group is not None else [], **ex.attrs))
    return out


# --------------------------------------------------------------------------- entry point

#: layouts tried before a relation the pixels do not show is dropped from the scene graph (with a note)
LAYOUT_TRIES = 4



def parse(prompt: str, seed: int = 0) -> Scene:
    """Read a prompt into a scene graph (deterministic for a (prompt, seed) pair).

    Raises :class:`ProviderError` when nothing in the prompt can be drawn.
    """
    script = foreign_script(prompt)
    if script is not None:
        name = script.title() if len(script) > 3 else script  # "Cyrillic", "CJK"
        raise ProviderError(f"the world reads English prompts only: {quote(prompt)} is written in {name} script, "
                            "which is not supported; write the prompt in English")
    parsed = read(prompt)
    if parsed.subjects_unknown and not any(not g.dropped for g in parsed.groups):
        words = _listed(parsed.subjects_unknown)
        close = sorted({c for w in parsed.subjects_unknown[:MAX_QUOTED_WORDS] for c in closest_words(w)})
        hint = f"Close words it knows: {', '.join(close)}." if close else "No vocabulary word is close."
        raise ProviderError(
            f"the world cannot draw {words} in {quote(prompt)}: not in its vocabulary. {hint} "
            f"It draws {describe_vocabulary()}."
        )
    if not parsed.groups and parsed.background is None and not parsed.excluded:
        close = sorted({c for w in parsed.unknown[:MAX_QUOTED_WORDS] for c in closest_words(w)})
        hint = f" Close words the world knows: {', '.join(close)}." if close else ""
        unknown = _listed(parsed.unknown) or "none"
        raise ProviderError(
            f"the world cannot draw anything in {quote(prompt)} (unknown words: {unknown}).{hint} "
            f"It draws {describe_vocabulary()}."
        )
    for attempt in range(LAYOUT_TRIES):  # a layout whose relations the pixels do not show is tried again
        rng = _rng(prompt if not attempt else f"{prompt}#{attempt}", seed)
        objects, relations, notes, members = layout(parsed, rng, seed, ordered=attempt > 0)
        scene = Scene(
            background=parsed.background or DEFAULT_BACKGROUND, objects=objects, relations=relations,
            seed=seed, prompt=prompt, unknown_words=parsed.unknown, notes=parsed.notes + notes,
            negations=negations(parsed, members),
        )
        scene = record_visibility(scene.reordered(occlusion_order(scene)))  # the one behind is drawn first
        failed = failed_relations(scene)
        if not failed:
            break
    for r in failed:  # the scene graph records only what the picture shows
        subject, obj = scene.objects[r.subject].noun, scene.objects[r.object].noun
        scene.notes.append(f"could not draw the {subject} {r.relation} the {obj}; that relation is not recorded")
    if failed:
        scene.relations = [r for r in scene.relations if r not in failed]
    broken = scene.broken_negations()
    if broken:  # the parser obeys its negations; should one slip through, say so rather than draw it
        raise ProviderError(f"cannot draw {quote(prompt)} while obeying {broken[0].phrase!r}; rephrase the prompt")
    return scene
