"""``aim mcp``: serve AIM's tools to MCP clients over stdio (default) or streamable HTTP."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from aim_agent.cli import COMMANDS
from aim_agent.config import add_provider_arguments, add_trust_argument, config_from_args
from aim_agent.mcp_server.sessions import Limits
from aim_agent.mcp_server.transport import MIN_TOKEN_CHARS, GuardOptions, generate_token, is_loopback, url_host

__all__ = ["is_loopback", "parse_address", "register", "run"]


def parse_address(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT``, ``:PORT`` or ``PORT`` (host 127.0.0.1)."""
    text = value.strip()
    host, port = "127.0.0.1", text
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise ValueError(f"--http {value!r}: write an IPv6 address as [ADDR]:PORT")
        host, port = text[1:end], text[end + 2 :]
    elif ":" in text:
        host, port = text.rsplit(":", 1)
        host = host or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"--http {value!r}: expected HOST:PORT, e.g. 127.0.0.1:8765") from None
    if not 0 < number < 65536:
        raise ValueError(f"--http {value!r}: port must be 1..65535")
    return host, number


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "mcp",
        help=COMMANDS["mcp"],
        description="Serve every AIM tool (and the plugins' tools), the unit under study, runs and reports "
        "over the Model Context Protocol. Default transport: stdio (for desktop clients). Clients load only "
        "the models this command offers: the world models, aim.toml [models], and --trust-model.",
    )
    parser.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio (host 127.0.0.1 when only a "
        "port is given); every request needs the bearer token printed at start (or AIM_MCP_TOKEN)",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow --http on an address other than loopback (anyone who reaches it and holds the token can "
        "run models on this machine: put it behind TLS)",
    )
    parser.add_argument(
        "--enable-code",
        action="store_true",
        help="add the run_code tool: clients may run Python in AIM's sandbox (off by default)",
    )
    parser.add_argument(
        "--runs-dir",
        metavar="DIR",
        help="where start_interpret writes runs and session handles are kept (default: AIM_RUNS_DIR, runs_dir "
        "in aim.toml, else $XDG_DATA_HOME/aim/runs, i.e. ~/.local/share/aim/runs); it must be writable",
    )
    limits = Limits()
    parser.add_argument("--max-sessions", type=int, default=limits.max_sessions, metavar="N",
                        help="sessions in use at once, all clients together; idle ones with a handle make room "
                        f"(default {limits.max_sessions})")
    parser.add_argument("--max-sessions-per-client", type=int, default=limits.max_per_client, metavar="N",
                        help="sessions one connection or HTTP session may open with new_session "
                        f"(default {limits.max_per_client})")
    parser.add_argument("--max-sessions-per-address", type=int, default=limits.max_per_address, metavar="N",
                        help="session handles the stateless HTTP clients of one address may hold "
                        f"(default {limits.max_per_address})")
    parser.add_argument("--max-stateless-sessions", type=int, default=limits.max_stateless_handles, metavar="N",
                        help="session handles all stateless HTTP clients may hold together "
                        f"(default {limits.max_stateless_handles})")
    parser.add_argument("--session-idle-minutes", type=float, default=limits.stateless_idle_s / 60, metavar="MIN",
                        help="a stateless client's session handle expires after this long unused "
                        f"(default {limits.stateless_idle_s / 60:g})")
    guard = GuardOptions()
    parser.add_argument("--max-http-sessions-per-address", type=int, default=guard.max_sessions_per_address,
                        metavar="N", help="MCP HTTP sessions one client address may hold open; beyond: 429 "
                        f"(default {guard.max_sessions_per_address})")
    parser.add_argument("--handshake-timeout", type=float, default=guard.handshake_timeout_s, metavar="S",
                        help="an HTTP session whose initialize no request followed ends after S seconds "
                        f"(default {guard.handshake_timeout_s:g})")
    parser.add_argument("--token-in-query", action="store_true",
                        help="also accept the token as ?token=... in the URL, for clients that cannot send an "
                        "Authorization header (MCP Inspector 0.15). Risk: URLs end up in proxy logs, shell history "
                        "and browser history; the server keeps no access log then")
    parser.add_argument("--max-request-mb", type=float, default=8.0, metavar="MB",
                        help="largest HTTP request body (default 8 MB)")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="server log level (logs go to stderr)",
    )
    add_trust_argument(parser)
    add_provider_arguments(parser)
    parser.set_defaults(func=run)


