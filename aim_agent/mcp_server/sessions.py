"""Per-client state of the MCP server, and how a request finds its client's state.

How mcp 2.x identifies a client (checked against mcp 2.3):

- handshake-era connections (``initialize``; the in-process ``Client(server, mode="legacy")``,
  stateful streamable HTTP) keep one ``Connection`` for the life of the connection; its
  ``outbound`` channel is the connection's own dispatcher, and streamable HTTP adds a
  ``session_id``;
- 2026-07-28 ("modern") requests carry their own envelope and get a fresh ``Connection`` per
  request. Over a duplex stream (stdio) every request of one stream shares the stream's
  notify-only ``outbound``; over stateless HTTP and the in-process modern path there is *no*
  identity at all (the shared no-channel sentinel).

So a request's session is, in order: the explicit ``session`` handle it names (minted by the
``new_session`` tool; works on every transport), the transport's session id, the
connection's standalone channel (one per stdio process / legacy connection); else the shared
default session, which a server can refuse (``require_session=True``, the HTTP default) so
that anonymous stateless clients never share state by accident.

Sessions keyed by a channel are held weakly: when the connection goes away, so does its
state. Explicit sessions live until evicted (least recently used beyond ``max_sessions``).
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aim_agent.tools.base import ToolContext, ToolError

SESSION_META_KEY = "aim/session"


@dataclass
class McpSession:
    """One client's world: its ToolContext (system, providers, experiment log) and run ids."""

    key: str
    ctx: ToolContext
    lock: threading.RLock = field(default_factory=threading.RLock)
    runs: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)

    def touch(self) -> None:
        self.last_used = time.time()


class _Holder:
    """Weakly attached to a connection's channel; owns that connection's session."""

    def __init__(self, session: McpSession) -> None:
        self.session = session


class SessionRegistry:
    """Creates, finds and forgets :class:`McpSession` objects."""

    def __init__(
        self,
        context_factory: Callable[[], ToolContext],
        *,
        max_sessions: int = 32,
        require_session: bool = False,
    ) -> None:
        self._factory = context_factory
        self.max_sessions = max_sessions
        self.require_session = require_session
        self._explicit: OrderedDict[str, McpSession] = OrderedDict()
        self._by_transport: dict[str, McpSession] = {}
        self._by_channel: weakref.WeakKeyDictionary[Any, _Holder] = weakref.WeakKeyDictionary()
        self._default: McpSession | None = None
        self._lock = threading.Lock()

    # -- creation ---------------------------------------------------------------------------

    def _make(self, prefix: str) -> McpSession:
        return McpSession(key=f"{prefix}_{secrets.token_hex(8)}", ctx=self._factory())

    def new_explicit(self) -> McpSession:
        """A fresh session reachable only through its handle (``session.key``)."""
        session = self._make("s")
        with self._lock:
            self._explicit[session.key] = session
            while len(self._explicit) > self.max_sessions:
                self._explicit.popitem(last=False)
        return session

    def get_explicit(self, key: str) -> McpSession:
        with self._lock:
            session = self._explicit.get(key)
            if session is not None:
                self._explicit.move_to_end(key)
        if session is None:
            raise ToolError(
                f"unknown session {key!r}: it expired or was never created; call new_session for a fresh one "
                f"(at most {self.max_sessions} explicit sessions are kept)"
            )
        return session

    # -- lookup -----------------------------------------------------------------------------

    def resolve(self, request: Any | None, explicit: str | None = None) -> McpSession:
        """The session of a request (an ``mcp`` ``Context``, or None outside any request)."""
        handle = explicit or _meta_session(request)
        if handle:
            session = self.get_explicit(handle)
        else:
            session = self._implicit(request)
        session.touch()
        return session

    def _implicit(self, request: Any | None) -> McpSession:
        connection = _connection_of(request)
        session_id = getattr(connection, "session_id", None)
        if session_id:
            with self._lock:
                session = self._by_transport.get(session_id)
                if session is None:
                    session = self._by_transport[session_id] = self._make("t")
                    _on_close(connection, lambda: self._forget_transport(session_id))
            return session
        channel = getattr(connection, "outbound", None)
        if channel is not None and getattr(connection, "has_standalone_channel", False):
            with self._lock:
                holder = self._by_channel.get(channel)
                if holder is None:
                    holder = self._by_channel[channel] = _Holder(self._make("c"))
            return holder.session
        if self.require_session:
            raise ToolError(
                "this server runs over stateless HTTP, where requests carry no session: call new_session "
                "once and pass its 'session' value to every call (or set _meta['aim/session'])"
            )
        with self._lock:
            if self._default is None:
                self._default = self._make("d")
            return self._default

    def _forget_transport(self, session_id: str) -> None:
        with self._lock:
            self._by_transport.pop(session_id, None)

    def count(self) -> int:
        with self._lock:
            return len(self._explicit) + len(self._by_transport) + len(self._by_channel) + (self._default is not None)


def _connection_of(request: Any | None) -> Any | None:
    """The mcp ``Connection`` behind an mcpserver ``Context`` (None when there is none).

    mcp 2.3 exposes it only as ``ServerSession._connection``; read defensively so a later
    mcp release degrades to the default session instead of failing.
    """
    if request is None:
        return None
    try:
        request_context = request.request_context
    except (ValueError, AttributeError):
        return None
    session = getattr(request_context, "session", None)
    return getattr(session, "_connection", None) or getattr(session, "connection", None)


def _meta_session(request: Any | None) -> str | None:
    if request is None:
        return None
    try:
        meta = request.request_context.meta
    except (ValueError, AttributeError):
        return None
    if meta is None:
        return None
    value = meta.get(SESSION_META_KEY) if isinstance(meta, dict) else getattr(meta, SESSION_META_KEY, None)
    if value is None and hasattr(meta, "model_extra"):
        value = (meta.model_extra or {}).get(SESSION_META_KEY)
    return str(value) if value else None


def _on_close(connection: Any, callback: Callable[[], None]) -> None:
    stack = getattr(connection, "exit_stack", None)
    if stack is not None:
        # a closed stack: the session is simply kept until the process ends
        with contextlib.suppress(Exception):
            stack.callback(callback)
