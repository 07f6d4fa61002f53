"""The critic: deterministic checks of the evidence behind the leading hypothesis.

Agents (people too) stop early: a unit that fired on three dog pictures "is a dog detector".
The critic reads every measurement of the run (each image the unit was run on, with the prompt
behind it) and, for each concept of the leading hypothesis, counts

- distinct images that show the concept,
- distinct contexts (backgrounds, scenes) those images come from,
- control images where the concept is absent (other objects, edits that remove or replace it),

and compares activations with and without the concept (mean ratio, Cohen's d). A concept counts as shown
when the prompt names it, one of the alternatives it lists ("bird, eagle or owl"), or, with a concept
vocabulary (:mod:`aim_agent.vocabulary`), a narrower word it covers (a frog for "animals"). When the evidence
is thin it says exactly what to run next ("test 'dog' on 2 more backgrounds"). The rules are
plain code, so the same log always gets the same verdict; a VLM may add a comment on top.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aim_agent.agent.schema import (
    CriticReport,
    Hypothesis,
    Objection,
    ObjectionKind,
    SuggestedAction,
    SuggestedExperiment,
)
from aim_agent.agent.state import Measurement
from aim_agent.providers import EditChange
from aim_agent.vocabulary import Vocabularies

_PREPOSITIONS = r"(?:on|in|at|near|under|beside|by|against|inside|over|behind|above|below|next to|in front of|among)"
_ARTICLES = {"a", "an", "the", "some", "of", "and", "with", "its", "their"}
COLORS = {
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "gray", "grey",
    "cyan", "magenta", "violet", "gold", "silver", "beige", "teal", "navy",
}


@dataclass(frozen=True)
class CriticRules:
    """Thresholds of the evidence checks."""

    min_images: int = 5
    min_contexts: int = 3
    min_controls: int = 3
    min_ratio: float = 1.5
    min_effect: float = 0.8


def _stem(word: str) -> str:
    """A crude singular: dogs -> dog, boxes -> box, berries -> berry; grass, bus, glass stay."""
    word = word.lower()
    if len(word) <= 3 or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses", "zes")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def mentions(text: str, concept: str) -> bool:
    """Whether ``text`` names ``concept`` (whole words, plural-insensitive; multi-word concepts in order)."""
    target = [_stem(w) for w in _words(concept) if w not in _ARTICLES]
    if not target:
        return False
    words = [_stem(w) for w in _words(text)]
    n = len(target)
    return any(words[i : i + n] == target for i in range(len(words) - n + 1))


def mentions_any(text: str, words: Sequence[str]) -> bool:
    """Whether ``text`` names any of ``words`` (see :func:`mentions`)."""
    return any(mentions(text, w) for w in words)


def concept_words(concept: str, vocabulary: Vocabularies | None = None) -> list[str]:
    """The words that show ``concept`` in a prompt: the alternatives it lists and, with a vocabulary, every
    narrower word each of them covers ("animals" -> dog, frog, ...)."""
    vocabulary = vocabulary or Vocabularies()
    return vocabulary.words_for(concept)


def _foreground(prompt: str) -> str:
    return re.split(rf"\b{_PREPOSITIONS}\b", prompt.lower(), maxsplit=1)[0]


def concept_present(prompt: str, concept: str, edits: Sequence[EditChange | None] = (),
                    vocabulary: Vocabularies | None = None) -> bool | None:
    """Whether an image shows ``concept``: from its generating prompt, then each edit's reported change.

    The concept is shown when the text names any of :func:`concept_words` (with ``vocabulary``, an
    image of a frog shows "animals"). None when that cannot be known: no prompt, or an edit whose
    editor did not say what it changed.
    """
    if not prompt.strip():
        return None
    words = concept_words(concept, vocabulary)
    present = mentions_any(prompt, words)
    is_color = all(w in COLORS for w in _words(concept))
    for change in edits:
        if change is None:
            return None
        if any(mentions_any(name, words) for name in change.removed):
            present = False
        if any(mentions_any(name, words) for name in change.added):
            present = True
        if change.background is not None:
            present = mentions_any(change.background, words) or (
                present and mentions_any(_foreground(prompt), words))
        if is_color and change.changed:
            color = change.attributes.get("color", "")
            present = mentions_any(color, words) or (present and not mentions_any(_foreground(prompt), words))
    return present


def context_of(prompt: str, concepts: Sequence[str], edits: Sequence[EditChange | None] = ()) -> str:
    """The scene around the concept: the background phrase of the prompt, or the one an edit set (for a
    concept that is the background itself, the objects in front of it); normalised."""
    parts = re.split(rf"\b{_PREPOSITIONS}\b", prompt.lower(), maxsplit=1)
    if len(parts) == 2 and any(mentions(parts[1], c) for c in concepts):
        context = parts[0]  # the concept is the background ("a cup in a forest"): the objects are its context
    elif len(parts) == 2:
        context = parts[1]
    else:
        context = prompt.lower()
        for concept in concepts:
            for word in _words(concept):
                context = re.sub(rf"\b{re.escape(word)}\w*\b", " ", context)
    for change in edits:
        if change is not None and change.background is not None:
            context = change.background
    words = [_stem(w) for w in _words(context) if w not in _ARTICLES]
    return " ".join(words) or "plain"


def leading_hypothesis(hypotheses: Sequence[Hypothesis], lead: str | None = None) -> Hypothesis | None:
    """The hypothesis the scientist leads with (``lead``, its id) when it is live; else the open or supported
    hypothesis with the highest confidence (first one on ties)."""
    live = _by_lead(hypotheses, lead)
    return live[0] if live else None


def _by_lead(hypotheses: Sequence[Hypothesis], lead: str | None) -> list[Hypothesis]:
    """The live (not refuted) hypotheses, the scientist's lead first, then by confidence (stable on ties)."""
    live = sorted((h for h in hypotheses if h.status != "refuted"), key=lambda h: -h.confidence)
    return sorted(live, key=lambda h: h.id != lead) if lead else live


