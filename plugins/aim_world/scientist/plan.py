"""The plan: everything derived from the view (hypotheses, evidence, scores), and which experiment comes
next: the fixed phases, then what the critic asks for.

Phases, in order (each designed only from the observations before it, so the plan never changes once
a phase has run, and a resumed run continues exactly where it stopped):

1. ``survey`` first, only when the exemplars show nothing to start from;
2. ``screen``: the exemplars' candidate concepts alone, across contexts, with controls;
3. ``pairs``: 2x2 designs for the exemplars' OR and conditional candidates (when there are any);
4. ``survey`` (unless it ran first): the whole vocabulary, one concept per image;
5. ``coverage``: the partners the survey or the exemplars suggest, each alone (when there are any);
6. ``context``: the leading concept next to every companion the world offers;
7. ``confirm``: 2x2 designs for the companions that switched the response on (when there are any);
8. ``edits``: causal pairs for the leading hypothesis.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from aim_agent.agent.schema import Observation, ScientistView
from aim_world.scientist.concepts import KIND_ORDER, OBJECT_KINDS, Concept
from aim_world.scientist.design import (
    SCREEN_CONTEXTS,
    cells_experiment,
    design_context,
    design_coverage,
    design_edits,
    design_pairs,
    design_patterns,
    design_replication,
    design_screen,
    design_survey,
    sweep_items,
)
from aim_world.scientist.evidence import Record, evidence_from
from aim_world.scientist.experiment import Experiment
from aim_world.scientist.hypotheses import Hyp, hyp_id, present
from aim_world.scientist.parsing import prompt_features, text_concepts
from aim_world.scientist.reading import Reading, is_member, reading_for
from aim_world.scientist.scenes import Palette
from aim_world.scientist.scoring import Scored, best, response_scale, score
from aim_world.scientist.search import SurveyFindings, survey_findings, sweep_conditions

MAX_CRITIC_ROUNDS = 3  # experiments run on the critic's requests before concluding anyway
MAX_EXEMPLAR_PARTNERS = 2  # concepts of exemplars the lead leaves out, tested as partners
MAX_TESTED_PARTNERS = 4  # partners tested in the coverage phase (survey's first, then exemplars')
WEAK_AUC = 0.8  # separation of a concept whose response is weak, before it can lead the context sweep
# Where each phase's scenes start (the context index ``realize`` draws a scene from), so that no two phases show
# the same scenes and a phase's images are new evidence: the screen takes 0-4 and the pairs 5-7
#: the edits' originals (12 onwards: after the screen and the pairs)
EDITS_AT = 12
#: the coverage phase's contexts (17 onwards: after the edits' originals and their additions)
COVERAGE_AT = 17
#: the context sweep's scenes (30 onwards: after the coverage phase's)
CONTEXT_SWEEP_AT = 30
#: the confirming 2x2 designs (45 onwards: after the context sweep's)
CONFIRM_AT = 45
#: the first experiment on the critic's requests (60 onwards, after every phase) and how far each later one moves
#: on (a replication draws 6 contexts)
CRITIC_AT, CRITIC_STEP = 60, 6


@dataclass
class Step:
    phase: str
    make: Callable[[], Experiment]


@dataclass
class Plan:
    """The phases designed so far, and what each search found (see the module docstring)."""

    steps: list[Step] = field(default_factory=list)
    lead: Concept | None = None  # the leading concept after the survey
    findings: SurveyFindings = field(default_factory=SurveyFindings)
    partners: list[Concept] = field(default_factory=list)  # from the survey and the exemplars
    context: Concept | None = None  # the concept the context sweep is about
    conditions: list[Concept] = field(default_factory=list)  # companions that switched it on

    def hypotheses(self) -> list[Hyp]:
        """What the searches add to the exemplars' hypotheses."""
        out: list[Hyp] = []
        if self.findings.group is not None:
            out.append(Hyp("single", self.findings.group))
        base = self.findings.group or self.lead
        for p in self.partners:
            out.append(Hyp("single", p))
            for a in dict.fromkeys(c for c in (self.lead, base) if c is not None):
                if a != p and not is_member(a, p) and not is_member(p, a):
                    out.append(Hyp("or", a, p))
        if self.context is not None:
            out += [Hyp("conditional", self.context, c) for c in self.conditions]
        return list(dict.fromkeys(out))


