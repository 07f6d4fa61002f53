"""The AIM MCP server on the SDK's low-level ``Server``: its documented request handlers.

``mcp.server.Server(on_list_tools=..., on_call_tool=..., on_list_resources=...,
on_list_resource_templates=..., on_read_resource=..., on_list_prompts=..., on_get_prompt=...,
lifespan=...)``: each handler takes the request context and the request's params and returns
the result model from ``mcp_types``. AIM publishes its own schemas (from each tool's pydantic
models) and answers every call through :func:`aim_agent.tools.base.invoke`; no SDK internals
are subclassed or read. The lifespan runs once per stdio or in-process connection, and holds
that connection's session (:mod:`.sessions`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import anyio.to_thread
from mcp import MCPError
from mcp.server import Server
from mcp_types import (
    INVALID_PARAMS,
    BlobResourceContents,
    CallToolRequestParams,
    CallToolResult,
    GetPromptRequestParams,
    GetPromptResult,
    ListPromptsResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    ListToolsResult,
    Prompt,
    PromptArgument,
    PromptMessage,
    ReadResourceRequestParams,
    ReadResourceResult,
    Resource,
    ResourceTemplate,
    TextContent,
    TextResourceContents,
)

from aim_agent.images import ImageStore, to_base64
from aim_agent.log import ExperimentLog
from aim_agent.mcp_server.bridge import (
    MAX_RESULT_BYTES,
    RESOURCE_NOT_FOUND,
    error_result,
    input_schema,
    mcp_wording,
    tool_definition,
)
from aim_agent.mcp_server.handles import HandleStore
from aim_agent.mcp_server.prompt import neuron_task
from aim_agent.mcp_server.runs import RunManager, default_runs_dir, writable_runs_dir
from aim_agent.mcp_server.sessions import (
    CONNECTION_KEY,
    Limits,
    McpSession,
    SessionRegistry,
    meta_session,
)
from aim_agent.mcp_server.state import AimMcpState, SessionRestorer
from aim_agent.models.trust import ModelPolicy
from aim_agent.providers import ProviderError
from aim_agent.tools.base import ToolContext, ToolError, ToolSpec

if TYPE_CHECKING:
    from aim_agent.config import AimConfig
    from aim_agent.plugins import AimPlugins


INSTRUCTIONS = """\
AIM runs interpretability experiments on units (neurons, SAE latents) of vision models.
Start with list_models / list_layers, choose a unit with load_system, then call
dataset_exemplars, text2image, edit_images, neuron, describe_images and log_experiment.
Images are returned as image content and referred to by their 'img_…' ids in later calls.
The prompt 'describe_unit' states the full task; start_interpret runs AIM's own agent instead.
"""
#: pixels one session's image store keeps (the oldest images go first beyond it)
SESSION_IMAGE_BYTES = 512 * 1024**2


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
    """A factory of fresh session contexts with the configured providers, an empty log and image store."""

    def provider(kind: str) -> Any:
        name = config.provider(kind)
        if name is None:
            return None
        try:
            return plugins.provider(kind, name)
        except Exception as exc:  # a missing plugin or weights: report on use, keep the rest usable
            return _Unavailable(kind, name, exc)

    def make() -> ToolContext:
        return ToolContext(
            system=None,
            text2image=provider("text2image"),
            editor=provider("editor"),
            describer=provider("describer"),
            log=ExperimentLog(None),
            image_size=config.image_size,
            seed=config.seed,
            images=ImageStore(max_bytes=SESSION_IMAGE_BYTES),
            exemplar_dataset=config.exemplar_dataset or None,
        )

    return make


@dataclass(frozen=True)
class ServerOptions:
    """How to build an AIM MCP server (:func:`build_server`); every field has a default."""

    config: AimConfig | None = None
    """providers, models and folders (default: :func:`aim_agent.config.load_config`)"""
    plugins: AimPlugins | None = None
    """the plugin manager (default: the process's)"""
    tools: Sequence[ToolSpec] | None = None
    """the experiment tools (default: every registered tool, core + plugins)"""
    context_factory: Callable[[], ToolContext] | None = None
    """makes each new session's :class:`ToolContext` (default: providers from ``config``)"""
    enable_code: bool = False
    """add ``run_code`` (the agent's sandbox)"""
    runs_dir: Path | str | None = None
    """where runs go (default :func:`.runs.default_runs_dir`: the configured one, else the user's data folder); it
    must be writable, else :class:`.runs.RunsDirError` is raised before any call. Session handles
    (:mod:`.handles`) are saved under ``<runs_dir>/.mcp-sessions``"""
    require_session: bool = False
    """a request that carries no session identity (stateless HTTP) must name a handle from ``new_session``"""
    trusted_models: Sequence[str] = ()
    """models clients may load besides ``config``'s ``[models]`` and the names model plugins register (the
    operator's ``--trust-model``)"""
    limits: Limits | None = None
    """bounds on the sessions (:class:`.sessions.Limits`)"""
    max_sessions: int | None = None
    """overrides ``limits.max_sessions``"""
    max_sessions_per_client: int | None = None
    """overrides ``limits.max_per_client``"""
    max_inline_images: int = 32
    """most images one tool result carries as image content"""
    max_result_bytes: int = MAX_RESULT_BYTES
    """most bytes of one tool result"""
    max_running: int = 2
    """agent runs (``start_interpret``) at once"""
    progress_interval: float = 1.0
    """seconds between progress notifications of a running tool"""
    name: str = "aim"
    """the server's name in the MCP handshake"""
    handle_scope: str = "stdio"
    """what session handles are valid under (:func:`.transport.http_app` sets the bearer token's digest)"""


class AimServer(Server[dict[str, Any]]):
    """The low-level ``mcp.server.Server`` with what it answers from: :attr:`aim`."""

    def __init__(self, state: AimMcpState, name: str) -> None:
        handlers = _Handlers(state)
        super().__init__(
            name,
            version=_version(),
            instructions=INSTRUCTIONS,
            lifespan=handlers.lifespan,
            get_tool_input_schema=handlers.tool_input_schema,
            on_list_tools=handlers.list_tools,
            on_call_tool=handlers.call_tool,
            on_list_resources=handlers.list_resources,
            on_list_resource_templates=handlers.list_resource_templates,
            on_read_resource=handlers.read_resource,
            on_list_prompts=handlers.list_prompts,
            on_get_prompt=handlers.get_prompt,
        )
        #: the server's sessions, runs, tool specs, model policy and options
        self.aim = state


def build_server(options: ServerOptions | None = None) -> AimServer:
    """Build the AIM MCP server (a low-level ``mcp.server.Server``; serve it with :mod:`.transport`).

    Everything is wired here, once, top-down: the session registry gets the run manager's ``busy`` and the
    handle store's ``restore``/``forget``; the state gets the registry and makes its session tools.
    """
    from aim_agent.config import apply_plugins, load_config
    from aim_agent.plugins import plugin_manager
    from aim_agent.tools.registry import all_tools

    options = options or ServerOptions()
    config = options.config or load_config()
    plugins = options.plugins or plugin_manager()
    apply_plugins(config, plugins)  # AIM_PLUGINS / aim.toml modules (already-registered ones are skipped)
    experiment_specs = list(options.tools) if options.tools is not None else all_tools(plugins)
    policy = ModelPolicy.from_config(config, options.trusted_models)
    overrides = {"max_sessions": options.max_sessions, "max_per_client": options.max_sessions_per_client}
    limits = dataclasses.replace(options.limits or Limits(), **{k: v for k, v in overrides.items() if v is not None})
    run_defaults: dict[str, Any] = {kind: config.provider(kind) for kind in ("text2image", "editor", "describer")}
    run_defaults.update(
        plugins=list(config.plugins) or None,
        seed=config.seed,
        image_size=config.image_size,
        dataset=config.exemplar_dataset,
    )
    runs_dir = options.runs_dir
    folder = writable_runs_dir(Path(runs_dir) if runs_dir else default_runs_dir(config))
    runs = RunManager(folder, max_running=options.max_running, defaults=run_defaults, trusted=policy.trusted())
    handles = HandleStore(runs.runs_dir / ".mcp-sessions", scope=options.handle_scope)
    registry = SessionRegistry(
        options.context_factory or default_context_factory(config, plugins),
        limits=limits,
        require_session=options.require_session,
        busy=lambda run_ids: any(runs.is_running(run_id) for run_id in run_ids),
        restore=SessionRestorer(handles, policy, plugins),
        forget=handles.forget,
    )
    state = AimMcpState(
        plugins=plugins,
        registry=registry,
        runs=runs,
        policy=policy,
        experiment_specs=experiment_specs,
        max_inline_images=options.max_inline_images,
        max_result_bytes=options.max_result_bytes,
        progress_interval=options.progress_interval,
        handles=handles,
        enable_code=options.enable_code,
    )
    return AimServer(state, options.name)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aim-agent")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


# -- the request handlers -------------------------------------------------------------------------

RESOURCE_TEMPLATES = [
    ResourceTemplate(
        uri_template="aim://session/log{?session}",
        name="experiment_log",
        description="This session's experiment log as JSON (entries with image ids, activations, prompts).",
        mime_type="application/json",
    ),
    ResourceTemplate(
        uri_template="aim://image/{image_id}{?session}",
        name="image",
        description="An image of this session by its img_… id (PNG).",
        mime_type="image/png",
    ),
    ResourceTemplate(
        uri_template="aim://runs/{run_id}/report.html{?session}",
        name="run_report",
        description="The HTML report of a finished run this session started.",
        mime_type="text/html",
    ),
    ResourceTemplate(
        uri_template="aim://runs/{run_id}/result.json{?session}",
        name="run_result",
        description="The result of a finished run this session started (description, labels, evidence).",
        mime_type="application/json",
    ),
]
PROMPT = Prompt(
    name="describe_unit",
    title="Describe a unit of a vision model",
    description="The neuron-description task (MAIA style): run experiments, then answer with "
    "[DESCRIPTION] and [LABEL]. Give model+layer+unit, or synthetic, or nothing to choose later.",
    arguments=[
        PromptArgument(name="model", description="a model list_models offers", required=False),
        PromptArgument(name="layer", description="a layer of it (list_layers)", required=False),
        PromptArgument(name="unit", description="the unit index", required=False),
        PromptArgument(name="synthetic", description="or a synthetic neuron's name or index", required=False),
    ],
)


def _resource_error(message: str, uri: str, code: int = RESOURCE_NOT_FOUND) -> MCPError:
    """MCP's 'resource not found' (-32002) unless the request itself was wrong (``code``)."""
    return MCPError(code=code, message=mcp_wording(message), data={"uri": uri})


class _Handlers:
    """The low-level server's handlers for one :class:`AimMcpState`."""

    def __init__(self, state: AimMcpState) -> None:
        self.state = state

    @asynccontextmanager
    async def lifespan(self, server: Server) -> AsyncIterator[dict[str, Any]]:
        """Once per stdio / in-process connection (once per app over HTTP): the connection's state."""
        connection = self.state.registry.open_connection()
        try:
            yield {CONNECTION_KEY: connection}
        finally:
            self.state.registry.close_connection(connection)

    def tool_input_schema(self, name: str) -> dict[str, Any] | None:
        spec = self.state.specs.get(name)
        return None if spec is None else input_schema(spec)

    async def list_tools(self, ctx: Any, params: Any) -> ListToolsResult:
        return ListToolsResult(tools=[tool_definition(spec) for spec in self.state.specs.values()])

    async def call_tool(self, ctx: Any, params: CallToolRequestParams) -> CallToolResult:
        spec = self.state.specs.get(params.name)
        if spec is None:
            return error_result(f"unknown tool {params.name!r}; this server has: {', '.join(self.state.specs)}")
        return await self.state.call(spec, params.arguments, ctx)

    async def list_resources(self, ctx: Any, params: Any) -> ListResourcesResult:
        """The caller's concrete resources: its session log, and its recent runs' results and reports."""
        resources = [
            Resource(
                uri="aim://session/log",
                name="experiment_log",
                title="This session's experiment log",
                description="The loaded unit and every experiment logged in this session (JSON).",
                mime_type="application/json",
            )
        ]
        try:
            session = await anyio.to_thread.run_sync(self.state.registry.resolve, ctx, meta_session(ctx))
        except ToolError:  # stateless HTTP without a handle: nothing of its own yet
            return ListResourcesResult(resources=resources)
        owner = self.state.run_owner(session) if session.handle or session.runs else None
        records = await anyio.to_thread.run_sync(self.state.runs.owned, owner) if owner else []
        for record in records:
            files = [("result.json", "application/json", "result")]
            if record.status == "finished":
                files.append(("report.html", "text/html", "HTML report"))
            resources.extend(
                Resource(
                    uri=f"aim://runs/{record.id}/{filename}",
                    name=f"{record.id}/{filename}",
                    description=f"The {what} of run {record.id} ({record.status}).",
                    mime_type=mime,
                )
                for filename, mime, what in files
            )
        return ListResourcesResult(resources=resources)

    async def list_resource_templates(self, ctx: Any, params: Any) -> ListResourceTemplatesResult:
        return ListResourceTemplatesResult(resource_templates=RESOURCE_TEMPLATES)

    async def read_resource(self, ctx: Any, params: ReadResourceRequestParams) -> ReadResourceResult:
        uri = str(params.uri)
        parts = urlsplit(uri)
        handles = parse_qs(parts.query).get("session")
        handle = handles[0] if handles else None
        path = parts.path.strip("/")
        try:
            session = await anyio.to_thread.run_sync(self.state.registry.resolve, ctx, handle)
        except ToolError as exc:
            raise _resource_error(str(exc), uri, INVALID_PARAMS) from None
        if parts.scheme != "aim":
            raise _resource_error(f"unknown resource {uri!r}: AIM's resources are aim://… (see the templates)", uri)
        if parts.netloc == "session" and path == "log":
            text = await anyio.to_thread.run_sync(self._log_json, session)
            return ReadResourceResult(contents=[TextResourceContents(uri=uri, mime_type="application/json", text=text)])
        if parts.netloc == "image":
            try:
                image = await anyio.to_thread.run_sync(self.state.image, path, session.ctx)
            except (KeyError, ValueError) as exc:
                raise _resource_error(str(exc.args[0] if exc.args else exc), uri) from None
            blob = await anyio.to_thread.run_sync(to_base64, image)
            return ReadResourceResult(contents=[BlobResourceContents(uri=uri, mime_type="image/png", blob=blob)])
        run_id, _, filename = path.partition("/")
        if parts.netloc == "runs" and filename in ("report.html", "result.json"):
            text = await anyio.to_thread.run_sync(self._run_file, session, run_id, filename, uri)
            mime = "text/html" if filename.endswith(".html") else "application/json"
            return ReadResourceResult(contents=[TextResourceContents(uri=uri, mime_type=mime, text=text)])
        raise _resource_error(f"unknown resource {uri!r}: AIM's resources follow the listed templates", uri)

    @staticmethod
    def _log_json(session: McpSession) -> str:
        ctx = session.ctx
        log = ctx.log or ExperimentLog()
        system = ctx.system.describe() if ctx.system else None
        return json.dumps({"system": system, "entries": log.dump()}, indent=1)

    def _run_file(self, session: McpSession, run_id: str, filename: str, uri: str) -> str:
        try:
            record = self.state.runs.get(run_id, self.state.run_owner(session))
        except ToolError as exc:
            raise _resource_error(str(exc), uri) from None
        path = record.dir / "result.json"
        if not path.is_file():
            raise _resource_error(f"{filename} of run {run_id!r} does not exist yet (run status: {record.status})", uri)
        from aim_agent.agent.record import read_run_record
        from aim_agent.report import render_report

        # never a synthetic unit's answer to a client: it may be the scientist being measured
        if filename == "report.html":
            return render_report(record.dir, ground_truth=False)
        return read_run_record(record.dir).model_copy(update={"ground_truth": None}).model_dump_json(indent=2)

    async def list_prompts(self, ctx: Any, params: Any) -> ListPromptsResult:
        return ListPromptsResult(prompts=[PROMPT])

    async def get_prompt(self, ctx: Any, params: GetPromptRequestParams) -> GetPromptResult:
        if params.name != PROMPT.name:
            message = f"unknown prompt {params.name!r}; this server has describe_unit"
            raise MCPError(code=INVALID_PARAMS, message=message)
        given = {k: str(v) for k, v in (params.arguments or {}).items() if k in ("model", "layer", "unit", "synthetic")}
        text = neuron_task(**given, tools=list(self.state.specs))
        return GetPromptResult(
            description=PROMPT.description,
            messages=[PromptMessage(role="user", content=TextContent(type="text", text=text))],
        )


__all__ = ["AimMcpState", "AimServer", "ServerOptions", "build_server", "default_context_factory"]
