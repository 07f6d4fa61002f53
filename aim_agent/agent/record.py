"""``result.json``: the typed record of what one interpretation run did and found.

:class:`RunRecord` is the one definition of that file. The runner builds it from the
checkpointed graph state when a run ends (finished, stopped or failed) and writes it atomically
(:meth:`RunRecord.write`); the report, the MCP server and ``aim interpret --json`` read it back
with :func:`read_run_record`, which names the file and says what to do when it is missing, damaged,
or written by another version of AIM.

A record holds the config, the unit, the conclusion, one :class:`RoundRecord` per experiment round
(the proposal with its hypotheses, the code or tool calls, the observation, the measurements, what
the experiment displayed, the critic's reports), the run's usage (tokens, cost, seconds), its
backends, why a budget forced the conclusion, and the ground truth of units that have one (written
after the run: the scientist never sees it).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aim_agent.agent.backends import CallUsage, UsageSummary, summarize_usage
from aim_agent.agent.config import RunConfig
from aim_agent.agent.schema import (
    Conclusion,
    CriticReport,
    Escalation,
    Hypothesis,
    Observation,
    Proposal,
    RefusedProposal,
)
from aim_agent.agent.state import Measurement
from aim_agent.files import atomic_write
from aim_agent.log import LogEntry

__all__ = [
    "RESULT_FILE",
    "SCHEMA_VERSION",
    "Backends",
    "Exemplars",
    "MissingRunRecord",
    "RoundRecord",
    "RunRecord",
    "RunRecordError",
    "RunSummary",
    "RunUsage",
    "is_round_record",
    "now_text",
    "read_run_record",
    "rounds_from_state",
    "usage_of",
]

RESULT_FILE = "result.json"
#: bumped whenever the shape of :class:`RunRecord` changes in a way older readers cannot take
SCHEMA_VERSION = 3
#: versions this AIM reads: 2 lacks only fields that have defaults (repeated proposals, escalations)
READABLE_VERSIONS = (2, SCHEMA_VERSION)
RunStatus = Literal["finished", "stopped", "failed"]


def now_text() -> str:
    """The local time, ISO 8601 to the second (when a run was created, when it ended)."""
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


class RunRecordError(ValueError):
    """``result.json`` cannot be read as a :class:`RunRecord`; the message names the file and what to do."""


class MissingRunRecord(RunRecordError, FileNotFoundError):
    """The run directory holds no ``result.json`` (the run is still going, or its process was killed)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Exemplars(_Strict):
    """The unit's top-activating dataset images, as the scientist first saw them."""

    image_ids: list[str] = Field(default_factory=list, description="highest activation first")
    activations: list[float] = Field(default_factory=list)
    descriptions: list[str] = Field(default_factory=list, description="from the blind describer, one per image")


class Backends(_Strict):
    """Who did the work."""

    scientist: str = Field(description="the scientist that proposed experiments: 'offline', 'llm:openai:gpt-4o', ...")
    describer: str = Field(description="the blind describer of the exemplars")
    critic: str = Field(description="the critic model, or 'rules only'")


class RunUsage(_Strict):
    """What the run spent: tokens and cost of every model call, and time."""

    totals: UsageSummary = Field(default_factory=UsageSummary)
    calls: list[CallUsage] = Field(default_factory=list, description="every model call, in order")
    wall_time_s: float = Field(default=0.0, description="seconds the run took, summed over resumes")
    node_seconds: dict[str, float] = Field(default_factory=dict, description="seconds spent in each graph node")


