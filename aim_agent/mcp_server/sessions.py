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

Limits, so that no client can exhaust the server for another (see :class:`Limits`):

- a connection or an HTTP session keeps at most ``max_per_client`` sessions from
  ``new_session``; a stateless HTTP client is known by its address only, and one address
  holds at most ``max_per_address`` handles, all stateless clients of the server (of its one
  bearer token) at most ``max_stateless_handles``;
- a stateless client's handle unused for ``stateless_idle_s`` expires (its saved state goes
  too): short scripts that never call ``close_session`` free their place within minutes;
- sessions in memory are at most ``max_sessions``; one with a handle, idle for
  ``spill_after_s``, leaves memory when room is needed (its state is on disk, :mod:`.handles`,
  and comes back on its next call), so idle handles never lock a newcomer out;
- other sessions idle for ``idle_timeout_s`` close (unless a run they started is still going).

A session beyond a limit is refused with an error that says which limit, when to retry and
how to close sessions; no call ever evicts another client's live state.
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
#: the prefix of a stateless HTTP client's identity: its address
ADDRESS = "addr:"


@dataclass(frozen=True)
class Limits:
    """How many sessions the server keeps, and for how long (``aim mcp`` options of the same names)."""

    max_sessions: int = 64
    """sessions held in memory, all clients together (idle ones with a handle make room, see spill_after_s)"""
    max_per_client: int = 8
    """sessions one connection or HTTP session may open with new_session"""
    max_per_address: int = 64
    """handles the stateless HTTP clients of one address may hold"""
    max_stateless_handles: int = 256
    """handles all stateless HTTP clients may hold together (the server has one bearer token: its allowance)"""
    idle_timeout_s: float = 3600.0
    """a connection's or HTTP session's extra sessions close after this long unused"""
    stateless_idle_s: float = 600.0
    """a stateless client's handle expires after this long unused"""
    spill_after_s: float = 30.0
    """a session with a handle, idle this long, may leave memory to make room (it is restored on use)"""

    def __post_init__(self) -> None:
        if min(self.max_sessions, self.max_per_client, self.max_per_address, self.max_stateless_handles) < 1:
            raise ValueError("session limits must be at least 1")
        if min(self.idle_timeout_s, self.stateless_idle_s) <= 0 or self.spill_after_s < 0:
            raise ValueError("session timeouts must be positive")


def is_stateless(owner: str) -> bool:
    """Whether ``owner`` (:meth:`SessionRegistry.client_of`) is a client without a transport session."""
    return owner == ANONYMOUS or owner.startswith(ADDRESS)


@dataclass
class _Held:
    """A handle the registry minted, whether or not its session is in memory now."""

    owner: str
    last_used: float
    #: minted by new_session: counts against its owner's allowance
    counted: bool
    #: the runs its session started (shared with the session object)
    runs: list[str]


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


@dataclass
class Connection:
    """One stdio or in-process connection, as the server's lifespan saw it open."""

    key: str = field(default_factory=lambda: f"c_{secrets.token_hex(8)}")
    session: McpSession | None = None


