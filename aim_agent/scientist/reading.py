"""Step 1: read the blind describer's words for the top exemplars into ranked candidate concepts.

Each exemplar's description gives terms with strengths (:func:`aim_agent.terms.terms_of`). A
concept's *exemplar share* is the activation-weighted mean of its strength over the exemplars: how
much of what made the unit fire the concept explains. The candidates are the concepts with the
largest shares; nothing else (no list of answers, no file names) goes into them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from aim_agent.terms import normal, terms_of

#: candidates tested by the first experiment (each costs a search and a forward pass)
MAX_CANDIDATES = 8
#: a concept below this exemplar share is not worth a test
MIN_SHARE = 0.05


@dataclass
class Reading:
    """The exemplars as concepts: each concept's share, and the words the describer used for it."""

    shares: dict[str, float]
    names: dict[str, str] = field(default_factory=dict)
    described: int = 0

    def name(self, concept: str) -> str:
        """The concept as the describer wrote it (``tiger cat``), for labels."""
        return self.names.get(concept, concept)

    def candidates(self, limit: int = MAX_CANDIDATES) -> list[str]:
        ranked = sorted(self.shares, key=lambda c: (-self.shares[c], c))
        return [c for c in ranked if self.shares[c] >= MIN_SHARE][:limit]


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
        for shown in re.findall(r"([^,;:()]+?)\s*\(", text):
            names.setdefault(normal(shown.strip()), shown.strip())
    return Reading(shares={c: round(v, 4) for c, v in shares.items()}, names=names, described=len(pairs))
