"""Run ``aim mcp`` as a subprocess (over the fake plugin) and connect to it; shared by tests/mcp and tests/security."""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx2
from aim_testing import HANG_S
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

HERE = Path(__file__).resolve().parent
AIM = str(Path(sys.executable).parent / "aim")
FAKE = ["--plugin", "aim_fake_plugin", "mcp", "--text2image", "fake", "--editor", "fake", "--describer", "fake"]


#: the servers' data folder ($XDG_DATA_HOME: their default runs folder), never the user's own
DATA_HOME = tempfile.mkdtemp(prefix="aim-test-data-")
atexit.register(shutil.rmtree, DATA_HOME, ignore_errors=True)


def env(**extra: str) -> dict[str, str]:
    """A clean environment for the server: the fake plugin importable, no user config, offline."""
    path = os.pathsep.join(p for p in [str(HERE), os.environ.get("PYTHONPATH", "")] if p)
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIM_")}
    return {**base, "PYTHONPATH": path, "AIM_CONFIG": "", "HF_HUB_OFFLINE": "1", "XDG_DATA_HOME": DATA_HOME, **extra}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def http_server(tmp_path: Path, *args: str, host: str = "127.0.0.1", token: str | None = None) -> Iterator[tuple]:
    """``aim mcp --http host:port`` with ``AIM_MCP_TOKEN``; yields (url, token, process, log path)."""
    token = token or secrets.token_urlsafe(24)
    port = free_port(host)
    log_path = tmp_path / f"server-{port}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [AIM, *FAKE, "--http", f"{host}:{port}", *args],
            env=env(AIM_MCP_TOKEN=token), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + HANG_S  # Python and the server start slowly on a loaded machine
            while True:
                if process.poll() is not None:
                    raise AssertionError(log_path.read_text())
                try:
                    with socket.create_connection((host, port), timeout=0.2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise AssertionError("the server did not start:\n" + log_path.read_text()) from None
                    time.sleep(0.1)
            yield f"http://{host}:{port}/mcp", token, process, log_path
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


@contextlib.asynccontextmanager
async def connect(url: str, token: str | None, *, mode: str = "auto", headers: dict | None = None) -> AsyncIterator:
    """An MCP client over HTTP that sends ``Authorization: Bearer <token>``."""
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"
    async with (
        httpx2.AsyncClient(headers=sent, timeout=httpx2.Timeout(HANG_S)) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        yield client
