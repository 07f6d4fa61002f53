"""The OfflineScientist: proposes the plan's next experiment with its current hypotheses, and concludes with
the best of them (see the package docstring for the strategy)."""

from __future__ import annotations

from aim_agent.agent.schema import Conclusion, Hypothesis, Proposal, ScientistView, experiment_proposal
from aim_agent.scientist import ConceptScientist
from aim_world.scientist.hypotheses import Hyp, condition_phrase, hyp_id
from aim_world.scientist.plan import State, derive, next_experiment
from aim_world.scientist.reading import Reading, _has_signal, reading_for
from aim_world.scientist.scoring import STATUS_RANK, Scored

NON_WORLD_NOTE = (
    "The exemplar descriptions contain no words of the world's vocabulary (objects, colours, "
    "textures, backgrounds), so these are not world images and the rule-based offline scientist "
    "cannot design experiments for them: the core's concept scientist (--backend concepts) takes over, "
    "searching the exemplar dataset by the describer's words. A VLM backend (--backend google_genai, openai, "
    "anthropic, ollama) can do more."
)
SILENT_NOTE = (
    "The unit fired on none of its exemplars nor on any image of a survey of every object and texture the "
    "world can draw: it may be a dead unit, or detect something the world cannot show."
)
NO_EXEMPLARS_NOTE = (
    "No exemplar descriptions were available (the dataset exemplars or the describer failed; see the "
    "run notes), and the unit fired on no image of a survey of every object and texture the world can "
    "draw. Give an exemplar dataset (--dataset), or use a VLM backend (--backend google_genai, openai, ...)."
)


class OfflineScientist:
    """Deterministic rule-based scientist for world units (see the package docstring for the strategy)."""

    name = "offline"
    #: dataset exemplars it reads when the run does not set a number: a rule-based reader of the describer's
    #: words gains from a larger pool (concept frequencies settle), and reading costs it nothing
    exemplars_k = 50

    def propose(self, view: ScientistView) -> Proposal:
        reading = reading_for(view)
        blocked = cannot_start(view, reading)
        if blocked == NON_WORLD_NOTE and view.exemplar_descriptions:
            proposal = ConceptScientist().propose(view)
            proposal.thoughts = f"{NON_WORLD_NOTE}\n{proposal.thoughts}"
            return proposal
        if blocked:
            return Proposal(thoughts=blocked, ready_to_conclude=True)
        state = derive(view)
        thoughts = [_reading_text(reading)]
        if state.records:
            thoughts += _summaries(state.scored, limit=5)
        if view.critic and view.critic[-1].requests:
            thoughts.append("Critic requests: " + "; ".join(view.critic[-1].requests))
        if view.refused is not None:  # its plan proposed an experiment already run: nothing new to run
            thoughts.append(f"The agent refused my proposal: it repeats round {view.refused.repeats}'s.")
        stop = view.must_conclude or view.round >= view.max_rounds or view.refused is not None
        exp = None if stop else next_experiment(view, state)
        if exp is None or not exp.prompts:
            thoughts.append("Planned experiments are done and the critic has no open request: concluding.")
            return Proposal(thoughts="\n".join(thoughts), hypotheses=_hypotheses_out(state), ready_to_conclude=True,
                            lead=_lead(state))
        thoughts.append(f"Next ({exp.phase}): {exp.note}")
        return experiment_proposal(thoughts, _hypotheses_out(state), exp, view.mode, lead=_lead(state))

    def conclude(self, view: ScientistView) -> Conclusion:
        reading = reading_for(view)
        blocked = cannot_start(view, reading)
        if blocked == NON_WORLD_NOTE and view.exemplar_descriptions:
            return ConceptScientist().conclude(view)
        if blocked:
            label = "uninterpreted: needs a VLM backend" if blocked == NON_WORLD_NOTE else "uninterpreted"
            return Conclusion(description=blocked, labels=[label],
                              evidence=[f"{len(view.exemplar_descriptions)} exemplar descriptions, "
                                        f"{len(reading.scores)} world concepts in them"],
                              confidence=0.0, forced=view.must_conclude)
        state = derive(view)
        lead = state.leader
        if lead is None or not state.records:
            c = reading.candidates[0]
            return Conclusion(
                description=f"Untested guess from the exemplars only: {c.phrase} (no experiment ran).",
                labels=[c.phrase], evidence=[_reading_text(reading)], confidence=0.2, forced=view.must_conclude)
        confidence, caveats = calibrated(lead, state, view)
        description = _description(lead, state) + "".join(f" {c}" for c in caveats)
        return Conclusion(description=description, labels=lead.hyp.labels(),
                          evidence=[*_evidence(lead, state, reading), *caveats], confidence=confidence,
                          forced=view.must_conclude)


