"""``aim mcp --http``: no token, no service; other Host names refused on every loopback address; bounded requests.

One server (a subprocess on 127.0.0.2, where the old code skipped the Host check) serves the
module. Two clients over HTTP cannot see each other's images or evict each other's sessions.
"""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path

import httpx2
import pytest
from mcp_http import connect, http_server
from PIL import Image

pytestmark = pytest.mark.anyio

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": "attacker", "version": "0"}},
}
ACCEPT = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("http-server")
    with http_server(tmp, host="127.0.0.2") as running:
        yield running


def _post(url: str, body: bytes | dict, **headers: str) -> httpx2.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx2.post(url, content=data, headers={**ACCEPT, **headers}, timeout=30)


def _text(result) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


def _peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_requests_without_the_token_get_401(server):
    url, token, _, _ = server
    for headers in ({}, {"Authorization": "Bearer wrong-token-of-some-length"}, {"Authorization": token},
                    {"Authorization": f"Bearer {token}x"}, {"Authorization": f"Basic {token}"}):
        response = _post(url, INITIALIZE, **headers)
        assert response.status_code == 401, (headers, response.status_code)
        assert "Bearer" in response.headers.get("www-authenticate", "")
    assert _post(url, INITIALIZE, Authorization=f"Bearer {token}").status_code == 200


def test_dns_rebinding_host_and_origin_are_refused_on_127_0_0_2(server):
    url, token, _, _ = server
    auth = f"Bearer {token}"
    assert url.startswith("http://127.0.0.2:")
    evil_host = _post(url, INITIALIZE, Authorization=auth, Host="evil.com")
    assert evil_host.status_code == 421
    evil_port = _post(url, INITIALIZE, Authorization=auth, Host="evil.com:" + url.split(":")[2].split("/")[0])
    assert evil_port.status_code == 421
    evil_origin = _post(url, INITIALIZE, Authorization=auth, Origin="http://evil.com")
    assert evil_origin.status_code == 403
    same_origin = _post(url, INITIALIZE, Authorization=auth, Origin=url.rsplit("/", 1)[0])
    assert same_origin.status_code == 200


def test_a_huge_request_body_is_refused_before_it_is_read(server):
    url, token, _, _ = server
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": "' + b"a" * (40 * 1024 * 1024) + b'"}}'
    started = time.monotonic()
    response = _post(url, body, Authorization=f"Bearer {token}")
    assert response.status_code == 413 and "at most" in response.text
    assert time.monotonic() - started < 20

    def chunks():  # no Content-Length: the SDK's body limit counts the bytes as they come
        for _ in range(40):
            yield b"a" * (1024 * 1024)

    streamed = httpx2.post(url, content=chunks(), headers={**ACCEPT, "Authorization": f"Bearer {token}"}, timeout=60)
    assert streamed.status_code == 413


async def test_a_decompression_bomb_png_is_refused_without_decoding(server):
    """A 12000x12000 PNG (a few hundred KB) would take 432 MB as RGB pixels."""
    url, token, process, _ = server
    buf = io.BytesIO()
    Image.new("1", (12000, 12000)).save(buf, format="PNG")
    bomb = base64.b64encode(buf.getvalue()).decode()
    assert len(bomb) < 1_000_000
    async with connect(url, token) as client:
        handle = (await client.call_tool("new_session", {})).structured_content["session"]
        await client.call_tool("load_system", {"model": "fake-color", "layer": "relu", "unit": 0, "session": handle})
        before = _peak_rss_kb(process.pid)
        started = time.monotonic()
        result = await client.call_tool("neuron", {"images": [bomb], "session": handle})
        assert result.is_error and "12000x12000" in _text(result) and "limit" in _text(result)
        assert time.monotonic() - started < 5
        logged = await client.call_tool("log_experiment", {"note": "x", "images": [bomb], "session": handle})
        assert logged.is_error and "12000x12000" in _text(logged)
        await client.call_tool("close_session", {"handle": handle})
    assert _peak_rss_kb(process.pid) - before < 200 * 1024  # no 432 MB decode happened


async def test_two_http_clients_do_not_see_each_others_images_or_logs(server):
    url, token, _, _ = server
    async with connect(url, token, mode="legacy") as a, connect(url, token, mode="legacy") as b:
        made = await a.call_tool("text2image", {"prompts": ["a red square"]})
        ids = made.structured_content["images"]
        await a.call_tool("load_system", {"model": "fake-color", "layer": "relu", "unit": 0})
        await a.call_tool("log_experiment", {"note": "secret of a", "images": ids})
        await b.call_tool("load_system", {"model": "fake-color", "layer": "relu", "unit": 0})
        stolen = await b.call_tool("neuron", {"images": ids})
        assert stolen.is_error and "unknown image id" in _text(stolen)
        with pytest.raises(Exception, match="unknown image id"):
            await b.read_resource(f"aim://image/{ids[0]}")
        assert (await b.call_tool("list_log", {})).structured_content["entries"][1:] == []
        log_b = json.loads((await b.read_resource("aim://session/log")).contents[0].text)
        assert all("secret" not in entry["text"] for entry in log_b["entries"])
        mine = await a.read_resource(f"aim://image/{ids[0]}")  # the owner can
        assert mine.contents[0].blob


async def test_a_forged_session_id_header_names_no_session(server):
    """2026-07-28 requests are not checked against the SDK's sessions: their Mcp-Session-Id names nothing."""
    url, token, _, _ = server
    auth = {"Authorization": f"Bearer {token}"}
    opened = _post(url, INITIALIZE, **auth)  # a handshake-era victim, its session id from the response
    victim = opened.headers["mcp-session-id"]
    legacy = {**auth, "Mcp-Session-Id": victim, "Mcp-Protocol-Version": "2025-06-18"}
    _post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, **legacy)
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "log_experiment", "arguments": {"note": "victim's evidence"}}}
    logged = _post(url, call, **legacy)
    assert logged.status_code == 200 and '"entry": 0' in logged.text.replace('"entry":0', '"entry": 0')
    for forged in (victim, "0" * 32):
        async with connect(url, token, headers={"Mcp-Session-Id": forged}) as modern:
            result = await modern.call_tool("list_log", {})
            assert result.is_error and "new_session" in _text(result), _text(result)


async def test_a_new_session_flood_does_not_evict_another_clients_session(server):
    url, token, _, _ = server
    async with connect(url, token) as a, connect(url, token) as b:
        handle = (await a.call_tool("new_session", {})).structured_content["session"]
        await a.call_tool("log_experiment", {"note": "a's evidence", "session": handle})
        refused = None
        for _ in range(100):  # the review's 33 calls evicted the oldest session; an address holds 64 handles
            result = await b.call_tool("new_session", {})
            if result.is_error:
                refused = _text(result)
                break
        assert refused is not None and "close_session" in refused
        entries = (await a.call_tool("list_log", {"session": handle})).structured_content["entries"]
        assert [e["text"] for e in entries] == ["a's evidence"]
