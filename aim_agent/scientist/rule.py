"""The conclusion rule: which tested concept the run concludes with, stated once.

1. A concept is **supported** when at least :data:`MIN_POSITIVES` measured images show it, they fire
   above the images that do not (AUC >= :data:`SUPPORT_AUC`), and the exemplars show it at least
   :data:`MIN_EXEMPLAR_SHARE` more than a random sample of the dataset does (its *excess*: a concept the
   exemplars hardly show, or one every image shows, is no answer to "what makes this unit fire").
2. Among supported concepts the best is the one with the highest *merit*: AUC times the square root of
   its excess times the square root of its *reach* — controlled effect, exemplar coverage and strength all
   count. The reach is how far the concept's images lift the unit towards its strongest exemplar
   ((mean with it - mean without it) / (strongest exemplar - mean without it)): a concept that ranks images
   reliably but lifts them a little explains less of what makes the unit fire than one that lifts them far.
3. **Nesting** (read from the measurements: A lies inside B when nearly every image that shows A also
   shows B): the broader B replaces the best A when the images only B predicts fire like A's
   (their mean lies at least half way from the negatives to A's positives); a narrower A (tested on at
   least :data:`MIN_NARROW_POSITIVES` images, AUC >= SUPPORT_AUC; no exemplar share needed) replaces B
   when the images B predicts and A gives up stay low (less than half way). One step each way.
3b. **The strongest exemplar** (checked before narrowing): let A be the describer's first term for the
   strongest exemplar (its best guess; the test below, not the describer's certainty, decides). On the
   measured images and the exemplars together, A is the label when it lies inside B (read on the images the
   describer is fairly sure, >= :data:`SURE`, show A) and the images of B without A stay low (less than half
   way from the images showing neither to A's): B over-claims. A concept beside B never replaces it: the
   strongest exemplar is the dataset's maximum by construction, so its concept would always seem to fire
   highest. The exemplars count here because a concept the dataset shows once (a class in a
   one-photo-per-class sample) has no other images; the conclusion says so and its confidence is lower.
4. **OR**: a second tested concept, not nested with the first, joins the label only when its own
   positives that do not show the first fire alone (AUC >= SUPPORT_AUC against images that show neither,
   at least MIN_POSITIVES of them) and its excess is at least :data:`MIN_OR_SHARE`. The
   first concept is the main one.
5. No supported concept: the conclusion is, in this order of evidence, (a) the concept with a *measured
   effect* short of support (at least MIN_POSITIVES images each side, its AUC above chance at one-sided
   p < 0.05 by the Mann-Whitney test, :data:`~aim_agent.scientist.evidence.EVIDENT_Z`, and the exemplars
   show it more than the dataset does: an effect of something the exemplars show less than ordinary images
   is no answer to what makes the unit fire) with the highest merit, or what the strongest exemplar shows in
   its place by rule 3b; (b) when no tested concept has a measured effect, what the strongest exemplar
   shows first (the describer's leading term for it): the exemplars are then the only evidence, and a
   concept tested on two or three images is no better than a guess. Either way the conclusion says it is
   not supported, with a low confidence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from aim_agent.scientist.evidence import EVIDENT_Z, Fit, Record, fit, rank_auc
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
#: a describer's strength that says it is fairly sure (rule 3b reads nesting on such images)
SURE = 0.4


@dataclass(frozen=True)
class Choice:
    """The concluded concept(s), with the fits behind them."""

    main: Fit
    also: Fit | None
    #: what the main concept rests on: support (rule 1), a measured effect short of it, or the exemplars alone
    basis: Literal["supported", "effect", "exemplars"]
    steps: tuple[str, ...]
    #: the main concept was decided on the exemplars too (rule 3b): fewer independent images behind it
    on_exemplars: bool = False

    @property
    def supported(self) -> bool:
        return self.basis == "supported"

    @property
    def concepts(self) -> list[str]:
        return [self.main.concept] + ([self.also.concept] if self.also else [])


def is_supported(f: Fit, reading: Reading) -> bool:
    return (f.n_pos >= MIN_POSITIVES and f.n_neg >= MIN_POSITIVES and f.auc >= SUPPORT_AUC
            and f.mean_pos > f.mean_neg and reading.excess(f.concept) >= MIN_EXEMPLAR_SHARE)


def has_effect(f: Fit) -> bool:
    """Rule 5a: enough images each side, and an AUC above chance at one-sided p < 0.05."""
    return f.n_pos >= MIN_POSITIVES and f.n_neg >= MIN_POSITIVES and f.z >= EVIDENT_Z and f.mean_pos > f.mean_neg


def reach(f: Fit, reading: Reading) -> float:
    """How far the concept's images lift the unit towards the strongest exemplar, in [0, 1] (1 without exemplars)."""
    if reading.peak is None or reading.peak <= f.mean_neg:
        return 1.0
    return max(0.0, min(1.0, (f.mean_pos - f.mean_neg) / (reading.peak - f.mean_neg)))


