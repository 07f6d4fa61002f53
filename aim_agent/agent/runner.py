"""Running an interpretation: budgets, checkpoints, resume, and the files a run leaves.

``run_interpret(config)`` creates ``runs/<id>/`` with

- ``run.json``: the config (what a resume rebuilds the run from),
- ``checkpoint.sqlite``: a LangGraph checkpoint after every node (thread id = run id),
- ``images/``: every logged image as ``<id>.png``,
- ``log.jsonl``: the experiment log, one entry a line (rewritten after every round),
- ``result.json``: a :class:`~aim_agent.agent.record.RunRecord` (conclusion, rounds, usage,
  backends, and the ground truth when the unit has one), written when the run ends however it ends,
- ``report.html`` when :mod:`aim_agent.report` is installed.

``run_interpret(None, resume=RUN_ID)`` continues a killed run from its last finished node:
finished rounds are not run again (their results are in the checkpoint).
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import json
import secrets
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from aim_agent.agent.backends import BackendSpec
from aim_agent.agent.config import RunConfig
from aim_agent.agent.graph import build_graph, sqlite_checkpointer
from aim_agent.agent.nodes import write_log
from aim_agent.agent.record import (
    Backends,
    Exemplars,
    RunRecord,
    RunRecordError,
    now_text,
    read_run_record,
    rounds_from_state,
    usage_of,
)
from aim_agent.agent.runtime import AgentRuntime, build_runtime
from aim_agent.agent.schema import Conclusion, Scientist
from aim_agent.agent.state import AgentState
from aim_agent.models.trust import UntrustedModel, is_trusted, require_trusted
from aim_agent.providers import TextToImage
from aim_agent.system import System
from aim_agent.tools.base import ToolSpec

__all__ = [
    "RunConfig",
    "RunFilesError",
    "RunRecord",
    "RunResult",
    "build_record",
    "check_resume_trust",
    "initial_state",
    "new_run_id",
    "run_interpret",
]

BUDGET_FIELDS = ("max_rounds", "max_tokens", "max_cost", "max_seconds")
Progress = Callable[[str], None]


class RunResult(BaseModel):
    """What :func:`run_interpret` returns: the run's record (what ``result.json`` holds) and where its files are."""

    record: RunRecord
    run_dir: Path
    result_path: Path
    log_path: Path
    report_path: Path | None = None

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def conclusion(self) -> Conclusion | None:
        return self.record.conclusion

    @property
    def rounds_run(self) -> int:
        return self.record.rounds_run

    @property
    def rounds(self) -> int:
        """Experiments finished (the older name of :attr:`rounds_run`; the round records are ``record.rounds``)."""
        return self.record.rounds_run

    @property
    def forced(self) -> str | None:
        return self.record.forced

    @property
    def ground_truth(self) -> str | None:
        return self.record.ground_truth

    @property
    def total_tokens(self) -> int:
        return self.record.usage.totals.total_tokens

    @property
    def cost_usd(self) -> float | None:
        return self.record.usage.totals.cost_usd


def new_run_id(config: RunConfig) -> str:
    """``YYYYmmdd-HHMMSS-<unit>-<4 hex>``: sortable, readable, unique."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    if config.synthetic:
        what = config.synthetic
    elif config.model:
        what = f"{Path(config.model).name}-{config.layer}-{config.unit}"
    else:
        what = "custom"
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in what)[:48].strip("-") or "run"
    return f"{stamp}-{slug}-{secrets.token_hex(2)}"


def unit_text(config: RunConfig, system: Any | None = None) -> str:
    """How the unit is named to the scientist: never a synthetic neuron's name (it would give the answer away)."""
    if config.synthetic:
        return "a synthetic neuron (its definition is hidden from you)"
    if config.system_factory and system is not None:
        return str(system.describe())
    return config.unit_label()


def unit_label(config: RunConfig, system: Any | None = None) -> str:
    """How a person names the unit (records, progress): a factory's unit by its own description too."""
    if config.system_factory and system is not None:
        return f"{system.describe()} (from {config.system_factory})"
    return config.unit_label()


def default_task(config: RunConfig, unit: str | None = None) -> str:
    return config.task or (
        f"Describe the visual concept(s) that make {unit or unit_text(config)} fire, with evidence from experiments."
    )


def initial_state(config: RunConfig, run_id: str, *, unit: str | None = None) -> AgentState:
    """The graph input of a new run (``unit``: the scientist-facing name of the unit, see :func:`unit_text`)."""
    unit = unit or unit_text(config)
    return AgentState(
        run_id=run_id,
        config=config,
        task=default_task(config, unit),
        unit=unit,
        mode=config.mode,
        max_rounds=config.max_rounds,
        round=0,
        hypotheses=[],
        proposal=None,
        pending=None,
        vetoes=0,
        forced=None,
        conclude_now=False,
        conclusion=None,
    )


