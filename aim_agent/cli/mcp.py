"""``aim mcp``: serve AIM's tools to MCP clients over stdio (default) or streamable HTTP."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys

from aim_agent.config import add_provider_arguments, config_from_args

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


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


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "mcp",
        help="serve AIM's experiment tools to MCP clients (stdio, or --http)",
        description="Serve every AIM tool (and the plugins' tools), the unit under study, runs and reports "
        "over the Model Context Protocol. Default transport: stdio (for desktop clients).",
    )
    parser.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio (host 127.0.0.1 "
        "when only a port is given)",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow --http on an address other than loopback (anyone who reaches it can run "
        "models on this machine: put it behind authentication)",
    )
    parser.add_argument(
        "--enable-code",
        action="store_true",
        help="add the run_code tool: clients may run Python in AIM's sandbox (off by default)",
    )
    parser.add_argument(
        "--runs-dir",
        metavar="DIR",
        help="where start_interpret writes runs (default: AIM_RUNS_DIR, runs_dir in aim.toml, else ./runs)",
    )
    parser.add_argument(
        "--max-sessions", type=int, default=32, metavar="N", help="explicit sessions kept at once (default 32)"
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="server log level (logs go to stderr)",
    )
    add_provider_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aim_agent.mcp_server import build_server

    address = parse_address(args.http) if args.http else None
    if address and not is_loopback(address[0]) and not args.allow_remote:
        raise ValueError(
            f"refusing to serve on {address[0]}: it is not a loopback address, and AIM's tools run models and "
            "write files on this machine. Use 127.0.0.1, or add --allow-remote behind an authenticating proxy"
        )
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    config = config_from_args(args)
    if args.runs_dir:
        config.runs_dir = args.runs_dir
    server = build_server(
        config=config,
        enable_code=args.enable_code,
        require_session=address is not None,
        max_sessions=args.max_sessions,
        log_level=args.log_level,
    )
    if address is None:
        server.run("stdio")
        return 0
    host, port = address
    print(f"AIM MCP server: http://{_url_host(host)}:{port}/mcp (Ctrl-C stops it)", file=sys.stderr)
    server.run("streamable-http", host=host, port=port)
    return 0


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
