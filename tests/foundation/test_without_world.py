"""The core stands without the world plugin (``AIM_DISABLE_PLUGINS=world``).

One subprocess runs several ``aim`` commands with the world disabled, on a tiny random-weight
transformers ResNet and a folder of random images, and reports whether any ``aim_world``
module was imported; in process, the MCP server is built over a plugin manager that blocks
the world. What needs the world (the demo, synthetic neurons, ``aim world``, the offline
scientist, the world providers) fails with an error that names the plugin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aim_testing import HANG_S

from aim_agent.plugins import AimPlugins, MissingPlugin, disabled_from_env

LAYER = "resnet.encoder.stages.1"
NAMED = "world plugin (aim_world)"  # how every error names the missing plugin

SCRIPT = """
import contextlib, io, json, sys
from aim_agent.cli import main

results = {}
for key, argv in json.loads(sys.argv[1]).items():
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse errors and --help
            code = exc.code
    results[key] = {"code": code, "out": out.getvalue(), "err": err.getvalue()}
results["world_modules"] = sorted(m for m in sys.modules if m.split(".")[0] == "aim_world")
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def without_world(resnet_dir: Path, image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """What each command printed and returned with AIM_DISABLE_PLUGINS=world, in one subprocess."""
    tmp = tmp_path_factory.mktemp("no-world")
    cache = str(tmp / "cache")
    commands = {
        "help": ["--help"],
        "layers": ["layers", str(resnet_dir)],
        "named": ["layers"],
        "exemplars": ["exemplars", "--model", str(resnet_dir), "--layer", LAYER, "--dataset", str(image_folder),
                      "--k", "3", "--batch-size", "8", "--cache", cache, "--units", "0,1"],
        "default_dataset": ["exemplars", "--model", str(resnet_dir), "--layer", LAYER, "--cache", cache],
        "demo": ["demo", "--out", str(tmp / "runs")],
        "synthetic": ["interpret", "--synthetic", "3", "--runs-dir", str(tmp / "runs")],
        "world": ["world", "render", "a red dog", "-o", str(tmp / "dog.png")],
        "world_help": ["world", "--help"],
        "bench": ["bench", "world", "--scenes", "1"],
        "world_cnn": ["layers", "world-cnn"],
    }
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_API_KEY", "AIM_PLUGINS", "AIM_CONFIG")}
    # imagenet ships named models too: left out, so "named models: 0" means the world's are gone
    env.update(AIM_DISABLE_PLUGINS="world,imagenet", AIM_CACHE=cache, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(commands)], env=env, cwd=tmp,
                          capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_nothing_of_the_world_is_imported(without_world: dict) -> None:
    assert without_world["world_modules"] == []


def test_layers_and_exemplars_work_on_a_transformers_model(without_world: dict) -> None:
    layers = without_world["layers"]
    assert layers["code"] == 0, layers["err"]
    assert LAYER in layers["out"] and "16x4x4" in layers["out"]
    exemplars = without_world["exemplars"]
    assert exemplars["code"] == 0, exemplars["err"]
    assert "21 seen, 1 skipped" in exemplars["out"] and "computed in" in exemplars["out"]
    named = without_world["named"]
    assert named["code"] == 0 and "named models: 0" in named["out"] and "synthetic" not in named["out"]


def test_help_lists_no_world_command(without_world: dict) -> None:
    commands = [line.split()[0] for line in without_world["help"]["out"].splitlines() if line.startswith("    ")
                and not line.startswith("     ")]
    assert {"layers", "exemplars", "demo", "mcp"} <= set(commands) and "world" not in commands


@pytest.mark.parametrize(
    ("key", "what"),
    [
        ("demo", "the demo needs the world plugin (aim_world)"),
        ("synthetic", "the unit source 'synthetic' comes from the world plugin (aim_world)"),
        ("world", "`aim world` needs the world plugin (aim_world)"),
        ("world_help", "`aim world` needs the world plugin (aim_world)"),
        ("bench", "`aim bench world` needs the world plugin (aim_world)"),
        ("default_dataset", "the dataset 'world' comes from the world plugin (aim_world)"),
        ("world_cnn", "the model 'world-cnn' comes from the world plugin (aim_world)"),
    ],
)
def test_what_needs_the_world_says_so(without_world: dict, key: str, what: str) -> None:
    result = without_world[key]
    assert result["code"] == 2, result
    assert what in result["err"], result["err"]
    assert "disabled" in result["err"] and "AIM_DISABLE_PLUGINS" in result["err"]
    assert "Traceback" not in result["err"]


def test_disabled_plugins_are_blocked_and_named() -> None:
    assert disabled_from_env({"AIM_DISABLE_PLUGINS": " world, ,diffusers "}) == ["world", "diffusers"]
    assert disabled_from_env({}) == []
    plugins = AimPlugins(disable=["world"])
    assert plugins.pm.is_blocked("world") and not plugins.has_plugin("world")
    assert plugins.has_plugin("transformers")
    assert "world" not in plugins.provider_names("text2image")
    # the core's concept scientist is a plugin of the core itself: it stays
    assert plugins.provider_names("scientist") == ["concepts"] and plugins.unit_sources() == []
    with pytest.raises(MissingPlugin, match=r"the demo needs the world plugin \(aim_world\), which is disabled"):
        plugins.require("world", "the demo")
    with pytest.raises(MissingPlugin, match=r"the describer 'world' comes from the world plugin"):
        plugins.provider("describer", "world")
    with pytest.raises(LookupError, match="no describer provider named 'nope'"):
        plugins.provider("describer", "nope")


def test_the_default_scientist_needs_the_world_and_says_how_to_choose_a_vlm(monkeypatch) -> None:
    import aim_agent.plugins
    from aim_agent.agent.config import RunConfig
    from aim_agent.agent.runtime import build_scientist

    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setattr(aim_agent.plugins, "plugin_manager", lambda: AimPlugins(disable=["world"]))
    config = RunConfig(system_factory="aim_test_fakes:redness_system")  # the default backend: offline
    with pytest.raises(MissingPlugin) as caught:
        build_scientist(config, None)  # type: ignore[arg-type]
    text = str(caught.value)
    assert "the scientist 'offline' comes from the world plugin (aim_world)" in text
    assert "--backend google_genai[:MODEL]" in text and "GOOGLE_API_KEY" in text


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_mcp_server_lists_tools_and_studies_a_model_without_the_world(resnet_dir, image_folder, tmp_path):
    from mcp import Client

    from aim_agent.config import load_config
    from aim_agent.mcp_server import ServerOptions, build_server

    plugins = AimPlugins(disable=["world", "imagenet"])  # imagenet lists named models of its own
    config = load_config({"exemplar_dataset": str(image_folder)}, env={"AIM_CACHE": str(tmp_path)}, cwd=tmp_path)
    # MCP clients load only what the operator offers: here the one model this test saved
    server = build_server(ServerOptions(config=config, plugins=plugins, runs_dir=tmp_path / "runs",
                                        trusted_models=[str(resnet_dir)]))
    async with Client(server) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"list_models", "load_system", "neuron", "dataset_exemplars", "text2image"} <= tools

        listed = (await client.call_tool("list_models", {})).structured_content
        assert listed["models"] == [] and listed["unit_sources"] == []
        assert {"transformers", "module-factory"} <= {lo["name"] for lo in listed["loaders"]}
        assert "world" not in {lo["name"] for lo in listed["loaders"]}

        loaded = await client.call_tool("load_system", {"model": str(resnet_dir), "layer": LAYER, "unit": 2})
        assert not loaded.is_error and loaded.structured_content["kind"] == "neuron"
        top = await client.call_tool("dataset_exemplars", {"k": 3})
        assert not top.is_error and len(top.structured_content["activations"]) == 3

        synthetic = await client.call_tool("load_system", {"synthetic": "3"})
        assert synthetic.is_error and NAMED in synthetic.content[0].text
        drawn = await client.call_tool("text2image", {"prompts": ["a red dog"]})
        assert drawn.is_error and NAMED in drawn.content[0].text
