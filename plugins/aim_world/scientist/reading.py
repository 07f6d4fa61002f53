"""Reading the exemplars (or, when they show nothing, a survey): concepts ranked by activation-weighted
frequency, and the single, OR and conditional hypotheses they suggest."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aim_agent.agent.schema import ScientistView
from aim_world.scientist.concepts import (
    ATTRIBUTE_KINDS,
    KIND_ORDER,
    OBJECT_KINDS,
    PATTERN,
    Concept,
    noun_category,
)
from aim_world.scientist.hypotheses import Hyp, hyp_id
from aim_world.scientist.parsing import text_concepts

MAX_CANDIDATES = 4  # single-concept hypotheses tested in the screen
MAX_PAIRS = 2  # OR / conditional hypotheses tested in the pairs phase
MIN_SCORE = 0.3  # exemplar frequency a concept needs to become a hypothesis
MIN_CATEGORY_NOUNS = 3  # distinct nouns among the exemplars before their group and category become concepts
MAX_GROUP = 6  # nouns named in a group concept
MIN_PATTERN_TEXTURES = 2  # distinct textures among the firing exemplars before "patterned surfaces" is a concept
SURVEY_TOP = 15  # survey images read as exemplars
# What the describer writes for an exemplar where the unit did not fire.
_EMPTY_REGION = re.compile(r"nothing is highlighted|region is empty", re.I)


@dataclass
class Reading:
    """What the exemplars suggest: ranked concepts and the hypotheses built from them."""

    scores: dict[Concept, float]
    mentions: list[set[Concept]]
    weights: list[float]
    candidates: list[Concept]
    hypotheses: list[Hyp]
    mentioned: set[Concept]
    first_pos: dict[Concept, float]
    start: int = 0  # observations before the plan (1 when a survey stood in for the exemplars)
    texts: list[str] = field(default_factory=list)  # what was read: exemplar descriptions or survey prompts


def _weights(activations: Sequence[float], n: int) -> list[float]:
    acts = [max(0.0, float(a)) for a in activations[:n]] + [0.0] * max(0, n - len(activations))
    top = max(acts, default=0.0)
    if top <= 0:
        return [1.0] * n
    return [a / top for a in acts]


def read_exemplars(descriptions: Sequence[str], activations: Sequence[float]) -> Reading:
    """Score concepts by activation-weighted frequency and form single/OR/conditional hypotheses."""
    parsed = [text_concepts(d) for d in descriptions]
    weights = _weights(activations, len(descriptions))
    mentions = _with_categories([set(p) for p in parsed], weights)
    total = sum(weights) or 1.0
    scores: dict[Concept, float] = {}
    first: dict[Concept, list[int]] = {}
    for p, ms, w in zip(parsed, mentions, weights, strict=True):
        for c in ms:
            scores[c] = scores.get(c, 0.0) + w / total
        for pos, c in enumerate(p):
            first.setdefault(c, []).append(pos)
    first_pos = {c: sum(v) / len(v) for c, v in first.items()}
    ranked = sorted(scores, key=lambda c: (-round(scores[c], 6), KIND_ORDER[c.kind], first_pos.get(c, 99), c.name))
    candidates = [c for c in ranked if scores[c] >= MIN_SCORE][:MAX_CANDIDATES]
    if not candidates and ranked:
        candidates = ranked[:1]
    for group in [c for c in candidates if c.kind in ("group", "category")]:
        # a set of nouns is a hedge: its two most frequent members are tested on their own too
        members = [c for c in ranked if c.kind == "object" and (c.name in group.members or (
            group.kind == "category" and noun_category(c.name) == group.name))]
        candidates += [c for c in members[:2] if c not in candidates]
    reading = Reading(scores, mentions, weights, candidates, [], set(scores), first_pos, texts=list(descriptions))
    reading.hypotheses = _initial_hypotheses(reading)
    return reading


def reading_for(view: ScientistView) -> Reading:
    """What to start from: the exemplars; or, when they show nothing (none, or all silent), a survey.

    The survey is one image of every object the world can draw (each on another background)
    plus every texture; its most activating images are then read like exemplars.
    """
    reading = read_exemplars(view.exemplar_descriptions, view.exemplar_activations)
    if _has_signal(reading) or not _needs_survey(view):
        return reading
    if not view.observations:
        reading.start = 1
        return reading
    survey = view.observations[0]
    ranked = sorted(zip(survey.activations, survey.prompts, strict=False), key=lambda x: (-x[0], x[1]))
    kept = []
    if ranked:
        top, median = ranked[0][0], ranked[len(ranked) // 2][0]
        if top > 0 and top > 1.5 * max(median, 0.0):  # something stands out of the crowd
            kept = [(a, p) for a, p in ranked if a >= median + 0.5 * (top - median)][:SURVEY_TOP]
    reading = read_exemplars([p for _, p in kept], [a for a, _ in kept])
    reading.start = 1
    return reading


def _has_signal(reading: Reading) -> bool:
    return any(w > 0 and ms for w, ms in zip(reading.weights, reading.mentions, strict=True))


def _needs_survey(view: ScientistView) -> bool:
    """No exemplar descriptions, or the unit fired on none of them."""
    texts = view.exemplar_descriptions
    return not texts or all(_EMPTY_REGION.search(t) for t in texts)


def _with_categories(mentions: list[set[Concept]], weights: list[float]) -> list[set[Concept]]:
    """Add broader object concepts when the firing exemplars show several different nouns.

    A ``category`` (animals) when three or more nouns of one vocabulary category fire, and a
    ``group`` of the nouns seen when no single noun dominates. Which nouns really belong to a
    group is measured later (the survey), never assumed.
    """
    weight: dict[str, float] = {}
    for ms, w in zip(mentions, weights, strict=True):
        for c in ms:
            if w > 0 and c.kind == "object":
                weight[c.name] = weight.get(c.name, 0.0) + w
    by_category: dict[str, set[str]] = {}
    for noun in weight:
        by_category.setdefault(noun_category(noun), set()).add(noun)
    broad = {cat for cat, nouns in by_category.items() if len(nouns) >= MIN_CATEGORY_NOUNS}
    groups: list[Concept] = []
    total = sum(w for w in weights if w > 0) or 1.0
    if len(weight) >= MIN_CATEGORY_NOUNS and max(weight.values()) / total < 0.6:
        groups = [Concept("group", "+".join(sorted(weight, key=lambda n: (-weight[n], n))[:MAX_GROUP]))]
    # a patterned surface, whichever texture: when the firing exemplars show several textures (stripes on a
    # peacock, waves on a dog, checkers on a pear), what they share may be the pattern, not a noun
    textures = {c.name for ms, w in zip(mentions, weights, strict=True) if w > 0 for c in ms if c.kind == "texture"}
    pattern = Concept("pattern", PATTERN) if len(textures) >= MIN_PATTERN_TEXTURES else None
    out = []
    for ms in mentions:
        nouns = {c.name for c in ms if c.kind == "object"}
        more = {Concept("category", noun_category(n)) for n in nouns if noun_category(n) in broad}
        more |= {g for g in groups if nouns & set(g.members)}
        if pattern is not None and any(c.kind == "texture" for c in ms):
            more.add(pattern)
        out.append(ms | more)
    return out


def _share(reading: Reading, pred: Callable[[set[Concept]], bool]) -> float:
    total = sum(reading.weights) or 1.0
    return sum(w for ms, w in zip(reading.mentions, reading.weights, strict=True) if pred(ms)) / total


def _focus_first(reading: Reading, a: Concept, b: Concept) -> tuple[Concept, Concept]:
    """Order a conditional pair: what the highlighted regions show most is the focus (the unit fires on
    it), the other the condition; an object and its own colour or texture (about equally frequent)
    read as "car, only when it is red"."""
    sa, sb = reading.scores.get(a, 0.0), reading.scores.get(b, 0.0)
    if abs(sa - sb) < 0.1:
        if a.kind in ATTRIBUTE_KINDS and b.kind in OBJECT_KINDS:
            return b, a
        if b.kind in ATTRIBUTE_KINDS and a.kind in OBJECT_KINDS:
            return a, b

    def rank(c: Concept) -> tuple:
        return (-round(reading.scores.get(c, 0.0), 1), KIND_ORDER[c.kind], reading.first_pos.get(c, 99), c)
    return (a, b) if rank(a) <= rank(b) else (b, a)


def _explained_by_another(reading: Reading, a: Concept, b: Concept) -> bool:
    """Whether a more frequent concept is in (nearly) every exemplar that has ``a`` or ``b``.

    Then the pair is two attributes of that concept (a brown dog, a black dog), not OR or AND.
    """
    either = _share(reading, lambda ms: a in ms or b in ms)
    for c, sc in reading.scores.items():
        if c in (a, b) or c.kind in ("category", "group") or sc <= max(reading.scores[a], reading.scores[b]):
            continue  # (a category does not explain away its members: dog OR bird is not just "animals")
        if _share(reading, lambda ms, c=c: c in ms and (a in ms or b in ms)) >= 0.9 * either:
            return True
    return False


def is_member(a: Concept, b: Concept) -> bool:
    """Whether ``b`` is part of the broader ``a`` (dog and animals, or dog and 'dog, cat or cow', are not a pair)."""
    if b.kind not in ("object", "group"):
        return False
    if a.kind == "category":
        return all(noun_category(m) == a.name for m in b.members)
    return a.kind == "group" and set(b.members) <= set(a.members) and a != b


def _initial_hypotheses(reading: Reading) -> list[Hyp]:
    hyps: list[Hyp] = [Hyp("single", c) for c in reading.candidates]
    pool = sorted(reading.scores, key=lambda c: (-reading.scores[c], KIND_ORDER[c.kind], c))[:8]
    pairs: list[tuple[float, Hyp]] = []
    for i, a in enumerate(pool):
        for b in pool[i + 1 :]:
            if a.kind == b.kind == "background":
                continue
            pa, pb = reading.scores[a], reading.scores[b]
            if _explained_by_another(reading, a, b) or is_member(a, b) or is_member(b, a):
                continue
            both = _share(reading, lambda ms, a=a, b=b: a in ms and b in ms)
            either = _share(reading, lambda ms, a=a, b=b: a in ms or b in ms)
            if min(pa, pb) >= 0.25 and either >= 0.7 and both <= 0.5 * min(pa, pb):
                pairs.append((pa + pb, Hyp("or", *sorted([a, b], key=lambda c: -reading.scores[c]))))
            elif max(pa, pb) >= 0.4 and min(pa, pb) >= MIN_SCORE:
                focus, cond = _focus_first(reading, a, b)
                if both / max(reading.scores[focus], 1e-9) >= 0.8:
                    pairs.append((pa + pb, Hyp("conditional", focus, cond)))
    pairs.sort(key=lambda x: (-round(x[0], 6), hyp_id(x[1])))
    hyps += [h for _, h in pairs[:MAX_PAIRS]]
    return hyps