class RoundRecord(_Strict):
    """One experiment round: what the scientist proposed, what came back, what the critic said.

    ``critic`` is in order: the first report judges the round's experiment; each later one answers
    one of ``conclusion_requests`` in turn (the scientist asked to conclude without a new
    experiment). Round 0 only exists when the scientist asked to conclude before any experiment.
    """

    round: int = Field(ge=0)
    proposal: Proposal | None = Field(
        default=None, description="the step that set up this round: thoughts, hypotheses, code or tool calls")
    observation: Observation | None = Field(default=None, description="what the experiment returned")
    measurements: list[Measurement] = Field(default_factory=list, description="every activation the round measured")
    shown: list[LogEntry] = Field(
        default_factory=list, description="what the experiment displayed or logged itself (display, log_experiment)")
    critic: list[CriticReport] = Field(default_factory=list)
    conclusion_requests: list[Proposal] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    @property
    def hypotheses(self) -> list[Hypothesis]:
        """The hypotheses as the scientist last stated them in this round."""
        for step in reversed([self.proposal, *self.conclusion_requests]):
            if step is not None and step.hypotheses:
                return step.hypotheses
        return []

    @property
    def ran_experiment(self) -> bool:
        return self.observation is not None


class RunSummary(_Strict):
    """The headline of a run (what ``read_result`` over MCP returns); the whole record is result.json."""

    run_id: str
    status: RunStatus
    unit_label: str
    conclusion: Conclusion | None
    rounds_run: int
    forced: str | None
    repeated_proposals: int = 0
    escalations: int = Field(default=0, description="objections that came back on the same evidence")
    ground_truth: str | None
    total_tokens: int
    cost_usd: float | None
    wall_time_s: float
    resumed: bool
    error: str | None
    notes: list[str]


class RunRecord(_Strict):
    """Everything a run leaves in ``result.json``."""

    schema_version: int = SCHEMA_VERSION
    run_id: str
    status: RunStatus = Field(description="finished (it concluded), stopped (no conclusion), failed (an error)")
    task: str
    unit_label: str = Field(description="the unit, as a person names it (the scientist may have seen less)")
    config: RunConfig
    backends: Backends
    conclusion: Conclusion | None = None
    forced: str | None = Field(default=None, description="why a budget forced the conclusion (round cap, ...)")
    ground_truth: str | None = Field(
        default=None, description="the unit's known answer (synthetic neurons), added after the run")
    hypotheses: list[Hypothesis] = Field(default_factory=list, description="as they stood at the end")
    exemplars: Exemplars = Field(default_factory=Exemplars)
    rounds: list[RoundRecord] = Field(default_factory=list)
    rounds_run: int = Field(default=0, ge=0, description="experiments finished")
    repeated_proposals: int = Field(
        default=0, ge=0, description="proposals the agent refused because they repeated an earlier one")
    refused_proposals: list[RefusedProposal] = Field(default_factory=list, description="those proposals, in order")
    escalations: list[Escalation] = Field(
        default_factory=list, description="critic objections that came back on the same evidence, and what the run "
                                          "did instead of asking again (dropped the hypothesis, or concluded with "
                                          "the objection open)")
    usage: RunUsage = Field(default_factory=RunUsage)
    resumed: bool = False
    notes: list[str] = Field(default_factory=list)
    error: str | None = None
    traceback: str | None = None
    finished_at: str = Field(default_factory=lambda: now_text())

    def summary(self) -> RunSummary:
        return RunSummary(
            run_id=self.run_id, status=self.status, unit_label=self.unit_label, conclusion=self.conclusion,
            rounds_run=self.rounds_run, forced=self.forced, repeated_proposals=self.repeated_proposals,
            escalations=len(self.escalations), ground_truth=self.ground_truth,
            total_tokens=self.usage.totals.total_tokens, cost_usd=self.usage.totals.cost_usd,
            wall_time_s=self.usage.wall_time_s, resumed=self.resumed, error=self.error, notes=self.notes,
        )

    def write(self, run_dir: Path) -> Path:
        """Write ``run_dir/result.json`` atomically (a temporary file, then a rename) and return its path."""
        path = Path(run_dir) / RESULT_FILE
        atomic_write(path, (self.model_dump_json(indent=2) + "\n").encode("utf-8"), fsync=False)
        return path


def conclusion_label(record: Any) -> str:
    """The agent's final label: its labels joined by '; ' (the description when it gave none)."""
    conclusion = getattr(record, "conclusion", None)
    if conclusion is None:
        return ""
    labels = [label.strip() for label in conclusion.labels if label.strip()]
    return "; ".join(labels) if labels else conclusion.description.strip()


