"""World concepts the offline scientist reasons about: objects, groups and categories of nouns, colours,
textures, backgrounds and background regions, with the vocabulary tables that name them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aim_world import vocabulary as vocab
from aim_world.scene import TEXTURE_ADJECTIVES

ConceptKind = Literal["object", "group", "category", "color", "texture", "background", "region"]


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


def noun_category(noun: str) -> str:
    return vocab.NOUN_BY_NAME[noun].category


def _plural_only(noun: str) -> bool:
    """Nouns used in the plural ('sunglasses', 'grapes', 'scissors')."""
    return noun.endswith("s") and not noun.endswith(("ss", "us"))


def _with_article(noun: str) -> str:
    if _plural_only(noun):
        return noun
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"
