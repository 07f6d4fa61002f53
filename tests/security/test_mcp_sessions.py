"""One client cannot read another's runs, nor exhaust or evict another's sessions (in process)."""

from __future__ import annotations

import sys
import threading
import types
from dataclasses import dataclass
from pathlib import Path

import aim_fake_plugin as fakes
import anyio
import pytest
from aim_testing import HANG_S
from mcp import Client

from aim_agent.agent.record import Backends, RunRecord
from aim_agent.agent.schema import Conclusion
from aim_agent.system import System

pytestmark = pytest.mark.anyio


def _text(result) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


@pytest.fixture
def fake_runner(monkeypatch):
    """A stand-in for aim_agent.agent.runner whose runs finish when ``release`` is set."""

    @dataclass
    class RunResult:
        description: str
        run_dir: Path

    release = threading.Event()

    def run_interpret(config, *, progress=None):
        run_dir = Path(config.runs_dir) / config.run_id
        run_dir.mkdir(parents=True)
        RunRecord(run_id=config.run_id, status="finished", task="what fires it?", unit_label="unit 0",
                  config=config, backends=Backends(scientist="offline", describer="fake", critic="rules only"),
                  conclusion=Conclusion(description="secret", labels=["secret"]), rounds_run=1).write(run_dir)
        release.wait(HANG_S)  # the test sets it when it is done with the running run
        return RunResult(description="secret", run_dir=run_dir)

    module = types.ModuleType("aim_agent.agent.runner")
    module.run_interpret = run_interpret
    monkeypatch.setitem(sys.modules, "aim_agent.agent.runner", module)
    yield release
    release.set()


def _server(tmp_path, **options):
    from aim_agent.mcp_server import ServerOptions, build_server

    return build_server(ServerOptions(
        context_factory=lambda: fakes.fake_context(System(fakes.ColorProbe(), 0)),
        runs_dir=tmp_path / "runs",
        progress_interval=0.05,
        **options,
    ))


async def _finished(client, run_id, **extra):
    for _ in range(300):
        status = (await client.call_tool("read_result", {"run_id": run_id, **extra})).structured_content
        if status["status"] != "running":
            return status
        await anyio.sleep(0.02)
    raise AssertionError(status)


async def test_client_b_cannot_read_client_a_s_run(tmp_path, fake_runner):
    server = _server(tmp_path)
    async with Client(server, mode="legacy") as a, Client(server, mode="legacy") as b:
        started = await a.call_tool("start_interpret", {"synthetic": "red"})
        assert not started.is_error, _text(started)
        run_id = started.structured_content["run_id"]
        fake_runner.set()
        assert (await _finished(a, run_id))["status"] == "finished"

        stolen = await b.call_tool("read_result", {"run_id": run_id})
        assert stolen.is_error and "unknown run" in _text(stolen)
        for name in ("report.html", "result.json"):
            with pytest.raises(Exception, match="unknown run"):
                await b.read_resource(f"aim://runs/{run_id}/{name}")
            assert "secret" in (await a.read_resource(f"aim://runs/{run_id}/{name}")).contents[0].text
        # run ids are not paths: a crafted one reads nothing either
        for crafted in ("../runs", run_id + "/../" + run_id, "."):
            assert (await b.call_tool("read_result", {"run_id": crafted})).is_error


async def test_explicit_sessions_do_not_share_runs(tmp_path, fake_runner):
    server = _server(tmp_path)
    fake_runner.set()
    async with Client(server) as client:
        one = (await client.call_tool("new_session", {})).structured_content["session"]
        two = (await client.call_tool("new_session", {})).structured_content["session"]
        started = await client.call_tool("start_interpret", {"synthetic": "red", "session": one})
        run_id = started.structured_content["run_id"]
        assert (await _finished(client, run_id, session=one))["status"] == "finished"
        other = await client.call_tool("read_result", {"run_id": run_id, "session": two})
        assert other.is_error and "unknown run" in _text(other)
        with pytest.raises(Exception, match="unknown run"):
            await client.read_resource(f"aim://runs/{run_id}/result.json?session={two}")
        ok = await client.read_resource(f"aim://runs/{run_id}/result.json?session={one}")
        assert "secret" in ok.contents[0].text


async def test_session_limits_refuse_instead_of_evicting(tmp_path):
    server = _server(tmp_path, max_sessions=6, max_sessions_per_client=3)
    async with Client(server) as a:
        handle = (await a.call_tool("new_session", {})).structured_content["session"]
        await a.call_tool("log_experiment", {"note": "kept", "session": handle})
        async with Client(server) as b:
            made = [await b.call_tool("new_session", {}) for _ in range(5)]
            assert [r.is_error for r in made] == [False, False, False, True, True]
            assert "most one client may hold" in _text(made[-1]) and "close_session" in _text(made[-1])
            async with Client(server) as c:  # a + b's 3 + the connections' own: the server's limit
                results = [await c.call_tool("new_session", {}) for _ in range(3)]
                refusal = next(r for r in results if r.is_error)
                assert "the server holds 6 sessions" in _text(refusal) and "--max-sessions" in _text(refusal)
            closed = await b.call_tool("close_session", {"handle": made[0].structured_content["session"]})
            assert closed.structured_content == {"closed": True}
            assert not (await b.call_tool("new_session", {})).is_error  # room again
        entries = (await a.call_tool("list_log", {"session": handle})).structured_content["entries"]
        assert [e["text"] for e in entries] == ["kept"]


async def test_session_handles_are_scoped_to_the_bearer_token_and_bounded(tmp_path):
    """A handle minted under one HTTP token is unknown under another; the store never holds the
    handle itself; a restored session counts against the server's session limit."""
    from aim_agent.mcp_server import http_app

    server = _server(tmp_path)
    http_app(server, host="127.0.0.1", port=8765, token="a" * 32)
    scope_a = server.aim.handles.scope
    async with Client(server) as client:
        handle = (await client.call_tool("new_session", {})).structured_content["session"]
        assert not (await client.call_tool("log_experiment", {"note": "mine", "session": handle})).is_error
    assert not any(handle in p.read_text(errors="ignore") for p in (tmp_path / "runs").rglob("*") if p.is_file())

    later = _server(tmp_path)  # same runs directory, another token
    http_app(later, host="127.0.0.1", port=8765, token="b" * 32)
    assert later.aim.handles.scope != scope_a
    async with Client(later) as client:
        refused = await client.call_tool("list_log", {"session": handle})
        assert refused.is_error and "unknown session" in _text(refused)

    same = _server(tmp_path, max_sessions=1)  # same token: known, but the server is full
    http_app(same, host="127.0.0.1", port=8765, token="a" * 32)
    async with Client(same) as client:
        assert not (await client.call_tool("list_log", {})).is_error  # this connection's session fills it
        full = await client.call_tool("list_log", {"session": handle})
        assert full.is_error and "limit" in _text(full)
    restored = _server(tmp_path)
    http_app(restored, host="127.0.0.1", port=8765, token="a" * 32)
    async with Client(restored) as client:
        entries = (await client.call_tool("list_log", {"session": handle})).structured_content["entries"]
        assert [e["text"] for e in entries] == ["mine"]