@dataclass
class State:
    """Everything derived from the view (recomputed each call: the scientist keeps no state)."""

    reading: Reading
    hyps: list[Hyp]
    records: list[Record]
    scored: list[Scored]
    scale: float
    done: int  # experiments already run (successful or not)
    plan: Plan

    coverage: dict[str, float] = field(default_factory=dict)  # hypothesis id -> share of exemplars it explains

    @property
    def leader(self) -> Scored | None:
        return best(self.scored, self.records, self.coverage)


class Measured(NamedTuple):
    """Hypotheses scored on the evidence of some observations."""

    records: list[Record]
    """what each measured image showed, and its activation"""
    scale: float
    """the largest activation seen (records and exemplars)"""
    scored: list[Scored]
    """one score per hypothesis, in order"""


def measure(observations: Sequence[Observation], exemplar_activations: Sequence[float], hyps: list[Hyp]) -> Measured:
    """Score ``hyps`` on the evidence of ``observations`` (effects relative to the largest activation seen)."""
    records = evidence_from(list(observations))
    scale = response_scale(records, exemplar_activations)
    return Measured(records, scale, [score(h, records, scale) for h in hyps])


def edit_target(lead: Scored | None, reading: Reading) -> Hyp:
    """What causal edits test: the leading hypothesis, else the exemplars' first candidate alone."""
    return lead.hyp if lead is not None else Hyp("single", reading.candidates[0])


def critic_concepts(view: ScientistView, last_only: bool = False) -> list[Concept]:
    """Concepts the critic's objections are about, in order (alternatives the critic wants tested): their
    machine-readable concept where the report has one, else the words of its requests."""
    found: list[Concept] = []
    for report in view.critic[-1:] if last_only else view.critic:
        structured = [o.concept for o in [*report.objections, *report.escalated] if o.concept]
        if structured or report.objections or report.escalated:
            texts = structured
        else:
            texts = [re.sub(r"\([^)]*\)", " ", r) for r in report.requests]  # drop "(so far: ...)" asides
        for text in texts:
            found += text_concepts(text)
    return list(dict.fromkeys(found))


def _pair_hyps(reading: Reading) -> list[Hyp]:
    return [h for h in reading.hypotheses if h.kind != "single"]


def _leading_concept(view: ScientistView, reading: Reading, hyps: list[Hyp], upto: int) -> Concept | None:
    """The best single hypothesis on the first ``upto`` observations; when every one was refuted, the one that
    separates best although weakly (a conditional unit's concept alone leaks only a little: what it needs is
    for the context sweep to find); the top exemplar concept when none is better than chance."""
    singles = [h for h in hyps if h.kind == "single"]
    records, _, scored = measure(view.observations[:upto], view.exemplar_activations, singles)
    lead = best([s for s in scored if s.status != "refuted" and s.auc > 0.6], records, coverage_of(reading, singles))
    if lead is not None:
        return lead.hyp.a
    weak = [s for s in scored if s.auc >= WEAK_AUC and s.effect > 0 and s.n_pos >= 2]
    if weak:
        return max(weak, key=lambda s: (round(s.auc, 3), -s.hyp.complexity, s.effect)).hyp.a
    return reading.candidates[0] if reading.candidates else None


