"""Per-client state of the MCP server, and how a request finds its client's state.

A request's session is, in order:

1. the explicit handle it names (the ``session`` argument, or ``_meta["aim/session"]``),
   minted by ``new_session`` or ``load_system``: 192 random bits, so holding it is what gives
   access. A handle this process does not hold is restored from the :mod:`.handles` store
   (a client that opens a new connection, or a new server process, for every call);
2. its HTTP session: the ``Mcp-Session-Id`` header of a handshake-era HTTP request (the SDK
   refuses unknown ids on those; a 2026-07-28 request's header is unchecked, so ignored);
3. its connection (stdio, in-process clients): on those transports the server's lifespan
   runs once per connection, and what it yields holds that connection's session;
4. else none (a stateless HTTP request): refused with a message that asks for
   ``new_session`` (``require_session=True``, the HTTP default), or the server-wide default
   session.

Only the SDK's documented request context is read: ``ServerRequestContext.request`` (the
HTTP request, for its header), ``.meta`` and ``.lifespan_context``.

Limits, so that one client can neither exhaust nor disturb another's state: a client (a
connection, an HTTP session, or all anonymous stateless HTTP callers together) keeps at most
``max_per_client`` explicit sessions; the server holds at most ``max_sessions`` in all;
explicit and HTTP sessions idle for ``idle_timeout_s`` close (unless a run they started is
still going). Creating a session beyond a limit is refused with an error that says which
limit and what to do; no call ever evicts another client's session.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from aim_agent.mcp_server.handles import new_handle
from aim_agent.tools.base import ToolContext, ToolError

SESSION_META_KEY = "aim/session"
#: what the server's lifespan yields: ``{CONNECTION_KEY: Connection}``
CONNECTION_KEY = "aim_connection"
ANONYMOUS = "anonymous"


@dataclass
class McpSession:
    """One client's world: its ToolContext (system, providers, experiment log, images) and run ids."""

    key: str
    ctx: ToolContext
    owner: str
    #: reachable by its handle (new_session), not by the transport
    explicit: bool = False
    #: the handle that reaches it (and names its saved state, :mod:`.handles`), once it has one
    handle: str | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)
    runs: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)

    def touch(self) -> None:
        self.last_used = time.monotonic()


@dataclass
class Connection:
    """One stdio or in-process connection, as the server's lifespan saw it open."""

    key: str = field(default_factory=lambda: f"c_{secrets.token_hex(8)}")
    session: McpSession | None = None


