"""The MCP server as a client sees it over stdio: start-up time and one ``neuron`` call on 8 images.

Starts ``aim mcp`` as a subprocess ``--starts`` times and measures, each time, the wall clock
from spawning it to the end of the MCP handshake (``startup_s``), and to the answer of the
first ``tools/list`` (``tools_listed_s``): what a client that opens a new session per call,
such as langchain-mcp-adapters' default ``get_tools()``, pays on every call before its tool
runs (the first tool that needs the model also imports torch, about a second here). Then, on
one connection, loads ``--model``/``--layer``/``--unit``, makes ``--images`` images with the
configured text2image provider and times ``neuron`` on them ``--repeats`` times (request to
result, JSON and PNGs included). Prints medians and the figures they are held to
(``startup_target_s``, ``neuron_target_ms``), all measured in this one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

name = "mcp"
STARTUP_TARGET_S = 1.5
NEURON_TARGET_MS = 100.0


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


async def _measure(args: argparse.Namespace) -> dict[str, Any]:
    from mcp import Client, StdioServerParameters

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

        async with Client(params) as client:
            began = time.perf_counter()
            unit = {"model": args.model, "layer": args.layer, "unit": args.unit}
            loaded = await client.call_tool("load_system", unit)
            load_s = time.perf_counter() - began
            if loaded.is_error:
                raise RuntimeError(f"load_system failed: {loaded.content[0].text}")  # type: ignore[union-attr]
            colours = ["red", "blue", "green", "yellow"]
            objects = ["car", "dog", "tree", "house", "boat", "bird", "cat", "ball"]
            prompts = [f"a {colours[i % 4]} {objects[i % 8]}" for i in range(args.images)]
            made = await client.call_tool("text2image", {"prompts": prompts})
            if made.is_error:
                raise RuntimeError(f"text2image failed: {made.content[0].text}")  # type: ignore[union-attr]
            ids = (made.structured_content or {})["images"]
            await client.call_tool("neuron", {"images": ids})  # the first call warms the model's caches
            times = []
            for _ in range(args.repeats):
                began = time.perf_counter()
                result = await client.call_tool("neuron", {"images": ids})
                times.append(time.perf_counter() - began)
                if result.is_error:
                    raise RuntimeError(f"neuron failed: {result.content[0].text}")  # type: ignore[union-attr]
            inlined = sum(c.type == "image" for c in result.content)
    startup = statistics.median(starts)
    neuron_ms = 1000 * statistics.median(times)
    return {
        "server_version": version,
        "startup_s_median": round(startup, 3),
        "startup_s_all": [round(s, 3) for s in starts],
        "startup_target_s": STARTUP_TARGET_S,
        "tools_listed_s_median": round(statistics.median(ready), 3),
        "load_system_s": round(load_s, 3),
        "neuron_images": len(ids),
        "neuron_images_inlined": inlined,
        "neuron_ms_median": round(neuron_ms, 1),
        "neuron_ms_min": round(1000 * min(times), 1),
        "neuron_target_ms": NEURON_TARGET_MS,
        "meets_startup_target": startup < STARTUP_TARGET_S,
        "meets_neuron_target": neuron_ms < NEURON_TARGET_MS,
        "cpus": os.cpu_count(),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import anyio

    result: dict[str, Any] = anyio.run(_measure, args)
    return result
