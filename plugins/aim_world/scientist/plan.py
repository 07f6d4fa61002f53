"""The plan: everything derived from the view (hypotheses, evidence, scores), and which experiment comes
next: the fixed phases, then what the critic asks for."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from aim_agent.agent.schema import ScientistView
from aim_world.scientist.concepts import KIND_ORDER, OBJECT_KINDS, Concept
from aim_world.scientist.design import (
    SCREEN_CONTEXTS,
    _cells_experiment,
    companions,
    design_context,
    design_coverage,
    design_edits,
    design_pairs,
    design_replication,
    design_screen,
    design_survey,
)
from aim_world.scientist.evidence import Record, evidence_from
from aim_world.scientist.experiment import Experiment
from aim_world.scientist.hypotheses import Hyp
from aim_world.scientist.parsing import parse_text
from aim_world.scientist.reading import Reading, _focus_first, _is_member, reading_for
from aim_world.scientist.scenes import Palette
from aim_world.scientist.scoring import Scored, _scale, best, score

MAX_CRITIC_ROUNDS = 3  # experiments run on the critic's requests before concluding anyway


@dataclass
class State:
    """Everything derived from the view (recomputed each call: the scientist keeps no state)."""

    reading: Reading
    hyps: list[Hyp]
    records: list[Record]
    scored: list[Scored]
    scale: float
    done: int  # experiments already run (successful or not)
    context: Concept | None = None  # the concept a context search looks for a condition of
    coverage: tuple[Concept, Concept] | None = None  # (leading concept, concept of exemplars it leaves out)

    @property
    def leader(self) -> Scored | None:
        return best(self.scored)


def critic_concepts(view: ScientistView) -> list[Concept]:
    """Concepts named in any critic request, in order (alternatives the critic wants tested)."""
    found: list[Concept] = []
    for report in view.critic:
        for request in report.requests:
            found += parse_text(re.sub(r"\([^)]*\)", " ", request)).concepts()  # drop "(so far: ...)" asides
    return list(dict.fromkeys(found))


def derive(view: ScientistView) -> State:
    """Hypotheses, evidence and scores from the view (the same view always gives the same state)."""
    reading = reading_for(view)
    hyps, focus = base_hypotheses(view, reading)
    coverage = coverage_target(view, reading, hyps)
    if coverage is not None:
        lead, other = coverage
        hyps += [h for h in (Hyp("single", other), Hyp("or", lead, other)) if h not in hyps]
    named = {c for h in hyps for c in h.concepts}
    hyps += [Hyp("single", c) for c in critic_concepts(view) if c not in named]  # alternatives the critic raised
    records = evidence_from(view.observations)
    scale = _scale(records, view.exemplar_activations)
    scored = [score(h, records, scale) for h in hyps]
    return State(reading, hyps, records, scored, scale, len(view.observations), focus, coverage)


def base_hypotheses(view: ScientistView, reading: Reading) -> tuple[list[Hyp], Concept | None]:
    """The exemplars' hypotheses plus, once the context search is due, one conditional per companion."""
    hyps = list(reading.hypotheses)
    focus = context_target(view, reading)
    if focus is not None:
        for c in companions(reading, focus):
            h = Hyp("conditional", *_focus_first(reading, focus, c))
            if h not in hyps:
                hyps.append(h)
    return hyps, focus


def _first_phases(reading: Reading) -> int:
    """Observations before the context search: the survey (if any), the screen, the pairs (if any)."""
    return reading.start + (2 if _pair_hyps(reading) else 1)


def _pair_hyps(reading: Reading) -> list[Hyp]:
    return [h for h in reading.hypotheses if h.kind != "single"]


def next_experiment(view: ScientistView, state: State) -> Experiment | None:
    """The next experiment of the plan, or None when it is time to conclude."""
    phases = _planned_phases(view, state)
    if state.done < len(phases):
        return phases[state.done]()
    critic_rounds = state.done - len(phases)
    if critic_rounds >= MAX_CRITIC_ROUNDS or not view.critic:
        return None
    last = view.critic[-1]
    if last.satisfied or not last.requests:
        return None
    return design_for_requests(view, state, last.requests, offset=20 + 6 * critic_rounds)