class SessionRegistry:
    """Creates, finds and closes :class:`McpSession` objects, within per-client and global limits."""

    def __init__(
        self,
        context_factory: Callable[[], ToolContext],
        *,
        max_sessions: int = 64,
        max_per_client: int = 8,
        idle_timeout_s: float = 3600.0,
        require_session: bool = False,
    ) -> None:
        if max_sessions < 1 or max_per_client < 1:
            raise ValueError("max_sessions and max_per_client must be at least 1")
        self._factory = context_factory
        self.max_sessions = max_sessions
        self.max_per_client = max_per_client
        self.idle_timeout_s = idle_timeout_s
        self.require_session = require_session
        #: whether a session must be kept although idle (it started a run that is still going)
        self.busy: Callable[[McpSession], bool] = lambda session: False
        #: the session saved under a handle this process does not hold (None: unknown or expired)
        self.restore: Callable[[str], McpSession | None] = lambda handle: None
        self._explicit: dict[str, McpSession] = {}
        self._http: dict[str, McpSession] = {}
        self._connections: dict[str, Connection] = {}
        self._default: McpSession | None = None
        self._lock = threading.Lock()

    # -- connections (the server's lifespan) -----------------------------------------------------

    def open_connection(self) -> Connection:
        connection = Connection()
        with self._lock:
            self._connections[connection.key] = connection
        return connection

    def close_connection(self, connection: Connection) -> None:
        """The connection ended: its own session goes (runs it started go on, see RunManager)."""
        with self._lock:
            self._connections.pop(connection.key, None)
            connection.session = None

    # -- who is asking ---------------------------------------------------------------------------

    def client_of(self, request: Any | None) -> str:
        """The identity of the client behind a request: its HTTP session, its connection, or anonymous."""
        sid = _http_session_id(request)
        if sid:
            return f"http:{sid}"
        connection = _connection_of(request)
        if connection is not None:
            return f"conn:{connection.key}"
        return ANONYMOUS

    def resolve(self, request: Any | None, handle: str | None = None) -> McpSession:
        """The session of a request (a ``ServerRequestContext``, or None outside any request)."""
        handle = handle or meta_session(request)
        if handle:
            with self._lock:
                session = self._explicit.get(handle)
            if session is None:
                with self._lock:  # a restored session counts like any other: refused when the server is full
                    self._make_room(f"handle:{handle}", explicit=False)
                session = self.restore(handle)
                if session is not None:
                    with self._lock:
                        session = self._explicit.setdefault(handle, session)
            if session is None:
                raise ToolError(
                    f"unknown session {handle[:80]!r}: it was closed, expired, or never existed; call load_system "
                    "(or new_session) for a fresh handle"
                )
        else:
            session = self._implicit(request)
        session.touch()
        return session

    def forget_http(self, sid: str) -> None:
        """The HTTP session ``sid`` was closed by its client (DELETE): its state goes."""
        with self._lock:
            self._http.pop(sid, None)

    def _implicit(self, request: Any | None) -> McpSession:
        sid = _http_session_id(request)
        if sid:
            with self._lock:
                session = self._http.get(sid)
                if session is None:
                    self._make_room(f"http:{sid}", explicit=False)
                    session = self._http[sid] = self._make("h", f"http:{sid}")
            return session
        connection = _connection_of(request)
        if connection is not None:
            with self._lock:
                if connection.session is None:
                    self._make_room(f"conn:{connection.key}", explicit=False)
                    connection.session = self._make("c", f"conn:{connection.key}")
                return connection.session
        if self.require_session:
            raise ToolError(
                "this server runs over stateless HTTP, where requests carry no session: call new_session "
                "once and pass its 'session' value to every call (or set _meta['aim/session'])"
            )
        with self._lock:
            if self._default is None:
                self._default = self._make("d", ANONYMOUS)
            return self._default

    # -- explicit sessions -----------------------------------------------------------------------

    def new_explicit(self, owner: str) -> McpSession:
        """A fresh session reachable only through its handle, owned by ``owner`` (:meth:`client_of`)."""
        with self._lock:
            self._make_room(owner, explicit=True)
            session = McpSession(key=new_handle(), ctx=self._factory(), owner=owner, explicit=True)
            session.handle = session.key
            self._explicit[session.key] = session
        return session

    def give_handle(self, session: McpSession) -> str:
        """The handle of ``session``, minted now if it has none (a connection's session): later
        calls, on any connection, reach the same session with it."""
        with self._lock:
            if session.handle is None:
                session.handle = new_handle()
            self._explicit[session.handle] = session
            return session.handle

    def adopt(self, handle: str, ctx: ToolContext, owner: str) -> McpSession:
        """A session for a restored handle (see :attr:`restore`), not yet registered."""
        return McpSession(key=handle, ctx=ctx, owner=owner, explicit=True, handle=handle)

    def new_context(self) -> ToolContext:
        return self._factory()

    def close_explicit(self, handle: str) -> bool:
        with self._lock:
            session = self._explicit.pop(handle, None)
            if session is not None:
                session.handle = None  # a connection that held it keeps its session, not the handle
            return session is not None

    # -- bookkeeping -----------------------------------------------------------------------------

    def _make(self, prefix: str, owner: str) -> McpSession:
        return McpSession(key=f"{prefix}_{secrets.token_urlsafe(16)}", ctx=self._factory(), owner=owner)

    def _make_room(self, owner: str, *, explicit: bool) -> None:
        """Refuse a new session beyond the client's or the server's limit (after closing idle ones)."""
        self._expire()
        if explicit:
            mine = sum(s.owner == owner for s in self._explicit.values())
            if mine >= self.max_per_client:
                raise ToolError(
                    f"this client already holds {mine} sessions, the most one client may hold: close one it no "
                    "longer needs with close_session, or reuse a handle it has. Sessions idle for "
                    f"{self.idle_timeout_s / 60:.0f} min close by themselves"
                )
        if self._count() >= self.max_sessions:
            raise ToolError(
                f"the server holds {self.max_sessions} sessions, its limit (aim mcp --max-sessions): close a "
                f"session you no longer need with close_session, or try again later (idle sessions close after "
                f"{self.idle_timeout_s / 60:.0f} min)"
            )

    def _expire(self) -> None:
        """Close explicit and HTTP sessions idle longer than the timeout (lock held)."""
        limit = time.monotonic() - self.idle_timeout_s
        for table in (self._explicit, self._http):
            for key in [k for k, s in table.items() if s.last_used < limit and not self.busy(s)]:
                del table[key]

    def _count(self) -> int:
        held = {id(s) for s in [*self._explicit.values(), *self._http.values()]}
        held |= {id(c.session) for c in self._connections.values() if c.session is not None}
        return len(held) + (self._default is not None and id(self._default) not in held)

    def count(self) -> int:
        with self._lock:
            return self._count()


def _http_session_id(request: Any | None) -> str | None:
    """The ``Mcp-Session-Id`` of a handshake-era HTTP request (one the SDK checked), else None.

    The SDK answers an unknown id with 404 on handshake-era requests only; a 2026-07-28
    request's header is not checked, so it names no session here (it would be a client's
    free choice).
    """
    if getattr(request, "protocol_version", None) not in HANDSHAKE_PROTOCOL_VERSIONS:
        return None
    http = getattr(request, "request", None)
    headers = getattr(http, "headers", None)
    if headers is None:
        return None
    value = headers.get("mcp-session-id")
    return str(value) if value else None


def _connection_of(request: Any | None) -> Connection | None:
    """The stdio/in-process connection of a request; None over HTTP, where the lifespan is the app's."""
    if request is None or getattr(request, "request", None) is not None:
        return None
    state = getattr(request, "lifespan_context", None)
    connection = state.get(CONNECTION_KEY) if isinstance(state, dict) else None
    return connection if isinstance(connection, Connection) else None


def meta_session(request: Any | None) -> str | None:
    meta = getattr(request, "meta", None)
    if not meta:
        return None
    value = meta.get(SESSION_META_KEY) if isinstance(meta, dict) else getattr(meta, SESSION_META_KEY, None)
    return str(value) if value else None
