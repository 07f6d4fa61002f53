"""End to end on the embedded world: the world CNN, the world providers, a small exemplar folder.

In process (the MCP client library's in-memory transport) and through a real ``aim mcp``
subprocess over stdio. Uses the shipped world CNN, or random weights in its format while
those are not built; skipped where the world plugin registers no model loader.
"""

from __future__ import annotations

import base64
import importlib
import io
import json
import os
import sys
from pathlib import Path

import pytest
from aim_testing import HANG_S
from mcp import Client, StdioServerParameters
from PIL import Image

from aim_agent.models.base import ModelNotFound, load_model

pytestmark = pytest.mark.anyio

LAYER = "conv4"


@pytest.fixture(scope="module")
def world_model(tmp_path_factory) -> str:
    """The shipped world CNN; else a random-weight one in the world loader's format; else skip."""
    from aim_agent.plugins import plugin_manager

    try:
        load_model("world-cnn")
        return "world-cnn"
    except (ModelNotFound, ImportError, FileNotFoundError):
        pass
    loaders = plugin_manager().model_loaders()
    if not any(loader.can_load("world-cnn:weights.safetensors") for loader in loaders):
        pytest.skip("the world plugin registers no world-cnn loader in this checkout")
    import torch

    from aim_world.cnn import WorldCNN, save_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("world-cnn") / "random.safetensors"
    save_model(WorldCNN(4), path, {"classes": ["dog", "car", "cat", "boat"]})
    return f"world-cnn:{path}"


def _text(result) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


def _sizes(result) -> list[tuple[int, int]]:
    return [Image.open(io.BytesIO(base64.b64decode(c.data))).size for c in result.content if c.type == "image"]


@pytest.fixture(scope="module")
def exemplar_folder(tmp_path_factory) -> Path:
    """A dozen world images with their scenes.jsonl: a small, fast exemplar dataset."""
    from aim_world.datasets import write_dataset

    return write_dataset(tmp_path_factory.mktemp("exemplars") / "world-12", 12, seed=1, size=112)


@pytest.fixture
def world_env(tmp_path, exemplar_folder, monkeypatch) -> dict[str, str]:
    env = {"AIM_CACHE": str(tmp_path / "cache"), "AIM_EXEMPLAR_DATASET": str(exemplar_folder), "AIM_CONFIG": ""}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    return env


async def _experiment(client: Client, model: str) -> None:
    """The MAIA loop's primitives in order, checking images and numbers come back."""
    layers = await client.call_tool("list_layers", {"model": model})
    assert not layers.is_error, _text(layers)
    assert LAYER in [layer["name"] for layer in layers.structured_content["layers"]]
    loaded = await client.call_tool("load_system", {"model": model, "layer": LAYER, "unit": 5})
    assert not loaded.is_error, _text(loaded)

    exemplars = await client.call_tool("dataset_exemplars", {"k": 3})
    assert not exemplars.is_error, _text(exemplars)
    acts = exemplars.structured_content["activations"]
    assert len(acts) == 3 and acts == sorted(acts, reverse=True)
    assert len(_sizes(exemplars)) == 3

    made = await client.call_tool("text2image", {"prompts": ["a dog on grass", "a red car on a road"]})
    assert not made.is_error, _text(made)
    assert _sizes(made) == [(224, 224), (224, 224)]
    partial = await client.call_tool("text2image", {"prompts": ["a dog on grass", "a lighthouse on a rocky coast"]})
    assert not partial.is_error, _text(partial)  # one undrawable prompt fails only its own image
    assert partial.structured_content["images"][1] is None and len(_sizes(partial)) == 1
    assert "lighthouse" in partial.structured_content["errors"][1] and "NOT DRAWN" in _text(partial)
    fired = await client.call_tool("neuron", {"images": made.structured_content["images"]})
    assert not fired.is_error, _text(fired)
    assert len(fired.structured_content["activations"]) == 2
    assert all(isinstance(a, float) for a in fired.structured_content["activations"])

    pairs = await client.call_tool(
        "edit_images", {"prompts": ["a dog on grass"], "edits": ["replace the dog with a cat"]}
    )
    assert not pairs.is_error, _text(pairs)
    assert len(pairs.structured_content["images"]) == 2 and pairs.structured_content["applied"] == [True]

    described = await client.call_tool("describe_images", {"images": exemplars.structured_content["images"][:2]})
    assert not described.is_error, _text(described)
    assert len(described.structured_content["descriptions"]) == 2
    assert all(d.strip() for d in described.structured_content["descriptions"])

    bad_layer = await client.call_tool("load_system", {"model": model, "layer": "conv99", "unit": 0})
    assert bad_layer.is_error and "conv99" in _text(bad_layer)
    bad_unit = await client.call_tool("load_system", {"model": model, "layer": LAYER, "unit": 100_000})
    assert bad_unit.is_error and "out of range" in _text(bad_unit)
    again = await client.call_tool("neuron", {"images": made.structured_content["images"][:1]})
    assert not again.is_error  # the last good system is still loaded


