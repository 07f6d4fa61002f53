"""What one AIM MCP server holds (:class:`AimMcpState`): its sessions, runs, tool specs, model policy and
options, and how it answers one tool call. :func:`aim_agent.mcp_server.server.build_server` makes it; the
session tools (:mod:`.session_tools`) and the server's handlers use it."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from mcp_types import CallToolResult
from PIL import Image

from aim_agent.images import ImageStore, decode_image
from aim_agent.log import ExperimentLog
from aim_agent.mcp_server.bridge import Counter, error_result, mcp_wording, output_result, run_blocking
from aim_agent.mcp_server.handles import HandleStore
from aim_agent.mcp_server.runs import RunManager
from aim_agent.mcp_server.session_tools import make_session_tools
from aim_agent.mcp_server.sessions import McpSession, SessionRegistry, is_stateless, meta_session
from aim_agent.mcp_server.systems import LoadSystemInput, build_system
from aim_agent.models.trust import ModelPolicy, trusting
from aim_agent.tools.base import Caller, ToolContext, ToolError, ToolSpec, error_text, invoke

if TYPE_CHECKING:
    from aim_agent.plugins import AimPlugins

logger = logging.getLogger("aim_agent.mcp")

_IMAGE_ID = re.compile(r"^img_[0-9a-f]{1,64}$")


class AimMcpState:
    """What one server holds: sessions, runs, tool specs, the model policy, options."""

    def __init__(
        self,
        *,
        plugins: AimPlugins,
        registry: SessionRegistry,
        runs: RunManager,
        policy: ModelPolicy,
        experiment_specs: Sequence[ToolSpec],
        max_inline_images: int,
        max_result_bytes: int,
        progress_interval: float,
        handles: HandleStore,
        enable_code: bool = False,
    ) -> None:
        self.plugins = plugins
        self.handles = handles
        self.registry = registry
        self.runs = runs
        self.policy = policy
        #: the tools run_code's sandbox may call; :attr:`specs` adds the MCP session tools to them
        self.experiment_specs = list(experiment_specs)
        self.max_inline_images = max_inline_images
        self.max_result_bytes = max_result_bytes
        self.progress_interval = progress_interval
        self._model_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        session_specs = make_session_tools(self, enable_code=enable_code)
        clash = {s.name for s in session_specs} & {s.name for s in self.experiment_specs}
        if clash:
            raise ValueError(f"plugin tool name(s) {', '.join(sorted(clash))} clash with AIM's MCP session tools")
        #: every tool this server offers: the experiment tools and the MCP session tools
        self.specs: dict[str, ToolSpec] = {spec.name: spec for spec in [*self.experiment_specs, *session_specs]}

    def model_lock(self, ctx: ToolContext) -> threading.Lock | None:
        """One lock per model name: two sessions never run the same module's hooks at once."""
        if ctx.system is None:
            return None
        with self._guard:
            return self._model_locks.setdefault(ctx.system.model_name, threading.Lock())

    @staticmethod
    def image(iid: str, ctx: ToolContext) -> Image.Image:
        """An image by id: from the session's store, else from its log's image directory."""
        if not _IMAGE_ID.match(iid):
            raise KeyError(f"invalid image id {iid!r}: ids look like 'img_…' and come from tool results")
        try:
            return ctx.images.pixels(iid)
        except KeyError:
            log = ctx.log
            path = log.image_dir / f"{iid}.png" if log is not None and log.image_dir is not None else None
            if path is not None and path.is_file():
                return decode_image(path.read_bytes())  # the pixel check applies to files too
            raise

    async def call(self, spec: ToolSpec, arguments: dict[str, Any] | None, request: Any | None) -> CallToolResult:
        """Answer one MCP call of ``spec``: find the session, :func:`invoke` in a worker thread, convert."""
        args = dict(arguments or {})
        handle = None
        if not spec.stateless:  # 'session' is the handle here, not the tool's own argument
            handle = args.pop("session", None) or meta_session(request)
            if handle is not None and not isinstance(handle, str):
                return error_result("session must be a string: the handle load_system or new_session returned")
        try:
            session = None if spec.stateless else await anyio.to_thread.run_sync(self.registry.resolve, request, handle)
        except ToolError as exc:
            return error_result(mcp_wording(str(exc)))
        client = self.registry.client_of(request)
        images = ImageStore(max_images=256)  # a stateless tool's images go to the caller's session, if any
        if session is None:
            with contextlib.suppress(ToolError):  # no session (stateless HTTP): a private store
                images = self.registry.resolve(request).ctx.images

        def work(progress: Any) -> CallToolResult:
            with trusting(*self.policy.trusted()):  # what the operator configured, nothing a client sent
                if session is None:
                    ctx = ToolContext(images=images, caller=Caller(client=client, progress=progress))
                    return self._result(invoke(spec, args, ctx), ctx, None)
                with session.lock:
                    ctx = session.ctx
                    ctx.caller = Caller(client=client, progress=progress, session=session)
                    try:
                        with ExitStack() as stack:
                            lock = self.model_lock(ctx)
                            if lock is not None:
                                stack.enter_context(lock)
                            output = invoke(spec, args, ctx)
                        result = self._result(output, ctx, handle)
                        if handle is not None:  # a client that may come back on another connection
                            self.save_session(session, output)
                        return result
                    finally:
                        ctx.caller = None

        reporter = getattr(request, "session", None)
        counter = _made_images(spec, args, session.ctx.images if session is not None else images)
        try:
            result: CallToolResult = await run_blocking(
                reporter, work, spec.name, interval=self.progress_interval, counter=counter
            )
            return result
        except ToolError as exc:
            return error_result(mcp_wording(str(exc)))
        except Exception as exc:  # e.g. an output a plugin built that cannot be serialised
            logger.exception("tool %s failed outside its own code", spec.name)
            return error_result(mcp_wording(error_text(spec, exc)))

    def _result(self, output: Any, ctx: ToolContext, handle: str | None) -> CallToolResult:
        return output_result(
            output, ctx, max_images=self.max_inline_images, max_bytes=self.max_result_bytes, handle=handle
        )

    # -- sessions that outlive a connection (:mod:`.handles`) --------------------------------------

    def handle_of(self, session: McpSession) -> str:
        """The handle of ``session`` (minted now if it has none), known to the store from now on."""
        handle = self.registry.give_handle(session)
        if self.handles.load(handle) is None:
            client = session.owner if is_stateless(session.owner) else None
            self.handles.save(handle, log=session.ctx.log.dump() if session.ctx.log is not None else [], client=client)
        return handle

    def run_owner(self, session: McpSession) -> str:
        """Who owns the runs ``session`` starts: its handle's digest (kept across processes)."""
        return self.handles.owner_id(self.handle_of(session))

    def save_session(self, session: McpSession, output: Any = None) -> None:
        """Save a handle's log and the images of this call, so a later process can restore it."""
        handle = self.registry.give_handle(session)
        ctx = session.ctx
        folder = self.handles.image_dir(handle)
        folder.mkdir(parents=True, exist_ok=True)
        if ctx.log is not None and ctx.log.image_dir is None:
            ctx.log.image_dir = folder  # later entries save their images as they are logged
        entries = ctx.log.dump() if ctx.log is not None else []
        images = output.all_images() if output is not None else []
        ids = [ctx.images.ensure(image) for image in images] + [i for e in entries for i in e["image_ids"]]
        for iid in dict.fromkeys(ids):
            with contextlib.suppress(KeyError, OSError):  # an evicted image stays listed by id only
                ctx.images.save_record(folder, iid)
        self.handles.prune_images(handle)
        self.handles.save(handle, log=entries)



