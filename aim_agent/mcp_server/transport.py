"""Serving the AIM MCP server: stdio (one client), or streamable HTTP behind a bearer token.

**HTTP** (:func:`http_app`, :func:`serve_http`), on the SDK's ``Server.streamable_http_app``:

- every request needs ``Authorization: Bearer <token>`` (compared in constant time; 401
  without it). ``aim mcp`` takes the token from ``AIM_MCP_TOKEN`` or ``[mcp] token`` in
  ``aim.toml``, else makes a random one and prints it to stderr;
- on a loopback address (any of 127.0.0.0/8, ``::1``, ``localhost``) the ``Host`` header
  must name that address and port, and an ``Origin`` header (browsers send one) that same
  origin: a web page whose name resolves to 127.0.0.1 (DNS rebinding) is refused;
- a request body over ``max_request_bytes`` is refused (413) before it is read; the SDK
  keeps at most ``max_sessions`` HTTP sessions and closes idle ones.

**stdio** (:func:`serve_stdio`): when the client disconnects, background runs go on and the
process stays until they finish; stopped first (SIGTERM, Ctrl-C), it records each unfinished
run as ``interrupted`` with the command that resumes it (:class:`.runs.RunManager`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import signal
import sys
from collections.abc import Callable
from typing import Any

import anyio
from mcp.server import Server
from mcp.server.transport_security import TransportSecuritySettings
from starlette.responses import PlainTextResponse

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}
MIN_TOKEN_CHARS = 16
DEFAULT_MAX_REQUEST_BYTES = 8 * 1024 * 1024


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


class BearerGuard:
    """ASGI middleware: a request without the server's bearer token, or too large, gets a clear refusal.

    ``on_close(session_id)`` is told when a client ends its HTTP session (a DELETE that succeeded).
    """

    def __init__(
        self, app: Any, token: str, max_request_bytes: int, on_close: Callable[[str], None] | None = None
    ) -> None:
        if len(token) < MIN_TOKEN_CHARS:
            raise ValueError(f"the MCP token must have at least {MIN_TOKEN_CHARS} characters")
        self.app = app
        self.max_request_bytes = max_request_bytes
        self.on_close = on_close
        self._expected = hashlib.sha256(f"Bearer {token}".encode()).digest()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):  # lifespan
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        supplied = hashlib.sha256(headers.get(b"authorization", b"")).digest()
        if not hmac.compare_digest(supplied, self._expected):
            response = PlainTextResponse(
                "401 unauthorized: this AIM MCP server needs the header 'Authorization: Bearer <token>' "
                "(the token `aim mcp --http` printed at start, or AIM_MCP_TOKEN)",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="aim"'},
            )
            await response(scope, receive, send)
            return
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_request_bytes:
            response = PlainTextResponse(
                f"413: the request body is {int(length)} bytes; this server accepts at most "
                f"{self.max_request_bytes} (aim mcp --max-request-mb). Send fewer or smaller images, "
                "or pass the img_… ids of images the server already has",
                status_code=413,
            )
            await response(scope, receive, send)
            return
        sid = headers.get(b"mcp-session-id", b"").decode("latin-1")
        if scope.get("method") != "DELETE" or not sid or self.on_close is None:
            await self.app(scope, receive, send)
            return
        status: list[int] = []

        async def watch(message: Any) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        await self.app(scope, receive, watch)
        if status and 200 <= status[0] < 300:  # the SDK knew the session and ended it
            self.on_close(sid)


def http_app(
    server: Server,
    *,
    host: str,
    port: int,
    token: str,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    max_sessions: int = 64,
    session_idle_timeout_s: float = 3600.0,
) -> Any:
    """The ASGI app of ``server`` over streamable HTTP at ``/mcp``, behind :class:`BearerGuard`."""
    app = server.streamable_http_app(
        streamable_http_path="/mcp",
        max_request_body_size=max_request_bytes,  # bodies without a Content-Length are bounded here
        session_idle_timeout=session_idle_timeout_s,
        max_sessions=max_sessions,
        transport_security=loopback_security(host, port),
        host=host,
    )
    state = getattr(server, "aim", None)
    registry = getattr(state, "registry", None)
    if state is not None:  # session handles minted here are valid under this token only
        state.handles.scope = "http:" + hashlib.sha256(token.encode()).hexdigest()
    return BearerGuard(app, token, max_request_bytes, on_close=registry.forget_http if registry else None)


def serve_http(server: Server, *, host: str, port: int, token: str, log_level: str = "warning", **options: Any) -> None:
    """Serve ``server`` over HTTP until stopped; then record unfinished runs as interrupted."""
    import uvicorn

    app = http_app(server, host=host, port=port, token=token, **options)
    try:
        uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level.lower())).run()
    finally:
        _record_interrupted(server)


def serve_stdio(server: Server, *, wait_for_runs: bool = True) -> None:
    """Serve one client over stdin/stdout; after it disconnects, let its runs finish (see the module doc)."""
    runs = server.aim.runs  # type: ignore[attr-defined]

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


def _record_interrupted(server: Server) -> None:
    for record in server.aim.runs.interrupt_unfinished():  # type: ignore[attr-defined]
        print(f"aim mcp: run {record.id} interrupted; resume it with: {record.resume_command()}",
              file=sys.stderr, flush=True)
