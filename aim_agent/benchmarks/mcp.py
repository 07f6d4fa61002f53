"""The MCP server as a client sees it: start-up time over stdio, and ``neuron`` on 8 images over stdio and HTTP.

Starts ``aim mcp`` as a subprocess ``--starts`` times and measures, each time, the wall clock
from spawning it to the end of the MCP handshake (``startup_s``), and to the answer of the
first ``tools/list`` (``tools_listed_s``): what a client that opens a new session per call,
such as langchain-mcp-adapters' default ``get_tools()``, pays on every call before its tool
runs (the first tool that needs the model also imports torch, about a second here). Then, on
one connection, loads ``--model``/``--layer``/``--unit``, makes ``--images`` images with the
configured text2image provider and times ``neuron`` on them ``--repeats`` times (request to
result, JSON and PNGs included), alternating each call with the same call over streamable
HTTP (``aim mcp --http`` on a loopback port, a stateless client with a session handle), so
both transports meet the same load: ``http_over_stdio`` is the ratio of the medians. Prints
medians and the figures they are held to (``startup_target_s``, ``neuron_target_ms``,
``http_over_stdio_target``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio

name = "mcp"
STARTUP_TARGET_S = 1.5
NEURON_TARGET_MS = 100.0
#: HTTP's neuron latency over stdio's, at the same load, in the same run
HTTP_RATIO_TARGET = 1.3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="world-cnn", help="model the server loads (default world-cnn)")
    parser.add_argument("--layer", default="conv4", help="layer (default conv4)")
    parser.add_argument("--unit", type=int, default=0, help="unit (default 0)")
    parser.add_argument("--images", type=int, default=8, help="images per neuron call (default 8)")
    parser.add_argument("--starts", type=int, default=5, help="server starts to time (default 5)")
    parser.add_argument("--repeats", type=int, default=20, help="neuron calls to time (default 20)")
    parser.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                        help="an extra argument for `aim mcp` (repeatable), e.g. --server-arg=--text2image=world")


def _server_command(extra: list[str], runs_dir: str) -> tuple[str, list[str]]:
    """The command a desktop client would run: the ``aim`` script beside this interpreter."""
    script = Path(sys.executable).parent / "aim"
    if script.exists():
        return str(script), ["mcp", "--runs-dir", runs_dir, *extra]
    return sys.executable, ["-c", "import sys; from aim_agent.cli import main; sys.exit(main())", "mcp",
                            "--runs-dir", runs_dir, *extra]


async def _prepare(client: Any, args: argparse.Namespace, session: dict[str, str]) -> tuple[float, list[str]]:
    """On one connection: load_system (timed), text2image, and one warm-up ``neuron``; the image ids."""
    began = time.perf_counter()
    unit = {"model": args.model, "layer": args.layer, "unit": args.unit, **session}
    loaded = await client.call_tool("load_system", unit)
    load_s = time.perf_counter() - began
    if loaded.is_error:
        raise RuntimeError(f"load_system failed: {loaded.content[0].text}")
    colours = ["red", "blue", "green", "yellow"]
    objects = ["car", "dog", "tree", "house", "boat", "bird", "cat", "ball"]
    prompts = [f"a {colours[i % 4]} {objects[i % 8]}" for i in range(args.images)]
    made = await client.call_tool("text2image", {"prompts": prompts, **session})
    if made.is_error:
        raise RuntimeError(f"text2image failed: {made.content[0].text}")
    ids = list((made.structured_content or {})["images"])
    await client.call_tool("neuron", {"images": ids, **session})  # the first call warms the model's caches
    return load_s, ids


async def _neuron(client: Any, ids: list[str], session: dict[str, str]) -> tuple[float, int]:
    """One timed ``neuron`` call (request to result): seconds, and the images inlined."""
    began = time.perf_counter()
    result = await client.call_tool("neuron", {"images": ids, **session})
    took = time.perf_counter() - began
    if result.is_error:
        raise RuntimeError(f"neuron failed: {result.content[0].text}")
    return took, sum(c.type == "image" for c in result.content)


@contextlib.asynccontextmanager
async def _http_server(command: str, argv: list[str], cwd: str, token: str) -> AsyncIterator[str]:
    """``aim mcp --http`` on a free loopback port; yields its URL once it accepts connections."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([command, *argv, "--http", f"127.0.0.1:{port}"], cwd=cwd,
                               env={**os.environ, "AIM_MCP_TOKEN": token}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"aim mcp --http exited with {process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("aim mcp --http did not start within 120 s") from None
                await anyio.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


async def _measure(args: argparse.Namespace) -> dict[str, Any]:
    import httpx2
    from mcp import Client, StdioServerParameters
    from mcp.client.streamable_http import streamable_http_client

    with tempfile.TemporaryDirectory(prefix="aim-bench-mcp-") as runs_dir:
        command, argv = _server_command(list(args.server_arg), runs_dir)
        params = StdioServerParameters(command=command, args=argv, env=dict(os.environ), cwd=runs_dir)
        starts, ready = [], []
        for _ in range(args.starts):
            began = time.perf_counter()
            async with Client(params, mode="legacy") as client:
                starts.append(time.perf_counter() - began)  # the handshake answered
                version = client.server_info.version if client.server_info else ""
                await client.list_tools()
                ready.append(time.perf_counter() - began)  # the tools listed: ready for a first call

        token = secrets.token_urlsafe(24)
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            Client(params) as stdio,
            _http_server(command, argv, runs_dir, token) as url,
            httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60, read=600)) as http_client,
            Client(streamable_http_client(url, http_client=http_client)) as http,  # stateless: a session handle
        ):
            load_s, ids = await _prepare(stdio, args, {})
            made = (await http.call_tool("new_session", {})).structured_content or {}
            session = {"session": str(made["session"])}
            _, http_ids = await _prepare(http, args, session)
            times, http_times = [], []
            for _ in range(args.repeats):  # alternately: both transports at the same load
                took, inlined = await _neuron(stdio, ids, {})
                times.append(took)
                took, _ = await _neuron(http, http_ids, session)
                http_times.append(took)
            await http.call_tool("close_session", {"handle": session["session"]})
    startup = statistics.median(starts)
    neuron_ms = 1000 * statistics.median(times)
    http_ms = 1000 * statistics.median(http_times)
    return {
        "server_version": version,
        "startup_s_median": round(startup, 3),
        "startup_s_all": [round(s, 3) for s in starts],
        "startup_target_s": STARTUP_TARGET_S,
        "tools_listed_s_median": round(statistics.median(ready), 3),
        "load_system_s": round(load_s, 3),
        "neuron_images": args.images,
        "neuron_images_inlined": inlined,
        "neuron_ms_median": round(neuron_ms, 1),
        "neuron_ms_min": round(1000 * min(times), 1),
        "neuron_target_ms": NEURON_TARGET_MS,
        "http_neuron_ms_median": round(http_ms, 1),
        "http_neuron_ms_min": round(1000 * min(http_times), 1),
        "http_over_stdio": round(http_ms / neuron_ms, 2),
        "http_over_stdio_target": HTTP_RATIO_TARGET,
        "meets_startup_target": startup < STARTUP_TARGET_S,
        "meets_neuron_target": neuron_ms < NEURON_TARGET_MS,
        "meets_http_target": http_ms / neuron_ms <= HTTP_RATIO_TARGET,
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = anyio.run(_measure, args)
    return result