def build_plan(view: ScientistView, reading: Reading) -> Plan:
    """The phases as far as the observations so far allow designing them (see the module docstring)."""
    obs = view.observations
    plan = Plan()

    def add(phase: str, make: Callable[[], Experiment]) -> None:
        plan.steps.append(Step(phase, make))

    def ran() -> bool:  # every phase designed so far has run: the next one can be designed
        return len(obs) >= len(plan.steps)

    survey_at = None
    if reading.start:
        survey_at = 0
        add("survey", design_survey)
        if not ran():
            return plan
    if not reading.candidates:
        return plan
    add("screen", lambda: design_screen(reading))
    if any(c.kind in ("texture", "pattern") for c in reading.candidates):
        add("patterns", lambda: design_patterns(reading, offset=SCREEN_CONTEXTS))
    pairs = _pair_hyps(reading)
    if pairs:
        add("pairs", lambda: design_pairs(reading, pairs, offset=SCREEN_CONTEXTS))
    if survey_at is None:
        survey_at = len(plan.steps)
        add("survey", design_survey)
    if not ran():
        return plan

    # the survey: the lead's measured group, and partners for what it leaves out
    plan.lead = _leading_concept(view, reading, reading.hypotheses, len(plan.steps))
    plan.findings = survey_findings(obs[survey_at], plan.lead)
    plan.partners = list(plan.findings.partners)
    if plan.lead is not None:
        plan.partners += [c for c in exemplar_partners(reading, plan.lead) if c not in plan.partners]
    plan.partners = [p for p in plan.partners if p != plan.lead][:MAX_TESTED_PARTNERS]
    if plan.partners and plan.lead is not None:
        lead, partners = plan.lead, list(plan.partners)
        add("coverage", lambda: design_coverage(reading, lead, partners, offset=COVERAGE_AT))
        if not ran():
            return plan

    # the context sweep: what the exemplars' leading concept (or its measured group) needs
    hyps = [*reading.hypotheses, *([Hyp("single", plan.findings.group)] if plan.findings.group else [])]
    plan.context = _leading_concept(view, reading, hyps, len(plan.steps))
    if plan.context is not None:
        context, at = plan.context, len(plan.steps)
        add("context", lambda: design_context(reading, context, offset=CONTEXT_SWEEP_AT))
        if not ran():
            return plan
        plan.conditions = sweep_conditions(obs[at], sweep_items(reading, context, CONTEXT_SWEEP_AT), context)
        if plan.conditions:
            confirm = [Hyp("conditional", context, c) for c in plan.conditions]
            add("confirm", lambda: design_pairs(reading, confirm, offset=CONFIRM_AT))
            if not ran():
                return plan

    # causal edits for whatever leads now
    hyps = [*reading.hypotheses, *plan.hypotheses()]
    records, _, scored = measure(obs[: len(plan.steps)], view.exemplar_activations, hyps)
    target = edit_target(best(scored, records, coverage_of(reading, hyps)), reading)
    add("edits", lambda: design_edits(reading, target, offset=EDITS_AT))
    return plan


def exemplar_partners(reading: Reading, lead: Concept) -> list[Concept]:
    """Concepts of strongly firing exemplars that ``lead`` leaves unexplained, most frequent first."""
    left_out = uncovered(reading, Hyp("single", lead))
    counts: dict[Concept, float] = {}
    for i in left_out:
        for c in reading.mentions[i]:
            if c != lead and not is_member(c, lead) and not is_member(lead, c):
                counts[c] = counts.get(c, 0.0) + reading.weights[i]
    ranked = sorted(counts, key=lambda c: (-round(counts[c], 6), c.kind not in OBJECT_KINDS, KIND_ORDER[c.kind], c))
    return ranked[:MAX_EXEMPLAR_PARTNERS]


def _exemplar_features(reading: Reading) -> list[frozenset[str]]:
    return [prompt_features(text) | {c.key for c in ms}
            for text, ms in zip(reading.texts, reading.mentions, strict=True)]