def _groups(h: Hypothesis) -> list[list[str]]:
    """The concept sets to check: one per concept for single/or, all together for and/conditional."""
    concepts = [c for c in h.concepts if c.strip()]
    if h.kind in ("and", "conditional"):
        group = concepts + ([h.condition] if h.kind == "conditional" and h.condition else [])
        return [group] if group else []
    return [[c] for c in concepts]


def _present(m: Measurement, group: Sequence[str], vocabulary: Vocabularies | None = None) -> bool | None:
    flags = [concept_present(m.source_prompt, c, m.edits, vocabulary) for c in group]
    if any(f is None for f in flags):
        return None
    return all(flags)


def effect_size(with_: Sequence[float], without: Sequence[float]) -> float | None:
    """Cohen's d with a pooled standard deviation; None with fewer than 2 values on a side."""
    if len(with_) < 2 or len(without) < 2:
        return None
    diff = statistics.fmean(with_) - statistics.fmean(without)
    n1, n2 = len(with_), len(without)
    pooled = ((n1 - 1) * statistics.variance(with_) + (n2 - 1) * statistics.variance(without)) / (n1 + n2 - 2)
    sd = math.sqrt(pooled)
    if sd < 1e-9:
        return 0.0 if abs(diff) < 1e-9 else math.copysign(99.0, diff)
    return max(-99.0, min(99.0, diff / sd))


def _ratio(mean_with: float, mean_without: float) -> float | None:
    if mean_without > 1e-9:
        return mean_with / mean_without
    if mean_with > 1e-9:
        return math.inf
    return None


def _fmt(x: float | None) -> str:
    if x is None:
        return "n/a"
    if math.isinf(x):
        return "inf"
    return f"{x:.3g}"