def _planned_phases(view: ScientistView, state: State) -> list[Callable[[], Experiment]]:
    """The fixed phases; each is designed only when it is its turn, from the evidence so far."""
    reading = state.reading
    phases: list[Callable[[], Experiment]] = [design_survey] if reading.start else []
    if reading.start and len(view.observations) < reading.start:
        return phases
    phases.append(lambda: design_screen(reading))
    pairs = _pair_hyps(reading)
    if pairs:
        phases.append(lambda: design_pairs(reading, pairs, offset=SCREEN_CONTEXTS))
    if state.done < len(phases):
        return phases
    focus = state.context
    if focus is not None:
        phases.append(lambda: design_context(reading, focus, offset=8))
    coverage = state.coverage
    if coverage is not None:
        phases.append(lambda: design_coverage(reading, *coverage, offset=17))
    phases.append(lambda: design_edits(reading, _edit_target(state), offset=12))
    return phases


def context_target(view: ScientistView, reading: Reading) -> Concept | None:
    """The concept a context search is about, once the screen (and pairs) ran: the best single
    hypothesis on that evidence (the top exemplar concept when none is better than chance).

    The search always runs: exemplars may show only a weak response (a conditional unit
    "leaks" a little without its condition), so what the describer saw is not enough to rule
    out a condition it could not see. Decided on the first experiments only, so the plan
    stays the same whatever later experiments show.
    """
    if not reading.candidates:
        return None
    first = _first_phases(reading)
    if len(view.observations) < first:
        return None
    records = evidence_from(view.observations[:first])
    scale = _scale(records, view.exemplar_activations)
    singles = [score(h, records, scale) for h in reading.hypotheses if h.kind == "single"]
    lead = best([s for s in singles if s.status != "refuted" and s.auc > 0.6])
    return lead.hyp.a if lead is not None else reading.candidates[0]


def coverage_target(view: ScientistView, reading: Reading, hyps: list[Hyp]) -> tuple[Concept, Concept] | None:
    """(leading concept, another concept) when the leading single hypothesis, after the screen, pairs and
    context search, leaves strongly firing exemplars unexplained: the unit may respond to both (OR).

    Decided on those first experiments only, so the plan does not change afterwards.
    """
    done = _first_phases(reading) + (1 if context_target(view, reading) is not None else 0)
    if len(view.observations) < done or not reading.candidates:
        return None
    records = evidence_from(view.observations[:done])
    scale = _scale(records, view.exemplar_activations)
    lead = best([score(h, records, scale) for h in hyps])
    if lead is None or lead.hyp.kind != "single":
        return None
    left_out = uncovered(reading, lead.hyp)
    counts: dict[Concept, float] = {}
    for i in left_out:
        for c in reading.mentions[i]:
            if c != lead.hyp.a and not _is_member(c, lead.hyp.a) and not _is_member(lead.hyp.a, c):
                counts[c] = counts.get(c, 0.0) + reading.weights[i]
    if not counts:
        return None
    other = min(counts, key=lambda c: (-round(counts[c], 6), c.kind not in OBJECT_KINDS, KIND_ORDER[c.kind], c))
    return lead.hyp.a, other


def uncovered(reading: Reading, h: Hyp) -> list[int]:
    """Strongly firing exemplars (at least half the top activation) where ``h`` predicts no response."""
    out = []
    for i, (text, w) in enumerate(zip(reading.texts, reading.weights, strict=True)):
        if w < 0.5:
            continue
        features = parse_text(text).features() | {c.key for c in reading.mentions[i]}
        if not h.fires(frozenset(features)):
            out.append(i)
    return out


def _edit_target(state: State) -> Hyp:
    lead = state.leader
    if lead is not None:
        return lead.hyp
    return Hyp("single", state.reading.candidates[0])


def design_for_requests(view: ScientistView, state: State, requests: list[str], offset: int) -> Experiment:
    """Answer the critic: test concepts it names, run edits when it asks for causal evidence, else replicate."""
    text = " ".join(requests).lower()
    known = {c for h in state.hyps for c in h.concepts if any(c.key in r.features for r in state.records)}
    new = [c for c in critic_concepts(view) if c not in known]
    lead = _edit_target(state)
    asked = "; ".join(requests)
    if new:
        palette = Palette.avoiding([*lead.concepts, *new], state.reading.mentioned)
        cells = [[c] for c in new] + [list(lead.concepts)] + [[]]
        note = f"critic: testing the concepts it named ({', '.join(c.phrase for c in new)}); it asked: {asked}"
        return _cells_experiment("critic", note, cells, range(offset, offset + SCREEN_CONTEXTS), palette)
    if any(w in text for w in ("edit", "causal", "remove", "replace", "intervention", "counterfactual")):
        exp = design_edits(state.reading, lead, offset)
        exp.phase, exp.note = "critic", f"critic asked for causal evidence ({asked}); {exp.note}"
        return exp
    exp = design_replication(state.reading, lead, offset)
    exp.phase, exp.note = "critic", f"critic asked: {asked}; {exp.note}"
    return exp
