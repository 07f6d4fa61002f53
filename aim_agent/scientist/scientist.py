"""The concept scientist: proposes the next search experiment with its hypotheses, and concludes by the rule.

It holds no state: every proposal and the conclusion are derived from the view (exemplar descriptions,
observations, critic reports), so a resumed run continues where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

from aim_agent.agent.schema import Conclusion, Hypothesis, Proposal, ScientistView, experiment_proposal
from aim_agent.scientist.evidence import PHOTO_PREFIX, Fit, Record, correlated, fit, records_from
from aim_agent.scientist.experiments import Experiment, Search
from aim_agent.scientist.reading import MAX_CANDIDATES, Reading, base_rates, read_exemplars
from aim_agent.scientist.rule import MIN_POSITIVES, Choice, choose, is_supported, merit
from aim_agent.terms import named, normal, terms_of
from aim_agent.tools.core import MAX_PROMPTS

#: images per concept search, controls per experiment, and the random sample that gives base rates
PER_CONCEPT = 6
CONTROLS = 16
SURVEY = 128
#: concepts that track the unit over the survey, added to the candidates
CORRELATED = 4
#: concepts replicated on fresh images in the second round
REPLICATE = 4

NO_WORDS_NOTE = (
    "The describer's words for the exemplars name no concept (no exemplar descriptions, or empty ones), so "
    "there is nothing to search the dataset for. Check the describer (--describer) and the exemplar dataset "
    "(--dataset), or use a VLM backend."
)


@dataclass
class Derived:
    """Everything the scientist knows, recomputed from the view."""

    reading: Reading
    records: list[Record]
    fits: list[Fit]
    choice: Choice | None

    def tested(self) -> set[str]:
        return {f.concept for f in self.fits if f.n_pos > 0}


def derive(view: ScientistView) -> Derived:
    reading = read_exemplars(view.exemplar_descriptions, view.exemplar_activations)
    if view.observations:  # the first round is the survey: a random sample gives each concept's base rate
        reading.base = base_rates([p[len(PHOTO_PREFIX):] for p in view.observations[0].prompts
                                   if p.startswith(PHOTO_PREFIX)])
        reading.correlated = correlated(records_from(view.observations[:1]), MIN_POSITIVES, CORRELATED)
        for prompt in view.observations[0].prompts:  # the describer's spelling of what the survey showed
            for shown in named(prompt):
                reading.names.setdefault(normal(shown), shown)
    records = records_from(view.observations)
    concepts = list(dict.fromkeys([*reading.candidates(limit=3 * MAX_CANDIDATES)]))
    fits = [fit(c, records) for c in concepts] if records else []
    exemplars = [Record(terms=terms_of(t), activation=float(a))
                 for t, a in zip(view.exemplar_descriptions, view.exemplar_activations, strict=False) if t]
    choice = choose(fits, records, reading, exemplars, reading.leading) if records else None
    return Derived(reading, records, fits, choice)


def next_experiment(view: ScientistView, d: Derived) -> Experiment | None:
    """survey -> screen -> replicate -> (one more, when the critic is not satisfied) -> conclude."""
    done = len(view.observations)  # rounds run, failed ones too: a round is never repeated as it was
    candidates = d.reading.candidates()
    if done == 0:
        return Experiment("survey", "A random sample of the dataset (the exemplars left out): how often each concept "
                          "appears anyway (its base rate), and how the unit responds to ordinary images.",
                          _survey())
    if done == 1:
        return Experiment("screen", "Each concept the exemplars show, on dataset images the describer says show "
                          "it (the exemplars themselves left out), against controls that show none of them.",
                          tuple([Search((c,), (), PER_CONCEPT) for c in candidates]
                                + [Search((), tuple(candidates), CONTROLS)]))
    if done == 2:
        ranked = sorted((f for f in d.fits if f.tested), key=lambda f: -merit(f, d.reading))[:REPLICATE]
        fresh = [c for c in d.reading.candidates(limit=2 * MAX_CANDIDATES) if c not in candidates][:REPLICATE]
        # a candidate the dataset shows too rarely outside the exemplars (one photo per class) is measured on
        # the exemplars that show it too: a weaker test, which the conclusion says it is
        scarce = [f for f in d.fits if f.concept in candidates and f.n_pos < MIN_POSITIVES][:REPLICATE]
        return Experiment("replicate", "The leading concepts again on fresh images, the next candidates for the "
                          "first time, fresh controls" + (", and the rarest candidates on their exemplars too"
                                                          if scarce else "") + ".",
                          tuple([Search((f.concept,), (), PER_CONCEPT, PER_CONCEPT) for f in ranked]
                                + [Search((c,), (), PER_CONCEPT) for c in fresh]
                                + [Search((f.concept,), (), PER_CONCEPT, include_exemplars=True) for f in scarce]
                                + [Search((), tuple(candidates), CONTROLS, CONTROLS)]))
    last = view.critic[-1] if view.critic else None
    if done == 3 and last is not None and not last.satisfied and d.choice is not None:
        main = d.choice.main.concept
        return Experiment("critic", "The critic is not satisfied: the leading concept on more fresh images and "
                          "more controls. " + "; ".join(last.requests[:3]),
                          (Search((main,), (), 2 * PER_CONCEPT, 2 * PER_CONCEPT),
                           Search((), tuple(candidates), 2 * CONTROLS, 2 * CONTROLS)))
    return None


def _survey() -> tuple[Search, ...]:
    """The random sample in pages of at most one search's limit (``dataset_search`` takes MAX_PROMPTS images)."""
    return tuple(Search((), (), min(MAX_PROMPTS, SURVEY - skip), skip) for skip in range(0, SURVEY, MAX_PROMPTS))


