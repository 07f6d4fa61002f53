"""AIM as an MCP server: every experiment tool, the unit under study, runs, reports, the task prompt.

::

    from aim_agent.mcp_server import build_server

    server = build_server()          # tools from aim_agent.tools + every plugin
    server.run("stdio")              # or: aim mcp / aim mcp --http 127.0.0.1:8765

What a client gets:

- **tools**: every tool of :func:`aim_agent.tools.registry.all_tools` (input schema from its
  pydantic input model, description from its docstring, results as structured content with
  images as ``img_…`` ids plus the images as MCP image content); and the session tools
  ``new_session``, ``list_models``, ``list_layers``, ``load_system``, ``list_log``, ``read_log``,
  ``start_interpret``, ``read_result`` (``run_code`` too with ``enable_code=True``);
- **resources**: ``aim://session/log`` (this session's experiment log, JSON),
  ``aim://image/{id}`` (an image by id, PNG), ``aim://runs/{run_id}/report.html`` and
  ``aim://runs/{run_id}/result.json`` (runs);
- **prompt** ``describe_unit``: the neuron-description task for the client's own model.

Each client has its own session (loaded system, experiment log), see :mod:`.sessions`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from PIL import Image

from aim_agent.images import to_png_bytes, use_store
from aim_agent.log import ExperimentLog
from aim_agent.mcp_server.bridge import (
    describe_exception,
    error_result,
    make_tool,
    output_result,
    run_blocking,
)
from aim_agent.mcp_server.prompt import neuron_task
from aim_agent.mcp_server.runs import RunManager
from aim_agent.mcp_server.session_tools import READ_ONLY, SESSIONLESS, CodeOutput, make_session_tools
from aim_agent.mcp_server.sessions import SESSION_META_KEY, McpSession, SessionRegistry
from aim_agent.providers import ProviderError
from aim_agent.tools.base import ToolContext, ToolError, ToolSpec, invoke

if TYPE_CHECKING:
    from aim_agent.config import AimConfig
    from aim_agent.plugins import AimPlugins

__all__ = ["SESSION_META_KEY", "AimMcpState", "McpSession", "build_server", "default_context_factory"]

logger = logging.getLogger("aim_agent.mcp")

INSTRUCTIONS = """\
AIM runs interpretability experiments on units (neurons, SAE latents) of vision models.
Start with list_models / list_layers, choose a unit with load_system, then call
dataset_exemplars, text2image, edit_images, neuron, describe_images and log_experiment.
Images are returned as image content and referred to by their 'img_…' ids in later calls.
The prompt 'describe_unit' states the full task; start_interpret runs AIM's own agent instead.
"""


class _Unavailable:
    """Stands in for a provider that could not be built; says why when used."""

    def __init__(self, kind: str, name: str, error: BaseException) -> None:
        self.kind, self.name, self.error = kind, name, error

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise ProviderError(
            f"the {self.kind} provider {self.name!r} is not available: {self.error}. "
            f"Choose another with --{self.kind}, AIM_{self.kind.upper()} or aim.toml ([providers] {self.kind} = ...)"
        )

    generate = edit = describe = summarize = _fail


def default_context_factory(config: AimConfig, plugins: AimPlugins) -> Callable[[], ToolContext]:
    """A factory of fresh session contexts with the configured providers and an empty log."""

    def provider(kind: str) -> Any:
        name = config.provider(kind)
        if name is None:
            return None
        try:
            return plugins.provider(kind, name)
        except Exception as exc:  # a missing plugin or weights: report on use, keep the rest usable
            return _Unavailable(kind, name, exc)

    def make() -> ToolContext:
        extras = {"exemplar_dataset": config.exemplar_dataset} if config.exemplar_dataset else {}
        return ToolContext(
            system=None,
            text2image=provider("text2image"),
            editor=provider("editor"),
            describer=provider("describer"),
            log=ExperimentLog(None),
            image_size=config.image_size,
            seed=config.seed,
            extras=extras,
        )

    return make


class AimMcpState:
    """What one server holds: sessions, runs, tool specs, options."""

    def __init__(
        self,
        *,
        plugins: AimPlugins,
        registry: SessionRegistry,
        runs: RunManager,
        experiment_specs: Sequence[ToolSpec],
        max_inline_images: int,
        progress_interval: float,
    ) -> None:
        self.plugins = plugins
        self.registry = registry
        self.runs = runs
        #: the tools run_code's sandbox may call; :attr:`specs` adds the MCP session tools to them
        self.experiment_specs = list(experiment_specs)
        self.specs: list[ToolSpec] = []
        self.max_inline_images = max_inline_images
        self.progress_interval = progress_interval
        self._model_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def model_lock(self, ctx: ToolContext) -> threading.Lock | None:
        """One lock per model name: two sessions never run the same module's hooks at once."""
        if ctx.system is None:
            return None
        with self._guard:
            return self._model_locks.setdefault(ctx.system.model_name, threading.Lock())

    @staticmethod
    def image(iid: str, ctx: ToolContext) -> Image.Image:
        """An image by id: from the session's store, else from its log's image directory."""
        log = ctx.log
        try:
            return ctx.images.pixels(iid)
        except KeyError:
            if log is not None and log.image_dir is not None and (log.image_dir / f"{iid}.png").is_file():
                return Image.open(log.image_dir / f"{iid}.png").convert("RGB")
            raise

    async def call(self, spec: ToolSpec, arguments: dict[str, Any] | None, request: Any) -> Any:
        """Answer one MCP call of ``spec``: validate, find the session, run in a thread, convert."""
        args = dict(arguments or {})
        handle = args.pop("session", None)
        try:
            if handle is not None and not isinstance(handle, str):
                raise ToolError("session must be a string handle from new_session")
            session = None if spec.name in SESSIONLESS else self.registry.resolve(request, handle)
        except ToolError as exc:
            return error_result(str(exc))

        def work(progress: Any) -> Any:
            if session is None:
                return invoke(spec, args, ToolContext(extras={"progress": progress}))
            with session.lock:
                ctx = session.ctx
                ctx.extras["progress"] = progress
                ctx.extras["mcp_session"] = session
                try:
                    with ExitStack() as stack:
                        lock = self.model_lock(ctx)
                        if lock is not None:
                            stack.enter_context(lock)
                        return invoke(spec, args, ctx)
                finally:
                    ctx.extras.pop("progress", None)
                    ctx.extras.pop("mcp_session", None)

        try:
            output = await run_blocking(request, work, spec.name, interval=self.progress_interval)
        except ToolError as exc:
            return error_result(str(exc))
        except Exception as exc:
            if not isinstance(exc, ToolError | ProviderError | ValueError | LookupError | IndexError | TypeError):
                logger.exception("tool %s raised", spec.name)
            return error_result(describe_exception(spec.name, exc))
        try:
            return output_result(output, session.ctx if session is not None else ToolContext(),
                                 max_images=self.max_inline_images)
        except Exception as exc:  # e.g. an output a plugin built that cannot be serialised
            logger.exception("tool %s returned an output that cannot be sent", spec.name)
            return error_result(describe_exception(spec.name, exc))

    # -- run_code ---------------------------------------------------------------------------

    def run_code(self, ctx: ToolContext, code: str, timeout_s: float) -> CodeOutput:
        from aim_agent.agent.experiment import code_handlers, image_ids_in, plain_value
        from aim_agent.agent.sandbox import SandboxLimits, run_code

        ctx.require_system()
        handlers = code_handlers(ctx, self.experiment_specs)
        result = run_code(code, handlers=handlers, limits=SandboxLimits(wall_time_s=timeout_s))
        with use_store(ctx.images):
            value = plain_value(result.return_value)
        images = [ctx.images.pixels(iid) for iid in dict.fromkeys(image_ids_in(value))]
        return CodeOutput(ok=result.ok, report=result.report(), return_value=value, images=images[:256])


