"""Step 1: read the blind describer's words for the top exemplars into ranked candidate concepts.

Each exemplar's description gives terms with strengths (:func:`aim_agent.terms.terms_of`). A
concept's *exemplar share* is the activation-weighted mean of its strength over the exemplars: how
much of what made the unit fire the concept explains. The candidates are the concepts with the
largest shares; nothing else (no list of answers, no file names) goes into them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from aim_agent.terms import named, normal, terms_of

#: candidates tested by the first experiment (each costs a search and a forward pass)
MAX_CANDIDATES = 8
#: a concept below this exemplar share is not worth a test
MIN_SHARE = 0.05
#: the strongest exemplars whose leading term is always a candidate (what the unit responds to most)
LEADING = 3


@dataclass
class Reading:
    """The exemplars as concepts: each concept's share, its base rate, and the words the describer used for it.

    ``base`` is the concept's mean strength over a random sample of the dataset (the survey), once measured:
    a concept every other image shows ("object", "instrumentality") explains nothing about *this* unit, so
    candidates are ranked by how much more the exemplars show a concept than the dataset does (its excess).
    """

    shares: dict[str, float]
    names: dict[str, str] = field(default_factory=dict)
    described: int = 0
    base: dict[str, float] = field(default_factory=dict)
    #: the first (most specific) term of each of the :data:`LEADING` strongest exemplars
    leading: list[str] = field(default_factory=list)
    #: concepts whose presence tracks the unit over the survey's random sample (set once the survey ran)
    correlated: list[str] = field(default_factory=list)
    #: the strongest exemplar's activation: the most the unit is known to fire (None without exemplars)
    peak: float | None = None

    def name(self, concept: str) -> str:
        """The concept as the describer wrote it (``tiger cat``), for labels."""
        return self.names.get(concept, concept)

    def excess(self, concept: str) -> float:
        """The exemplars' share of the concept above its base rate in the dataset (the share before a survey)."""
        return self.shares.get(concept, 0.0) - self.base.get(concept, 0.0)

    def candidates(self, limit: int = MAX_CANDIDATES) -> list[str]:
        """What the strongest exemplars show first (their leading terms), then what tracks the unit over the
        survey, then the concepts by excess."""
        ranked = sorted(self.shares, key=lambda c: (-self.excess(c), c))
        by_excess = [c for c in ranked if self.excess(c) >= MIN_SHARE]
        return list(dict.fromkeys([*self.leading, *self.correlated, *by_excess]))[:limit]


def base_rates(descriptions: Sequence[str]) -> dict[str, float]:
    """Each concept's mean strength over a random sample's descriptions."""
    if not descriptions:
        return {}
    total: dict[str, float] = {}
    for text in descriptions:
        for term, value in terms_of(text).items():
            total[term] = total.get(term, 0.0) + value
    return {t: v / len(descriptions) for t, v in total.items()}


def read_exemplars(descriptions: Sequence[str], activations: Sequence[float]) -> Reading:
    """Activation-weighted concept shares of the exemplar descriptions (the weakest exemplar weighs least)."""
    pairs = [(d, a) for d, a in zip(descriptions, activations, strict=False) if d and d.strip()]
    if not pairs:
        return Reading(shares={})
    low = min(a for _, a in pairs)
    high = max(a for _, a in pairs)
    span = (high - low) or 1.0
    weights = [0.25 + 0.75 * (a - low) / span for _, a in pairs]  # every exemplar counts, the strongest most
    total = sum(weights)
    shares: dict[str, float] = {}
    names: dict[str, str] = {}
    for (text, _), w in zip(pairs, weights, strict=True):
        for term, value in terms_of(text).items():
            shares[term] = shares.get(term, 0.0) + w * value / total
        for shown in named(text):
            names.setdefault(normal(shown), shown)
    ordered = sorted(pairs, key=lambda pair: -pair[1])[:LEADING]
    leading = [next(iter(terms)) for terms in (terms_of(text) for text, _ in ordered) if terms]
    return Reading(shares={c: round(v, 4) for c, v in shares.items()}, names=names, described=len(pairs),
                   leading=list(dict.fromkeys(leading)), peak=high)
