"""Concept vocabularies: which words a broader word covers, and exact concept masks for datasets that have them.

A plugin that knows a world of concepts (the embedded world knows every object, colour, texture
and background it can draw) offers a :class:`Vocabulary` through the hook ``aim_vocabularies``.
The core uses it without knowing where it comes from:

- the critic counts an image of a frog for the concept "animal" (:meth:`Vocabulary.members`);
- the conclude node checks whether the exemplars show the concluded concept
  (:meth:`Vocabulary.concepts_in`);
- ``aim dissect`` reads exact concept masks of a dataset (:meth:`Vocabulary.annotator`);
- ``aim eval units`` draws controlled images of a concept (:meth:`Vocabulary.concept_prompts`), and the
  render dissection draws every concept a vocabulary lists (:class:`ConceptListing`).

Without any vocabulary every call answers "nothing known" (:class:`Vocabularies` over none), so the
core runs the same as before, only with plain word matching.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from aim_agent.contracts import Annotation as Annotation
from aim_agent.contracts import ConceptAnnotator as ConceptAnnotator
from aim_agent.contracts import ConceptInfo as ConceptInfo
from aim_agent.contracts import ConceptListing as ConceptListing
from aim_agent.contracts import Vocabulary as Vocabulary

_SPLIT = re.compile(r"\s*,\s*(?:or\s+)?|\s+or\s+", re.I)


def alternatives(concept: str) -> list[str]:
    """The alternatives a concept phrase lists ("bird, eagle or owl" -> bird, eagle, owl); itself otherwise."""
    parts = [p.strip() for p in _SPLIT.split(concept) if p.strip()]
    return parts or [concept]


class Vocabularies:
    """Every installed vocabulary as one: members and concepts are merged, the first annotator that can
    annotate a dataset is used."""

    def __init__(self, vocabularies: Sequence[Vocabulary] = ()) -> None:
        self.items = list(vocabularies)

    def __bool__(self) -> bool:
        return bool(self.items)

    def members(self, term: str) -> frozenset[str]:
        found: set[str] = set()
        for v in self.items:
            found |= v.members(term)
        return frozenset(found)

    def words_for(self, concept: str) -> list[str]:
        """Every word that shows ``concept`` in a prompt: its alternatives and what each of them covers."""
        out: list[str] = []
        for alt in alternatives(concept):
            out += [alt, *sorted(self.members(alt))]
        return list(dict.fromkeys(out))

    def concepts_in(self, text: str) -> list[ConceptInfo]:
        found: dict[str, ConceptInfo] = {}
        for v in self.items:
            for c in v.concepts_in(text):
                found.setdefault(c.key, c)
        return list(found.values())

    def concepts(self) -> list[ConceptInfo]:
        """Every concept the vocabularies that list theirs (:class:`ConceptListing`) can show alone; the first
        vocabulary that lists a key owns it."""
        found: dict[str, ConceptInfo] = {}
        for v in self.items:
            if isinstance(v, ConceptListing):
                for c in v.concepts():
                    found.setdefault(c.key, c)
        return list(found.values())

    def annotator(self, root: Path) -> ConceptAnnotator | None:
        for v in self.items:
            made = v.annotator(Path(root))
            if made is not None:
                return made
        return None

    def owner(self, key: str) -> tuple[Vocabulary, ConceptInfo] | None:
        """The vocabulary that knows concept ``key`` and what it knows of it, or None."""
        for v in self.items:
            info = v.concept(key)
            if info is not None:
                return v, info
        return None


def installed_vocabularies() -> Vocabularies:
    """The vocabularies of the installed plugins (none when no plugin offers one)."""
    from aim_agent.plugins import plugin_manager

    return Vocabularies(plugin_manager().vocabularies())
