"""Ground truth as the evaluator reads it, and the words that name it.

A unit source (hook ``aim_units``) whose units have known answers can offer them to
``aim eval synthetic`` by implementing :class:`EvaluableUnits` next to the
:class:`~aim_agent.plugins.UnitSource` methods. The evaluator never imports the source's
package: it asks the source for

- the units of an evaluation set (``eval_units(seed, n)``),
- each unit's :class:`UnitTruth` (``ground_truth(unit)``), read only after the unit's run ended,
- the source's vocabulary (``vocabulary()``): every atomic concept it can express, with the words
  that name it. Baselines draw labels from it and count which concepts a description names; it
  holds no answer.

A :class:`ConceptTruth` carries ``terms``: normalised words and phrases that name the concept
(synonyms and plurals included), and for a small group of nouns each member's terms.
:func:`names` says whether a label names a concept: whether one of its terms occurs in the label
as whole words, or every one of its members does.
"""

from __future__ import annotations

import re
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

UnitKind = Literal["mono", "or", "cond"]
KINDS: tuple[UnitKind, ...] = ("mono", "or", "cond")
KIND_NAMES: dict[str, str] = {"mono": "mono", "or": "OR", "cond": "conditional"}


class ConceptTruth(BaseModel):
    """One concept: what it is called, the words that name it, and the atoms it is made of."""

    key: str = Field(description="a stable id, e.g. 'noun:dog', 'category:animal', 'color:blue'")
    label: str = Field(description="how the ground truth words it, e.g. 'dogs'")
    terms: list[str] = Field(description="normalised words and phrases that name it (synonyms, plurals)")
    atoms: list[str] = Field(default_factory=list,
                             description="what it covers, e.g. ['noun:dog'] or every noun of a category")
    members: list[list[str]] = Field(default_factory=list,
                                     description="for a small group of nouns: each member's terms; a label that "
                                     "names every member names the group")


class UnitTruth(BaseModel):
    """The answer for one unit: its kind and its concepts (for ``cond``: the concept, then the condition)."""

    unit: str
    kind: UnitKind
    label: str = Field(description="the ground truth in words")
    concepts: list[ConceptTruth] = Field(min_length=1, max_length=2)


@runtime_checkable
class EvaluableUnits(Protocol):
    """A unit source with known answers (optional methods of a ``aim_units`` unit source)."""

    name: str

    def eval_units(self, seed: int, n: int | None) -> list[str]:
        """The units of an evaluation set: deterministic for ``(seed, n)``; ``n=None``: the source's default."""
        ...

    def ground_truth(self, unit: str) -> UnitTruth: ...

    def vocabulary(self) -> list[ConceptTruth]: ...


_NON_WORD = re.compile(r"[^a-z0-9' ]+")


def normalize(text: str) -> str:
    """Lower case, hyphens/underscores/punctuation as spaces, single spaces: 'Polka-dot Cups!' -> 'polka dot cups'."""
    text = text.lower().replace("-", " ").replace("_", " ").replace("/", " ")
    return " ".join(_NON_WORD.sub(" ", text).split())


def names(label: str, concept: ConceptTruth) -> bool:
    """Whether ``label`` names ``concept``: one of its terms occurs in the label as whole words, or the
    label names every one of its members ('cups, teapots, buckets, ...' for objects with handles)."""
    padded = f" {normalize(label)} "

    def said(terms: list[str]) -> bool:
        return any(f" {term} " in padded for term in terms if term)

    return said(concept.terms) or (bool(concept.members) and all(said(m) for m in concept.members))


def mentions(text: str, vocabulary: list[ConceptTruth]) -> list[tuple[int, ConceptTruth]]:
    """``(position, concept)`` for every vocabulary concept ``text`` names, by position of its first mention."""
    padded = f" {normalize(text)} "
    found: list[tuple[int, int, ConceptTruth]] = []
    for order, concept in enumerate(vocabulary):
        hits = [p for p in (padded.find(f" {term} ") for term in concept.terms if term) if p >= 0]
        if hits:
            found.append((min(hits), order, concept))
    return [(pos, c) for pos, _, c in sorted(found, key=lambda t: (t[0], t[1]))]


def named_concepts(text: str, vocabulary: list[ConceptTruth]) -> list[ConceptTruth]:
    """The vocabulary concepts ``text`` names, in the order they first occur in it."""
    return [c for _, c in mentions(text, vocabulary)]
