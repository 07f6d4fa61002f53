"""The critic changes what happens next (issue 23, item 2).

- an objection names the experiment that would answer it, and that reaches the scientist's view;
- a proposal identical to an earlier one is refused (not run) and counted in the run record;
- an objection that comes back on the same evidence escalates: the hypothesis is dropped, or the run
  concludes with the objection open, instead of vetoing until a budget forces the end.
"""

from __future__ import annotations

from aim_test_fakes import (
    CONTROL_PROMPTS,
    RED_PROMPTS,
    ScriptedScientist,
    fake_config,
    fake_exemplars,
    red_hypothesis,
    tool_round,
)

from aim_agent.agent.critic import critique
from aim_agent.agent.llm_scientist import critic_section
from aim_agent.agent.nodes import REPEAT_CAP, open_objections
from aim_agent.agent.record import read_run_record
from aim_agent.agent.runner import run_interpret
from aim_agent.agent.schema import Conclusion, Escalation, Hypothesis, Proposal, ScientistView
from aim_agent.agent.state import Measurement


def _red(n: int, activation: float = 1.0, start: int = 0) -> list[Measurement]:
    backgrounds = ["grass", "snow", "sand", "road", "water", "sky"]
    return [Measurement(round=1, image_id=f"r{start + k}", activation=activation,
                        source_prompt=f"a red ball on {backgrounds[(start + k) % len(backgrounds)]}")
            for k in range(n)]


def _controls(n: int, activation: float = 0.1) -> list[Measurement]:
    return [Measurement(round=1, image_id=f"c{k}", activation=activation, source_prompt=f"a blue ball on grass {k}")
            for k in range(n)]


def _ask_to_conclude() -> Proposal:
    return Proposal(thoughts="enough", hypotheses=[red_hypothesis()], ready_to_conclude=True)


# --------------------------------------------------------------------------- the critic's objections


def test_each_objection_names_the_experiment_that_answers_it():
    report = critique(1, [red_hypothesis()], _red(2))
    by_kind = {o.kind: o for o in report.objections}
    assert set(by_kind) == {"more_images", "more_contexts", "controls"}
    assert by_kind["more_images"].experiment.model_dump() == {"action": "more_images", "concept": "red", "count": 3}
    assert by_kind["more_contexts"].experiment.action == "more_contexts"
    assert by_kind["controls"].experiment.model_dump() == {"action": "controls_without", "concept": "red",
                                                           "count": 3}
    assert all(o.hypothesis == "h1" for o in report.objections)
    assert report.requests == [o.text for o in report.objections] and not report.escalated
    thin = critique(1, [red_hypothesis()], _red(5) + _controls(3, activation=0.95))
    (margin,) = thin.objections
    assert margin.kind == "thin_margin" and margin.experiment.action == "more_specific" and margin.basis == 5


def test_an_objection_raised_again_on_the_same_evidence_is_escalated_not_requested():
    hyp = [red_hypothesis()]
    first = critique(1, hyp, _red(2))
    again = critique(2, hyp, _red(2) + _controls(3), earlier=[first])
    # the controls answered one objection; the images and contexts did not change: those two escalate
    assert {o.kind for o in again.escalated} == {"more_images", "more_contexts"}
    assert all(o.repeated_from == 1 for o in again.escalated)
    assert again.requests == [] and not again.satisfied  # open, but no longer asked for
    # new images of the concept are new evidence: the objection is asked for again, not escalated
    more = critique(2, hyp, _red(3) + _controls(3), earlier=[first])
    assert any(o.kind == "more_images" for o in more.objections) and not any(
        o.kind == "more_images" for o in more.escalated)


def test_a_dropped_hypothesis_is_skipped_until_new_evidence_brings_it_back():
    red = red_hypothesis(confidence=0.9)
    blue = Hypothesis(id="h2", statement="blue things", concepts=["blue"], confidence=0.5)
    first = critique(1, [red, blue], _red(2))
    dropped = {"h1": [o for o in first.objections if o.kind == "more_images"]}
    report = critique(2, [red, blue], _red(2), dropped=dropped)
    assert report.checks["leading"] == "h2"
    assert critique(3, [red, blue], _red(4), dropped=dropped).checks["leading"] == "h1"


def test_a_conclusion_is_marked_over_an_open_objection_only_when_it_names_its_concept():
    report = critique(1, [red_hypothesis()], _red(2))
    escalation = Escalation(round=2, objection=report.objections[0].model_copy(update={"repeated_from": 1}),
                            hypothesis="h1", statement="red objects", action="concluded_open")
    red = Conclusion(description="red things", labels=["red"])
    blue = Conclusion(description="blue things", labels=["blue"])
    assert open_objections([escalation], red) == [escalation] and open_objections([escalation], blue) == []
    assert "rounds 1 and 2 with no new evidence" in escalation.text()


def test_the_suggested_experiment_reaches_the_scientists_view(tmp_path):
    scientist = ScriptedScientist([tool_round(RED_PROMPTS[:2]), tool_round(RED_PROMPTS[2:] + CONTROL_PROMPTS)])
    run_interpret(fake_config(tmp_path, run_id="suggest"), scientist=scientist, tools=[fake_exemplars])
    view = scientist.views[1]
    suggested = {o.experiment.action: o.experiment for o in view.critic[-1].objections}
    assert suggested["more_images"].concept == "red" and suggested["more_images"].count == 3
    assert suggested["controls_without"].count == 3
    section = critic_section(view)  # what the LLM scientist reads
    assert "[suggested experiment: more_images of 'red' (3+)]" in section
    assert "[suggested experiment: controls_without of 'red' (3+)]" in section


