"""The session tools over a real model-loading path: a plugin's model loader, ModelProbe, System."""

from __future__ import annotations

import sys
import threading
import types

import pytest
from aim_testing import HANG_S, poll
from mcp import Client

from aim_agent.config import load_config
from aim_agent.plugins import AimPlugins

pytestmark = pytest.mark.anyio


async def _status(client, run_id: str) -> dict:
    """read_result's structured answer for ``run_id``."""
    return (await client.call_tool("read_result", {"run_id": run_id})).structured_content


def _text(result) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


@pytest.fixture
def server(tmp_path):
    from aim_agent.mcp_server import ServerOptions, build_server

    plugins = AimPlugins()
    plugins.add_module("aim_fake_plugin", source="test")
    config = load_config({"text2image": "fake", "editor": "fake", "describer": "fake"}, env={}, cwd=tmp_path)
    return build_server(ServerOptions(config=config, plugins=plugins, runs_dir=tmp_path / "runs",
                                      progress_interval=0.05))


async def test_list_models_layers_and_load_a_system(server):
    async with Client(server, mode="legacy") as client:
        models = (await client.call_tool("list_models", {})).structured_content
        assert any(lo["name"] == "fake" for lo in models["loaders"])
        layers = await client.call_tool("list_layers", {"model": "fake-color"})
        assert not layers.is_error, _text(layers)
        by_name = {layer["name"]: layer for layer in layers.structured_content["layers"]}
        assert by_name["relu"]["units"] == 4

        before = await client.call_tool("neuron", {"images": ["img_x"]})
        assert before.is_error

        none_yet = await client.call_tool("text2image", {"prompts": ["a red square", "a green square"]})
        ids = none_yet.structured_content["images"]
        no_system = await client.call_tool("neuron", {"images": ids})
        assert no_system.is_error and "load_system" in _text(no_system)

        loaded = await client.call_tool("load_system", {"model": "fake-color", "layer": "relu", "unit": 1})
        assert not loaded.is_error, _text(loaded)
        assert loaded.structured_content["num_units"] == 4 and loaded.structured_content["kind"] == "neuron"
        acts = (await client.call_tool("neuron", {"images": ids})).structured_content["activations"]
        assert acts[1] > 0.3 > acts[0]  # unit 1 is the green unit

        entries = (await client.call_tool("list_log", {})).structured_content
        assert "unit 1 of layer relu" in entries["system"]


async def test_bad_system_arguments_are_clear_errors(server):
    async with Client(server) as client:
        cases = {
            "unknown layer": ({"model": "fake-color", "layer": "conv9", "unit": 0}, "no layer 'conv9'"),
            "unit out of range": ({"model": "fake-color", "layer": "relu", "unit": 99}, "valid units are 0..3"),
            "missing unit": ({"model": "fake-color", "layer": "relu"}, "missing: unit"),
            "unknown model": ({"model": "no-such-model", "layer": "x", "unit": 0}, "is not offered by this server"),
            "negative unit": ({"model": "fake-color", "layer": "relu", "unit": -1}, ">= 0"),
            "both": ({"synthetic": "dog", "model": "fake-color"}, "not both"),
        }
        for name, (arguments, expected) in cases.items():
            result = await client.call_tool("load_system", arguments)
            assert result.is_error, name
            assert expected in _text(result), (name, _text(result))
        ok = await client.call_tool("load_system", {"model": "fake-color", "layer": "relu", "unit": 0})
        assert not ok.is_error