def build_server(
    *,
    config: AimConfig | None = None,
    plugins: AimPlugins | None = None,
    tools: Sequence[ToolSpec] | None = None,
    context_factory: Callable[[], ToolContext] | None = None,
    enable_code: bool = False,
    runs_dir: Path | str | None = None,
    require_session: bool = False,
    max_sessions: int = 32,
    max_inline_images: int = 32,
    max_running: int = 2,
    progress_interval: float = 1.0,
    name: str = "aim",
    log_level: str = "WARNING",
) -> MCPServer:
    """Build the AIM MCP server.

    ``tools`` defaults to every registered tool (core + plugins); ``context_factory`` makes
    each new session's :class:`ToolContext` (default: providers from ``config``). With
    ``require_session`` a request that carries no session identity (stateless HTTP) must
    name a handle from ``new_session``. ``enable_code`` adds ``run_code`` (the agent sandbox).
    The returned server has the attribute ``aim`` (:class:`AimMcpState`).
    """
    from aim_agent.config import apply_plugins, load_config
    from aim_agent.plugins import plugin_manager
    from aim_agent.tools.registry import all_tools

    config = config or load_config()
    plugins = plugins or plugin_manager()
    apply_plugins(config, plugins)  # AIM_PLUGINS / aim.toml modules (already-registered ones are skipped)
    experiment_specs = list(tools) if tools is not None else all_tools(plugins)
    registry = SessionRegistry(
        context_factory or default_context_factory(config, plugins),
        max_sessions=max_sessions,
        require_session=require_session,
    )
    run_defaults = {kind: config.provider(kind) for kind in ("text2image", "editor", "describer")}
    run_defaults.update(
        plugins=list(config.plugins) or None,
        seed=config.seed,
        image_size=config.image_size,
        dataset=config.exemplar_dataset,
    )
    runs = RunManager(Path(runs_dir or config.runs_dir), max_running=max_running, defaults=run_defaults)
    state = AimMcpState(
        plugins=plugins,
        registry=registry,
        runs=runs,
        experiment_specs=experiment_specs,
        max_inline_images=max_inline_images,
        progress_interval=progress_interval,
    )
    session_specs = make_session_tools(state, enable_code=enable_code)
    clash = {s.name for s in session_specs} & {s.name for s in experiment_specs}
    if clash:
        raise ValueError(f"plugin tool name(s) {', '.join(sorted(clash))} clash with AIM's MCP session tools")
    state.specs = [*experiment_specs, *session_specs]

    mcp_tools = []
    for spec in state.specs:

        async def handler(arguments: dict[str, Any], request: Any, spec: ToolSpec = spec) -> Any:
            return await state.call(spec, arguments, request)

        mcp_tools.append(
            make_tool(spec, handler, read_only=spec.name in READ_ONLY, with_session=spec.name not in SESSIONLESS)
        )
    server: MCPServer = MCPServer(name, instructions=INSTRUCTIONS, tools=mcp_tools, log_level=log_level)  # type: ignore[arg-type]
    server.aim = state  # type: ignore[attr-defined]
    _add_resources(server, state)
    _add_prompts(server, state)
    return server


