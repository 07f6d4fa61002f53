"""Tools that only make sense over MCP: choose the unit, read the log, start and read runs.

They are declared like every other tool (pydantic input and output, a docstring for the
model, flags for what kind of tool each is) and called through the same ``invoke``;
``ctx.caller.session`` is the caller's :class:`~aim_agent.mcp_server.sessions.McpSession`
(None for ``stateless`` tools), ``ctx.caller.client`` who the caller is.

Models are chosen by the operator, not the client: ``list_layers``, ``load_system`` and
``start_interpret`` accept the names and specs of the server's :class:`ModelPolicy` only.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import Field

from aim_agent.images import use_store
from aim_agent.log import ExperimentLog
from aim_agent.mcp_server.handles import HandleStore
from aim_agent.mcp_server.runs import RunManager, plain
from aim_agent.mcp_server.sessions import ANONYMOUS, McpSession, SessionRegistry, is_stateless
from aim_agent.mcp_server.systems import LoadSystemInput, build_system, offered
from aim_agent.plugins import SYNTHETIC
from aim_agent.tools.base import AimImage, ToolContext, ToolError, ToolInput, ToolOutput, ToolSpec, tool

if TYPE_CHECKING:
    from PIL import Image

    from aim_agent.models.trust import ModelPolicy
    from aim_agent.plugins import AimPlugins


class SessionHost(Protocol):
    """What the session tools use of their server (:class:`aim_agent.mcp_server.state.AimMcpState`), and no more."""

    plugins: AimPlugins
    registry: SessionRegistry
    handles: HandleStore
    runs: RunManager
    policy: ModelPolicy
    #: the tools ``run_code``'s sandbox may call
    experiment_specs: list[ToolSpec]

    def handle_of(self, session: McpSession) -> str:
        """The handle of ``session`` (minted now if it has none)."""
        ...

    def run_owner(self, session: McpSession) -> str:
        """Who owns the runs ``session`` starts."""
        ...

    def image(self, iid: str, ctx: ToolContext) -> Image.Image:
        """An image of the session by id."""
        ...


class NoInput(ToolInput):
    pass


class SessionOutput(ToolOutput):
    session: str = Field(description="pass this as 'session' to later calls")
    note: str = Field(default="", description="how long the session lives")


class SessionHandleInput(ToolInput):
    handle: str = Field(min_length=1, max_length=100, description="the session handle new_session returned")


class ClosedOutput(ToolOutput):
    closed: bool = Field(description="whether a session with that handle was open (and is now closed)")


class ModelsOutput(ToolOutput):
    configured: dict[str, Any] = Field(
        description="models the operator offers by name ('named': name -> spec) and as given ('allowed')"
    )
    loaders: list[dict[str, Any]] = Field(description="model loaders and what model specs each accepts")
    models: list[dict[str, Any]] = Field(
        description="named models the loaders ship or know (e.g. world-cnn): name, loader, available"
    )
    unit_sources: list[dict[str, Any]] = Field(
        description="units that are not a model layer, e.g. synthetic neurons with a known answer: "
        "name, description, units (how many; load one by its index, since names may give the answer away)"
    )
    notes: list[str] = Field(default_factory=list, description="how to load what is listed")


class ModelInput(ToolInput):
    model: str = Field(min_length=1, max_length=500, description="a model list_models offers, e.g. 'world-cnn'")


class LayersOutput(ToolOutput):
    model: str = Field(description="the model, as given")
    layers: list[dict[str, Any]] = Field(description="probe-able layers, in forward order")


class SystemOutput(ToolOutput):
    session: str = Field(
        description="this session's handle: pass it as 'session' to later calls when the client reconnects "
        "for each call; they find this unit, its log and images"
    )
    description: str = Field(description="the unit under study, in words")
    model: str = Field(description="the model's name")
    layer: str = Field(description="the layer's name")
    unit: int = Field(description="the unit's index in the layer")
    num_units: int = Field(description="how many units the layer has")
    kind: Literal["neuron", "synthetic", "sae"] = Field(
        description="a model's neuron, a synthetic neuron, or an SAE latent"
    )


class LogListOutput(ToolOutput):
    system: str | None = Field(description="the unit this log is about (null before load_system)")
    entries: list[dict[str, Any]] = Field(description="index, kind, round, text (cut), number of images")


class LogEntryInput(ToolInput):
    entry: int = Field(ge=0, description="index from list_log")


class LogEntryOutput(ToolOutput):
    index: int = Field(description="the entry's index")
    entry: dict[str, Any] = Field(description="kind, round, text, image_ids, activations, prompts, descriptions")
    images: list[AimImage] = Field(default_factory=list, description="the entry's images still held")


class InterpretInput(ToolInput):
    model: str | None = Field(default=None, max_length=500, description="a model list_models offers")
    layer: str | None = Field(default=None, max_length=200, description="layer name (see list_layers)")
    unit: int | None = Field(default=None, ge=0, description="unit index in the layer")
    sae: str | None = Field(default=None, max_length=500, description="with model and layer: an SAE; unit = latent")
    synthetic: str | None = Field(default=None, max_length=200, description="or a synthetic neuron's name")
    task: str | None = Field(default=None, max_length=2000, description="the question; default: describe the unit")
    backend: str | None = Field(
        default=None, max_length=200, description="the scientist, e.g. 'offline' or 'google_genai:MODEL'"
    )
    mode: Literal["code", "tools"] | None = Field(default=None, description="how the scientist runs experiments")
    max_rounds: int | None = Field(
        default=None, ge=1, le=100, description="most hypothesize-experiment rounds; default: the runner's"
    )


class RunStartOutput(ToolOutput):
    run_id: str = Field(description="pass it to read_result")
    session: str = Field(description="this session's handle: read_result needs it when called on another connection")
    status: str = Field(description="running, at first")
    report_uri: str = Field(description="the HTML report's resource, once finished")
    result_uri: str = Field(description="the result's resource (JSON), once finished")


class RunIdInput(ToolInput):
    run_id: str = Field(min_length=1, max_length=80, description="a run id from start_interpret")


class RunResultOutput(ToolOutput):
    run_id: str = Field(description="the run")
    status: Literal["running", "finished", "failed", "interrupted"] = Field(description="where the run stands")
    elapsed_s: float = Field(description="seconds since the run started (until it ended)")
    round: int = Field(default=0, description="rounds of experiments the run has finished")
    max_rounds: int = Field(default=0, description="the rounds it may take at most: round / max_rounds is its progress")
    progress: list[str] = Field(default_factory=list, description="the run's latest progress messages")
    error: str | None = Field(default=None, description="why the run failed or stopped")
    result: dict[str, Any] | None = Field(
        default=None, description="once finished: description, labels, evidence (the run's result.json summary)"
    )
    report_uri: str | None = Field(default=None, description="the HTML report's resource, once finished")


class CodeInput(ToolInput):
    code: str = Field(min_length=1, max_length=200_000, description="defines run_experiment(system, tools)")
    timeout_s: float = Field(default=120.0, gt=0, le=600, description="wall-clock limit of the run")


class CodeOutput(ToolOutput):
    ok: bool = Field(description="whether run_experiment returned without an error")
    report: str = Field(description="outcome, calls, error and traceback, printed output")
    return_value: Any = Field(
        default=None,
        description="what run_experiment returned (images as ids)",
        json_schema_extra={"anyOf": [{"type": t} for t in ("object", "array", "string", "number", "boolean", "null")]},
    )
    images: list[AimImage] = Field(default_factory=list, description="images in the return value")


def _names(items: Any) -> list[str]:
    out = []
    for item in items or []:
        out.append(item if isinstance(item, str) else str(getattr(item, "name", item)))
    return out


def _session_of(ctx: ToolContext) -> McpSession:
    session = ctx.caller.session if ctx.caller is not None else None
    if not isinstance(session, McpSession):
        raise ToolError("this tool needs an MCP session")
    return session


def _offered(state: SessionHost, spec: str, what: str = "model") -> str:
    """The spec to load for a model (or SAE) a client named, if this server offers it."""
    return offered(state.policy, state.plugins, spec, what)


def _run_code(ctx: ToolContext, specs: Sequence[ToolSpec], code: str, timeout_s: float) -> CodeOutput:
    """Run ``code`` in the agent's sandbox with ``specs`` as its tools (the tool ``run_code``)."""
    from aim_agent.agent.experiment import code_handlers, image_ids_in, plain_value
    from aim_agent.agent.sandbox import SandboxLimits, run_code

    ctx.require_system()
    handlers = code_handlers(ctx, specs)
    result = run_code(code, handlers=handlers, limits=SandboxLimits(wall_time_s=timeout_s))
    with use_store(ctx.images):
        value = plain_value(result.return_value)
    images = [ctx.images.pixels(iid) for iid in dict.fromkeys(image_ids_in(value))]
    return CodeOutput(ok=result.ok, report=result.report(), return_value=value, images=images[:256])


