"""What any MCP client needs from the server: strict schemas, listed resources, honest annotations,
error codes, a version, and state that survives clients that open a new session for every call."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
from aim_testing import HANG_S, poll
from jsonschema import Draft202012Validator
from mcp import Client, MCPError

from aim_agent.config import load_config
from aim_agent.mcp_server import ServerOptions, build_server
from aim_agent.mcp_server.bridge import RESOURCE_NOT_FOUND, mcp_wording
from aim_agent.plugins import AimPlugins

pytestmark = pytest.mark.anyio
JSON_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}


def _text(result) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


def _server(tmp_path: Path, **options):
    """A server over the fake plugin's model (fake-color) and providers; a second one over the
    same runs directory stands for a later server process."""
    plugins = AimPlugins()
    plugins.add_module("aim_fake_plugin", source="test")
    config = load_config({"text2image": "fake", "editor": "fake", "describer": "fake"}, env={}, cwd=tmp_path)
    return build_server(ServerOptions(config=config, plugins=plugins, runs_dir=tmp_path / "runs",
                                      progress_interval=0.05, **options))


async def _read_result(client, run_id: str) -> dict:
    """read_result's structured answer for ``run_id``."""
    return (await client.call_tool("read_result", {"run_id": run_id})).structured_content


# -- schemas -------------------------------------------------------------------------------------


def schema_problems(schema: dict, where: str, *, inputs: bool = True) -> list[str]:
    """Our lint on top of the meta-schema: every property typed and described, no duplicated
    anyOf; an input anyOf has a top-level type (simple clients read only that), an output
    anyOf one type per branch (what the MCP Inspector's --strict asks for)."""
    problems: list[str] = []

    def walk(node, path: str, *, is_property: bool = False) -> None:
        if not isinstance(node, dict):
            return
        if is_property:
            if not node.get("description"):
                problems.append(f"{path}: no description")
            typed_branches = all(isinstance(b.get("type"), str) or "$ref" in b for b in node.get("anyOf", [{}]))
            if "type" not in node and "$ref" not in node and not (not inputs and "anyOf" in node and typed_branches):
                problems.append(f"{path}: no type")
        kinds = node.get("type")
        for kind in [kinds] if isinstance(kinds, str) else kinds or []:
            if kind not in JSON_TYPES:
                problems.append(f"{path}: unknown type {kind!r}")
        branches = node.get("anyOf")
        if branches is not None:
            if "type" not in node and inputs:
                problems.append(f"{path}: anyOf without a top-level type")
            if not inputs and any(not isinstance(b.get("type"), str) and "$ref" not in b for b in branches):
                problems.append(f"{path}: an output anyOf branch without one type")
            encoded = [json.dumps(b, sort_keys=True) for b in branches]
            if len(set(encoded)) < len(encoded) or len({b.get("type") for b in branches if "type" in b}) < len(
                [b for b in branches if "type" in b]
            ):
                problems.append(f"{path}: anyOf branches of the same type")
        for name, prop in (node.get("properties") or {}).items():
            walk(prop, f"{path}.{name}", is_property=True)
        for key in ("items", "additionalProperties"):
            walk(node.get(key), f"{path}.{key}")
        for i, branch in enumerate(branches or []):
            walk(branch, f"{path}.anyOf[{i}]")
        for name, definition in (node.get("$defs") or {}).items():
            walk(definition, f"{path}.$defs.{name}")

    walk(schema, where)
    return problems


async def test_every_schema_is_strict_typed_and_described(tmp_path):
    """Every tool AIM and its plugins (the world's too) serve: Draft 2020-12 valid and lint-clean."""
    # the installed plugins' tools as well
    server = build_server(ServerOptions(runs_dir=tmp_path / "runs", enable_code=True))
    async with Client(server) as client:
        tools = (await client.list_tools()).tools
    assert len(tools) >= 20
    problems: list[str] = []
    for tool in tools:
        for kind, schema in (("input", tool.input_schema), ("output", tool.output_schema)):
            if schema is None:
                continue
            Draft202012Validator.check_schema(schema)  # raises on a schema that breaks the meta-schema
            problems += schema_problems(schema, f"{tool.name}.{kind}", inputs=kind == "input")
        required = set(tool.input_schema.get("required", []))
        for name, prop in tool.input_schema.get("properties", {}).items():
            kinds = prop.get("type")
            if name not in required and isinstance(kinds, list) and "null" in kinds:
                problems.append(f"{tool.name}.input.{name}: optional input typed with null")
    assert not problems, "\n".join(problems)

    by_name = {t.name: t for t in tools}
    load = by_name["load_system"].input_schema["properties"]
    assert load["unit"]["type"] == "integer" and load["model"]["type"] == "string"  # not anyOf [T, null]
    result = by_name["read_result"].output_schema["properties"]
    assert result["error"]["anyOf"] == [{"type": "string"}, {"type": "null"}]  # outputs keep their nulls
    assert result["result"]["anyOf"][0]["type"] == "object"
    items = by_name["display"].input_schema["properties"]["items"]["items"]
    assert items["type"] == "string" and "anyOf" not in items