class SessionRestorer:
    """Brings back a session saved under a handle by an earlier call (another connection or process): the
    registry's ``restore`` (:class:`.sessions.SessionRegistry`), which hands it the registry to adopt it."""

    def __init__(self, handles: HandleStore, policy: ModelPolicy, plugins: AimPlugins) -> None:
        self.handles = handles
        self.policy = policy
        self.plugins = plugins

    def __call__(self, registry: SessionRegistry, handle: str) -> McpSession | None:
        """The session saved under ``handle``, adopted by ``registry``; None when unknown or expired."""
        saved = self.handles.load(handle)
        if saved is None:
            return None
        client = saved.get("client")
        stateless = isinstance(client, str) and is_stateless(client)  # its idle rule holds in this process too
        idle = time.time() - float(saved.get("last_used") or 0)
        if stateless and idle > registry.limits.stateless_idle_s:
            self.handles.forget(handle)
            return None
        ctx = registry.new_context()
        folder = self.handles.image_dir(handle)
        ctx.images.load_dir(folder)
        if saved.get("system"):
            with trusting(*self.policy.trusted()):  # the same rules as the first load_system
                ctx.system, _ = build_system(self.policy, self.plugins, LoadSystemInput.model_validate(saved["system"]))
        ctx.log = ExperimentLog.load(list(saved.get("log") or []), image_dir=folder, images=ctx.images)
        owner = str(client) if stateless else f"handle:{self.handles.owner_id(handle)}"
        return registry.adopt(handle, ctx, owner=owner)


#: tools whose providers report no progress, and how many images a call asks for: while one
#: runs, its progress is the images it has added to the session's store, of that many
IMAGES_ASKED: dict[str, Callable[[dict[str, Any]], int]] = {
    "text2image": lambda args: len(args.get("prompts") or []),
}


def _made_images(spec: ToolSpec, args: dict[str, Any], store: ImageStore) -> Counter | None:
    asked = IMAGES_ASKED.get(spec.name)
    total = asked(args) if asked is not None else 0
    if not total:
        return None
    before = len(store)
    return lambda: (float(min(max(len(store) - before, 0), total)), float(total))
