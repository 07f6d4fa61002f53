"""Serving the AIM MCP server: stdio (one client), or streamable HTTP behind a bearer token.

**HTTP** (:func:`http_app`, :func:`serve_http`), on the SDK's ``Server.streamable_http_app``:

- every request needs ``Authorization: Bearer <token>`` (compared in constant time; 401
  without it); with ``token_in_query`` (``aim mcp --token-in-query``, opt-in) ``?token=`` in
  the URL also works, for clients that cannot send a header (the MCP Inspector 0.15).
  ``aim mcp`` takes the token from ``AIM_MCP_TOKEN`` or ``[mcp] token`` in ``aim.toml``,
  else makes a random one and prints it to stderr;
- on a loopback address (any of 127.0.0.0/8, ``::1``, ``localhost``) the ``Host`` header
  must name that address and port, and an ``Origin`` header (browsers send one) that same
  origin: a web page whose name resolves to 127.0.0.1 (DNS rebinding) is refused;
- a request body over ``max_request_bytes`` is refused (413) before it is read; the SDK
  keeps at most ``max_sessions`` HTTP sessions and closes idle ones; one client address
  holds at most ``max_sessions_per_address`` (429), and a handshake nothing followed ends
  within seconds (:class:`BearerGuard`). Refusals carry a JSON-RPC error body.

**stdio** (:func:`serve_stdio`): when the client disconnects, background runs go on and the
process stays until they finish; stopped first (SIGTERM, Ctrl-C), it records each unfinished
run as ``interrupted`` with the command that resumes it (:class:`.runs.RunManager`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import anyio
from mcp.server import Server
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.responses import JSONResponse

from aim_agent.mcp_server.server import AimServer

logger = logging.getLogger("aim_agent.mcp")
LOOPBACK_NAMES = {"localhost", "ip6-localhost"}
MIN_TOKEN_CHARS = 16
DEFAULT_MAX_REQUEST_BYTES = 8 * 1024 * 1024
#: the JSON-RPC error code of an HTTP-level refusal (the SDK's own refusals use -32600/-32603)
REFUSED = -32001


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1, or a loopback name."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def generate_token() -> str:
    return secrets.token_urlsafe(32)


def loopback_security(host: str, port: int) -> TransportSecuritySettings | None:
    """Host/Origin checks for a loopback address (None elsewhere: a remote name cannot be known here)."""
    if not is_loopback(host):
        return None
    names = {url_host(host)}
    if host.lower() in ("127.0.0.1", "::1", "localhost"):
        names |= {"127.0.0.1", "localhost", "[::1]"}
    names_ports = sorted(f"{name}:{port}" for name in names)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=names_ports,
        allowed_origins=[f"http://{name}" for name in names_ports],
    )


def rpc_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An HTTP refusal with a JSON-RPC error body: MCP clients show its message (not a bare status)."""
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": REFUSED, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


@dataclass
class _HttpSession:
    """An MCP HTTP session as the guard saw it open: whose it is, and whether it went past the handshake."""

    address: str
    opened: float
    last_seen: float
    host: bytes
    established: bool = False


@dataclass(frozen=True)
class GuardOptions:
    """What :class:`BearerGuard` checks besides the token (``aim mcp`` options of similar names)."""

    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    """a larger request body is refused (413) before it is read"""
    max_sessions_per_address: int = 16
    """MCP HTTP sessions one client address may hold open; beyond: 429 with Retry-After"""
    handshake_timeout_s: float = 10.0
    """an HTTP session whose handshake no request followed is ended after this long"""
    session_idle_timeout_s: float = 3600.0
    """the transport's idle timeout: a session silent this long is gone"""
    token_in_query: bool = False
    """also accept the token as ``?token=...`` in the URL, for clients that cannot send a header
    (it then shows in proxies' and browsers' logs and history: a risk the operator opts into)"""


