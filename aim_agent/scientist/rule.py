"""The conclusion rule: which tested concept the run concludes with, stated once.

1. A concept is **supported** when at least :data:`MIN_POSITIVES` measured images show it, they fire
   above the images that do not (AUC >= :data:`SUPPORT_AUC`), and the exemplars show it at least
   :data:`MIN_EXEMPLAR_SHARE` more than a random sample of the dataset does (its *excess*: a concept the
   exemplars hardly show, or one every image shows, is no answer to "what makes this unit fire").
2. Among supported concepts the best is the one with the highest *merit*: AUC times the square root of
   its excess — controlled effect and exemplar coverage both count.
3. **Nesting** (read from the measurements: A lies inside B when nearly every image that shows A also
   shows B): the broader B replaces the best A when the images only B predicts fire like A's
   (their mean lies at least half way from the negatives to A's positives); a narrower A (tested on at
   least :data:`MIN_NARROW_POSITIVES` images, AUC >= SUPPORT_AUC; no exemplar share needed) replaces B
   when the images B predicts and A gives up stay low (less than half way). One step each way.
3b. **The strongest exemplar** (checked before narrowing): let A be the concept the describer is fairly
   sure (>= :data:`SURE`) the strongest exemplar shows. On the measured images and the exemplars together,
   A is the label when it lies inside B and the images of B without A stay low (less than half way from
   the images showing neither to A's), or when it lies beside B, the strongest exemplar does not show B,
   and A's images fire above B's: B over-claims, or misses the strongest response. The exemplars count
   here because a concept the dataset shows once (a class in a one-photo-per-class sample) has no other
   images; the conclusion says so and its confidence is lower.
4. **OR**: a second tested concept, not nested with the first, joins the label only when its own
   positives that do not show the first fire alone (AUC >= SUPPORT_AUC against images that show neither,
   at least MIN_POSITIVES of them) and its excess is at least :data:`MIN_OR_SHARE`. The
   first concept is the main one.
5. No supported concept: the conclusion is the best tested concept, marked untested/refuted, with a low
   confidence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aim_agent.scientist.evidence import Fit, Record, fit, rank_auc
from aim_agent.scientist.reading import Reading
from aim_agent.terms import SHOWS, normal, strength

MIN_POSITIVES = 3
#: a narrower concept may replace the chosen one on fewer images (a class the dataset shows once or twice)
MIN_NARROW_POSITIVES = 2
SUPPORT_AUC = 0.75
MIN_EXEMPLAR_SHARE = 0.1
MIN_OR_SHARE = 0.2
#: A lies inside B when at least this share of A's positives are B's positives
NESTED = 0.9
#: a describer's strength that says it is fairly sure (rule 3b reads only such a description of the top exemplar)
SURE = 0.4


@dataclass(frozen=True)
class Choice:
    """The concluded concept(s), with the fits behind them."""

    main: Fit
    also: Fit | None
    supported: bool
    steps: tuple[str, ...]
    #: the main concept was decided on the exemplars too (rule 3b): fewer independent images behind it
    on_exemplars: bool = False

    @property
    def concepts(self) -> list[str]:
        return [self.main.concept] + ([self.also.concept] if self.also else [])


def is_supported(f: Fit, reading: Reading) -> bool:
    return (f.n_pos >= MIN_POSITIVES and f.n_neg >= MIN_POSITIVES and f.auc >= SUPPORT_AUC
            and f.mean_pos > f.mean_neg and reading.excess(f.concept) >= MIN_EXEMPLAR_SHARE)


def merit(f: Fit, reading: Reading) -> float:
    return f.auc * math.sqrt(max(0.0, reading.excess(f.concept)))


def inside(a: Fit, b: Fit) -> bool:
    """A's positives (nearly) all show B too, and B has more: A is the narrower concept."""
    return bool(a.positives) and len(a.positives & b.positives) >= NESTED * len(a.positives) \
        and len(b.positives) > len(a.positives)


def _position(extra: Sequence[float], low: float, high: float) -> float:
    """Where the mean of ``extra`` lies between ``low`` (0) and ``high`` (1)."""
    if not extra or high <= low:
        return 0.0
    return (float(np.mean(extra)) - low) / (high - low)


