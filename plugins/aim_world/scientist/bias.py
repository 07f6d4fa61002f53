"""The offline scientist's answer to MAIA's bias question: where is a class under-recognised?

The unit is the class's probability. The experiment varies one context at a time over the world vocabulary
as a whole, with the class object in every image: every background, every colour of the object, and a
seeded draw of companion objects from all nouns. For each kind of context it reports

- a **preference**: the class is recognised with one value (``with_value``) and much less with the others
  (``without_value``, their mean): the class is under-recognised whenever that value is missing;
- **suppressing** contexts: values where the class is recognised much less than with the others.

Nothing here knows which correlations were planted in training.
"""

from __future__ import annotations

import random
import statistics

from aim_agent.eval.tasks import Finding, Observation, TaskAnswer, TaskQuestion
from aim_world.vocabulary import BACKGROUNDS, COLORS, NOUNS

RENDERS = 4  # seeds per prompt
COMPANIONS = 24  # companion objects drawn per class
GAP = 0.3  # probability gap that makes a finding


def contexts(cls: str) -> dict[str, dict[str, str]]:
    """Feature -> value -> prompt, for the class object ``cls``."""
    nouns = sorted(n.name for n in NOUNS if n.name != cls)
    drawn = random.Random(f"companions:{cls}").sample(nouns, min(COMPANIONS, len(nouns)))
    return {
        "background": {b.name: f"a {cls} on {b.name}" for b in BACKGROUNDS},
        "color": {c: f"a {c} {cls}" for c in COLORS},
        "companion": {n: f"a {cls} with a {n}" for n in sorted(drawn)},
    }


def findings(cls: str, feature: str, means: dict[str, float], gap: float = GAP) -> list[Finding]:
    """The preference (if any) and the suppressing values of one feature, from mean probabilities per value."""
    if len(means) < 2:
        return []
    out = []
    best = max(means, key=lambda v: means[v])
    rest = statistics.fmean(m for v, m in means.items() if v != best)
    if means[best] - rest >= gap:
        out.append(Finding(cls, feature, best, round(means[best], 4), round(rest, 4),
                           f"{cls} is recognised with {feature} {best} ({means[best]:.2f}) and much less "
                           f"without it ({rest:.2f})"))
    typical = statistics.median(means.values())
    for value, m in means.items():
        if value != best and typical - m >= gap:
            out.append(Finding(cls, feature, value, round(m, 4), round(typical, 4),
                               f"{cls} is under-recognised with {feature} {value} ({m:.2f} vs {typical:.2f} "
                               f"typically)"))
    return out


def answer_bias(question: TaskQuestion) -> TaskAnswer:
    """Vary background, colour and companion object of the class; report preferences and suppressors."""
    cls = question.target or question.classes[0]
    found: list[Finding] = []
    evidence: list[Observation] = []
    for feature, prompts in contexts(cls).items():
        values: dict[str, list[float]] = {v: [] for v in prompts}
        for seed in range(RENDERS):
            images = question.generate(list(prompts.values()), seed)
            acts = question.system.activations(images).activations
            for (value, prompt), image, act in zip(prompts.items(), images, acts, strict=True):
                values[value].append(float(act))
                if seed == 0:
                    evidence.append(Observation(prompt, round(float(act), 4), image))
        found += findings(cls, feature, {v: statistics.fmean(a) for v, a in values.items()})
    preferences = [f for f in found if f.with_value > f.without_value]
    if not found:
        return TaskAnswer("UNIFORM", f"{cls} is recognised alike across backgrounds, colours and companions",
                          evidence=evidence)
    return TaskAnswer("BIASED", "; ".join(f.description for f in found[:6]) + (
        f" ({len(preferences)} preferences, {len(found) - len(preferences)} suppressing contexts)"),
        findings=found, evidence=evidence)