def make_session_tools(state: SessionHost, *, enable_code: bool = False) -> list[ToolSpec]:
    """The MCP-only tools, bound to what they use of one server (``state``)."""

    @tool(session=True, stateless=True)
    def new_session(ctx: ToolContext, args: NoInput) -> SessionOutput:
        """Open a new, empty session and return its handle.

        Pass the handle as ``session`` to every later call to keep a loaded system and an
        experiment log across calls. Needed where the transport keeps no session (stateless
        HTTP) or the client reconnects for each call; over one stdio connection the connection
        is the session. load_system returns a handle too. A client holds a few
        sessions at most: close those it no longer needs with close_session.
        """
        registry = state.registry
        owner = ctx.caller.client if ctx.caller is not None else ANONYMOUS
        session = registry.new_explicit(owner)
        limits = registry.limits
        if is_stateless(owner):
            note = (f"expires after {limits.stateless_idle_s / 60:g} min unused; call close_session(handle=...) when "
                    f"done: the clients of one address hold at most {limits.max_per_address} handles")
        else:
            note = (f"closes after {limits.idle_timeout_s / 60:g} min unused, or with close_session; "
                    f"one client holds at most {limits.max_per_client} sessions")
        return SessionOutput(session=state.handle_of(session), note=note)

    @tool(session=True, stateless=True, destructive=True, idempotent=True)
    def close_session(ctx: ToolContext, args: SessionHandleInput) -> ClosedOutput:
        """Close a session (a handle from new_session or load_system): its unit, log and images are dropped.

        Runs it started go on, but nobody can read them any more.
        """
        closed = state.registry.close_explicit(args.handle)
        try:
            forgotten = state.handles.forget(args.handle)
        except ToolError:  # not a handle's shape: nothing was saved under it
            forgotten = False
        return ClosedOutput(closed=closed or forgotten)

    @tool(session=True, stateless=True, read_only=True, idempotent=True)
    def list_models(ctx: ToolContext, args: NoInput) -> ModelsOutput:
        """What can be studied: model loaders, the named models they know, synthetic neurons."""
        from aim_agent.models.base import known_models

        loaders = []
        for loader in state.plugins.model_loaders():
            doc = (type(loader).__doc__ or "").strip().splitlines()
            loaders.append(
                {"name": str(getattr(loader, "name", type(loader).__name__)), "accepts": doc[0] if doc else ""}
            )
        sources = []
        notes = [
            "list_layers, load_system and start_interpret accept the configured models and the names model "
            "plugins register only; the operator offers more with `aim mcp --trust-model SPEC` or aim.toml [models]"
        ]
        for source in state.plugins.unit_sources():
            count = len(_names(source.unit_names()))
            # unit names may state their answer (synthetic neurons): clients get a count and load by index
            sources.append({"name": source.name, "description": getattr(source, "description", ""), "units": count})
            if source.name == SYNTHETIC and count:
                notes.append(f"load a synthetic neuron by index: load_system(synthetic='7'), 0..{count - 1}")
        return ModelsOutput(configured=state.policy.describe(), loaders=loaders,
                            models=known_models(state.plugins.model_loaders()), unit_sources=sources, notes=notes)

    @tool(session=True, stateless=True, read_only=True, idempotent=True)
    def list_layers(ctx: ToolContext, args: ModelInput) -> LayersOutput:
        """The layers of a model whose units can be studied, with their number of units."""
        from aim_agent.models.base import load_model
        from aim_agent.models.probe import list_layers

        loaded = load_model(_offered(state, args.model), state.plugins.model_loaders())
        return LayersOutput(model=args.model, layers=[plain(info) for info in list_layers(loaded)])

    @tool(session=True, destructive=True)
    def load_system(ctx: ToolContext, args: LoadSystemInput) -> SystemOutput:
        """Choose the unit to study: ``model`` + ``layer`` + ``unit``, or ``synthetic``, or an SAE latent.

        Every experiment tool (dataset_exemplars, neuron, ...) then runs on this unit. Loading
        a system starts a fresh experiment log for this session (the previous one is gone).
        Returns the session's handle: a client that opens a new connection for each call
        passes it as ``session`` to every later call.
        """
        session = _session_of(ctx)
        system, kind = build_system(state.policy, state.plugins, args)
        log = ExperimentLog(session.ctx.log.image_dir if session.ctx.log else None)
        log.add("note", f"loaded {system.describe()}")
        handle = state.registry.give_handle(session)
        try:  # saved first: a unit that cannot be saved for later calls is not loaded either
            state.handles.save(handle, system=args.model_dump(mode="json"), log=log.dump())
        except OSError as exc:
            raise ToolError(f"cannot save this session under {state.handles.root}: {exc}; the unit was not loaded") \
                from None
        session.ctx.system, session.ctx.log = system, log
        return SystemOutput(
            session=handle,
            description=system.describe(),
            model=system.model_name,
            layer=system.layer,
            unit=system.unit,
            num_units=system.probe.num_units,
            kind=kind,
        )

    @tool(session=True, read_only=True, idempotent=True)
    def list_log(ctx: ToolContext, args: NoInput) -> LogListOutput:
        """This session's experiment log: one line per entry (read one with read_log)."""
        log = ctx.log or ExperimentLog()
        entries = [
            {
                "index": i,
                "kind": e["kind"],
                "round": e["round"],
                "text": e["text"][:200],
                "images": len(e["image_ids"]),
                "activations": len(e["activations"]),
            }
            for i, e in enumerate(log.dump())
        ]
        return LogListOutput(system=ctx.system.describe() if ctx.system else None, entries=entries)

    @tool(session=True, read_only=True, idempotent=True)
    def read_log(ctx: ToolContext, args: LogEntryInput) -> LogEntryOutput:
        """One entry of this session's experiment log, with its images."""
        log = ctx.log or ExperimentLog()
        entries = log.dump()
        if args.entry >= len(entries):
            raise ToolError(
                f"entry {args.entry} does not exist; the log has {len(entries)} entries (0..{len(entries) - 1})"
                if entries
                else "the log is empty"
            )
        entry = entries[args.entry]
        images = []
        for iid in entry["image_ids"]:
            with contextlib.suppress(KeyError):  # evicted and not on disk: listed by id only
                images.append(state.image(iid, ctx))
        return LogEntryOutput(index=args.entry, entry=entry, images=images)

    # open_world: the scientist may be a remote VLM (backend)
    @tool(session=True, open_world=True)
    def start_interpret(ctx: ToolContext, args: InterpretInput) -> RunStartOutput:
        """Start the whole AIM agent on a unit, in the background; returns a run id at once.

        Read progress and the final [DESCRIPTION]/[LABEL] with read_result; the HTML report is
        the resource aim://runs/<run_id>/report.html once the run has finished. Only this
        session can read the run. The run goes on when the client disconnects.
        """
        if not args.synthetic and (args.model is None or args.layer is None or args.unit is None):
            raise ToolError("start_interpret needs model, layer and unit, or synthetic=NAME")
        session = _session_of(ctx)
        options = args.model_dump(exclude_none=True)
        if args.model is not None:
            options["model"] = _offered(state, args.model)
        if args.sae is not None:
            options["sae"] = _offered(state, args.sae, "sae")
        record = state.runs.start(options, owner=state.run_owner(session))
        session.runs.append(record.id)
        return RunStartOutput(
            run_id=record.id,
            session=state.handle_of(session),
            status=record.status,
            report_uri=f"aim://runs/{record.id}/report.html",
            result_uri=f"aim://runs/{record.id}/result.json",
        )

    @tool(session=True, read_only=True, idempotent=True)
    def read_result(ctx: ToolContext, args: RunIdInput) -> RunResultOutput:
        """Status of a run this session started; its result (description, labels, evidence) once finished.

        Runs started by an earlier server process over the same runs directory are found too,
        when the call passes the handle of the session that started them.
        """
        record = state.runs.get(args.run_id, state.run_owner(_session_of(ctx)))
        end = record.finished or time.time()
        return RunResultOutput(
            run_id=record.id,
            status=record.status,
            elapsed_s=round(end - record.started, 1),
            round=record.round,
            max_rounds=record.max_rounds,
            error=record.error,
            progress=list(record.messages[-5:]),
            result=record.result,
            report_uri=f"aim://runs/{record.id}/report.html" if record.status == "finished" else None,
        )

    specs = [
        new_session, close_session, list_models, list_layers, load_system, list_log, read_log, start_interpret,
        read_result,
    ]
    if enable_code:

        @tool(session=True)
        def run_code(ctx: ToolContext, args: CodeInput) -> CodeOutput:
            """Run Python experiment code in AIM's sandbox: it must define ``run_experiment(system, tools)``.

            ``system.neuron(images)`` and every tool (``tools.text2image([...])``, ...) are available
            inside; the code runs in a separate, resource-limited process without the model or
            keys. Returns the sandbox's report and what ``run_experiment`` returned.
            """
            return _run_code(ctx, state.experiment_specs, args.code, args.timeout_s)

        specs.append(run_code)
    return specs
