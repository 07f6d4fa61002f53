"""Strict concept match: which ground-truth concepts a label names.

A label is *strictly right* when it names every concept of the truth: the concept of a
monosemantic unit, both halves of an OR unit, the concept and the condition of a conditional
unit. Naming is word-level (:func:`aim_agent.eval.truth.names`): a term of the concept (its
words, synonyms and plurals, as the unit source lists them) occurs in the label. The logical
form is not checked: "dogs and leashes" names both parts of "dogs, only when leashes are
present". Extra concepts are not penalised here; :func:`named_count` counts them.
"""

from __future__ import annotations

from pydantic import BaseModel

from aim_agent.eval.truth import ConceptTruth, UnitTruth, mentions, names


class StrictScore(BaseModel):
    """Which concepts of the truth the label names (in the truth's order), and the verdict."""

    named: list[bool]
    correct: bool
    fraction: float


def strict_score(label: str, truth: UnitTruth) -> StrictScore:
    """Strict concept match of ``label`` against ``truth``."""
    named = [names(label, concept) for concept in truth.concepts]
    return StrictScore(named=named, correct=all(named), fraction=sum(named) / len(named))


def named_count(label: str, vocabulary: list[ConceptTruth]) -> int:
    """How many distinct mentions of vocabulary concepts the label holds (a list-like label holds many).

    Mentions are counted by position: a word that names two concepts ("grass": the background and
    the region) counts once."""
    return len({position for position, _ in mentions(label, vocabulary)})