async def test_world_in_process(world_model, world_env, tmp_path):
    from aim_agent.config import load_config
    from aim_agent.mcp_server import ServerOptions, build_server

    server = build_server(ServerOptions(config=load_config(), runs_dir=tmp_path / "runs"))
    async with Client(server) as client:
        await _experiment(client, world_model)


async def test_world_over_stdio(world_model, world_env, tmp_path):
    env = dict(
        world_env,
        PYTHONPATH=os.environ.get("PYTHONPATH", ""),
        HF_HUB_OFFLINE="1",
        AIM_PLUGINS=os.environ.get("AIM_PLUGINS", ""),
    )
    aim = str(Path(sys.executable).parent / "aim")
    async with Client(StdioServerParameters(command=aim, args=["mcp"], env=env, cwd=str(tmp_path))) as client:
        await _experiment(client, world_model)


async def test_synthetic_neuron_and_a_real_run(world_env, tmp_path):
    neurons = importlib.import_module("aim_world.neurons")
    import anyio

    from aim_agent.config import load_config
    from aim_agent.mcp_server import ServerOptions, build_server

    names = [n if isinstance(n, str) else n.name for n in neurons.list_synthetic()]
    server = build_server(ServerOptions(config=load_config(), runs_dir=tmp_path / "runs"))
    async with Client(server) as client:
        listed = (await client.call_tool("list_models", {})).structured_content
        synthetic = {source["name"]: source for source in listed["unit_sources"]}["synthetic"]
        assert synthetic["units"] == len(names)  # a count: the names would give the answers away
        assert not any(name in json.dumps(listed) for name in names)
        assert any(model["name"] == "world-cnn" and model["loader"] == "world" for model in listed["models"])
        loaded = await client.call_tool("load_system", {"synthetic": names[0]})
        assert not loaded.is_error, _text(loaded)
        assert loaded.structured_content["kind"] == "synthetic"
        by_index = await client.call_tool("load_system", {"synthetic": "1"})  # blind: the name is the answer
        assert not by_index.is_error and by_index.structured_content["unit"] == 1
        unknown = await client.call_tool("load_system", {"synthetic": "no_such_neuron"})
        assert unknown.is_error and "no_such_neuron" in _text(unknown)

        started = await client.call_tool(
            "start_interpret", {"synthetic": names[0], "backend": "offline", "max_rounds": 2}
        )
        assert not started.is_error, _text(started)
        run_id = started.structured_content["run_id"]
        with anyio.fail_after(HANG_S):  # a hang guard, not a speed check: the run computes exemplars first
            while True:
                status = (await client.call_tool("read_result", {"run_id": run_id})).structured_content
                if status["status"] != "running":
                    break
                await anyio.sleep(0.5)
        assert status["status"] == "finished", status
        # round k of n, from the real runner's progress: the rounds it ran, of at most 2
        assert status["max_rounds"] == 2 and status["round"] == status["result"]["rounds_run"] >= 1
        conclusion = status["result"].get("conclusion") or {}
        assert conclusion.get("labels"), status["result"]
        report = await client.read_resource(f"aim://runs/{run_id}/report.html")
        assert "<html" in report.contents[0].text.lower()
        # the client never gets the unit's answer: not in read_result, result.json or the report
        from aim_agent.agent.record import read_run_record

        truth = read_run_record(tmp_path / "runs" / run_id).ground_truth
        assert truth and "ground_truth" not in status["result"]
        record = await client.read_resource(f"aim://runs/{run_id}/result.json")
        assert json.loads(record.contents[0].text)["ground_truth"] is None
        assert truth not in report.contents[0].text
