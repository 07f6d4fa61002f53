"""The agent's vocabulary: hypotheses, proposals, observations, critic reports, conclusions.

A :class:`Scientist` is whatever decides the next experiment: a VLM through LangChain
(``agent.llm_scientist``) or a plugin's scientist (hook ``aim_scientists``), such as the world
plugin's rule-based ``offline`` one. Both see the
same :class:`ScientistView` and answer with a :class:`Proposal` or a :class:`Conclusion`, so
the graph does not care which one it drives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

HypothesisKind = Literal["single", "or", "and", "conditional", "other"]
Mode = Literal["code", "tools"]
#: what a run answers: describe a unit (aim interpret), or a model-level task (aim eval spurious, bias)
AnswerName = Literal["describe", "spurious", "bias"]


class Hypothesis(BaseModel):
    """A claim about what the unit detects, in words and as concepts."""

    id: str
    statement: str
    concepts: list[str] = Field(default_factory=list, description="e.g. ['dog'], ['dog', 'car'] for OR")
    kind: HypothesisKind = "single"
    condition: str | None = Field(default=None, description="for conditional: the context that must be present")
    status: Literal["open", "supported", "refuted"] = "open"
    confidence: float = Field(default=0.5, ge=0.0, le=1.0)


class ToolCall(BaseModel):
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    id: str | None = Field(default=None, description="the model's id for the call (its result is sent back under it)")
    error: str | None = Field(default=None, description="why the call could not be read (e.g. arguments not JSON)")


class Proposal(BaseModel):
    """The scientist's next step: updated hypotheses and one experiment (code or tool calls)."""

    thoughts: str = ""
    hypotheses: list[Hypothesis] = Field(default_factory=list)
    code: str | None = Field(default=None, description="def run_experiment(system, tools): ...")
    tool_calls: list[ToolCall] = Field(default_factory=list)
    ready_to_conclude: bool = False
    lead: str | None = Field(default=None, description="id of the hypothesis the scientist would conclude with now: "
                             "the critic judges that one (without it, the most confident)")

    @property
    def has_experiment(self) -> bool:
        """Whether it gives an experiment to run (code or tool calls)."""
        return bool(self.code and self.code.strip()) or bool(self.tool_calls)

    @property
    def only_asks_to_conclude(self) -> bool:
        """It wants to conclude and gives no experiment: the critic judges the evidence as it stands."""
        return self.ready_to_conclude and not self.has_experiment


class Experiment(Protocol):
    """One planned experiment that can be written both ways (a rule-based scientist's plan)."""

    def code(self) -> str:
        """The experiment as ``def run_experiment(system, tools)``."""
        ...

    def tool_calls(self) -> list[ToolCall]:
        """The experiment as tool calls chained with ``$k.field`` references."""
        ...


def experiment_proposal(thoughts: list[str], hypotheses: list[Hypothesis], experiment: Experiment,
                        mode: Mode, lead: str | None = None) -> Proposal:
    """A proposal that runs ``experiment`` in the run's mode (code, or tool calls)."""
    proposal = Proposal(thoughts="\n".join(thoughts), hypotheses=hypotheses, lead=lead)
    if mode == "code":
        proposal.code = experiment.code()
    else:
        proposal.tool_calls = experiment.tool_calls()
    return proposal


class Observation(BaseModel):
    """What an experiment returned, as the scientist will see it."""

    round: int
    ok: bool
    text: str = ""
    image_ids: list[str] = Field(default_factory=list)
    activations: list[float] = Field(default_factory=list)
    prompts: list[str] = Field(default_factory=list)
    error: str | None = None
    traceback: str | None = None


#: what an objection is about: no hypothesis, no concepts, too few images / contexts / controls, a thin margin
ObjectionKind = Literal["no_hypothesis", "no_concepts", "more_images", "more_contexts", "controls", "thin_margin"]
#: what would answer it: state a hypothesis, name its concepts, more images of the concept, on more contexts,
#: controls without it, or a more specific (or different) concept than the one whose margin is thin
SuggestedAction = Literal["state_hypothesis", "name_concepts", "more_images", "more_contexts", "controls_without",
                          "more_specific"]


class SuggestedExperiment(BaseModel):
    """The experiment that would answer an objection, in a form a program can act on."""

    action: SuggestedAction
    concept: str | None = Field(default=None, description="the concept to show, or to leave out (controls)")
    count: int = Field(default=0, ge=0, description="how many more images (or contexts) it needs at least")


class Objection(BaseModel):
    """One thing the critic holds against the leading hypothesis, with the experiment that would answer it."""

    kind: ObjectionKind
    text: str = Field(description="the request as a person reads it")
    concept: str | None = Field(default=None, description="the concept (or ' & '-joined concept set) it is about")
    hypothesis: str | None = Field(default=None, description="id of the hypothesis it is about")
    experiment: SuggestedExperiment | None = None
    basis: int = Field(default=0, description="the evidence count that answers it (images, contexts or controls "
                                              "of the concept): the same objection on the same basis is a repeat")
    repeated_from: int | None = Field(
        default=None, description="the round whose critic raised this objection on the same evidence (a repeat)")

    @property
    def key(self) -> str:
        """What makes two objections the same one: their kind and concept (not their numbers)."""
        return f"{self.kind}:{self.concept or ''}"