def evidence_for(group: Sequence[str], measurements: Sequence[Measurement],
                 vocabulary: Vocabularies | None = None) -> dict[str, Any]:
    """The counts and statistics for one concept set over all measurements (one per image id)."""
    latest: dict[str, Measurement] = {}
    for m in measurements:
        if m.source_prompt:
            latest[m.image_id] = m
    with_, without, contexts = [], [], []
    for m in latest.values():
        present = _present(m, group, vocabulary)
        if present is None:
            continue
        if present:
            with_.append(m.activation)
            contexts.append(context_of(m.source_prompt, group, m.edits))
        else:
            without.append(m.activation)
    mean_with = statistics.fmean(with_) if with_ else None
    mean_without = statistics.fmean(without) if without else None
    ratio = _ratio(mean_with, mean_without) if mean_with is not None and mean_without is not None else None
    distinct_contexts = sorted(set(contexts))
    return {
        "concept": " & ".join(group),
        "images": len(with_),
        "contexts": len(distinct_contexts),
        "context_list": distinct_contexts[:12],
        "controls": len(without),
        "mean_with": mean_with,
        "mean_without": mean_without,
        "ratio": None if ratio is None or math.isinf(ratio) else round(ratio, 4),
        "ratio_infinite": ratio is not None and math.isinf(ratio),
        "effect_size": effect_size(with_, without),
    }


def objections_for(ev: dict[str, Any], rules: CriticRules, hypothesis: str | None = None) -> list[Objection]:
    """What the critic holds against one concept set's evidence, each with the experiment that would answer it."""
    concept = ev["concept"]
    out = []

    def add(kind: ObjectionKind, text: str, action: SuggestedAction, count: int, basis: int) -> None:
        out.append(Objection(kind=kind, text=text, concept=concept, hypothesis=hypothesis, basis=basis,
                             experiment=SuggestedExperiment(action=action, concept=concept, count=max(0, count))))

    if ev["images"] < rules.min_images:
        add("more_images", f"test '{concept}' on {rules.min_images - ev['images']} more distinct images "
            f"(so far {ev['images']} image(s) show it)", "more_images", rules.min_images - ev["images"], ev["images"])
    if ev["contexts"] < rules.min_contexts:
        seen = ", ".join(ev["context_list"]) or "none"
        add("more_contexts", f"test '{concept}' on {rules.min_contexts - ev['contexts']} more backgrounds/contexts "
            f"(so far: {seen})", "more_contexts", rules.min_contexts - ev["contexts"], ev["contexts"])
    if ev["controls"] < rules.min_controls:
        add("controls", f"run a control without '{concept}': {rules.min_controls - ev['controls']} more image(s) of "
            f"similar scenes where '{concept}' is absent (e.g. edit_images that replace or remove it)",
            "controls_without", rules.min_controls - ev["controls"], ev["controls"])
    enough = ev["images"] >= 2 and ev["controls"] >= 2
    if enough:
        ratio_ok = ev["ratio_infinite"] or (ev["ratio"] is not None and ev["ratio"] >= rules.min_ratio)
        d = ev["effect_size"]
        if ev["mean_without"] is not None and ev["mean_without"] <= 0 < (ev["mean_with"] or 0):
            ratio_ok = True  # controls at or below zero: any positive response is a clear margin
        if not ratio_ok or d is None or d < rules.min_effect:
            # only new images of the concept can move a margin measured over many controls: they are its basis
            add("thin_margin",
                f"the margin for '{concept}' is thin: mean activation {_fmt(ev['mean_with'])} with it vs "
                f"{_fmt(ev['mean_without'])} without (ratio {'inf' if ev['ratio_infinite'] else _fmt(ev['ratio'])}, "
                f"effect size {_fmt(d)}; want ratio >= {rules.min_ratio} and effect size >= {rules.min_effect}); "
                "test a more specific or a different concept", "more_specific", 0, ev["images"])
    return out


