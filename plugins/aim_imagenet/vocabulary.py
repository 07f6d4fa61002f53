"""WordNet/ImageNet concepts as an AIM vocabulary (hook ``aim_vocabularies``, name ``wordnet``).

Concepts are the 1000 classes and their WordNet ancestors, keyed ``wordnet:<wnid>`` (kind ``object``).
``members("dog")`` is the class names under the dog synset; ``concepts_in`` finds class and ancestor lemmas
in a text, longest first. It cannot draw (no prompts) and has no masks (no annotator).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aim_agent.vocabulary import ConceptAnnotator, ConceptInfo
from aim_imagenet.wordnet import Taxonomy, phrase_forms, taxonomy, words

#: key prefix of this vocabulary's concepts
PREFIX = "wordnet:"
#: synsets covering more than this share of the classes (entity, object, whole, ...) name no concept
MAX_SHARE = 0.5
#: lemmas that, alone in running text, are far more often another word ("can", "part", "top", "work"):
#: never read as a concept unless the whole text is that word
AMBIGUOUS = frozenset({
    "can", "part", "form", "area", "top", "good", "work", "ride", "drop", "feed", "game", "head", "peer", "pick",
    "post", "site", "spot", "unit", "wear", "span", "hack", "soul", "bond", "mag", "ai", "pc", "bob", "mail",
    "home", "wind", "cell", "bank", "fare", "pall", "pant", "whole", "object", "entity", "thing", "match", "equal",
    "individual", "someone", "somebody", "mortal", "shape", "component", "constituent", "portion", "cover",
    "outfit", "attachment", "java",
})


class WordNetVocabulary:
    """The ImageNet classes and their hypernyms (see the module docstring)."""

    name = "wordnet"

    def __init__(self, tax: Taxonomy | None = None) -> None:
        self._tax = tax

    @property
    def tax(self) -> Taxonomy:
        if self._tax is None:
            self._tax = taxonomy()
        return self._tax

    def _info(self, wnid: str) -> ConceptInfo:
        tax = self.tax
        parents = tax.parents(wnid)
        category = parents[0] if parents else None
        return ConceptInfo(
            key=PREFIX + wnid,
            kind="object",
            name=tax.name(wnid),
            words=tax.synonyms(wnid),
            category=tax.name(category) if category else None,
            category_words=tax.synonyms(category) if category else (),
        )

    def _usable(self, wnid: str) -> bool:
        return self.tax.pool_share(wnid) <= MAX_SHARE

    def concept(self, key: str) -> ConceptInfo | None:
        """The concept ``wordnet:<wnid>``, or None."""
        if not key.startswith(PREFIX) or key[len(PREFIX):] not in self.tax:
            return None
        return self._info(key[len(PREFIX):])

    def members(self, term: str) -> frozenset[str]:
        """Names of the classes under the synsets ``term`` names ("dogs" -> the 118 dog breeds); empty for a
        leaf class or an unknown word."""
        tax = self.tax
        found: set[str] = set()
        for wnid in tax.lookup(term):
            if self._usable(wnid):
                found |= {tax.classes[i].name for i in tax.classes_under(wnid) if tax.classes[i].wnid != wnid}
        return frozenset(found)

    def concepts_in(self, text: str) -> list[ConceptInfo]:
        """Class and ancestor lemmas a text names, left to right, longest phrase first, without repeats."""
        tax = self.tax
        tokens = words(text)
        found: dict[str, ConceptInfo] = {}
        start = 0
        while start < len(tokens):
            for length in range(min(tax.longest_lemma, len(tokens) - start), 0, -1):
                phrase = tuple(tokens[start:start + length])
                if length == 1 and len(tokens) > 1 and AMBIGUOUS.intersection(phrase_forms(phrase)):
                    continue
                wnids = [w for form in phrase_forms(phrase) for w in tax.lemma_index.get(form, ())
                         if self._usable(w)]
                if wnids:
                    for wnid in wnids:
                        found.setdefault(PREFIX + wnid, self._info(wnid))
                    start += length
                    break
            else:
                start += 1
        return list(found.values())

    def annotator(self, root: Path) -> ConceptAnnotator | None:
        """None: photos come without concept masks."""
        return None

    def concept_prompts(self, key: str, n: int) -> list[str]:
        """None: this vocabulary cannot draw (use photo retrieval instead)."""
        return []

    def control_prompts(self, avoid: Sequence[str], n: int) -> list[str]:
        return []


__all__ = ["AMBIGUOUS", "MAX_SHARE", "PREFIX", "WordNetVocabulary"]