class SessionRegistry:
    """Creates, finds and closes :class:`McpSession` objects, within the :class:`Limits`."""

    def __init__(
        self,
        context_factory: Callable[[], ToolContext],
        *,
        limits: Limits | None = None,
        require_session: bool = False,
        clock: Callable[[], float] = time.monotonic,
        busy: Callable[[list[str]], bool] = lambda runs: False,
        restore: Callable[[SessionRegistry, str], McpSession | None] = lambda registry, handle: None,
        forget: Callable[[str], object] = lambda handle: None,
    ) -> None:
        self._factory = context_factory
        self.limits = limits or Limits()
        self.require_session = require_session
        self.clock = clock
        #: whether one of these runs (a session's) is still going: its session is kept although idle
        self.busy = busy
        #: the session saved under a handle this process does not hold (None: unknown or expired); it is
        #: handed this registry, to make the session's context and adopt it
        self.restore = restore
        #: remove what is saved under an expired handle
        self.forget = forget
        self._explicit: dict[str, McpSession] = {}
        self._held: dict[str, _Held] = {}
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
        """The identity of the client behind a request: its HTTP session, its connection, else its
        address (a stateless HTTP request), else anonymous."""
        sid = _http_session_id(request)
        if sid:
            return f"http:{sid}"
        connection = _connection_of(request)
        if connection is not None:
            return f"conn:{connection.key}"
        address = _client_address(request)
        return f"{ADDRESS}{address}" if address else ANONYMOUS

    def resolve(self, request: Any | None, handle: str | None = None) -> McpSession:
        """The session of a request (a ``ServerRequestContext``, or None outside any request)."""
        handle = handle or meta_session(request)
        if handle:
            session = self._by_handle(handle)
        else:
            session = self._implicit(request)
        now = self.clock()
        session.last_used = now
        with self._lock:
            held = self._held.get(session.handle or "")
            if held is not None:
                held.last_used = now
        return session

    def _by_handle(self, handle: str) -> McpSession:
        with self._lock:
            self._expire(self.clock())
            session = self._explicit.get(handle)
        if session is None:
            with self._lock:  # a restored session counts like any other: refused when the server is full
                self._make_room(f"handle:{handle}", new_handle=False)
            session = self.restore(self, handle)
            if session is not None:
                with self._lock:
                    held = self._held.get(handle)
                    if held is not None:  # it left memory to make room: the same owner, the same runs
                        session.owner, session.runs = held.owner, held.runs
                    else:
                        self._held[handle] = _Held(session.owner, self.clock(), False, session.runs)
                    session = self._explicit.setdefault(handle, session)
        if session is None:
            raise ToolError(
                f"unknown session {handle[:80]!r}: it was closed, expired (a stateless client's handle expires after "
                f"{_minutes(self.limits.stateless_idle_s)} unused), or never existed; call new_session (or "
                "load_system) for a fresh handle"
            )
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
                    self._make_room(f"http:{sid}", new_handle=False)
                    session = self._http[sid] = self._make("h", f"http:{sid}")
            return session
        connection = _connection_of(request)
        if connection is not None:
            with self._lock:
                if connection.session is None:
                    self._make_room(f"conn:{connection.key}", new_handle=False)
                    connection.session = self._make("c", f"conn:{connection.key}")
                return connection.session
        if self.require_session:
            raise ToolError(
                "this server runs over stateless HTTP, where requests carry no session: call new_session "
                "once and pass its 'session' value to every call (or set _meta['aim/session']); "
                "close_session(handle) when done"
            )
        with self._lock:
            if self._default is None:
                self._default = self._make("d", ANONYMOUS)
            return self._default

    # -- explicit sessions -----------------------------------------------------------------------

    def new_explicit(self, owner: str) -> McpSession:
        """A fresh session reachable only through its handle, owned by ``owner`` (:meth:`client_of`)."""
        with self._lock:
            self._make_room(owner, new_handle=True)
            session = McpSession(key=new_handle(), ctx=self._factory(), owner=owner, explicit=True)
            session.handle = session.key
            session.last_used = self.clock()
            self._explicit[session.key] = session
            self._held[session.key] = _Held(owner, session.last_used, True, session.runs)
        return session

    def give_handle(self, session: McpSession) -> str:
        """The handle of ``session``, minted now if it has none (a connection's session): later
        calls, on any connection, reach the same session with it."""
        with self._lock:
            if session.handle is None:
                session.handle = new_handle()
            self._explicit[session.handle] = session
            self._held.setdefault(session.handle, _Held(session.owner, self.clock(), False, session.runs))
            return session.handle

    def adopt(self, handle: str, ctx: ToolContext, owner: str) -> McpSession:
        """A session for a restored handle (see :attr:`restore`), not yet registered."""
        return McpSession(key=handle, ctx=ctx, owner=owner, explicit=True, handle=handle)

    def new_context(self) -> ToolContext:
        return self._factory()

    def close_explicit(self, handle: str) -> bool:
        with self._lock:
            session = self._explicit.pop(handle, None)
            held = self._held.pop(handle, None)
            if session is not None:
                session.handle = None  # a connection that held it keeps its session, not the handle
            return session is not None or held is not None

    # -- bookkeeping (lock held) -----------------------------------------------------------------

    def _make(self, prefix: str, owner: str) -> McpSession:
        session = McpSession(key=f"{prefix}_{secrets.token_urlsafe(16)}", ctx=self._factory(), owner=owner)
        session.last_used = self.clock()
        return session

    def _make_room(self, owner: str, *, new_handle: bool) -> None:
        """Refuse a new session beyond a limit (after expiring and spilling idle ones)."""
        now = self.clock()
        self._expire(now)
        if new_handle:
            self._check_allowance(owner, now)
        if self._count() >= self.limits.max_sessions:
            self._spill(now)
        if self._count() >= self.limits.max_sessions:
            idle = [s.last_used for s in self._spillable()]
            wait = max(1.0, min(idle) + self.limits.spill_after_s - now) if idle else self.limits.spill_after_s
            raise ToolError(
                f"the server holds {self.limits.max_sessions} sessions in use, its limit (aim mcp --max-sessions): "
                f"try again in about {wait:.0f} s, and close sessions you no longer need with "
                "close_session(handle=...)"
            )

    def _check_allowance(self, owner: str, now: float) -> None:
        mine = [h for h in self._held.values() if h.counted and h.owner == owner]
        if not is_stateless(owner):
            if len(mine) >= self.limits.max_per_client:
                raise ToolError(
                    f"this client already holds {len(mine)} sessions, the most one client may hold: close one it no "
                    "longer needs with close_session(handle=...), or reuse a handle it has. Sessions idle for "
                    f"{_minutes(self.limits.idle_timeout_s)} close by themselves"
                )
            return
        everyone = [h for h in self._held.values() if h.counted and is_stateless(h.owner)]
        for held, limit, who, option in (
            (mine, self.limits.max_per_address, "the stateless clients of this address hold",
             "--max-sessions-per-address"),
            (everyone, self.limits.max_stateless_handles, "the stateless clients of this server hold",
             "--max-stateless-sessions"),
        ):
            if len(held) >= limit:
                first = min(h.last_used for h in held) + self.limits.stateless_idle_s
                wait = max(1.0, first - now)
                raise ToolError(
                    f"{who} {len(held)} session handles, the limit (aim mcp {option}): retry in about {wait:.0f} s, "
                    f"when the least recently used expires (handles expire after "
                    f"{_minutes(self.limits.stateless_idle_s)} unused), or close handles you no longer need "
                    "with close_session(handle=...); a script should call close_session when it ends"
                )

    def _expire(self, now: float) -> None:
        """Close sessions and stateless handles idle longer than their timeout (unless a run goes on)."""
        limit = now - self.limits.idle_timeout_s
        for table in (self._explicit, self._http):
            for key in [k for k, s in table.items() if s.last_used < limit and not self.busy(s.runs)]:
                del table[key]
        stateless_limit = now - self.limits.stateless_idle_s
        for handle, held in list(self._held.items()):
            if is_stateless(held.owner):
                if held.last_used >= stateless_limit or self.busy(held.runs):
                    continue
                self._explicit.pop(handle, None)
                self.forget(handle)
            elif handle in self._explicit or held.last_used >= limit:
                continue
            del self._held[handle]

    def _implicit_ids(self) -> set[int]:
        held = {id(s) for s in self._http.values()}
        held |= {id(c.session) for c in self._connections.values() if c.session is not None}
        return held

    def _spillable(self) -> list[McpSession]:
        """Sessions with a handle that only the handle reaches, not in a call, not running anything."""
        implicit = self._implicit_ids()
        return [s for s in self._explicit.values()
                if id(s) not in implicit and s.handle and not self.busy(s.runs) and not _in_call(s)]

    def _spill(self, now: float) -> None:
        """Let idle handle-backed sessions leave memory (they are restored from disk on their next call)."""
        limit = now - self.limits.spill_after_s
        for session in sorted(self._spillable(), key=lambda s: s.last_used):
            if self._count() < self.limits.max_sessions or session.last_used > limit:
                break
            self._explicit.pop(str(session.handle), None)

    def _count(self) -> int:
        held = {id(s) for s in self._explicit.values()} | self._implicit_ids()
        return len(held) + (self._default is not None and id(self._default) not in held)

    def count(self) -> int:
        with self._lock:
            return self._count()


def _in_call(session: McpSession) -> bool:
    if not session.lock.acquire(blocking=False):
        return True
    session.lock.release()
    return False


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _client_address(request: Any | None) -> str | None:
    """The peer address of an HTTP request (Starlette's ``Request.client``), else None."""
    client = getattr(getattr(request, "request", None), "client", None)
    host = getattr(client, "host", None)
    return str(host) if host else None


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