async def test_lint_catches_what_it_should():
    bad = {
        "type": "object",
        "properties": {
            "a": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "b": {"type": "string", "description": "x", "items": {"anyOf": [{"type": "string"}, {"type": "string"}]}},
        },
    }
    found = "\n".join(schema_problems(bad, "t"))
    assert "t.a: no description" in found and "t.a: no type" in found and "anyOf without a top-level type" in found
    assert "same type" in found


async def test_annotations_come_from_the_tool_definitions(tmp_path):
    server = build_server(ServerOptions(runs_dir=tmp_path / "runs", enable_code=True))
    specs = server.aim.specs
    async with Client(server) as client:
        tools = (await client.list_tools()).tools
    for tool in tools:
        hints = tool.annotations
        spec = specs[tool.name]
        assert (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint, hints.open_world_hint) == (
            spec.read_only, spec.destructive, spec.idempotent, spec.open_world
        ), tool.name
        assert hints.destructive_hint is not None  # explicit: MCP's default would be 'destructive'
        if spec.needs_system or tool.name in ("text2image", "edit_images", "start_interpret", "run_code"):
            assert hints.destructive_hint is False, f"{tool.name}: an experiment is not destructive"
    wire = json.loads(tools[0].model_dump_json(by_alias=True, exclude_none=True))
    assert "destructiveHint" in wire["annotations"]


# -- version, resources, error codes ---------------------------------------------------------------


async def test_version_resources_and_not_found(tmp_path):
    from importlib.metadata import version

    server = _server(tmp_path)
    async with Client(server, mode="legacy") as client:
        assert client.server_info.name == "aim" and client.server_info.version == version("aim-agent")
        listed = {str(r.uri): r for r in (await client.list_resources()).resources}
        assert "aim://session/log" in listed and listed["aim://session/log"].mime_type == "application/json"
        log = await client.read_resource("aim://session/log")
        assert json.loads(log.contents[0].text)["entries"] == []
        for uri in ("aim://image/img_0123abcd", "aim://runs/mcp-nope/result.json", "aim://nothing/here"):
            with pytest.raises(MCPError) as caught:
                await client.read_resource(uri)
            assert caught.value.error.code == RESOURCE_NOT_FOUND, uri


async def test_error_texts_name_mcp_tools(tmp_path):
    assert mcp_wording("List all 9 layers with `aim layers world-cnn`") == (
        "List all 9 layers with the tool list_layers(model='world-cnn')"
    )
    assert "list_models" in mcp_wording("a plugin's model (`aim layers` lists them)")
    server = _server(tmp_path)
    async with Client(server) as client:
        bad = await client.call_tool("load_system", {"model": "fake-color", "layer": "conv9", "unit": 0})
    assert bad.is_error and "no layer 'conv9'" in _text(bad)
    assert "`aim " not in _text(bad) and "list_layers" in _text(bad)


# -- state across per-call sessions and server processes --------------------------------------------


async def test_a_handle_keeps_the_unit_log_and_images_across_connections_and_processes(tmp_path):
    first = _server(tmp_path)
    async with Client(first) as client:
        loaded = await client.call_tool("load_system", {"model": "fake-color", "layer": "relu", "unit": 1})
        assert not loaded.is_error, _text(loaded)
        handle = loaded.structured_content["session"]
    assert handle.startswith("s_") and len(handle) > 30

    async with Client(first) as client:  # a new connection, as a per-call client opens
        made = await client.call_tool("text2image", {"prompts": ["a red square", "a green square"], "session": handle})
        ids = made.structured_content["images"]
        logged = await client.call_tool(
            "log_experiment", {"note": "green vs red", "images": ids, "activations": [0, 1], "session": handle}
        )
        assert not logged.is_error, _text(logged)

    later = _server(tmp_path)  # a new server process over the same runs directory
    async with Client(later) as client:
        acts = await client.call_tool("neuron", {"images": ids, "session": handle})
        assert not acts.is_error, _text(acts)
        assert acts.structured_content["activations"][1] > 0.3 > acts.structured_content["activations"][0]
        log = (await client.call_tool("list_log", {"session": handle})).structured_content
        assert "unit 1 of layer relu" in log["system"] and [e["kind"] for e in log["entries"]] == ["note", "experiment"]
        entry = await client.call_tool("read_log", {"entry": 1, "session": handle})
        assert [c.type for c in entry.content].count("image") == 2
        image = await client.read_resource(f"aim://image/{ids[0]}?session={handle}")
        assert image.contents[0].mime_type == "image/png"

        # without the handle this connection has its own, empty session; a made-up handle is refused
        alone = await client.call_tool("neuron", {"images": ids})
        assert alone.is_error
        forged = await client.call_tool("list_log", {"session": "s_" + "A" * 32})
        assert forged.is_error and "unknown session" in _text(forged) and "load_system" in _text(forged)

    # a server under another bearer token does not know the handle
    other = _server(tmp_path, handle_scope="http:another-token")
    async with Client(other) as client:
        refused = await client.call_tool("list_log", {"session": handle})
        assert refused.is_error and "unknown session" in _text(refused)
    saved = list((tmp_path / "runs" / ".mcp-sessions").rglob("*"))
    assert saved and not any(handle in p.read_text(errors="ignore") for p in saved if p.is_file())

    # close_session ends it for good, in every process
    async with Client(later) as client:
        closed = await client.call_tool("close_session", {"handle": handle})
        assert closed.structured_content["closed"] is True
    async with Client(_server(tmp_path)) as client:
        gone = await client.call_tool("list_log", {"session": handle})
        assert gone.is_error and "unknown session" in _text(gone)


