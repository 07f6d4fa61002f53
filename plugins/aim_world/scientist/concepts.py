"""World concepts the offline scientist reasons about: objects, groups and categories of nouns, colours,
textures, backgrounds and background regions, with the vocabulary tables that name them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aim_world import vocabulary as vocab
from aim_world.scene import TEXTURE_ADJECTIVES

ConceptKind = Literal["object", "group", "category", "color", "texture", "pattern", "background", "region"]
PATTERN = "any"  # the one ``pattern`` concept: a patterned surface, whichever of the world's textures


@dataclass(frozen=True, order=True)
class Concept:
    """One testable concept of the world.

    ``object`` (a noun: dog), ``group`` (any of several nouns the exemplars show: bird, eagle,
    owl), ``category`` (every noun of a vocabulary category: animal),
    ``color`` and ``texture`` (of any object), ``pattern`` (a patterned surface of any texture, on any
    object: stripes, dots, checkers, spirals or waves alike), ``background`` (a whole scene: beach), ``region``
    (a part of a background: the sky above grass, beach, snow, ...; the sand of a beach).
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
        if self.kind == "pattern":
            return "patterned surfaces, on any object"
        if self.kind == "category":
            return CATEGORY_PHRASES.get(self.name, f"{self.name}s")
        if self.kind == "region":
            return f"{self.name} regions"
        if self.kind == "group":
            return group_phrase(self.members)
        return self.name

    @property
    def members(self) -> list[str]:
        """The nouns of an object or group concept."""
        return self.name.split("+") if self.kind == "group" else [self.name]

    @property
    def textures(self) -> list[str]:
        """The textures that show a texture or pattern concept (a pattern: every texture of the world)."""
        if self.kind == "pattern":
            return list(vocab.TEXTURES)
        return [self.name] if self.kind == "texture" else []

    @property
    def term(self) -> str:
        """The word the experiment prompts use for it ('dog', 'red', 'striped', 'grass')."""
        if self.kind == "pattern":
            return "patterned"
        return TEXTURE_ADJECTIVES[self.name] if self.kind == "texture" else self.members[0]

    @property
    def words(self) -> str:
        """The concept for a reader of prompts (the critic): its term, every member of a group ('owl, swan or
        duck'), a category by its name ('animals': a concept vocabulary knows its members)."""
        if self.kind == "group":
            *head, last = self.members
            return f"{', '.join(head)} or {last}" if head else last
        if self.kind == "category":
            return CATEGORY_PHRASES.get(self.name, f"{self.name}s")
        if self.kind == "pattern":  # the alternatives a prompt names it by
            *head, last = [TEXTURE_ADJECTIVES[t] for t in self.textures]
            return f"{', '.join(head)} or {last}"
        return self.term

KIND_ORDER: dict[str, int] = {"object": 0, "group": 1, "category": 2, "color": 3, "texture": 4, "pattern": 5,
                              "background": 6, "region": 7}
OBJECT_KINDS = ("object", "group", "category")
ATTRIBUTE_KINDS = ("color", "texture", "pattern")
CATEGORY_PHRASES = {"animal": "animals", "vehicle": "vehicles", "food": "food", "plant": "plants",
                    "building": "buildings", "person": "people", "instrument": "musical instruments",
                    "clothing": "clothing", "electronics": "electronics", "sport": "sports gear",
                    "nature": "nature things", "object": "household objects"}

MAX_NAMED = 12  # members a group's phrase names before it counts the rest


def group_phrase(members: list[str]) -> str:
    """How a set of nouns reads: their shared head word when they have one ('truck', 'pickup truck', 'fire
    truck' -> 'trucks'), else the members, the first :data:`MAX_NAMED` by name ('owl, swan or duck')."""
    heads = {m.split()[-1] for m in members}
    if len(members) > 1 and len(heads) == 1:
        return vocab.plurals(heads.pop())[0]
    shown, rest = members[:MAX_NAMED], len(members) - MAX_NAMED
    if rest > 0:
        return f"{', '.join(shown)} or {rest} more of them"
    *head, last = shown
    return f"{', '.join(head)} or {last}" if head else last


def noun_category(noun: str) -> str:
    return vocab.NOUN_BY_NAME[noun].category


def _plural_only(noun: str) -> bool:
    """Nouns used in the plural ('sunglasses', 'grapes', 'scissors')."""
    return noun.endswith("s") and not noun.endswith(("ss", "us"))


def _with_article(noun: str) -> str:
    if _plural_only(noun):
        return noun
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"