def merit(f: Fit, reading: Reading) -> float:
    """Rule 2: controlled effect (AUC), exemplar coverage (excess) and strength (reach) together."""
    return f.auc * math.sqrt(max(0.0, reading.excess(f.concept))) * math.sqrt(reach(f, reading))


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
        return _unsupported(tested, records, reading, exemplars, leading)
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
        return Choice(main=fit(top, [*records, *exemplars]), also=None, basis="supported", steps=tuple(steps),
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
    return Choice(main=main, also=also, basis="supported", steps=tuple(steps))


def _unsupported(tested: Sequence[Fit], records: Sequence[Record], reading: Reading, exemplars: Sequence[Record],
                 leading: Sequence[str]) -> Choice:
    """Rule 5: a measured effect short of support, else what the strongest exemplar shows."""
    effects = [f for f in tested if has_effect(f) and reading.excess(f.concept) > 0]
    if effects:
        best = max(effects, key=lambda f: (merit(f, reading), f.z, f.concept))
        steps = [f"no concept is supported; {best.concept} has a measured effect short of it (AUC {best.auc:.2f}, "
                 f"z {best.z:.1f} on {best.n_pos} images)"]
        top = _strongest_exemplar(best, records, exemplars, leading)
        if top is None:
            return Choice(main=best, also=None, basis="effect", steps=tuple(steps))
        steps.append(f"{top}, what the strongest exemplar shows, fires above the rest of {best.concept}")
        return Choice(main=fit(top, [*records, *exemplars]), also=None, basis="effect", steps=tuple(steps),
                      on_exemplars=True)
    if leading:
        guess = normal(leading[0])
        return Choice(main=fit(guess, [*records, *exemplars]), also=None, basis="exemplars", on_exemplars=True,
                      steps=(f"no tested concept has a measured effect: {guess}, what the strongest exemplar shows, "
                             "untested",))
    best = max(tested, key=lambda f: (f.auc, reading.shares.get(f.concept, 0.0), f.concept))
    return Choice(main=best, also=None, basis="exemplars", steps=("no concept is supported or has an effect",))


def _strongest_exemplar(main: Fit, records: Sequence[Record], exemplars: Sequence[Record],
                        leading: Sequence[str]) -> str | None:
    """Rule 3b: the concept A the describer is sure the strongest exemplar shows, over the chosen B, when A lies
    inside B and, on the measured images and the exemplars together (a class the dataset shows once has no
    other images), the images of B without A stay low."""
    if not leading or not exemplars:
        return None
    top = normal(leading[0])
    strongest = max(exemplars, key=lambda r: r.activation)
    if top == main.concept or strength(strongest.terms, top) < SHOWS:
        return None
    pool = [*records, *exemplars]
    shows_a = [r for r in pool if strength(r.terms, top) >= SHOWS]
    shows_b = [r for r in pool if strength(r.terms, main.concept) >= SHOWS]
    neg = [r.activation for r in pool if strength(r.terms, main.concept) == 0.0 and strength(r.terms, top) == 0.0]
    if not shows_a or len(shows_b) < MIN_POSITIVES or len(neg) < MIN_POSITIVES:
        return None
    # nesting is read on the images the describer is sure show A: a tagger lists a capped number of kinds, so
    # an image that shows A faintly (a second guess) often has B, a far ancestor, cut from its list
    sure_a = [r for r in shows_a if strength(r.terms, top) >= SURE] or shows_a
    if sum(strength(r.terms, main.concept) >= SHOWS for r in sure_a) < NESTED * len(sure_a):
        # A beside B: the strongest exemplar is the dataset's maximum by construction, so "A's images fire
        # above B's" would hold for almost any A; B, measured on other images, stands
        return None
    high = float(np.mean([r.activation for r in shows_a]))
    b_only = [r.activation for r in shows_b if strength(r.terms, top) == 0.0]
    return top if b_only and _position(b_only, float(np.mean(neg)), high) < 0.5 else None