def coverage_of(reading: Reading, hyps: list[Hyp]) -> dict[str, float]:
    """Hypothesis id -> the activation-weighted share of the exemplars it explains (a conditional: its focus,
    since the describer sees the highlighted region, where the condition need not be)."""
    feats = _exemplar_features(reading)
    total = sum(w for w in reading.weights if w > 0)
    out: dict[str, float] = {}
    for h in hyps:
        probe = Hyp("single", h.a) if h.kind == "conditional" else h
        covered = sum(w for f, w in zip(feats, reading.weights, strict=True) if w > 0 and probe.fires(f))
        out[hyp_id(h)] = covered / total if total else 0.0
    return out


def uncovered(reading: Reading, h: Hyp) -> list[int]:
    """Strongly firing exemplars (at least half the top activation) where ``h`` predicts no response."""
    out = []
    for i, (text, w) in enumerate(zip(reading.texts, reading.weights, strict=True)):
        if w < 0.5:
            continue
        features = prompt_features(text) | {c.key for c in reading.mentions[i]}
        if not h.fires(features):
            out.append(i)
    return out


def derive(view: ScientistView) -> State:
    """Hypotheses, evidence and scores from the view (the same view always gives the same state)."""
    reading = reading_for(view)
    plan = build_plan(view, reading)
    hyps = list(dict.fromkeys([*reading.hypotheses, *plan.hypotheses()]))
    named = {c for h in hyps for c in h.concepts}
    hyps += [Hyp("single", c) for c in critic_concepts(view) if c not in named]  # alternatives the critic raised
    records, scale, scored = measure(view.observations, view.exemplar_activations, hyps)
    return State(reading, hyps, records, scored, scale, len(view.observations), plan, coverage_of(reading, hyps))


def next_experiment(view: ScientistView, state: State) -> Experiment | None:
    """The next experiment of the plan, or None when it is time to conclude."""
    steps = state.plan.steps
    if state.done < len(steps):
        return steps[state.done].make()
    critic_rounds = state.done - len(steps)
    if critic_rounds >= MAX_CRITIC_ROUNDS or not view.critic:
        return None
    last = view.critic[-1]
    if last.satisfied or not last.requests:
        return None
    return design_for_requests(view, state, last.requests, offset=CRITIC_AT + CRITIC_STEP * critic_rounds)


def _edit_target(state: State) -> Hyp:
    return edit_target(state.leader, state.reading)


def design_for_requests(view: ScientistView, state: State, requests: list[str], offset: int) -> Experiment | None:
    """Answer the critic: test concepts it names, run edits when it asks for causal evidence, else replicate.

    None when nothing this scientist can run would answer it: every objection is a thin margin (it asks for a
    more specific or a different concept) and each concept it names, or each narrower one a group lists, has
    been measured already: replicating them would only repeat the measurement.
    """
    text = " ".join(requests).lower()
    def images_of(c: Concept) -> int:
        return sum(present(c, r.features) for r in state.records)

    objections = view.critic[-1].objections if view.critic else []
    if objections:  # the last report's objections, by their machine-readable concepts
        new = [c for c in critic_concepts(view, last_only=True) if images_of(c) < 3]
        if not new and all(o.kind == "thin_margin" for o in objections):
            return None
    else:
        new = [c for c in critic_concepts(view) if images_of(c) < 3]  # named by the critic and barely tested yet
    lead = _edit_target(state)
    asked = "; ".join(requests)
    if new:
        palette = Palette.avoiding([*lead.concepts, *new], state.reading.mentioned)
        cells = [[c] for c in new] + [list(lead.concepts)] + [[]]
        note = f"critic: testing the concepts it named ({', '.join(c.phrase for c in new)}); it asked: {asked}"
        return cells_experiment("critic", note, cells, range(offset, offset + SCREEN_CONTEXTS), palette)
    if any(w in text for w in ("edit", "causal", "remove", "replace", "intervention", "counterfactual")):
        exp = design_edits(state.reading, lead, offset)
        exp.phase, exp.note = "critic", f"critic asked for causal evidence ({asked}); {exp.note}"
        return exp
    exp = design_replication(state.reading, lead, offset)
    exp.phase, exp.note = "critic", f"critic asked: {asked}; {exp.note}"
    return exp