async def test_interpret_runs_in_the_background(server, monkeypatch, tmp_path):
    """start_interpret/read_result/report resources, with a stand-in runner (the real one is tested elsewhere)."""
    from dataclasses import dataclass
    from pathlib import Path

    from aim_agent.agent import config as agent_config
    from aim_agent.agent.record import Backends, RunRecord
    from aim_agent.agent.schema import Conclusion

    @dataclass
    class RunResult:
        description: str
        labels: list[str]
        run_dir: Path

    release = threading.Event()
    seen: list[agent_config.RunConfig] = []

    def run_interpret(config: agent_config.RunConfig, *, progress=None) -> RunResult:
        seen.append(config)
        run_dir = Path(config.runs_dir) / config.run_id
        run_dir.mkdir(parents=True)
        (run_dir / "report.html").write_text("<html>unit report</html>")
        progress("round 1: testing red")
        if config.unit == 13:
            raise RuntimeError("the scientist gave up")
        release.wait(HANG_S)  # set by the test once it has seen the run running
        if config.unit != 14:  # unit 14: the runner "forgets" its record
            RunRecord(run_id=config.run_id, status="finished", task="what fires it?", unit_label="unit 0",
                      config=agent_config.RunConfig(model=config.model, layer=config.layer, unit=config.unit),
                      backends=Backends(scientist="offline", describer="fake", critic="rules only"),
                      conclusion=Conclusion(description="fires on red", labels=["red"]), rounds_run=1).write(run_dir)
        return RunResult(description="fires on red", labels=["red"], run_dir=run_dir)

    fake = types.ModuleType("aim_agent.agent.runner")
    fake.run_interpret = run_interpret
    monkeypatch.setitem(sys.modules, "aim_agent.agent.runner", fake)

    async with Client(server) as client:
        bad = await client.call_tool("start_interpret", {"model": "fake-color"})
        assert bad.is_error and "needs model, layer and unit" in _text(bad)

        started = await client.call_tool("start_interpret", {"model": "fake-color", "layer": "relu", "unit": 0})
        assert not started.is_error, _text(started)
        run_id = started.structured_content["run_id"]
        status = (await client.call_tool("read_result", {"run_id": run_id})).structured_content
        assert status["status"] == "running" and status["result"] is None
        assert seen[0].text2image == "fake" and seen[0].run_id == run_id  # the server's providers are used
        status = await poll(lambda: _status(client, run_id), lambda s: bool(s["progress"]))
        assert status["progress"] == ["round 1: testing red"]
        release.set()
        status = await poll(lambda: _status(client, run_id), lambda s: bool(s["status"] != "running"))
        assert status["status"] == "finished", status
        assert status["result"]["conclusion"]["labels"] == ["red"] and status["result"]["rounds_run"] == 1
        report = await client.read_resource(f"aim://runs/{run_id}/report.html")
        assert "fires on red" in report.contents[0].text  # rendered from the run's record
        result = await client.read_resource(f"aim://runs/{run_id}/result.json")
        assert '"fires on red"' in result.contents[0].text

        failing = await client.call_tool("start_interpret", {"model": "fake-color", "layer": "relu", "unit": 13})
        failing_id = failing.structured_content["run_id"]
        status = await poll(lambda: _status(client, failing_id), lambda s: bool(s["status"] != "running"))
        assert status["status"] == "failed" and "gave up" in status["error"]

        silent = await client.call_tool("start_interpret", {"model": "fake-color", "layer": "relu", "unit": 14})
        silent_id = silent.structured_content["run_id"]
        status = await poll(lambda: _status(client, silent_id), lambda s: bool(s["status"] != "running"))
        assert status["status"] == "failed" and f"no run record at {tmp_path}" in status["error"]
        assert f"{silent_id}/result.json" in status["error"]

        unknown = await client.call_tool("read_result", {"run_id": "nope"})
        assert unknown.is_error and "unknown run" in _text(unknown)
        with pytest.raises(Exception, match="unknown run"):
            await client.read_resource("aim://runs/nope/report.html")


async def test_sae_latents_as_units(tmp_path):
    from aim_agent.mcp_server import ServerOptions, build_server
    from aim_agent.sae import SparseAutoencoder

    SparseAutoencoder(4, 8, activation="relu").save(tmp_path / "sae")
    SparseAutoencoder(5, 8, activation="relu").save(tmp_path / "wrong-width")
    SparseAutoencoder(4, 8, activation="relu").save(tmp_path / "not-offered")
    # SAE folders are offered like models: by the operator, in aim.toml (relative to the file) or --trust-model
    (tmp_path / "aim.toml").write_text(
        f'[models]\nallowed = ["sae", "wrong-width", "{tmp_path / "nothing"}"]\n'
        '[models.named]\ncolor-sae = "sae"\n'
    )
    plugins = AimPlugins()
    plugins.add_module("aim_fake_plugin", source="test")
    config = load_config({"text2image": "fake", "editor": "fake", "describer": "fake"}, env={}, cwd=tmp_path)
    server = build_server(ServerOptions(config=config, plugins=plugins, runs_dir=tmp_path / "runs"))
    async with Client(server, mode="legacy") as client:
        loaded = await client.call_tool(
            "load_system", {"model": "fake-color", "layer": "relu", "unit": 7, "sae": str(tmp_path / "sae")}
        )
        assert not loaded.is_error, _text(loaded)
        assert loaded.structured_content["kind"] == "sae" and loaded.structured_content["num_units"] == 8
        made = await client.call_tool("text2image", {"prompts": ["a red square"]})
        fired = await client.call_tool("neuron", {"images": made.structured_content["images"]})
        assert not fired.is_error and len(fired.structured_content["activations"]) == 1
        by_name = await client.call_tool("load_system", {"model": "fake-color", "layer": "relu", "unit": 1,
                                                         "sae": "color-sae"})
        assert not by_name.is_error, _text(by_name)
        refused = await client.call_tool(
            "load_system", {"model": "fake-color", "layer": "relu", "unit": 0, "sae": str(tmp_path / "not-offered")}
        )
        assert refused.is_error and "not offered" in _text(refused) and "color-sae" in _text(refused)
        too_far = await client.call_tool(
            "load_system", {"model": "fake-color", "layer": "relu", "unit": 8, "sae": str(tmp_path / "sae")}
        )
        assert too_far.is_error and "0..7" in _text(too_far)
        wrong = await client.call_tool(
            "load_system", {"model": "fake-color", "layer": "relu", "unit": 0, "sae": str(tmp_path / "wrong-width")}
        )
        assert wrong.is_error and "5-dim" in _text(wrong)
        missing = await client.call_tool(
            "load_system", {"model": "fake-color", "layer": "relu", "unit": 0, "sae": str(tmp_path / "nothing")}
        )
        assert missing.is_error and "no SAE" in _text(missing)
