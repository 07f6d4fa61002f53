"""``aim mcp`` as a real subprocess: stdio (what desktop clients use) and streamable HTTP."""

from __future__ import annotations

import base64
import io

import pytest
from mcp import Client, StdioServerParameters
from mcp_http import AIM, FAKE, connect, env, http_server
from PIL import Image

from aim_agent.cli import main
from aim_agent.cli.mcp import is_loopback, parse_address


def _text(result) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


def test_addresses():
    assert parse_address("8765") == ("127.0.0.1", 8765)
    assert parse_address(":8765") == ("127.0.0.1", 8765)
    assert parse_address("localhost:1") == ("localhost", 1)
    assert parse_address("[::1]:9000") == ("::1", 9000)
    for bad in ("host:port", "127.0.0.1:70000", "[::1]9000"):
        with pytest.raises(ValueError):
            parse_address(bad)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10") and not is_loopback("example.org")


def test_remote_addresses_are_refused_without_allow_remote(capsys):
    assert main(["mcp", "--http", "0.0.0.0:8765"]) == 2
    assert "refusing to serve on 0.0.0.0" in capsys.readouterr().err


@pytest.mark.anyio
async def test_stdio_subprocess_end_to_end(tmp_path):
    params = StdioServerParameters(command=AIM, args=FAKE, env=env(), cwd=str(tmp_path))
    if True:  # the server's stderr goes to pytest's captured output
        async with Client(params) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert {
                "dataset_exemplars",
                "neuron",
                "text2image",
                "edit_images",
                "describe_images",
                "load_system",
                "list_layers",
            } <= names

            loaded = await client.call_tool("load_system", {"model": "fake-color", "layer": "relu", "unit": 0})
            assert not loaded.is_error, _text(loaded)
            made = await client.call_tool("text2image", {"prompts": ["a red square", "a blue square"]})
            assert not made.is_error, _text(made)
            images = [c for c in made.content if c.type == "image"]
            assert [Image.open(io.BytesIO(base64.b64decode(c.data))).size for c in images] == [(224, 224)] * 2

            # the unit loaded two calls ago is still this client's unit: stdio keeps one session
            fired = await client.call_tool("neuron", {"images": made.structured_content["images"]})
            assert not fired.is_error, _text(fired)
            red, blue = fired.structured_content["activations"]
            assert red > 0.3 and blue < 0.01

            pairs = await client.call_tool("edit_images", {"prompts": ["a red square"], "edits": ["make it blue"]})
            assert len(pairs.structured_content["images"]) == 2
            described = await client.call_tool("describe_images", {"images": fired.structured_content["images"]})
            assert described.structured_content["descriptions"][0] == "a reddish square"

            huge = await client.call_tool("text2image", {"prompts": ["a red square"] * 10_000})
            assert huge.is_error and "at most 64" in _text(huge)
            bad_unit = await client.call_tool("load_system", {"model": "fake-color", "layer": "relu", "unit": 40})
            assert bad_unit.is_error and "out of range" in _text(bad_unit)
            still = await client.call_tool("neuron", {"images": made.structured_content["images"][:1]})
            assert not still.is_error and still.structured_content["activations"][0] > 0.3


@pytest.mark.anyio
async def test_http_sessions(tmp_path):
    with http_server(tmp_path) as (url, token, _, _):
        await _http_sessions(url, token)


async def _http_sessions(url: str, token: str) -> None:
    async with connect(url, token) as stateless:
        # a 2026-era HTTP client's requests carry no session: state needs an explicit handle
        refused = await stateless.call_tool("load_system", {"model": "fake-color", "layer": "relu", "unit": 1})
        assert refused.is_error and "new_session" in _text(refused)
        models = await stateless.call_tool("list_models", {})  # session-free tools work without one
        assert not models.is_error

        one = (await stateless.call_tool("new_session", {})).structured_content["session"]
        two = (await stateless.call_tool("new_session", {})).structured_content["session"]
        made = await stateless.call_tool("text2image", {"prompts": ["a green square"], "session": one})
        assert not made.is_error, _text(made)
        await stateless.call_tool("load_system", {"model": "fake-color", "layer": "relu", "unit": 1, "session": one})
        await stateless.call_tool("load_system", {"model": "fake-color", "layer": "relu", "unit": 2, "session": two})
        ids = made.structured_content["images"]
        green_1 = await stateless.call_tool("neuron", {"images": ids, "session": one})
        # sessions do not share images: session two cannot read session one's ids...
        foreign = await stateless.call_tool("neuron", {"images": ids, "session": two})
        assert foreign.is_error and "unknown image id" in _text(foreign)
        # ...but the same pixels sent as base64 work, on its own unit
        pixels = [c.data for c in made.content if c.type == "image"]
        green_2 = await stateless.call_tool("neuron", {"images": pixels, "session": two})
        assert green_1.structured_content["activations"][0] > 0.3  # unit 1: green
        assert green_2.structured_content["activations"][0] < 0.01  # unit 2: blue

    async with connect(url, token, mode="legacy") as a, connect(url, token, mode="legacy") as b:
        # handshake-era clients get an HTTP session id: no handle needed, and no sharing
        await a.call_tool("load_system", {"model": "fake-color", "layer": "relu", "unit": 0})
        await a.call_tool("log_experiment", {"note": "a"})
        assert (await b.call_tool("list_log", {})).structured_content["entries"] == []
        assert [e["text"] for e in (await a.call_tool("list_log", {})).structured_content["entries"]][-1] == "a"
        no_system = await b.call_tool("neuron", {"images": ["img_0"]})
        assert no_system.is_error


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_closed_http_sessions_free_their_place(tmp_path):
    """Clients that open a session per call (langchain-mcp-adapters does) never fill the server up."""
    with http_server(tmp_path, "--max-sessions", "2") as (url, token, _, _):
        for _ in range(5):
            async with connect(url, token, mode="legacy") as client:  # ends with DELETE: the state goes
                logged = await client.call_tool("log_experiment", {"note": "one call"})
                assert not logged.is_error, _text(logged)
                assert len((await client.call_tool("list_log", {})).structured_content["entries"]) == 1


def test_http_token_comes_from_the_environment_or_is_made(tmp_path):
    from aim_agent.cli.mcp import http_token
    from aim_agent.config import load_config

    made, generated = http_token(load_config(env={}, cwd=tmp_path))
    assert generated and len(made) >= 32 and made != http_token(load_config(env={}, cwd=tmp_path))[0]
    assert http_token(load_config(env={"AIM_MCP_TOKEN": "x" * 20}, cwd=tmp_path)) == ("x" * 20, False)
    (tmp_path / "aim.toml").write_text('[mcp]\ntoken = "from-the-config-file"\n')
    assert http_token(load_config(env={}, cwd=tmp_path)) == ("from-the-config-file", False)
    with pytest.raises(ValueError, match="at least 16"):
        http_token(load_config(env={"AIM_MCP_TOKEN": "short"}, cwd=tmp_path))
