"""The offline scientist's answer to MAIA's bias question: where is a class under-recognised?

The unit is the class's probability. The experiment varies one context at a time over the world vocabulary
as a whole, with the class object in every image: every background, every colour of the object, and as
companion objects those the describer names in more than one of the class's top exemplars (what goes with a
high probability on unbiased images) plus a seeded draw from all nouns (what the exemplars may not show).
Within one render round the other contexts are held equal across the values swept (the same object colour on
every background, ...), so no value is favoured by what else is in its images; every round holds different
ones.

The rounds are split in two halves, and a finding must show in both (a replication on fresh images, so
that the largest of many noisy means is not taken for a bias). For each kind of context it reports

- a **preference**: the class is recognised with one value (``with_value``) and much less with the others
  (``without_value``, their mean): the class is under-recognised whenever that value is missing. A feature
  that can be absent (a companion object) has that absence as its control: the class alone in the same
  scene. A preference must beat it too, so an object that merely looks like the class (recognised as well
  as the class alone while other companions distract) is not taken for something the class needs;
- **suppressing** contexts: values where the class is recognised much less than typically.

Nothing here knows which correlations were planted in training.
"""

from __future__ import annotations

import random
import statistics
from collections import Counter
from collections.abc import Sequence

from aim_agent.eval.tasks import Finding, Observation, TaskAnswer, TaskQuestion
from aim_world.scientist.parsing import parse_text
from aim_world.vocabulary import BACKGROUNDS, COLORS, NOUN_BY_NAME, NOUNS

ROUNDS = 8  # render rounds (two halves of four)
COMPANIONS = 24  # companion objects drawn per class
EXEMPLAR_COMPANIONS = 8  # at most this many companions read off the exemplars
GAP = 0.3  # probability gap that makes a finding, in each half
ABSENT = "(none)"  # the value of a feature that is left out of the image (the class alone)


def exemplar_companions(cls: str, descriptions: Sequence[str]) -> list[str]:
    """Objects the describer names in more than one of the class's exemplars (every object, however small:
    the whole image is the unit's input), most frequent first."""
    counts = Counter(noun for d in descriptions for noun in {t.noun for t in parse_text(d, 0).things})
    seen = sorted((n for n, k in counts.items() if k >= 2 and n != cls and n in NOUN_BY_NAME),
                  key=lambda n: (-counts[n], n))
    return seen[:EXEMPLAR_COMPANIONS]


def sweeps(cls: str, round_: int, companions_seen: Sequence[str] = ()) -> dict[str, dict[str, str]]:
    """Feature -> value -> prompt for one render round: one feature varies, the others are held.
    ``companions_seen``: companions read off the exemplars, swept with the seeded draw."""
    rng = random.Random(f"bias:{cls}")
    colors, backgrounds = list(COLORS), [b.name for b in BACKGROUNDS]
    rng.shuffle(colors)
    rng.shuffle(backgrounds)
    nouns = sorted(n.name for n in NOUNS if n.name != cls)
    companions = sorted({*rng.sample(nouns, min(COMPANIONS, len(nouns))), *companions_seen} - {cls})
    color, background = colors[round_ % len(colors)], backgrounds[round_ % len(backgrounds)]
    return {
        "background": {b: f"a {color} {cls} on {b}" for b in backgrounds},
        "color": {c: f"a {c} {cls} on {background}" for c in colors},
        "companion": {ABSENT: f"a {color} {cls} on {background}",
                      **{n: f"a {color} {cls} with a {n} on {background}" for n in companions}},
    }


def _means(rounds: Sequence[dict[str, float]]) -> dict[str, float]:
    return {v: statistics.fmean(r[v] for r in rounds) for v in rounds[0]}


def findings(cls: str, feature: str, halves: Sequence[Sequence[dict[str, float]]], gap: float = GAP) -> list[Finding]:
    """The preference (if any) and the suppressing values of one feature, from the probability of every value
    in each round, rounds grouped in halves; a finding must hold in every half. The value :data:`ABSENT` (the
    feature left out) is a control: never a finding itself, and a preference must beat it by ``gap`` too."""
    per_half = [_means(h) for h in halves if h]
    values = [v for v in per_half[0] if v != ABSENT] if per_half else []
    if len(values) < 2:
        return []
    overall = _means([r for h in halves for r in h])
    out = []
    bests = {max(values, key=lambda v: m[v]) for m in per_half}
    if len(bests) == 1:
        best = bests.pop()
        rests = [statistics.fmean(x for v, x in m.items() if v != best) for m in per_half]
        above_absent = all(m[best] - m.get(ABSENT, -1.0) >= gap for m in per_half)
        if above_absent and all(m[best] - r >= gap for m, r in zip(per_half, rests, strict=True)):
            rest = statistics.fmean(x for v, x in overall.items() if v != best)
            out.append(Finding(cls, feature, best, round(overall[best], 4), round(rest, 4), "preference",
                               f"{cls} is recognised with {feature} {best} ({overall[best]:.2f}) and much less "
                               f"without it ({rest:.2f})"))
    typical = statistics.median(overall.values())
    for value, m in overall.items():
        if value != ABSENT and all(statistics.median(h.values()) - h[value] >= gap for h in per_half):
            out.append(Finding(cls, feature, value, round(m, 4), round(typical, 4), "suppressor",
                               f"{cls} is under-recognised with {feature} {value} ({m:.2f} vs {typical:.2f} "
                               f"typically)"))
    return out


def answer_bias(question: TaskQuestion) -> TaskAnswer:
    """Sweep background, colour and companion object of the class; report preferences and suppressors."""
    from aim_world.providers import WorldDescriber

    cls = question.target or question.classes[0]
    seen = exemplar_companions(cls, WorldDescriber().describe(question.exemplars)) if question.exemplars else []
    measured: dict[str, list[dict[str, float]]] = {}
    evidence: list[Observation] = []
    for round_ in range(ROUNDS):
        for feature, prompts in sweeps(cls, round_, seen).items():
            images = question.generate(list(prompts.values()), round_)
            acts = question.system.activations(images).activations
            measured.setdefault(feature, []).append({v: float(a) for v, a in zip(prompts, acts, strict=True)})
            if round_ < 2:
                evidence += [Observation(p, round(float(a), 4), im)
                             for p, im, a in zip(prompts.values(), images, acts, strict=True)]
    half = ROUNDS // 2
    found = [f for feature, rounds in measured.items()
             for f in findings(cls, feature, [rounds[:half], rounds[half:]])]
    read = f"companions read off the exemplars: {', '.join(seen) or 'none'}"
    if not found:
        return TaskAnswer("UNIFORM", f"{cls} is recognised alike across backgrounds, colours and companions "
                          f"({read})", evidence=evidence)
    preferences = [f for f in found if f.kind == "preference"]
    return TaskAnswer("BIASED", "; ".join(f.description for f in found[:6]) + (
        f" ({len(preferences)} preferences, {len(found) - len(preferences)} suppressing contexts; {read})"),
        findings=found, evidence=evidence)