class BearerGuard:
    """ASGI middleware: the token, the request size, and HTTP sessions per client address.

    - a request without the server's bearer token gets 401, too large a body 413, a client
      address over its allowance of open HTTP sessions 429 (with ``Retry-After``); each with a
      JSON-RPC error body whose message says what to do;
    - an HTTP session whose ``initialize`` no other request followed within
      ``handshake_timeout_s`` is ended (an HTTP DELETE to the app, as its client would send),
      so abandoned handshakes cannot fill the transport's sessions;
    - ``on_close(session_id)`` is told when an HTTP session ends (a DELETE that succeeded).
    """

    def __init__(
        self,
        app: Any,
        token: str,
        options: GuardOptions | None = None,
        on_close: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if len(token) < MIN_TOKEN_CHARS:
            raise ValueError(f"the MCP token must have at least {MIN_TOKEN_CHARS} characters")
        self.app = app
        self.options = options or GuardOptions()
        self.on_close = on_close
        self.clock = clock
        self._expected = _digest(f"Bearer {token}".encode())
        self._sessions: dict[str, _HttpSession] = {}

    def _authorized(self, scope: Any, headers: dict[bytes, bytes]) -> bool:
        supplied = headers.get(b"authorization", b"")
        if not supplied and self.options.token_in_query:
            given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
            supplied = f"Bearer {given[0]}".encode() if given else b""
        return hmac.compare_digest(_digest(supplied), self._expected)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):  # lifespan
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if not self._authorized(scope, headers):
            how = "the header 'Authorization: Bearer <token>'" + (
                " or ?token=<token> in the URL" if self.options.token_in_query else
                " (a client that cannot send headers: start the server with --token-in-query and add ?token=<token> "
                "to the URL)"
            )
            response = rpc_error(
                401,
                f"401 unauthorized: this AIM MCP server needs {how}; the token is the one `aim mcp --http` printed "
                "at start, or AIM_MCP_TOKEN",
                {"WWW-Authenticate": 'Bearer realm="aim"'},
            )
            await response(scope, receive, send)
            return
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.options.max_request_bytes:
            response = rpc_error(
                413,
                f"413: the request body is {int(length)} bytes; this server accepts at most "
                f"{self.options.max_request_bytes} (aim mcp --max-request-mb). Send fewer or smaller images, "
                "or pass the img_… ids of images the server already has",
            )
            await response(scope, receive, send)
            return
        sid = headers.get(b"mcp-session-id", b"").decode("latin-1")
        version = headers.get(b"mcp-protocol-version", b"").decode("latin-1")
        if sid:
            await self._in_session(sid, scope, receive, send)
        elif version and version not in HANDSHAKE_PROTOCOL_VERSIONS:  # stateless by design: opens no session
            await self.app(scope, receive, send)
        else:
            await self._opening(scope, headers, receive, send)

    async def _in_session(self, sid: str, scope: Any, receive: Any, send: Any) -> None:
        known = self._sessions.get(sid)
        if known is not None:
            known.established, known.last_seen = True, self.clock()
        status: list[int] = []

        async def watch(message: Any) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        await self.app(scope, receive, watch)
        ended = scope.get("method") == "DELETE" and status and 200 <= status[0] < 300  # the SDK ended it
        if ended or (status and status[0] == 404):
            self._ended(sid)

    async def _opening(self, scope: Any, headers: dict[bytes, bytes], receive: Any, send: Any) -> None:
        """A request without a session id: it may open one (an initialize), within the address's allowance."""
        address = str((scope.get("client") or ("unknown",))[0])
        await self._reap()
        mine = [s for s in self._sessions.values() if s.address == address]
        if len(mine) >= self.options.max_sessions_per_address:
            wait = min(self._ends_at(s) for s in mine) - self.clock()
            retry = max(1, math.ceil(wait))
            response = rpc_error(
                429,
                f"429: this client address holds {len(mine)} open MCP sessions, the limit (aim mcp "
                f"--max-http-sessions-per-address): close sessions you no longer need (an HTTP DELETE with the "
                f"Mcp-Session-Id, which MCP clients send when they close), or retry in {retry} s",
                {"Retry-After": str(retry)},
            )
            await response(scope, receive, send)
            return
        opened: list[str] = []

        async def watch(message: Any) -> None:
            if message["type"] == "http.response.start":
                for key, value in message.get("headers") or []:
                    if key.lower() == b"mcp-session-id" and 200 <= int(message["status"]) < 300:
                        opened.append(value.decode("latin-1"))
            await send(message)

        await self.app(scope, receive, watch)
        now = self.clock()
        for sid in opened:
            self._sessions[sid] = _HttpSession(address, now, now, headers.get(b"host", b""))

    def _ends_at(self, session: _HttpSession) -> float:
        if session.established:
            return session.last_seen + self.options.session_idle_timeout_s
        return session.opened + self.options.handshake_timeout_s

    async def _reap(self) -> None:
        """End abandoned handshakes; forget sessions the transport has let go idle."""
        now = self.clock()
        for sid, session in list(self._sessions.items()):
            if self._ends_at(session) > now:
                continue
            if not session.established:
                await self._delete(sid, session)
            self._ended(sid)

    async def _delete(self, sid: str, session: _HttpSession) -> None:
        """End an HTTP session the way its client would: a DELETE with its id, to the app."""
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "DELETE", "scheme": "http",
            "path": "/mcp", "raw_path": b"/mcp", "query_string": b"", "root_path": "",
            "headers": [(b"host", session.host), (b"mcp-session-id", sid.encode("latin-1"))],
            "client": (session.address, 0), "server": None,
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def drop(message: Any) -> None:
            return None

        try:
            await self.app(scope, receive, drop)
        except Exception:  # ending it is best effort: the transport's own idle timeout remains
            logger.debug("ending an abandoned HTTP session failed", exc_info=True)

    def _ended(self, sid: str) -> None:
        if self._sessions.pop(sid, None) is not None and self.on_close is not None:
            self.on_close(sid)


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def http_app(
    server: Server,
    *,
    host: str,
    port: int,
    token: str,
    options: GuardOptions | None = None,
    max_sessions: int = 64,
) -> Any:
    """The ASGI app of ``server`` over streamable HTTP at ``/mcp``, behind :class:`BearerGuard`."""
    options = options or GuardOptions()
    app = server.streamable_http_app(
        streamable_http_path="/mcp",
        max_request_body_size=options.max_request_bytes,  # bodies without a Content-Length are bounded here
        session_idle_timeout=options.session_idle_timeout_s,
        max_sessions=max_sessions,
        transport_security=loopback_security(host, port),
        host=host,
    )
    state = getattr(server, "aim", None)
    registry = getattr(state, "registry", None)
    if state is not None:  # session handles minted here are valid under this token only
        state.handles.scope = "http:" + hashlib.sha256(token.encode()).hexdigest()
    return BearerGuard(app, token, options, on_close=registry.forget_http if registry else None)