def critique(
    round: int,
    hypotheses: Sequence[Hypothesis],
    measurements: Sequence[Measurement],
    rules: CriticRules | None = None,
    vocabulary: Vocabularies | None = None,
    *,
    dropped: Mapping[str, Sequence[Objection]] | None = None,
    earlier: Sequence[CriticReport] = (),
    lead: str | None = None,
) -> CriticReport:
    """The verdict on the leading hypothesis: satisfied, or concrete requests for more evidence.

    ``vocabulary`` (the installed concept vocabularies) lets a category or a listed group count its
    members: an image of a frog is evidence for "animals". ``dropped`` maps a hypothesis id to the escalated
    objections it was dropped for: it is not judged while one of them still stands on the same evidence (new
    evidence brings it back). An objection that one of the ``earlier`` reports already raised on the same
    evidence (same kind, concept and basis) is escalated: open, but no longer requested (:class:`CriticReport`).
    """
    rules = rules or CriticRules()
    dropped = dropped or {}
    # the hypothesis the scientist would conclude with (``lead``) first, so the critic judges what the run will
    # say; then the others by confidence (as :func:`leading_hypothesis`)
    live = _by_lead(hypotheses, lead)
    judged: Hypothesis | None = None
    objections: list[Objection] = []
    evidence: list[dict[str, Any]] = []
    for h in live:
        groups = _groups(h)
        evidence = [evidence_for(g, measurements, vocabulary) for g in groups]
        objections = [o for ev in evidence for o in objections_for(ev, rules, h.id)]
        if not groups:
            objections = [Objection(kind="no_concepts", hypothesis=h.id,
                                    text=f"name the concept(s) of hypothesis {h.id} ('{h.statement}') so they can be "
                                         "tested", experiment=SuggestedExperiment(action="name_concepts"))]
        if not any(same(o, d) for o in objections for d in dropped.get(h.id, ())):
            judged = h
            break
    if judged is None:
        text = ("every hypothesis was dropped after objections that came back with no new evidence: state a new "
                "hypothesis, test a dropped one anew, or conclude" if live else
                "state at least one hypothesis, with the concept(s) it names, before concluding")
        return _report(round, [Objection(kind="no_hypothesis", text=text, experiment=SuggestedExperiment(
            action="state_hypothesis"))], earlier, {"leading": None})
    if not _groups(judged):
        return _report(round, objections, earlier, {"leading": judged.id})
    return _report(round, objections, earlier, {"leading": judged.id, "statement": judged.statement,
                                                "evidence": evidence, "rules": rules.__dict__.copy()})


def same(a: Objection, b: Objection) -> bool:
    """The same objection on the same evidence (kind, concept, hypothesis and basis)."""
    return a.key == b.key and a.hypothesis == b.hypothesis and a.basis == b.basis


def still_standing(objection: Objection, measurements: Sequence[Measurement], rules: CriticRules | None = None,
                   vocabulary: Vocabularies | None = None) -> bool:
    """Whether ``objection`` would be raised again on ``measurements``, on the same evidence."""
    if not objection.concept:
        return True
    ev = evidence_for(objection.concept.split(" & "), measurements, vocabulary)
    return any(same(o, objection) for o in objections_for(ev, rules or CriticRules(), objection.hypothesis))


def repeated_from(objection: Objection, earlier: Sequence[CriticReport]) -> int | None:
    """The round of the first earlier report that raised ``objection`` on the same evidence, or None."""
    for report in earlier:
        for o in [*report.objections, *report.escalated]:
            if same(o, objection):
                return report.round
    return None


def _report(round: int, objections: list[Objection], earlier: Sequence[CriticReport],
            checks: dict[str, Any]) -> CriticReport:
    asked, escalated = [], []
    for o in objections:
        first = repeated_from(o, earlier)
        if first is None:
            asked.append(o)
        else:
            escalated.append(o.model_copy(update={"repeated_from": first}))
    return CriticReport(round=round, satisfied=not objections, requests=[o.text for o in asked], objections=asked,
                        escalated=escalated, checks=checks)


def evidence_lines(report: CriticReport) -> list[str]:
    """One readable line per checked concept (for conclusions and reports)."""
    lines = []
    for ev in report.checks.get("evidence", []):
        ratio = "inf" if ev.get("ratio_infinite") else _fmt(ev.get("ratio"))
        lines.append(
            f"'{ev['concept']}': {ev['images']} images in {ev['contexts']} contexts, {ev['controls']} controls; "
            f"mean {_fmt(ev['mean_with'])} with vs {_fmt(ev['mean_without'])} without "
            f"(ratio {ratio}, effect size {_fmt(ev['effect_size'])})"
        )
    return lines