def choose(fits: Sequence[Fit], records: Sequence[Record], reading: Reading,
           exemplars: Sequence[Record] = (), leading: Sequence[str] = ()) -> Choice | None:
    """Apply the rule (module docstring) to the fits of every tested concept; None when nothing was tested."""
    tested = [f for f in fits if f.tested]
    if not tested:
        return None
    supported = [f for f in tested if is_supported(f, reading)]
    if not supported:
        best = max(tested, key=lambda f: (f.auc, reading.shares.get(f.concept, 0.0), f.concept))
        return Choice(main=best, also=None, supported=False, steps=("no concept is supported",))
    main = max(supported, key=lambda f: (merit(f, reading), f.concept))
    steps = [f"best supported: {main.concept} (merit {merit(main, reading):.2f})"]
    acts = [r.activation for r in records]
    for b in sorted(supported, key=lambda f: -len(f.positives)):
        if inside(main, b):
            extra = [acts[i] for i in b.positives - main.positives]
            if _position(extra, main.mean_neg, main.mean_pos) >= 0.5:
                steps.append(f"broader {b.concept}: the images only it predicts fire too")
                main = b
                break
    top = _strongest_exemplar(main, records, exemplars, leading)
    if top is not None:
        steps.append(f"{top}, what the strongest exemplar shows: on the exemplars and the measured images it fires "
                     f"above the rest of {main.concept}")
        return Choice(main=fit(top, [*records, *exemplars]), also=None, supported=True, steps=tuple(steps),
                      on_exemplars=True)
    # narrowing needs no exemplar share: the broader concept's own controls decide (its other members stay low)
    narrower = [f for f in tested if f.auc >= SUPPORT_AUC and len(f.positives) >= MIN_NARROW_POSITIVES
                and f.mean_pos > f.mean_neg]
    for a in sorted(narrower, key=lambda f: (-f.mean_pos, f.concept)):
        if inside(a, main):
            extra = [acts[i] for i in main.positives - a.positives]
            if _position(extra, main.mean_neg, a.mean_pos) < 0.5:
                steps.append(f"narrower {a.concept}: the images it gives up stay low")
                main = a
                break
    also = None
    # the second concept is judged without the first: against images that show neither (the first's
    # positives would count against it in its own fit)
    for other in sorted(tested, key=lambda f: -merit(f, reading)):
        if other is main or inside(other, main) or inside(main, other):
            continue
        if reading.excess(other.concept) < MIN_OR_SHARE:
            continue
        alone = [acts[i] for i in other.positives if strength(records[i].terms, main.concept) == 0.0]
        neither = [r.activation for r in records
                   if strength(r.terms, main.concept) == 0.0 and strength(r.terms, other.concept) == 0.0]
        if len(alone) >= MIN_POSITIVES and rank_auc(alone, neither) >= SUPPORT_AUC:
            steps.append(f"{other.concept} fires alone too (AUC {rank_auc(alone, neither):.2f} without "
                         f"{main.concept})")
            also = other
            break
    return Choice(main=main, also=also, supported=True, steps=tuple(steps))


def _strongest_exemplar(main: Fit, records: Sequence[Record], exemplars: Sequence[Record],
                        leading: Sequence[str]) -> str | None:
    """Rule 3b: the concept A the describer is sure the strongest exemplar shows, over the chosen B, when on the
    measured images and the exemplars together (a class the dataset shows once has no other images) A's images
    fire above B's: inside B, the images of B without A stay low; beside B, A's images fire higher than B's."""
    if not leading or not exemplars:
        return None
    top = normal(leading[0])
    strongest = max(exemplars, key=lambda r: r.activation)
    if top == main.concept or strength(strongest.terms, top) < SURE:
        return None
    pool = [*records, *exemplars]
    shows_a = [r for r in pool if strength(r.terms, top) >= SHOWS]
    shows_b = [r for r in pool if strength(r.terms, main.concept) >= SHOWS]
    neg = [r.activation for r in pool if strength(r.terms, main.concept) == 0.0 and strength(r.terms, top) == 0.0]
    if not shows_a or len(shows_b) < MIN_POSITIVES or len(neg) < MIN_POSITIVES:
        return None
    high = float(np.mean([r.activation for r in shows_a]))
    if sum(strength(r.terms, main.concept) >= SHOWS for r in shows_a) >= NESTED * len(shows_a):  # A inside B
        b_only = [r.activation for r in shows_b if strength(r.terms, top) == 0.0]
        return top if b_only and _position(b_only, float(np.mean(neg)), high) < 0.5 else None
    if strength(strongest.terms, main.concept) >= SHOWS:
        return None  # the strongest exemplar shows B too: B explains it
    return top if high > float(np.mean([r.activation for r in shows_b])) else None