FORCED_CAP = 0.5  # confidence at most, when a budget or the critic's veto limit forced the conclusion
OPEN_OBJECTION_CAP = 0.6  # ... when the critic's objection to it is still open (escalated, not answered)
FEW_EXEMPLARS = 0.5  # a conclusion explaining less than this share of the exemplars ...
FEW_EXEMPLARS_CAP = 0.3  # ... is capped at this plus FEW_EXEMPLARS_CAP times the share


def calibrated(lead: Scored, state: State, view: ScientistView) -> tuple[float, list[str]]:
    """The conclusion's confidence, and the sentences that say why it is lower than the evidence alone gives.

    The measured confidence (separation, sample size, edit pairs: :func:`.scoring._judge`) is capped when the
    conclusion is weaker than its numbers: forced by a budget or the critic's veto limit (at most
    :data:`FORCED_CAP`), standing over an objection of the critic that is still open in its last report and
    asks for evidence (images, contexts, controls; at most :data:`OPEN_OBJECTION_CAP`), or explaining few of the
    unit's dataset exemplars (less than :data:`FEW_EXEMPLARS` of them, activation-weighted: at most
    ``FEW_EXEMPLARS_CAP + FEW_EXEMPLARS_CAP * share``).
    Each cap that applies is said in words."""
    confidence, caveats = lead.confidence, []
    if view.must_conclude:
        confidence = min(confidence, FORCED_CAP)
        caveats.append(f"Forced: the run had to conclude before its experiments were done (confidence capped at "
                       f"{FORCED_CAP}).")
    named = {c.words.lower() for c in lead.hyp.concepts} | {c.term.lower() for c in lead.hyp.concepts}
    # evidence the critic still finds missing (images, contexts, controls); a thin margin is not counted: the
    # measured confidence already weighs the separation, and an OR's part has a thin margin by its nature
    open_ = [o for report in view.critic[-1:] for o in report.escalated if o.kind != "thin_margin"
             and o.concept and any(part.strip().lower() in named for part in o.concept.split(" & "))]
    if open_:
        confidence = min(confidence, OPEN_OBJECTION_CAP)
        caveats.append(f"The critic's objection ({open_[-1].text[:160]}) is still open (confidence capped at "
                       f"{OPEN_OBJECTION_CAP}).")
    share = state.coverage.get(hyp_id(lead.hyp))
    if share is not None and state.reading.texts and share < FEW_EXEMPLARS:
        cap = round(FEW_EXEMPLARS_CAP + FEW_EXEMPLARS_CAP * share, 2)
        confidence = min(confidence, cap)
        caveats.append(f"It explains only {share:.0%} of the dataset exemplars (activation-weighted; confidence "
                       f"capped at {cap}).")
    return round(confidence, 2), caveats


def cannot_start(view: ScientistView, reading: Reading) -> str | None:
    """Why there is nothing to experiment on (non-world images; a unit silent even on the survey), or None."""
    if _has_signal(reading):
        return None
    if reading.start and not view.observations:
        return None  # the survey comes first
    if reading.start:
        return SILENT_NOTE if view.exemplar_descriptions else NO_EXEMPLARS_NOTE
    return NON_WORLD_NOTE


def _lead(state: State) -> str | None:
    """The id of the hypothesis :meth:`OfflineScientist.conclude` would conclude with now (the critic judges it)."""
    return hyp_id(state.leader.hyp) if state.leader is not None and state.records else None


def _hypotheses_out(state: State) -> list[Hypothesis]:
    out = []
    for s in state.scored:
        h = s.hyp
        out.append(Hypothesis(
            id=hyp_id(h),
            statement=h.statement(),
            # plain prompt words, so any reader of prompts (the critic) can count the images that show them
            concepts=[h.a.words] if h.kind == "conditional" else [c.words for c in h.concepts],
            kind=h.kind,
            condition=h.b.words if h.kind == "conditional" and h.b else None,
            status=s.status,
            confidence=s.confidence if s.n_pos >= 2 and s.n_neg >= 2 else _prior(state.reading, h),
        ))
    return out