class ConceptScientist:
    """Rule-based scientist for any model whose exemplar images the describer can name (photos, renders).

    Hypotheses are the concepts the blind describer names in the exemplars; each is tested on *other*
    images of the dataset that the describer says show it, against controls; the conclusion follows
    :mod:`aim_agent.scientist.rule`.
    """

    name = "concepts"
    exemplars_k = 30

    def propose(self, view: ScientistView) -> Proposal:
        d = derive(view)
        if not d.reading.shares:
            return Proposal(thoughts=NO_WORDS_NOTE, ready_to_conclude=True)
        thoughts = [_reading_text(d.reading)] + [_fit_text(f, d.reading) for f in _ranked(d)[:5]]
        exp = None if view.must_conclude or view.round >= view.max_rounds else next_experiment(view, d)
        if exp is None:
            thoughts.append("Planned experiments are done: concluding.")
            return Proposal(thoughts="\n".join(thoughts), hypotheses=_hypotheses(d), ready_to_conclude=True,
                            lead=_lead(d))
        thoughts.append(f"Next ({exp.phase}): {exp.note}")
        return experiment_proposal(thoughts, _hypotheses(d), exp, view.mode, lead=_lead(d))

    def conclude(self, view: ScientistView) -> Conclusion:
        d = derive(view)
        if not d.reading.shares:
            return Conclusion(description=NO_WORDS_NOTE, labels=["uninterpreted"], confidence=0.0,
                              forced=view.must_conclude)
        if d.choice is None:
            top = d.reading.candidates(limit=1)[0]
            return Conclusion(description=f"Untested guess from the exemplars only: {d.reading.name(top)} "
                              "(no experiment measured any image).", labels=[d.reading.name(top)],
                              evidence=[_reading_text(d.reading)], confidence=0.15, forced=view.must_conclude)
        c = d.choice
        open_objection = bool(view.critic and not view.critic[-1].satisfied)
        return Conclusion(description=_description(c, d), labels=[_label(c, d.reading)],
                          evidence=_evidence(c, d, open_objection), forced=view.must_conclude,
                          confidence=_confidence(c, d.reading, forced=view.must_conclude, objection=open_objection))


def _lead(d: Derived) -> str | None:
    """The id of the hypothesis the conclusion would name first now (the critic judges it)."""
    return _hid(d.choice.main.concept) if d.choice is not None else None


def _hid(concept: str) -> str:
    return concept.replace(" ", "_")


def _label(c: Choice, reading: Reading) -> str:
    return " OR ".join(reading.name(x) for x in c.concepts)


def _confidence(c: Choice, reading: Reading, *, forced: bool, objection: bool) -> float:
    """Higher with separation, sample size and exemplar coverage; lower when forced or over an open objection."""
    if not c.supported:  # a measured effect short of support, or the exemplars alone
        return 0.25 if c.basis == "effect" else 0.15
    f = c.main
    value = 0.35 + 0.6 * max(0.0, 2 * f.auc - 1) * min(1.0, f.n_pos / 6)
    value *= 0.7 + 0.3 * min(1.0, max(0.0, reading.excess(f.concept)) / 0.4)
    if c.on_exemplars:
        value *= 0.8
    if forced:
        value *= 0.75
    if objection:
        value *= 0.8
    return round(max(0.05, min(0.97, value)), 2)


