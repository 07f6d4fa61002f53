"""Hypotheses (one concept, A OR B, A only when B) as predicates on image features, and how they read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aim_world.scene import TEXTURE_ADJECTIVES
from aim_world.scientist.concepts import (
    ATTRIBUTE_KINDS,
    KIND_ORDER,
    OBJECT_KINDS,
    Concept,
    _plural_only,
    _with_article,
)


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

    @property
    def names(self) -> int:
        """How many things the hypothesis names: one per concept, one per noun of a group."""
        return sum(len(c.members) if c.kind == "group" else 1 for c in self.concepts)

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
        word = b.term if b.kind == "pattern" else TEXTURE_ADJECTIVES.get(b.name, b.name)
        return f"only when {word} objects are present"
    if b.kind == "pattern":
        return "only when it is patterned"
    if b.kind == "color":
        return f"only when it is {b.name}"
    return f"only when it is {TEXTURE_ADJECTIVES[b.name]}"


def hyp_id(h: Hyp) -> str:
    """A stable id from the hypothesis itself, so ids survive re-derivation every round."""
    if h.kind == "single":
        return f"H:{h.a.key}"
    assert h.b is not None
    return f"H:{h.a.key}{' OR ' if h.kind == 'or' else ' | '}{h.b.key}"