async def test_handles_expire_and_stay_bounded(tmp_path):
    import time

    from aim_agent.mcp_server.handles import HandleStore, new_handle

    store = HandleStore(tmp_path, ttl_s=3600, max_handles=3)
    handles = [new_handle() for _ in range(5)]
    for h in handles:
        store.save(h, system={"model": "m"})
        time.sleep(0.01)
    assert store.load(handles[0]) is None and store.load(handles[-1])["system"] == {"model": "m"}
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 3
    store.ttl_s = 0.0
    time.sleep(0.01)
    assert store.load(handles[-1]) is None
    with pytest.raises(Exception, match="invalid session handle"):
        store.dir("../../etc")


async def test_runs_from_an_earlier_process_are_read_with_the_handle(tmp_path, monkeypatch):
    from aim_agent.agent import config as agent_config
    from aim_agent.agent.record import Backends, RunRecord
    from aim_agent.agent.schema import Conclusion

    def run_interpret(config, *, progress=None):
        run_dir = Path(config.runs_dir) / config.run_id
        run_dir.mkdir(parents=True)
        for k in (1, 2):
            progress(f"round {k}: testing red")
        RunRecord(run_id=config.run_id, status="finished", task="what fires it?", unit_label="unit 0",
                  config=agent_config.RunConfig(model=config.model, layer=config.layer, unit=config.unit),
                  backends=Backends(scientist="offline", describer="fake", critic="rules only"),
                  conclusion=Conclusion(description="fires on red", labels=["red"]), rounds_run=2).write(run_dir)
        (run_dir / "report.html").write_text("<html>unit report</html>")
        return types.SimpleNamespace(run_dir=run_dir)

    fake = types.ModuleType("aim_agent.agent.runner")
    fake.run_interpret = run_interpret
    monkeypatch.setitem(sys.modules, "aim_agent.agent.runner", fake)

    first = _server(tmp_path)
    async with Client(first) as client:
        args = {"model": "fake-color", "layer": "relu", "unit": 0, "max_rounds": 4}
        started = await client.call_tool("start_interpret", args)
        assert not started.is_error, _text(started)
        run_id, handle = started.structured_content["run_id"], started.structured_content["session"]
        status = await poll(lambda: _read_result(client, run_id), lambda s: bool(s["status"] != "running"))
        assert status["status"] == "finished" and (status["round"], status["max_rounds"]) == (2, 4)

    later = _server(tmp_path)
    async with Client(later) as client:
        mine = await client.call_tool("read_result", {"run_id": run_id, "session": handle})
        assert not mine.is_error, _text(mine)
        assert mine.structured_content["result"]["conclusion"]["labels"] == ["red"]
        assert "ground_truth" not in mine.structured_content["result"]
        listed = {str(r.uri) for r in (await client.list_resources()).resources}
        assert f"aim://runs/{run_id}/result.json" not in listed  # this connection did not start it
        report = await client.read_resource(f"aim://runs/{run_id}/report.html?session={handle}")
        assert "unit report" in report.contents[0].text or "<html" in report.contents[0].text
        stranger = await client.call_tool("read_result", {"run_id": run_id})
        assert stranger.is_error and "unknown run" in _text(stranger)

        loaded = await client.call_tool(
            "load_system", {"model": "fake-color", "layer": "relu", "unit": 0, "session": handle}
        )
        assert not loaded.is_error, _text(loaded)
        listed = {str(r.uri) for r in (await client.list_resources()).resources}
        assert "aim://session/log" in listed


def test_aim_mcp_serves_without_importing_torch_or_langchain(tmp_path):
    """What keeps start-up under a second (`aim bench mcp` measures it): a client that opens a
    new server per call pays for these only in a call that needs them."""
    import subprocess

    heavy = ("torch", "transformers", "langchain", "langgraph", "aim_agent.circuits.attribution")
    code = (
        "import sys; from aim_agent.cli import main; main(['mcp', '--runs-dir', sys.argv[1]]); "
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], stdin=subprocess.DEVNULL, cwd=tmp_path,
                          capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