# --------------------------------------------------------------------------- repeated proposals


def test_a_proposal_identical_to_an_earlier_one_is_refused_and_counted(tmp_path):
    def second(view: ScientistView) -> Proposal:
        # the same proposal as round 1; told it is a repeat, it runs what the critic asks instead
        return tool_round(RED_PROMPTS[2:] + CONTROL_PROMPTS) if view.refused else tool_round(RED_PROMPTS[:2])

    scientist = ScriptedScientist([tool_round(RED_PROMPTS[:2]), second, _ask_to_conclude()])
    result = run_interpret(fake_config(tmp_path, run_id="repeat"), scientist=scientist, tools=[fake_exemplars])
    refused = [v.refused for v in scientist.views if v.refused is not None]
    assert len(refused) == 1 and refused[0].repeats == 1 and refused[0].round == 2
    record = read_run_record(result.run_dir)
    assert record.repeated_proposals == 1 and record.refused_proposals[0].repeats == 1
    assert record.summary().repeated_proposals == 1
    # the refused proposal never ran: round 2 measured the revised experiment
    assert record.rounds_run == 2
    assert [m.prompt for m in record.rounds[1].measurements] == RED_PROMPTS[2:] + CONTROL_PROMPTS
    assert not result.forced and result.conclusion.labels == ["red"]


def test_a_scientist_that_repeats_itself_after_a_refusal_ends_the_run(tmp_path):
    scientist = ScriptedScientist([tool_round(RED_PROMPTS[:2])])  # the same experiment, whatever it is told
    result = run_interpret(fake_config(tmp_path, run_id="stubborn", max_rounds=6), scientist=scientist,
                           tools=[fake_exemplars])
    assert result.rounds_run == 1  # not 6 rounds of the same images
    assert result.forced and result.forced.startswith(REPEAT_CAP)
    record = read_run_record(result.run_dir)
    assert record.repeated_proposals == 2 and record.conclusion.forced


# --------------------------------------------------------------------------- escalation


def test_an_objection_repeated_with_no_new_evidence_escalates_instead_of_a_forced_end(tmp_path):
    """Thin evidence, then only requests to conclude: the critic's objections come back on the same evidence.
    Before, the critic vetoed until max_critic_vetoes ran out and the run ended forced; now it vetoes once at
    most, and the run concludes with the objections open, recorded in the conclusion and the run record."""
    scientist = ScriptedScientist([tool_round(RED_PROMPTS[:2], ready=True), _ask_to_conclude()])
    result = run_interpret(fake_config(tmp_path, run_id="escalate", max_critic_vetoes=5), scientist=scientist,
                           tools=[fake_exemplars])
    assert not result.forced and not result.conclusion.forced
    record = read_run_record(result.run_dir)
    vetoes = [c for rd in record.rounds for c in rd.critic if c.checks.get("vetoed_conclusion")]
    assert len(vetoes) == 1 and record.rounds_run == 1
    assert {e.action for e in record.escalations} == {"concluded_open"}
    assert {e.objection.kind for e in record.escalations} == {"more_images", "more_contexts", "controls"}
    assert len(result.conclusion.open_objections) == 3
    assert any(line.startswith("Open objection:") and "untested" in line for line in result.conclusion.evidence)
    assert record.summary().escalations == 3


def test_a_hypothesis_whose_objection_comes_back_unanswered_is_dropped(tmp_path):
    """The scientist keeps experimenting without answering the objection to its leading hypothesis: the critic
    drops it, judges the next one, and the scientist's view says which was dropped and why."""
    blue = Hypothesis(id="h2", statement="blue things", concepts=["blue"], confidence=0.5)

    def experimenting(prompts: list[str]) -> Proposal:
        p = tool_round(prompts)
        p.hypotheses = [red_hypothesis(confidence=0.9), blue]
        return p

    # round 2 adds blue controls only: the red images and contexts stay as they were
    scientist = ScriptedScientist([experimenting(RED_PROMPTS[:2]), experimenting(CONTROL_PROMPTS),
                                   experimenting(["a blue ball on snow"])])
    result = run_interpret(fake_config(tmp_path, run_id="drop", max_rounds=3), scientist=scientist,
                           tools=[fake_exemplars])
    record = read_run_record(result.run_dir)
    dropped = [e for e in record.escalations if e.action == "dropped"]
    assert dropped and {e.hypothesis for e in dropped} == {"h1"} and {e.round for e in dropped} == {2}
    report = record.rounds[1].critic[0]
    assert report.checks["dropped"] == ["h1"] and report.checks["leading"] == "h2"
    assert [e.hypothesis for e in scientist.views[2].dropped] == ["h1" for _ in dropped]
    assert "Dropped hypotheses" in critic_section(scientist.views[2])


def test_the_critic_judges_the_hypothesis_the_scientist_would_conclude_with():
    # 'blue' is the more confident hypothesis, but the scientist leads with 'red': the critic judges red
    blue = Hypothesis(id="h2", statement="the unit detects blue", concepts=["blue"], confidence=0.9)
    red = red_hypothesis()
    assert red.confidence < blue.confidence
    measurements = _red(2) + _controls(3)
    assert critique(1, [red, blue], measurements).checks["leading"] == "h2"
    report = critique(1, [red, blue], measurements, lead="h1")
    assert report.checks["leading"] == "h1" and all(o.hypothesis == "h1" for o in report.objections)
    # a lead that is refused (refuted, or not listed) falls back to the most confident
    assert critique(1, [red, blue], measurements, lead="h9").checks["leading"] == "h2"