class CriticReport(BaseModel):
    """The critic's verdict on the evidence behind the leading hypothesis.

    ``objections`` are all it holds against it; ``requests`` are the texts of those still to answer; an
    objection raised again on the same evidence is ``escalated`` instead: the run stops spending rounds on it
    (it neither blocks a conclusion nor asks for the experiment again), and the hypothesis it is about is
    dropped or concluded with the objection open (:class:`Escalation`).
    """

    round: int
    satisfied: bool = Field(description="no objection at all (escalated ones count: they are still open)")
    requests: list[str] = Field(default_factory=list, description="concrete experiments to run next")
    objections: list[Objection] = Field(default_factory=list, description="the requests, machine-readable")
    escalated: list[Objection] = Field(
        default_factory=list, description="objections repeated on the same evidence: open, but no longer asked for")
    checks: dict[str, Any] = Field(default_factory=dict)


class Escalation(BaseModel):
    """An objection that came back on the same evidence, and what the run did instead of asking again."""

    round: int
    objection: Objection
    hypothesis: str | None = Field(default=None, description="id of the hypothesis it was about")
    statement: str | None = None
    action: Literal["dropped", "concluded_open"] = Field(
        description="dropped: the critic stops judging that hypothesis (the scientist was still experimenting); "
                    "concluded_open: the scientist concluded with the objection open")

    def text(self) -> str:
        what = (f"hypothesis {self.hypothesis} ('{self.statement}') was dropped" if self.action == "dropped"
                else "the run concluded with it open")
        first = self.objection.repeated_from
        again = first is not None and first != self.round
        when = f"rounds {first} and {self.round}" if again else f"round {self.round}"
        return (f"the critic's objection \"{self.objection.text}\" came back in {when} with no new evidence "
                f"between: {what}")


class RefusedProposal(BaseModel):
    """A proposal the agent did not run: it repeated an earlier one (same hypotheses, same experiment)."""

    round: int = Field(description="the round it would have opened")
    repeats: int = Field(description="the round whose proposal it repeats")
    thoughts: str = ""


class Conclusion(BaseModel):
    """MAIA's output format plus the evidence behind it."""

    description: str
    labels: list[str]
    evidence: list[str] = Field(default_factory=list)
    confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    forced: bool = Field(default=False, description="true when a budget cap forced the conclusion")
    open_objections: list[str] = Field(
        default_factory=list, description="critic objections the conclusion stands over (repeated with no new "
                                          "evidence, so not asked for again): it is untested on those points")
    answer_text: str | None = Field(
        default=None, description="a model-level task's final reply as given (aim eval spurious/bias read it)")

    def maia_text(self) -> str:
        labels = "\n".join(f"[LABEL]: {label}" for label in self.labels)
        return f"[DESCRIPTION]: {self.description}\n{labels}"


class ScientistView(BaseModel):
    """Everything a scientist may read when it decides (never the ground truth)."""

    task: str
    unit: str
    mode: Mode = "code"
    round: int = 0
    max_rounds: int = 15
    exemplar_activations: list[float] = Field(default_factory=list)
    exemplar_image_ids: list[str] = Field(default_factory=list)
    exemplar_descriptions: list[str] = Field(default_factory=list, description="from the blind describer")
    hypotheses: list[Hypothesis] = Field(default_factory=list)
    observations: list[Observation] = Field(default_factory=list)
    critic: list[CriticReport] = Field(default_factory=list)
    api_text: str = ""
    must_conclude: bool = False
    dropped: list[Escalation] = Field(
        default_factory=list, description="hypotheses the critic no longer judges: an objection to them came back "
                                          "on the same evidence (run a new experiment for them, or move on)")
    refused: RefusedProposal | None = Field(
        default=None, description="set when the agent refused the last proposal as a repeat: run what the critic "
                                  "asks, or revise the hypotheses")
    answer: AnswerName = Field(default="describe", description="the final answer's form (prompts.ANSWER_FORMATS)")


@runtime_checkable
class Scientist(Protocol):
    name: str

    def propose(self, view: ScientistView) -> Proposal: ...

    def conclude(self, view: ScientistView) -> Conclusion: ...


@runtime_checkable
class FollowsUp(Protocol):
    """A scientist that may add tool calls after seeing a tool-calling round's results (a chat model does)."""

    def followup(self, view: ScientistView, turns: Sequence[tuple[Proposal, Sequence[Any]]]) -> Proposal:
        """The next turn of the round: more tool calls, or none (its thoughts are then its remarks)."""
        ...


@runtime_checkable
class ChoosesExemplarCount(Protocol):
    """A scientist that reads more (or fewer) dataset exemplars than the default (a rule-based one reads more
    than a VLM can look at)."""

    exemplars_k: int