def http_token(config: object) -> tuple[str, bool]:
    """(token, generated): AIM_MCP_TOKEN, else [mcp] token in aim.toml, else a new random one."""
    given = config.setting("mcp", "token")  # type: ignore[attr-defined]
    if given:
        token = str(given).strip()
        if len(token) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"the MCP token (AIM_MCP_TOKEN or [mcp] token) must have at least {MIN_TOKEN_CHARS} characters; "
                "unset it to get a random one"
            )
        return token, False
    return generate_token(), True


#: OpenMP's idle threads sleep instead of spinning. The server runs each forward pass in a
#: worker thread; with libgomp's default (active) wait, the idle OpenMP worker of that thread's
#: team spun on a core between and around forward passes, taking it from the pass itself: on a
#: busy 2-core machine ``neuron`` over HTTP (one reused worker thread) took 4-9x its stdio time,
#: and as long as stdio's once this was set (``aim bench mcp``, docs/mcp.md). A user's own
#: OMP_WAIT_POLICY is kept. It must be set before torch loads libgomp: tools import torch lazily.
OMP_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def run(args: argparse.Namespace) -> int:
    for name, value in OMP_ENV.items():
        os.environ.setdefault(name, value)
    if "torch" in sys.modules:  # a plugin imported it already: libgomp has read its settings
        logging.getLogger("aim_agent.mcp").info("torch was loaded before aim mcp could set %s", OMP_ENV)
    from aim_agent.mcp_server import ServerOptions, build_server, serve_http, serve_stdio

    address = parse_address(args.http) if args.http else None
    if address and not is_loopback(address[0]) and not args.allow_remote:
        raise ValueError(
            f"refusing to serve on {address[0]}: it is not a loopback address, and AIM's tools run models and "
            "write files on this machine. Use 127.0.0.1, or add --allow-remote behind TLS"
        )
    counts = (args.max_sessions, args.max_sessions_per_client, args.max_sessions_per_address,
              args.max_stateless_sessions, args.max_http_sessions_per_address)
    if min(counts) < 1 or min(args.max_request_mb, args.session_idle_minutes, args.handshake_timeout) <= 0:
        raise ValueError("the --max-* options, --session-idle-minutes and --handshake-timeout must be positive")
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    config = config_from_args(args)
    token, generated = http_token(config) if address else ("", False)
    server = build_server(ServerOptions(  # checks the runs folder: a server that cannot write there does not start
        config=config,
        runs_dir=args.runs_dir,
        enable_code=args.enable_code,
        require_session=address is not None,
        trusted_models=args.trust_model,
        limits=Limits(
            max_sessions=args.max_sessions,
            max_per_client=args.max_sessions_per_client,
            max_per_address=args.max_sessions_per_address,
            max_stateless_handles=args.max_stateless_sessions,
            stateless_idle_s=60 * args.session_idle_minutes,
        ),
    ))
    if address is None:
        serve_stdio(server)
        return 0
    host, port = address
    print(f"AIM MCP server: http://{url_host(host)}:{port}/mcp (Ctrl-C stops it)", file=sys.stderr)
    shown = f"{token}  (new at each start; set AIM_MCP_TOKEN to choose one)" if generated else (
        "<the token in AIM_MCP_TOKEN or aim.toml [mcp] token>"
    )
    print(f"Every request needs the header  Authorization: Bearer {shown}", file=sys.stderr, flush=True)
    if args.token_in_query:
        print("or the URL http://HOST:PORT/mcp?token=<token> (--token-in-query: URLs get logged, keep it local)",
              file=sys.stderr, flush=True)
    options = GuardOptions(
        max_request_bytes=int(args.max_request_mb * 1024 * 1024),
        max_sessions_per_address=args.max_http_sessions_per_address,
        handshake_timeout_s=args.handshake_timeout,
        token_in_query=args.token_in_query,
    )
    serve_http(server, host=host, port=port, token=token, log_level=args.log_level, options=options,
               max_sessions=args.max_sessions)
    return 0