def _add_resources(server: MCPServer, state: AimMcpState) -> None:
    @server.resource(
        "aim://session/log{?session}",
        name="experiment_log",
        description="This session's experiment log as JSON (entries with image ids, activations, prompts).",
        mime_type="application/json",
    )
    def experiment_log(ctx: Context, session: str | None = None) -> str:
        try:
            found = state.registry.resolve(ctx, session)
        except ToolError as exc:
            raise ResourceError(str(exc)) from None
        log = found.ctx.log or ExperimentLog()
        system = found.ctx.system.describe() if found.ctx.system else None
        return json.dumps({"system": system, "entries": log.dump()}, indent=1)

    @server.resource(
        "aim://image/{image_id}{?session}",
        name="image",
        description="An image of this session by its img_… id (PNG).",
        mime_type="image/png",
    )
    def image(ctx: Context, image_id: str, session: str | None = None) -> bytes:
        try:
            found = state.registry.resolve(ctx, session)
            return to_png_bytes(state.image(image_id, found.ctx))
        except ToolError as exc:
            raise ResourceError(str(exc)) from None
        except KeyError as exc:
            raise ResourceError(str(exc.args[0] if exc.args else exc)) from None

    def run_file(run_id: str, filename: str) -> str:
        try:
            path = state.runs.run_dir(run_id) / filename
        except ToolError as exc:
            raise ResourceError(str(exc)) from None
        if not path.is_file():
            status = ""
            with contextlib.suppress(ToolError):
                status = f" (run status: {state.runs.get(run_id).status})"
            raise ResourceError(f"{filename} of run {run_id!r} does not exist yet{status}")
        return path.read_text(encoding="utf-8")

    @server.resource(
        "aim://runs/{run_id}/report.html",
        name="run_report",
        description="The HTML report of a finished run.",
        mime_type="text/html",
    )
    def run_report(run_id: str) -> str:
        return run_file(run_id, "report.html")

    @server.resource(
        "aim://runs/{run_id}/result.json",
        name="run_result",
        description="The result of a finished run (description, labels, evidence).",
        mime_type="application/json",
    )
    def run_result(run_id: str) -> str:
        return run_file(run_id, "result.json")


def _add_prompts(server: MCPServer, state: AimMcpState) -> None:
    tool_names = [spec.name for spec in state.specs if spec.name not in ("new_session",)]

    @server.prompt(
        name="describe_unit",
        title="Describe a unit of a vision model",
        description="The neuron-description task (MAIA style): run experiments, then answer with "
        "[DESCRIPTION] and [LABEL]. Give model+layer+unit, or synthetic, or nothing to choose later.",
    )
    def describe_unit(model: str = "", layer: str = "", unit: str = "", synthetic: str = "") -> str:
        return neuron_task(model=model, layer=layer, unit=unit, synthetic=synthetic, tools=tool_names)
