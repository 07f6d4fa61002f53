"""Searches over the whole world vocabulary, read from the scientist's own measurements.

- :func:`survey_findings`: after the survey (one image of every object, background, colour and texture),
  which nouns the unit really responds to besides the leading concept (its measured *group*: the birds
  among the animals, the trucks among the vehicles), and which concepts explain strong images that the
  leading concept leaves out (*partners*: the unit may respond to either, OR).
- :func:`sweep_conditions`: after the context sweep (the leading concept next to every companion the
  world offers), which companions switch the response on (candidate *conditions*: A only when B).

Nothing here knows an answer: groups, partners and conditions come from the world's own vocabulary
and categories and from activations measured in this run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from aim_agent.agent.schema import Observation
from aim_world import vocabulary as vocab
from aim_world.scientist.concepts import OBJECT_KINDS, Concept, noun_category
from aim_world.scientist.design import SweepItem, survey_items
from aim_world.scientist.hypotheses import Hyp, present
from aim_world.scientist.parsing import prompt_features

MAX_PARTNERS = 3  # concepts tested as the other half of an OR
MAX_CONDITIONS = 3  # companions confirmed with a 2x2 design
CATEGORY_SHARE = 0.75  # a group that holds this share of a category is that category
ATTRIBUTE_PRECISION = 0.5  # share of an attribute's survey images that must be strong to explain others
STRONG = 0.5  # strong: above median + STRONG * (top - median)


@dataclass
class SurveyFindings:
    group: Concept | None = None  # the leading concept's measured set of nouns (or its category)
    partners: list[Concept] = field(default_factory=list)  # concepts that explain what the lead leaves out
    strong: list[str] = field(default_factory=list)  # survey prompts that fired strongly (for notes)


def _measured(observation: Observation) -> dict[str, float]:
    """Prompt -> activation of one observation (the last value when a prompt was measured twice)."""
    if len(observation.prompts) != len(observation.activations):
        return {}
    return {p: float(a) for p, a in zip(observation.prompts, observation.activations, strict=True)}


def _category_or_group(nouns: Sequence[str]) -> Concept | None:
    """One concept for a set of nouns: their category when they hold most of it, else a group (None for one)."""
    nouns = list(dict.fromkeys(nouns))
    if not nouns:
        return None
    cats = {noun_category(n) for n in nouns}
    if len(cats) == 1:
        cat = cats.pop()
        members = [n.name for n in vocab.NOUNS if n.category == cat]
        if len(nouns) >= 3 and len(nouns) >= CATEGORY_SHARE * len(members):
            return Concept("category", cat)
    if len(nouns) == 1:
        return Concept("object", nouns[0])
    return Concept("group", "+".join(nouns))


def _lead_nouns(lead: Concept) -> set[str]:
    if lead.kind == "category":
        return {n.name for n in vocab.NOUNS if n.category == lead.name}
    return set(lead.members) if lead.kind in OBJECT_KINDS else set()


def survey_findings(survey: Observation, lead: Concept | None) -> SurveyFindings:
    """The measured group of the leading concept and the partners that explain what it leaves out."""
    acts = _measured(survey)
    items = [(item, acts[item.prompt]) for item in survey_items() if item.prompt in acts]
    if not items or lead is None:
        return SurveyFindings()
    values = sorted(a for _, a in items)
    top, median = values[-1], values[len(values) // 2]
    if top <= 0 or top <= 1.5 * max(median, 0.0):
        return SurveyFindings()  # nothing stands out of the crowd
    cut = median + STRONG * (top - median)
    strong = [(item, a) for item, a in items if a >= cut]
    strong.sort(key=lambda x: (-x[1], x[0].prompt))
    findings = SurveyFindings(strong=[item.prompt for item, _ in strong])
    lead_hyp = Hyp("single", lead)
    features = {item.prompt: prompt_features(item.prompt) for item, _ in items}

    # the group: strong nouns of the lead's own categories, when the lead's own nouns are among them
    lead_nouns = _lead_nouns(lead)
    strong_nouns = [item.concept.name for item, _ in strong if item.concept.kind == "object"]
    if lead_nouns and lead_nouns & set(strong_nouns):
        cats = {noun_category(n) for n in lead_nouns}
        own = [n for n in (lead.members if lead.kind != "category" else []) if n in strong_nouns]
        found = _category_or_group([*own, *(n for n in strong_nouns if noun_category(n) in cats)])
        if found is not None and found != lead and found.kind != "object":
            findings.group = found
    base = Hyp("single", findings.group) if findings.group else lead_hyp

    # partners: what explains the strong images the lead (or its group) leaves out
    pool = [(features[item.prompt], a) for item, a in items]
    left = [f for f, a in pool if a >= cut and not base.fires(f) and not lead_hyp.fires(f)]
    findings.partners = explain(left, pool, cut, exclude=set(), limit=MAX_PARTNERS)
    return findings


Image = tuple[frozenset[str], float]  # (features, activation)
_EXPLAINING_KINDS = ("object", "category", "color", "texture", "pattern", "background", "region")


def _concept_of(key: str) -> Concept:
    kind, name = key.split(":", 1)
    return Concept(kind, name)  # type: ignore[arg-type]


def explain(left: Sequence[frozenset[str]], pool: Sequence[Image], cut: float, exclude: set[str],
            limit: int, own: Sequence[str] = ()) -> list[Concept]:
    """Concepts that explain the strong images ``left``, best first: greedily, the concept with the best
    balance (F1) of coverage (share of ``left`` that shows it) and precision (share of the ``pool`` images
    that show it and are strong, at least :data:`ATTRIBUTE_PRECISION`). Candidates are every concept of
    those images (objects, categories, colours, textures, backgrounds, regions), per category the group
    of its strong objects (the birds among the animals) and, for the keys in ``own`` (the concept under
    study), its own attributes ('object:dog|color:purple': a purple dog, not any purple thing)."""
    out: list[Concept] = []
    left = list(left)
    def usable(key: str) -> bool:
        return "|" not in key or key.split("|")[0] in own

    strong_of: dict[str, tuple[int, int]] = {}  # key -> (strong images, images) over the pool
    for feats, act in pool:
        for key in feats:
            if usable(key):
                n_strong, n = strong_of.get(key, (0, 0))
                strong_of[key] = (n_strong + (act >= cut), n + 1)
    while left and len(out) < limit:
        options: list[tuple[float, int, str, Concept]] = []
        keys = {k for f in left for k in f if usable(k) and k.split(":", 1)[0] in _EXPLAINING_KINDS}
        keys -= exclude
        groups: dict[str, list[str]] = {}
        for key in sorted(keys):
            n_strong, n = strong_of.get(key, (0, 0))
            precision = n_strong / n if n else 0.0
            if precision < ATTRIBUTE_PRECISION:
                continue
            covered = sum(key in f for f in left)
            options.append((2 * precision * (covered / len(left)) / (precision + covered / len(left)), covered, key,
                            _concept_of(key.split("|")[-1])))
            if key.startswith("object:") and "|" not in key:
                groups.setdefault(noun_category(key.split(":", 1)[1]), []).append(key.split(":", 1)[1])
        for cat, nouns in sorted(groups.items()):
            if len(nouns) < 2:
                continue
            group = _category_or_group(sorted(nouns, key=lambda n: -strong_of[f"object:{n}"][0]))
            assert group is not None
            having = [f for f, _ in pool if any(f"object:{n}" in f for n in nouns)]
            precision = sum(1 for f, a in pool if a >= cut and any(f"object:{n}" in f for n in nouns)) / len(having)
            covered = sum(1 for f in left if any(f"object:{n}" in f for n in nouns))
            options.append((2 * precision * (covered / len(left)) / (precision + covered / len(left)), covered,
                            f"group:{cat}", group))
        if not options:
            break
        options.sort(key=lambda o: (-round(o[0], 6), -o[1], o[2]))
        found = options[0][3]
        if found in out:
            break
        out.append(found)
        key = options[0][2]
        left = [f for f in left if key not in f and not present(found, f) and not (
            found.kind == "category" and f"category:{found.name}" in f)]
    return out


def sweep_conditions(sweep: Observation, items: Sequence[SweepItem], focus: Concept) -> list[Concept]:
    """Companions that switch the response to ``focus`` on: what explains the sweep images that fire far
    above the concept alone (at most :data:`MAX_CONDITIONS`, best first)."""
    acts = _measured(sweep)
    pool = [(prompt_features(prompt), acts[prompt]) for prompt, _ in items if prompt in acts]
    alone = sorted(acts[prompt] for prompt, c in items if c is None and prompt in acts)
    if not pool or not alone:
        return []
    base = alone[len(alone) // 2]  # the median: one context that holds the condition does not hide it
    top = max(a for _, a in pool)
    if top <= 0 or top < 2 * max(base, 0.0) + 1e-9:
        return []  # nothing switches the response on
    cut = base + STRONG * (top - base)
    left = [f for f, a in pool if a >= cut]
    exclude = {focus.key} | {f"object:{m}" for m in focus.members if focus.kind in OBJECT_KINDS}
    if focus.kind == "category":
        exclude.add(f"category:{focus.name}")
    own = [focus.key, *(f"object:{m}" for m in focus.members if focus.kind in OBJECT_KINDS)]
    found = explain(left, pool, cut, exclude, MAX_CONDITIONS, own=own)
    return [c for c in found if c != focus]
