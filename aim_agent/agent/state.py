"""The graph state: plain, serialisable data only.

Everything here is text, numbers, image ids and pydantic models of :mod:`aim_agent.agent.schema`;
never a model, a provider or a PIL image. Every node's update is checkpointed (SQLite), so a
run can stop anywhere and resume in a new process. The heavy objects live in
:class:`aim_agent.agent.runtime.AgentRuntime`, rebuilt from ``state["config"]``.

Lists that grow over a run (observations, critic reports, measurements, log entries, token use)
have an append reducer: a node returns only its new items.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from pydantic import BaseModel, Field

from aim_agent.agent.backends import CallUsage
from aim_agent.agent.config import RunConfig
from aim_agent.agent.schema import (
    Conclusion,
    CriticReport,
    Escalation,
    Hypothesis,
    Mode,
    Objection,
    Observation,
    Proposal,
    RefusedProposal,
    SuggestedExperiment,
    ToolCall,
)
from aim_agent.log import LogEntry
from aim_agent.providers import EditChange


class Measurement(BaseModel):
    """One activation of the unit on one image, with what the image is known to show."""

    round: int
    image_id: str
    activation: float
    prompt: str = Field(default="", description="how the image was made, for people: 'prompt | edit: instruction'")
    source: str = Field(default="", description="which call measured it: tools.neuron, system.neuron, ...")
    source_prompt: str = Field(default="", description="the text-to-image prompt of the image or of its original")
    edits: list[EditChange | None] = Field(
        default_factory=list, description="edits from that original to this image, as the editor reported them"
    )


class PendingExperiment(BaseModel):
    """What the experiment node produced; the log node commits it to the state."""

    observation: Observation
    measurements: list[Measurement] = Field(default_factory=list)
    log_entries: list[LogEntry] = Field(default_factory=list)
    image_prompts: dict[str, str] = Field(default_factory=dict)
    code: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)


def merge_dicts(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    return {**(left or {}), **(right or {})}


def add_numbers(left: dict[str, float] | None, right: dict[str, float] | None) -> dict[str, float]:
    out = dict(left or {})
    for key, value in (right or {}).items():
        out[key] = round(out.get(key, 0.0) + value, 4)
    return out


class AgentState(TypedDict, total=False):
    """The state of one interpretation run."""

    run_id: str
    config: RunConfig
    task: str
    unit: str
    mode: Mode
    max_rounds: int
    #: experiments finished so far (round r is the r-th experiment, 1-based)
    round: int

    exemplar_image_ids: list[str]
    exemplar_activations: list[float]
    exemplar_descriptions: list[str]
    #: the unit's dataset threshold (set by the exemplar step; a resumed run's overlays need it)
    unit_threshold: float | None

    hypotheses: list[Hypothesis]
    proposal: Proposal | None
    pending: PendingExperiment | None
    #: times the critic sent a ready-to-conclude scientist back to work
    vetoes: int
    #: why the conclusion was forced (round cap, budget), else None
    forced: str | None
    #: set by the critic when the scientist may conclude
    conclude_now: bool
    conclusion: Conclusion | None

    observations: Annotated[list[Observation], operator.add]
    critic: Annotated[list[CriticReport], operator.add]
    measurements: Annotated[list[Measurement], operator.add]
    log: Annotated[list[LogEntry], operator.add]
    usage: Annotated[list[CallUsage], operator.add]
    notes: Annotated[list[str], operator.add]
    #: objections that came back on the same evidence, and what the run did instead of asking again
    escalations: Annotated[list[Escalation], operator.add]
    #: proposals the agent did not run because they repeated an earlier one
    refused_proposals: Annotated[list[RefusedProposal], operator.add]
    #: a fingerprint of every proposal that ran an experiment (hypotheses and experiment), in order
    proposal_keys: Annotated[list[str], operator.add]
    #: image id -> the prompt behind it, for every generated or edited image
    image_prompts: Annotated[dict[str, str], merge_dicts]
    #: seconds spent in each node, summed over the run (and over resumes)
    timings: Annotated[dict[str, float], add_numbers]


#: the classes a checkpoint may contain (the SQLite checkpointer refuses any other)
STATE_MODELS: tuple[type[BaseModel], ...] = (
    RunConfig,
    EditChange,
    Hypothesis,
    ToolCall,
    Proposal,
    Observation,
    SuggestedExperiment,
    Objection,
    CriticReport,
    Escalation,
    RefusedProposal,
    Conclusion,
    Measurement,
    PendingExperiment,
    LogEntry,
    CallUsage,
)


def allowed_modules() -> list[tuple[str, str]]:
    """(module, class) pairs for ``JsonPlusSerializer(allowed_msgpack_modules=...)``."""
    from aim_agent.agent.backends import BackendSpec

    classes: list[type] = [*STATE_MODELS, BackendSpec]
    return [(cls.__module__, cls.__name__) for cls in classes]