def serve_http(server: AimServer, *, host: str, port: int, token: str, log_level: str = "warning",
               **options: Any) -> None:
    """Serve ``server`` over HTTP until stopped; then record unfinished runs as interrupted."""
    import uvicorn

    app = http_app(server, host=host, port=port, token=token, **options)
    guard = app.options if isinstance(app, BearerGuard) else GuardOptions()
    # a token in the URL would be written to the access log: keep none then
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level.lower(), access_log=not guard.token_in_query)
    try:
        uvicorn.Server(config).run()
    finally:
        _record_interrupted(server)


def serve_stdio(server: AimServer, *, wait_for_runs: bool = True) -> None:
    """Serve one client over stdin/stdout; after it disconnects, let its runs finish (see the module doc)."""
    runs = server.aim.runs

    def stop(signum: int, frame: Any) -> None:  # SIGTERM: record what runs, then go
        _record_interrupted(server)
        os._exit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: no handler
        previous = None
    try:
        anyio.run(_serve_stdio, server)
        unfinished = runs.unfinished()
        if unfinished and wait_for_runs:
            print(
                f"aim mcp: the client disconnected; waiting for {len(unfinished)} run(s) to finish "
                f"({', '.join(r.id for r in unfinished)}, under {runs.runs_dir}). Stopping now records them "
                "as interrupted; each can be resumed with aim interpret --resume",
                file=sys.stderr,
                flush=True,
            )
            runs.wait()
    finally:
        _record_interrupted(server)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


async def _serve_stdio(server: Server) -> None:
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def _record_interrupted(server: AimServer) -> None:
    for record in server.aim.runs.interrupt_unfinished():
        print(f"aim mcp: run {record.id} interrupted; resume it with: {record.resume_command()}",
              file=sys.stderr, flush=True)