class RunFilesError(ValueError):
    """A run's ``run.json`` or ``checkpoint.sqlite`` is not what AIM wrote (changed or damaged outside AIM).

    The message names the file, what is wrong, and what to do; resuming never goes on from such a file.
    """


#: the fields that say which unit a run studies: a checkpoint must agree with run.json on them
_UNIT_FIELDS = ("model", "layer", "unit", "sae", "synthetic", "system_factory")


def _damaged(path: Path, what: str) -> RunFilesError:
    return RunFilesError(
        f"cannot resume from {path}: {what}. The file was changed or damaged outside AIM, so the run cannot "
        "go on from it; start a new run (and keep the old folder only as a record)"
    )


def _read_run_json(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "run.json"
    if not path.exists():
        raise FileNotFoundError(
            f"no run to resume at {run_dir}: run.json is missing (list runs with `ls {run_dir.parent}`)"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _damaged(path, f"it is not JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise _damaged(path, "it holds no 'config' object")
    return data


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def _resume_config(run_dir: Path, override: RunConfig | None) -> RunConfig:
    try:
        stored = RunConfig.model_validate(_read_run_json(run_dir)["config"])
    except ValidationError as exc:
        raise _damaged(run_dir / "run.json", f"its config is not valid ({exc.error_count()} problems, first: "
                       f"{exc.errors()[0].get('loc')} {exc.errors()[0].get('msg')})") from None
    check_resume_trust(stored, run_dir)
    if override is None:
        return stored
    changes = {f: getattr(override, f) for f in BUDGET_FIELDS if f in override.model_fields_set}
    return stored.model_copy(update=changes)


def check_resume_trust(config: RunConfig, run_dir: Path) -> None:
    """Raise :class:`UntrustedModel` for what ``run.json`` names that would run code and nobody trusted.

    ``run.json`` is a file on disk, not the person's choice: a ``system_factory`` it names passes
    the same trust policy as a model spec (``--trust-model``), a plugin module it names must be
    loaded already (by the person's own configuration) or trusted the same way, and so must the
    ``base_url`` of a backend it names (the provider's API key would be sent there). Model paths and
    specs are checked by their loaders, under the same scope, when the run rebuilds its unit.
    """
    if config.system_factory:
        try:
            require_trusted(config.system_factory, "a 'module:factory' System factory named in run.json "
                                                   "(importing the module runs its code)")
        except UntrustedModel as exc:
            raise UntrustedModel(f"{exc} (resuming {run_dir})") from None
    for role, spec in (("scientist", config.backend), ("critic", config.critic_backend)):
        if spec is None or not spec.base_url or is_trusted(spec.base_url):
            continue
        raise UntrustedModel(  # the provider's requests, and its API key, would go to that server
            f"refusing to resume {run_dir}: its run.json sends the {role}'s {spec.provider} requests (with their "
            f"API key) to {spec.base_url}, which nobody on this command line named. If that server is yours, name "
            f"it: --trust-model {spec.base_url}"
        )
    from aim_agent.plugins import plugin_manager

    loaded = plugin_manager().pm
    for module in config.plugins:
        if loaded.get_plugin(module) is None and not is_trusted(module):
            raise UntrustedModel(
                f"refusing to resume {run_dir}: its run.json names the plugin module {module!r}, which this process "
                "has not loaded, and importing it would run its code. If you trust it, load it yourself "
                f"(`aim --plugin {module}`, AIM_PLUGINS, or plugins in aim.toml) or name it with --trust-model {module}"
            )


def _checked_snapshot(graph: Any, run_config: dict[str, Any], config: RunConfig, run_id: str, path: Path) -> Any:
    """The checkpointed state of a resumed run; :class:`RunFilesError` when it is unreadable or not this run's."""
    try:
        snapshot = graph.get_state(run_config)
    except Exception as exc:  # msgpack, sqlite, pydantic, ...: one clear error instead of a deep traceback
        raise _damaged(path, f"a checkpoint row cannot be read ({type(exc).__name__}: {str(exc)[:200]})") from None
    values = snapshot.values
    if not values:
        return snapshot
    if not isinstance(values, dict):
        raise _damaged(path, "the checkpointed state is not a mapping")
    stored = values.get("config")
    problems = []
    if values.get("run_id") != run_id:
        problems.append(f"it belongs to run {str(values.get('run_id'))[:80]!r}")
    if not isinstance(stored, RunConfig):
        problems.append("its config is not a run config")
    elif any(getattr(stored, f) != getattr(config, f) for f in _UNIT_FIELDS):
        problems.append("its config names another unit than run.json")
    expected = {"round": int, "max_rounds": int, "hypotheses": list, "log": list, "observations": list}
    for key, kind in expected.items():
        if key in values and (not isinstance(values[key], kind) or isinstance(values[key], bool)):
            problems.append(f"{key!r} is a {type(values[key]).__name__}, not a {kind.__name__}")
    if problems:
        raise _damaged(path, "; ".join(problems))
    return snapshot


def run_interpret(
    config: RunConfig | None,
    *,
    scientist: Scientist | None = None,
    resume: str | None = None,
    tools: Sequence[ToolSpec] | None = None,
    progress: Progress | None = None,
    runs_dir: str | Path | None = None,
    system: System | None = None,
    text2image: TextToImage | None = None,
) -> RunResult:
    """Interpret one unit; with ``resume=RUN_ID`` continue that run instead of starting anew.

    ``scientist`` replaces the one the config names (tests, custom agents); ``tools`` replaces
    registry tools of the same name; ``system`` and ``text2image`` replace the unit and the image
    generator (an in-process unit, as ``aim eval``'s task questions bring: such a run cannot be
    resumed in another process). On resume, budget fields set explicitly on ``config``
    (max_rounds, max_tokens, max_cost, max_seconds) override the stored ones.
    """
    say = progress or (lambda _msg: None)
    if resume:
        root = Path(runs_dir or (config.runs_dir if config else "runs"))
        run_dir = root / resume
        config = _resume_config(run_dir, config)
        run_id = resume
    else:
        if config is None:
            raise ValueError("give a RunConfig, or resume=RUN_ID to continue a run")
        run_id = config.run_id or new_run_id(config)
        root = Path(runs_dir or config.runs_dir)
        run_dir = root / run_id
        if (run_dir / "run.json").exists():
            raise FileExistsError(f"run {run_id} already exists at {run_dir}: resume it with --resume {run_id}")
        run_dir.mkdir(parents=True, exist_ok=True)
        config = config.model_copy(update={"run_id": run_id, "runs_dir": str(root)})
        _write_json(run_dir / "run.json", {"run_id": run_id, "config": config.public(),
                                           "created_at": now_text()})

    rt = build_runtime(config, run_dir, scientist=scientist, tools=tools, system=system, text2image=text2image)
    saver = sqlite_checkpointer(run_dir / "checkpoint.sqlite")
    graph = build_graph(checkpointer=saver)
    vetoes = config.max_critic_vetoes
    run_config = {"configurable": {"thread_id": run_id}, "recursion_limit": 8 * (config.max_rounds + vetoes) + 40}
    started = time.monotonic()
    notes: list[str] = []
    error: BaseException | None = None
    snapshot: Any = None
    if resume:
        try:  # before anything is written: a damaged checkpoint stays as it is, for a person to look at
            snapshot = _checked_snapshot(graph, run_config, config, run_id, run_dir / "checkpoint.sqlite")
        except RunFilesError:
            saver.conn.close()
            raise
    try:
        if resume:
            if not snapshot.values:  # killed between run.json and the first checkpoint: nothing to lose
                say(f"run {run_id} stopped before its first checkpoint; starting it from the beginning")
                notes.append("restarted: the run had stopped before its first checkpoint")
                _stream(graph, initial_state(config, run_id, unit=unit_text(config, rt.ctx.system)), run_config,
                        rt, say)
            elif snapshot.next or not snapshot.values.get("conclusion"):
                done = snapshot.values.get("round", 0)
                say(f"resuming {run_id} after round {done} (next: {', '.join(snapshot.next) or 'nothing'})")
                notes.append(f"resumed after round {done}")
                _stream(graph, None, run_config, rt, say)
            else:
                say(f"run {run_id} had already finished; rewriting its result")
        else:
            who = f"{rt.scientist.name} scientist, {config.mode} mode"
            say(f"run {run_id}: {unit_label(config, rt.ctx.system)} ({who})")
            state0 = initial_state(config, run_id, unit=unit_text(config, rt.ctx.system))
            _stream(graph, state0, run_config, rt, say)
    except BaseException as exc:  # write what we have, then re-raise: the run can be resumed
        error = exc
        raise
    finally:
        state = graph.get_state(run_config).values
        record = build_record(run_dir, state, rt, time.monotonic() - started, error=error, notes=notes,
                              resumed=bool(resume))
        write_log(run_dir, state.get("log", []))
        result_path = record.write(run_dir)
        saver.conn.close()
        report = _write_report(run_dir)
    return RunResult(record=record, run_dir=run_dir, result_path=result_path, log_path=run_dir / "log.jsonl",
                     report_path=report)


def _stream(graph: Any, inputs: Any, run_config: dict[str, Any], rt: AgentRuntime, say: Progress) -> None:
    """Run the graph, checkpointing synchronously after every node, and report progress."""
    for update in graph.stream(inputs, run_config, context=rt, stream_mode="updates", durability="sync"):
        for name, delta in update.items():
            line = _progress_line(name, delta or {})
            if line:
                say(line)


def _progress_line(name: str, delta: dict[str, Any]) -> str | None:
    if name == "exemplars":
        return f"exemplars: {len(delta.get('exemplar_image_ids') or [])} images"
    if name == "hypothesize":
        if delta.get("forced"):
            return f"concluding: {delta['forced']}"
        proposal = delta.get("proposal")
        if proposal is not None and proposal.hypotheses:
            lead = max(proposal.hypotheses, key=lambda h: h.confidence)
            return f"hypothesis {lead.id} ({lead.confidence:.2f}): {lead.statement[:90]}"
    if name == "log":
        obs = (delta.get("observations") or [None])[0]
        if obs is not None:
            status = "ok" if obs.ok else f"failed: {(obs.error or '')[:80]}"
            acts = f", {len(obs.activations)} activations (max {max(obs.activations):.3g})" if obs.activations else ""
            return f"round {obs.round}: {status}{acts}"
    if name == "critic":
        report = (delta.get("critic") or [None])[0]
        if report is not None and not report.satisfied and report.requests:
            return f"critic: {report.requests[0][:110]}" + (f" (+{len(report.requests) - 1} more)"
                                                            if len(report.requests) > 1 else "")
        escalated = delta.get("escalations") or []
        if escalated:
            return f"critic escalates: {escalated[0].text()[:140]}" + (f" (+{len(escalated) - 1} more)"
                                                                     if len(escalated) > 1 else "")
    if name == "conclude":
        conclusion = delta.get("conclusion")
        if conclusion is not None:
            return f"conclusion: {', '.join(conclusion.labels)}"
    return None


def _ground_truth(rt: AgentRuntime) -> str | None:
    system = rt.ctx.system
    try:
        return system.ground_truth if system is not None else None
    except Exception:
        return None


def _backend_label(spec: BackendSpec | None, fallback: str) -> str:
    return spec.label() if spec is not None else fallback


def build_record(
    run_dir: Path,
    state: dict[str, Any],
    rt: AgentRuntime,
    seconds: float,
    *,
    error: BaseException | None = None,
    notes: Sequence[str] = (),
    resumed: bool = False,
) -> RunRecord:
    """The :class:`RunRecord` of a run from its checkpointed state (``seconds``: this process's share)."""
    config = rt.config
    conclusion: Conclusion | None = state.get("conclusion")
    earlier = 0.0
    if resumed:  # the wall time of the processes before this one
        try:
            earlier = read_run_record(run_dir).usage.wall_time_s
        except RunRecordError:
            earlier = 0.0
    status = "finished" if conclusion is not None else ("failed" if error is not None else "stopped")
    return RunRecord(
        run_id=rt.run_id,
        status=status,
        task=state.get("task") or default_task(config),
        unit_label=unit_label(config, rt.ctx.system),
        config=config,
        backends=Backends(
            scientist=getattr(rt.scientist, "name", type(rt.scientist).__name__),
            describer=str(getattr(rt.ctx.describer, "name", config.describer)),
            critic=_backend_label(config.critic_backend, "rules only"),
        ),
        conclusion=conclusion,
        forced=state.get("forced"),
        ground_truth=_ground_truth(rt),
        hypotheses=state.get("hypotheses", []),
        exemplars=Exemplars(
            image_ids=state.get("exemplar_image_ids", []),
            activations=state.get("exemplar_activations", []),
            descriptions=state.get("exemplar_descriptions", []),
        ),
        rounds=rounds_from_state(state),
        rounds_run=state.get("round", 0),
        repeated_proposals=len(state.get("refused_proposals", [])),
        refused_proposals=state.get("refused_proposals", []),
        escalations=state.get("escalations", []),
        usage=usage_of(state, earlier + seconds),
        resumed=resumed,
        notes=[*state.get("notes", []), *notes],
        error=f"{type(error).__name__}: {error}" if error is not None else None,
        traceback="".join(traceback.format_exception(error))[-6000:] if error is not None else None,
    )


def _write_report(run_dir: Path) -> Path | None:
    """``report.html`` via :mod:`aim_agent.report` when it is installed; None otherwise."""
    if importlib.util.find_spec("aim_agent.report") is None:
        return None
    try:
        from aim_agent.report import write_report

        return Path(write_report(run_dir))
    except Exception as exc:  # the report is a convenience; the result files are written
        (run_dir / "report-error.txt").write_text(f"{type(exc).__name__}: {exc}\n")
        return None