def _prior(reading: Reading, h: Hyp) -> float:
    return round(0.2 + 0.5 * min(reading.scores.get(c, 0.0) for c in h.concepts), 2)


def _summary(s: Scored) -> str:
    text = (f"{s.hyp.short()}: {s.status} (AUC {s.auc:.2f} on this run's generated images; mean {s.mean_pos:.3g} "
            f"where it predicts firing, n={s.n_pos}, vs {s.mean_neg:.3g}, n={s.n_neg}")
    if s.contexts_total:
        text += f"; holds on {s.contexts_agree}/{s.contexts_total} backgrounds"
    if s.edits_total:
        text += f"; {s.edits_agree}/{s.edits_total} edit pairs agree"
    if s.flaw:
        text += f"; but {s.flaw}"
    return text + ")"


def _ranked(scored: list[Scored]) -> list[Scored]:
    """Supported, then open, then refuted; within each the best separation first."""
    return sorted(scored, key=lambda s: (STATUS_RANK[s.status], -round(s.auc, 3), s.hyp.complexity, hyp_id(s.hyp)))


def _summaries(scored: list[Scored], limit: int, prefix: str = "") -> list[str]:
    """One line per tested hypothesis (the most telling first), the rest counted."""
    tested = [s for s in _ranked(scored) if s.n_pos and s.n_neg]
    lines = [prefix + _summary(s) for s in tested[:limit]]
    rest = tested[limit:]
    if rest:
        counts = {st: sum(1 for s in rest if s.status == st) for st in ("supported", "open", "refuted")}
        what = ", ".join(f"{n} {st}" for st, n in counts.items() if n)
        names = "; ".join(s.hyp.short() for s in rest[:3]) + ("; ..." if len(rest) > 3 else "")
        lines.append(f"{len(rest)} more hypotheses ({what}), e.g. {names}")
    return lines


def _reading_text(reading: Reading) -> str:
    top = sorted(reading.scores, key=lambda c: (-reading.scores[c], c))[:6]
    return "Exemplar concepts (activation-weighted share): " + ", ".join(
        f"{c.phrase} {reading.scores[c]:.2f}" for c in top)


def _description(s: Scored, state: State) -> str:
    h = s.hyp
    if h.kind == "single":
        core = f"Selective for {h.a.phrase}"
    elif h.kind == "or":
        assert h.b is not None
        core = f"Polysemantic: {h.a.phrase} OR {h.b.phrase}"
    else:
        assert h.b is not None
        core = f"Selective for {h.a.phrase}, {condition_phrase(h.a, h.b)}"
    numbers = (f"on the {s.n_pos + s.n_neg} images this run generated (not the dataset), mean activation "
               f"{s.mean_pos:.3g} on the {s.n_pos} where this predicts firing vs {s.mean_neg:.3g} on the {s.n_neg} "
               f"where it does not (AUC {s.auc:.2f})")
    if s.status == "supported":
        return f"{core}: {numbers}."
    if s.status == "open":
        return f"Tentatively: {core.lower()} ({numbers}); the evidence is not conclusive."
    return (f"No tested hypothesis holds; the least bad is: {core.lower()} ({numbers}). "
            "The unit may respond to something the world vocabulary cannot express.")


def _evidence(lead: Scored, state: State, reading: Reading) -> list[str]:
    lines = [_reading_text(reading), f"Leading: {_summary(lead)}"]
    lines += _summaries([s for s in state.scored if s is not lead], limit=3, prefix="Alternative ")
    lines.append(f"{len(state.records)} generated images over {state.done} experiments; every AUC above is "
                 "measured on them, not on the dataset")
    found = state.plan.findings
    if found.group is not None:
        lines.append(f"Survey: the unit's measured set of objects is {found.group.phrase}")
    if state.plan.conditions and state.plan.context is not None:
        lines.append(f"Context sweep: {', '.join(c.phrase for c in state.plan.conditions)} switched the response "
                     f"to {state.plan.context.phrase} on")
    return lines
