"""Session accounting a stranger cannot exhaust: stateless clients' handles expire, allowances are
per address and per server, idle sessions with a handle leave memory to make room, refusals say
when to retry and how to close.

In process, a stateless HTTP request is what the SDK hands the server: a request context whose
``request`` is the HTTP request (its peer address) and which carries no session; the registry's
clock is a test clock, so expiry is exact and no test waits.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import aim_fake_plugin as fakes
import pytest
from aim_testing import HANG_S
from mcp_http import AIM, FAKE, env

from aim_agent.mcp_server.sessions import Limits
from aim_agent.system import System


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _server(tmp_path, **limits):
    from aim_agent.mcp_server import ServerOptions, build_server

    server = build_server(ServerOptions(
        context_factory=lambda: fakes.fake_context(System(fakes.ColorProbe(), 0)),
        runs_dir=tmp_path / "runs",
        require_session=True,
        limits=Limits(**limits),
    ))
    clock = Clock()
    server.aim.registry.clock = clock
    return server, clock


def _stateless(address: str) -> SimpleNamespace:
    """A 2026-07-28 HTTP request from ``address``: no session id, no connection, no _meta."""
    http = SimpleNamespace(client=SimpleNamespace(host=address), headers={})
    return SimpleNamespace(request=http, protocol_version="2026-07-28", meta=None, lifespan_context=None, session=None)


async def _call(server, name: str, args: dict, address: str = "10.0.0.1"):
    result = await server.aim.call(server.aim.specs[name], args, _stateless(address))
    text = "\n".join(c.text for c in result.content if c.type == "text")
    return result, text


async def _new(server, address: str = "10.0.0.1") -> str:
    result, text = await _call(server, "new_session", {}, address)
    assert not result.is_error, text
    return str(result.structured_content["session"])


@pytest.mark.anyio
async def test_a_stateless_clients_handle_expires_after_its_idle_minutes(tmp_path):
    server, clock = _server(tmp_path, stateless_idle_s=600)
    handle = await _new(server)
    created, _ = await _call(server, "new_session", {})
    assert "expires after 10 min unused" in created.structured_content["note"]
    assert not (await _call(server, "log_experiment", {"note": "kept", "session": handle}))[0].is_error
    clock.now += 590
    listed, _ = await _call(server, "list_log", {"session": handle})  # used: the idle time starts again
    assert [e["text"] for e in listed.structured_content["entries"]] == ["kept"]
    clock.now += 590
    assert not (await _call(server, "list_log", {"session": handle}))[0].is_error
    clock.now += 601
    expired, text = await _call(server, "list_log", {"session": handle})
    assert expired.is_error and "expired" in text and "10 min" in text and "new_session" in text
    assert server.aim.handles.load(handle) is None  # its saved state went with it


@pytest.mark.anyio
async def test_an_address_has_its_own_allowance_and_the_refusal_says_when_and_how(tmp_path):
    server, clock = _server(tmp_path, max_per_address=3, stateless_idle_s=600)
    mine = [await _new(server, "10.0.0.1") for _ in range(3)]
    clock.now += 100
    refused, text = await _call(server, "new_session", {}, "10.0.0.1")
    assert refused.is_error
    assert "retry in about 500 s" in text and "close_session" in text and "--max-sessions-per-address" in text
    assert await _new(server, "10.0.0.2")  # a stranger at another address is not locked out
    closed, _ = await _call(server, "close_session", {"handle": mine[0]}, "10.0.0.1")
    assert closed.structured_content == {"closed": True}
    assert await _new(server, "10.0.0.1")  # closing made room
    clock.now += 601  # the rest expire: the address's allowance is free again
    assert [await _new(server, "10.0.0.1") for _ in range(3)]


@pytest.mark.anyio
async def test_all_stateless_clients_together_are_bounded_too(tmp_path):
    server, _ = _server(tmp_path, max_per_address=3, max_stateless_handles=4)
    for address in ("10.0.0.1", "10.0.0.1", "10.0.0.1", "10.0.0.2"):
        await _new(server, address)
    refused, text = await _call(server, "new_session", {}, "10.0.0.3")
    assert refused.is_error and "--max-stateless-sessions" in text and "close_session" in text


@pytest.mark.anyio
async def test_idle_sessions_with_a_handle_leave_memory_to_make_room_and_come_back(tmp_path):
    server, clock = _server(tmp_path, max_sessions=2, spill_after_s=30)
    first = await _new(server)
    await _call(server, "log_experiment", {"note": "first's evidence", "session": first})
    second = await _new(server)
    full, text = await _call(server, "new_session", {})  # both in use a moment ago: no room yet
    assert full.is_error and "try again in about 30 s" in text and "close_session" in text
    clock.now += 31
    third = await _new(server)  # the least recently used left memory, not the server
    listed, text = await _call(server, "list_log", {"session": first})  # back from disk, its log intact
    assert not listed.is_error, text
    assert [e["text"] for e in listed.structured_content["entries"]] == ["first's evidence"]
    assert server.aim.registry.count() == 2 and {first, second, third}


@pytest.mark.anyio
async def test_a_stateless_handle_keeps_its_owner_and_idle_rule_in_a_later_process(tmp_path):
    first, _ = _server(tmp_path, stateless_idle_s=600)
    handle = await _new(first, "10.0.0.9")
    await _call(first, "log_experiment", {"note": "before the restart", "session": handle}, "10.0.0.9")

    later, _ = _server(tmp_path, stateless_idle_s=600)  # same runs folder: the handle comes back...
    listed, text = await _call(later, "list_log", {"session": handle}, "10.0.0.9")
    assert [e["text"] for e in listed.structured_content["entries"]] == ["before the restart"], text
    assert later.aim.registry.resolve(None, handle).owner == "addr:10.0.0.9"  # ...still the address's

    state = next((tmp_path / "runs" / ".mcp-sessions").glob("*/state.json"))
    saved = json.loads(state.read_text())
    state.write_text(json.dumps({**saved, "last_used": saved["last_used"] - 601}))  # unused for 10 min
    third, _ = _server(tmp_path, stateless_idle_s=600)
    expired, text = await _call(third, "list_log", {"session": handle}, "10.0.0.9")
    assert expired.is_error and "expired" in text
    assert not state.exists()


@pytest.mark.anyio
async def test_a_connections_own_sessions_keep_the_per_client_limit(tmp_path):
    from mcp import Client

    server, _ = _server(tmp_path, max_per_client=2)
    async with Client(server) as client:
        made = [await client.call_tool("new_session", {}) for _ in range(3)]
        assert [r.is_error for r in made] == [False, False, True]
        assert "close_session" in made[-1].content[0].text


# -- the runs folder -----------------------------------------------------------------------------


def test_the_default_runs_folder_is_the_users_data_folder_never_the_working_directory(tmp_path):
    from aim_agent.config import load_config
    from aim_agent.mcp_server.runs import default_runs_dir

    assert default_runs_dir(load_config(env={"XDG_DATA_HOME": str(tmp_path)}, cwd=tmp_path)) == (
        tmp_path / "aim" / "runs")
    assert default_runs_dir(load_config(env={"HOME": str(tmp_path)}, cwd=tmp_path)) == (
        tmp_path / ".local" / "share" / "aim" / "runs")
    chosen = load_config(env={"AIM_RUNS_DIR": str(tmp_path / "mine"), "XDG_DATA_HOME": "/elsewhere"}, cwd=tmp_path)
    assert default_runs_dir(chosen) == tmp_path / "mine"


@pytest.mark.anyio
async def test_a_server_started_in_the_root_folder_writes_into_the_data_folder(tmp_path):
    from mcp import Client, StdioServerParameters

    before = {p.name for p in Path("/").iterdir()}
    params = StdioServerParameters(command=AIM, args=FAKE, env=env(XDG_DATA_HOME=str(tmp_path)), cwd="/")
    async with Client(params) as client:
        loaded = await client.call_tool("load_system", {"model": "fake-color", "layer": "relu", "unit": 1})
        assert not loaded.is_error
    assert any((tmp_path / "aim" / "runs" / ".mcp-sessions").iterdir())  # the handle's state is there
    assert {p.name for p in Path("/").iterdir()} == before  # nothing new in /


@pytest.mark.parametrize("where", ["file", "root"])
def test_a_server_that_cannot_write_its_runs_folder_does_not_start(tmp_path, where):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    folder = str(blocker / "runs") if where == "file" else "/"
    done = subprocess.run([AIM, *FAKE, "--runs-dir", folder], input="", cwd=tmp_path, env=env(),
                          capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 2 and done.stdout == ""  # refused before any call
    expected = "is not writable" if where == "file" else "root folder"
    assert expected in done.stderr and "--runs-dir" in done.stderr, done.stderr