def read_run_record(where: str | Path) -> RunRecord:
    """The :class:`RunRecord` in ``where`` (a run directory or its ``result.json``).

    Raises :class:`MissingRunRecord` when there is no such file and :class:`RunRecordError` when
    it is not a record this version of AIM reads; both messages name the file and say what to do.
    """
    where = Path(where)
    path = where / RESULT_FILE if where.is_dir() or where.suffix != ".json" else where
    resume = f"`aim interpret --resume {path.parent.name}` rewrites it from the run's checkpoint"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MissingRunRecord(
            f"no run record at {path}: the run has not finished writing its result (it is still running, or "
            f"its process was killed: {resume})") from None
    except OSError as exc:
        raise RunRecordError(f"cannot read the run record {path}: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RunRecordError(f"the run record {path} is not valid JSON ({exc}); {resume}") from None
    if not isinstance(data, dict):
        raise RunRecordError(f"the run record {path} holds a JSON {type(data).__name__}, not an object; {resume}")
    version = data.get("schema_version")
    if version not in READABLE_VERSIONS:
        written = "an older AIM (no schema_version)" if version is None else f"schema version {version!r}"
        raise RunRecordError(
            f"the run record {path} was written by {written}; this AIM reads schema version {SCHEMA_VERSION}: "
            f"{resume}")
    try:
        return RunRecord.model_validate({**data, "schema_version": SCHEMA_VERSION})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()[:5])
        more = f" (and {exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
        raise RunRecordError(f"the run record {path} is malformed: {problems}{more}; {resume}") from None


# --------------------------------------------------------------------------------------------
# building the rounds from the graph's state


def is_round_record(entry: LogEntry) -> bool:
    """The log node's own record of an experiment (it carries the measurements), not a ``log_experiment`` call."""
    return entry.kind == "experiment" and "measurements" in entry.data


def _proposal(entry: LogEntry) -> Proposal | None:
    raw = entry.data.get("proposal")
    return Proposal.model_validate(raw) if isinstance(raw, dict) else None


def rounds_from_state(state: dict[str, Any]) -> list[RoundRecord]:
    """One :class:`RoundRecord` per round, from the checkpointed state (its lists and its log).

    The hypothesize node logs every proposal: in the round it opens when it runs an experiment, in
    the round it answers when it only asks to conclude; the critic's reports carry their round.
    """
    entries: dict[int, list[LogEntry]] = defaultdict(list)
    for entry in state.get("log", []):
        entries[entry.round].append(entry)
    observations = {o.round: o for o in state.get("observations", [])}
    measurements: dict[int, list[Measurement]] = defaultdict(list)
    for m in state.get("measurements", []):
        measurements[m.round].append(m)
    critic: dict[int, list[CriticReport]] = defaultdict(list)
    for report in state.get("critic", []):
        critic[report.round].append(report)

    rounds = []
    for r in sorted(set(observations) | set(critic) | {e.round for e in state.get("log", [])
                                                         if e.kind == "hypothesis"}):
        found = entries.get(r, [])
        proposals = [p for e in found if e.kind == "hypothesis" and (p := _proposal(e)) is not None]
        observation = observations.get(r)
        opening: Proposal | None = None
        requests: list[Proposal] = []
        for p in proposals:
            if opening is None and not p.only_asks_to_conclude:
                opening = p
            else:
                requests.append(p)
        rounds.append(RoundRecord(
            round=r,
            proposal=opening,
            observation=observation,
            measurements=measurements.get(r, []),
            shown=[e for e in found if e.kind in ("display", "experiment") and not is_round_record(e)],
            critic=critic.get(r, []),
            conclusion_requests=requests,
            notes=[e.text for e in found if e.kind == "note" and e.text and r > 0],
        ))
    return rounds


def usage_of(state: dict[str, Any], wall_time_s: float) -> RunUsage:
    """The run's tokens, cost and time from the state (``wall_time_s``: summed over the run's processes)."""
    calls: Sequence[CallUsage] = state.get("usage", [])
    return RunUsage(totals=summarize_usage(calls), calls=list(calls), wall_time_s=round(wall_time_s, 3),
                    node_seconds=dict(state.get("timings", {})))
