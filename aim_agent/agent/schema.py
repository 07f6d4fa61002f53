"""The agent's vocabulary: hypotheses, proposals, observations, critic reports, conclusions.

A :class:`Scientist` is whatever decides the next experiment: a VLM through LangChain
(``agent.llm_scientist``) or a plugin's scientist (hook ``aim_scientists``), such as the world
plugin's rule-based ``offline`` one. Both see the
same :class:`ScientistView` and answer with a :class:`Proposal` or a :class:`Conclusion`, so
the graph does not care which one it drives.
"""

from __future__ import annotations

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
                        mode: Mode) -> Proposal:
    """A proposal that runs ``experiment`` in the run's mode (code, or tool calls)."""
    proposal = Proposal(thoughts="\n".join(thoughts), hypotheses=hypotheses)
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


class CriticReport(BaseModel):
    """The critic's verdict on the evidence behind the leading hypothesis."""

    round: int
    satisfied: bool
    requests: list[str] = Field(default_factory=list, description="concrete experiments to run next")
    checks: dict[str, Any] = Field(default_factory=dict)


class Conclusion(BaseModel):
    """MAIA's output format plus the evidence behind it."""

    description: str
    labels: list[str]
    evidence: list[str] = Field(default_factory=list)
    confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    forced: bool = Field(default=False, description="true when a budget cap forced the conclusion")
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
    answer: AnswerName = Field(default="describe", description="the final answer's form (prompts.ANSWER_FORMATS)")


@runtime_checkable
class Scientist(Protocol):
    name: str

    def propose(self, view: ScientistView) -> Proposal: ...

    def conclude(self, view: ScientistView) -> Conclusion: ...
