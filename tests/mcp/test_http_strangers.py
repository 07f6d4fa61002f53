"""``aim mcp --http`` as strangers meet it: many short stateless scripts that never close their
session, abandoned handshakes, refusals a client can show (JSON-RPC bodies), the opt-in URL token.

The stateless scripts are the MCP SDK's ``Client`` in its default mode, which speaks the
2026-07-28 protocol over HTTP: no transport session, so each calls ``new_session`` (what
fastmcp's default client does against this server too).
"""

from __future__ import annotations

import json
import time

import httpx2
import pytest
from aim_testing import HANG_S
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_http import connect, http_server

pytestmark = pytest.mark.anyio

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "gone", "version": "0"}},
}
ACCEPT = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def _text(result) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


def _post(url: str, body: dict | bytes, **headers: str) -> httpx2.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx2.post(url, content=data, headers={**ACCEPT, **headers}, timeout=HANG_S)


async def _script(url: str, token: str, unit: int) -> float:
    """A short stateless script: a session, a unit, one measurement; it never calls close_session."""
    async with connect(url, token) as client:
        made = await client.call_tool("new_session", {})
        assert not made.is_error, _text(made)
        handle = made.structured_content["session"]
        loaded = await client.call_tool("load_system", {"model": "fake-color", "layer": "relu", "unit": unit,
                                                        "session": handle})
        assert not loaded.is_error, _text(loaded)
        fired = await client.call_tool("neuron", {"images": ["img_" + "0" * 16], "session": handle})
        assert fired.is_error and "unknown image id" in _text(fired)  # its own session: no foreign ids
        made = await client.call_tool("text2image", {"prompts": ["a green square"], "session": handle})
        fired = await client.call_tool("neuron", {"images": made.structured_content["images"], "session": handle})
        assert not fired.is_error, _text(fired)
        return float(fired.structured_content["activations"][0])


async def test_fifty_stateless_scripts_that_never_close_then_a_new_client(tmp_path):
    with http_server(tmp_path) as (url, token, _, _):
        for i in range(50):
            green = await _script(url, token, unit=1 + i % 2)
            assert (green > 0.3) == (i % 2 == 0)  # unit 1 fires on green, unit 2 does not
        assert await _script(url, token, unit=1) > 0.3  # a new stateless client
        async with connect(url, token, mode="legacy") as legacy:  # and a handshake-era one
            logged = await legacy.call_tool("log_experiment", {"note": "still room"})
            assert not logged.is_error, _text(logged)


async def test_abandoned_handshakes_end_within_seconds_and_the_429_says_when(tmp_path):
    with http_server(tmp_path, "--max-http-sessions-per-address", "2", "--handshake-timeout", "1") as (
        url, token, _, _
    ):
        auth = {"Authorization": f"Bearer {token}"}
        opened = [_post(url, INITIALIZE, **auth) for _ in range(2)]  # initialize, then nothing
        assert all(r.status_code == 200 and r.headers.get("mcp-session-id") for r in opened)
        refused = _post(url, INITIALIZE, **auth)
        assert refused.status_code == 429
        retry = int(refused.headers["retry-after"])
        assert 1 <= retry <= 2
        error = refused.json()["error"]
        assert refused.json()["jsonrpc"] == "2.0" and "retry in" in error["message"]
        assert "--max-http-sessions-per-address" in error["message"] and "DELETE" in error["message"]
        time.sleep(retry + 0.5)  # past the handshake timeout (a timer, not a speed)
        async with connect(url, token, mode="legacy") as client:  # the abandoned ones were ended
            assert not (await client.call_tool("list_log", {})).is_error
        gone = _post(url, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, **auth,
                     **{"Mcp-Session-Id": opened[0].headers["mcp-session-id"], "Mcp-Protocol-Version": "2025-06-18"})
        assert gone.status_code == 404


async def test_refusals_are_json_rpc_errors_a_client_can_show(tmp_path):
    with http_server(tmp_path, "--max-request-mb", "0.01") as (url, token, _, _):
        unauthorized = _post(url, INITIALIZE)
        assert unauthorized.status_code == 401 and unauthorized.headers["content-type"] == "application/json"
        body = unauthorized.json()
        assert body["jsonrpc"] == "2.0" and body["id"] is None and body["error"]["code"] == -32001
        assert "Authorization: Bearer" in body["error"]["message"] and "--token-in-query" in body["error"]["message"]
        big = _post(url, b"{" + b" " * 20_000 + b"}", Authorization=f"Bearer {token}")
        assert big.status_code == 413 and "--max-request-mb" in big.json()["error"]["message"]
        # an MCP client reports the server's words, not only "Server returned an error response"
        with pytest.raises(BaseException) as raised:
            async with connect(url, "wrong-token-of-some-length") as client:
                await client.list_tools()
        assert "Authorization: Bearer" in _all_messages(raised.value)


async def test_the_token_in_the_url_only_when_the_operator_opts_in(tmp_path):
    with http_server(tmp_path) as (url, token, _, _):
        assert _post(f"{url}?token={token}", INITIALIZE).status_code == 401
    with http_server(tmp_path, "--token-in-query") as (url, token, _, log_path):
        assert _post(f"{url}?token={token}x", INITIALIZE).status_code == 401
        async with (
            httpx2.AsyncClient(timeout=httpx2.Timeout(HANG_S)) as http,
            Client(streamable_http_client(f"{url}?token={token}", http_client=http), mode="legacy") as client,
        ):
            assert not (await client.call_tool("list_log", {})).is_error
        assert token not in log_path.read_text()  # no access log that keeps the URL


def _all_messages(error: BaseException) -> str:
    """The messages of an exception and everything inside it (exception groups, causes)."""
    parts = [str(error)]
    for inner in getattr(error, "exceptions", ()):
        parts.append(_all_messages(inner))
    if error.__cause__ is not None:
        parts.append(_all_messages(error.__cause__))
    return "\n".join(parts)
