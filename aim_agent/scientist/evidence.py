"""What the run has measured, and how well each concept explains it.

Every image a concept experiment measures was found by :func:`~aim_agent.tools.core.dataset_search`, so
its provenance is the blind describer's description of the whole image (``photo: ...``). A
:class:`Record` pairs those terms with the unit's activation; :func:`fit` scores one concept on all
records of the run: where the describer names the concept (positives) against where it names
nothing of it (negatives), by rank separation (AUC) and by the mean activations of each side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aim_agent.agent.schema import Observation
from aim_agent.terms import SHOWS, strength, terms_of

#: the provenance prefix of an image found by dataset_search
PHOTO_PREFIX = "photo: "


@dataclass(frozen=True)
class Record:
    """One measured image: what the describer says it shows, and the unit's activation on it."""

    terms: dict[str, float]
    activation: float


@dataclass(frozen=True)
class Fit:
    """How one concept separates the run's measurements."""

    concept: str
    auc: float
    n_pos: int
    n_neg: int
    mean_pos: float
    mean_neg: float
    positives: frozenset[int]
    #: the Mann-Whitney z of the AUC: how far above chance it lies for this many images (1.645 is p = 0.05)
    z: float = 0.0

    @property
    def tested(self) -> bool:
        return self.n_pos >= 2 and self.n_neg >= 2


def records_from(observations: Sequence[Observation]) -> list[Record]:
    """The run's measured images whose provenance is a description (found images), in order, without repeats."""
    seen: set[tuple[str, float]] = set()
    out: list[Record] = []
    for obs in observations:
        for prompt, act in zip(obs.prompts, obs.activations, strict=False):
            if not prompt.startswith(PHOTO_PREFIX) or (prompt, act) in seen:
                continue
            seen.add((prompt, act))
            out.append(Record(terms=terms_of(prompt[len(PHOTO_PREFIX):]), activation=float(act)))
    return out


def rank_auc(pos: Sequence[float], neg: Sequence[float]) -> float:
    """P(a positive outranks a negative), ties counted half (Mann-Whitney U / n_pos n_neg); 0.5 when empty."""
    if not pos or not neg:
        return 0.5
    p = np.asarray(pos, dtype=np.float64)[:, None]
    n = np.asarray(neg, dtype=np.float64)[None, :]
    return float(((p > n).sum() + 0.5 * (p == n).sum()) / (p.size * n.size))


def rank_z(auc: float, n_pos: int, n_neg: int) -> float:
    """The AUC's distance from chance in standard errors under the null (normal approximation of Mann-Whitney U)."""
    if n_pos == 0 or n_neg == 0:
        return 0.0
    return (auc - 0.5) / float(np.sqrt((n_pos + n_neg + 1) / (12.0 * n_pos * n_neg)))


def fit(concept: str, records: Sequence[Record]) -> Fit:
    """Score ``concept`` on the records: positives name it (>= :data:`SHOWS`), negatives do not name it at all."""
    pos_idx = [i for i, r in enumerate(records) if strength(r.terms, concept) >= SHOWS]
    neg = [r.activation for r in records if strength(r.terms, concept) == 0.0]
    pos = [records[i].activation for i in pos_idx]
    auc = rank_auc(pos, neg)
    return Fit(concept=concept, auc=auc, n_pos=len(pos), n_neg=len(neg),
               mean_pos=float(np.mean(pos)) if pos else 0.0, mean_neg=float(np.mean(neg)) if neg else 0.0,
               positives=frozenset(pos_idx), z=rank_z(auc, len(pos), len(neg)))


#: one-sided p < 0.05: an AUC this many standard errors above chance is a measured effect
EVIDENT_Z = 1.645


def correlated(records: Sequence[Record], min_positives: int, limit: int) -> list[str]:
    """The concepts whose presence over ``records`` (a random sample) tracks the unit: the describer names them
    on at least ``min_positives`` images and they fire above the rest (z >= :data:`EVIDENT_Z`), strongest first.
    A random sample finds what the exemplars may not show: a broad concept that raises the unit a little
    everywhere."""
    terms = {t for r in records for t, v in r.terms.items() if v >= SHOWS}
    fits = [f for f in (fit(t, records) for t in sorted(terms))
            if f.n_pos >= min_positives and f.n_neg >= min_positives and f.z >= EVIDENT_Z]
    return [f.concept for f in sorted(fits, key=lambda f: (-f.z, f.concept))[:limit]]