def _ranked(d: Derived) -> list[Fit]:
    return sorted((f for f in d.fits if f.tested), key=lambda f: (-merit(f, d.reading), f.concept))


def _hypotheses(d: Derived) -> list[Hypothesis]:
    if not any(f.tested for f in d.fits):  # before any test: the candidates, open, at their exemplar share
        return [Hypothesis(id=_hid(c), statement=f"the unit detects {d.reading.name(c)}",
                           concepts=[d.reading.name(c)], status="open",
                           confidence=round(min(0.5, 0.2 + 0.3 * d.reading.shares.get(c, 0.0)), 2))
                for c in d.reading.candidates()]
    out = []
    chosen = d.choice.concepts if d.choice is not None and d.choice.supported else []
    ranked = _ranked(d)
    # the concluded concept is always listed first (rule 3b may choose one on the exemplars, outside the top)
    first = [d.choice.main] if d.choice is not None and d.choice.main.concept not in {f.concept for f in ranked[:8]} \
        else []
    for f in [*first, *ranked][:8]:
        status = ("supported" if f.concept in chosen or is_supported(f, d.reading)
                  else "refuted" if f.auc < 0.6 else "open")
        out.append(Hypothesis(id=_hid(f.concept), statement=f"the unit detects {d.reading.name(f.concept)}",
                              concepts=[d.reading.name(f.concept)], kind="single", status=status,
                              confidence=round(min(0.97, max(0.05, f.auc)), 2)))
    return out


def _reading_text(reading: Reading) -> str:
    top = reading.candidates(limit=6)
    return f"Exemplar concepts (activation-weighted share of {reading.described} descriptions): " + ", ".join(
        f"{reading.name(c)} {reading.shares.get(c, 0.0):.2f}" for c in top) + (
        "; tracking the unit over the random sample: " + ", ".join(reading.correlated) if reading.correlated else "")


def _fit_text(f: Fit, reading: Reading) -> str:
    return (f"{reading.name(f.concept)}: AUC {f.auc:.2f}, mean {f.mean_pos:.3g} on {f.n_pos} images that show it "
            f"vs {f.mean_neg:.3g} on {f.n_neg} that do not; exemplar share {reading.shares.get(f.concept, 0):.2f} "
            f"(dataset {reading.base.get(f.concept, 0):.2f})")


def _description(c: Choice, d: Derived) -> str:
    f = c.main
    name = d.reading.name(f.concept)
    which = "exemplars included" if c.on_exemplars else "not exemplars"
    numbers = (f"mean activation {f.mean_pos:.3g} on the {f.n_pos} dataset images ({which}) the blind describer "
               f"says show {name} vs {f.mean_neg:.3g} on {f.n_neg} that show nothing of it (AUC {f.auc:.2f}); "
               f"{name} explains {d.reading.shares.get(f.concept, 0.0):.0%} of the exemplars (and "
               f"{d.reading.base.get(f.concept, 0.0):.0%} of a random sample of the dataset)")
    if c.basis == "effect":
        return (f"No tested concept is supported; {name} has a measured effect short of support, a weak answer "
                f"({numbers}).")
    if c.basis == "exemplars":
        return (f"No tested concept is supported or has a measured effect on other images; {name} is what the "
                f"strongest exemplar shows, untested ({numbers}).")
    if c.on_exemplars:
        numbers += ("; decided with the exemplars counted, since the dataset shows it on few other images (the "
                    "other images of the broader concept fire far less)")
    core = f"Selective for {name}"
    if c.also is not None:
        core = f"Polysemantic: {name} OR {d.reading.name(c.also.concept)} (each fires without the other)"
    return f"{core}: {numbers}."


def _evidence(c: Choice, d: Derived, objection: bool) -> list[str]:
    lines = [_reading_text(d.reading), *[_fit_text(f, d.reading) for f in _ranked(d)[:4]], *c.steps,
             f"{len(d.records)} dataset images measured; every AUC is on them, not on the exemplars"]
    if objection:
        lines.append("The critic's last objection is still open: confidence lowered.")
    return lines
