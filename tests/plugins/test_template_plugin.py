"""The template plugin, installed as a third party would install it, shows up everywhere tools do.

It is pip-installed (offline, no dependencies, no build isolation) from a copy of
``plugins/aim-plugin-occlusion`` into a temporary target directory put on the path, so the
test venv is left untouched: ``aim plugins``, the Python ``Tools``, the agent's API text and
the MCP tool list must all show ``occlusion_map``, found only through its entry point.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from aim_testing import HANG_S
from PIL import Image

from aim_agent.log import ExperimentLog
from aim_agent.system import LayerProbe, System
from aim_agent.tools.base import ToolContext, Tools

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "plugins" / "aim-plugin-occlusion"
AIM = str(Path(sys.executable).parent / "aim")


class RedProbe(LayerProbe):
    """One unit that fires on red pixels, on an 8x8 grid."""

    model_name = "fake-red"
    layer = "red"
    num_units = 1

    def forward(self, images: Sequence[Image.Image]) -> torch.Tensor:
        arrays = [np.asarray(im.convert("RGB").resize((32, 32)), dtype=np.float32) / 255 for im in images]
        batch = np.stack(arrays).reshape(len(images), 8, 4, 8, 4, 3).mean(axis=(2, 4))
        red = np.clip(batch[..., 0] - (batch[..., 1] + batch[..., 2]) / 2, 0, None)
        return torch.from_numpy(red[:, None].astype(np.float32))


def red_square_top_left(size: int = 64) -> Image.Image:
    image = Image.new("RGB", (size, size), (120, 120, 120))
    image.paste((230, 20, 20), (4, 4, 4 + size // 4, 4 + size // 4))
    return image


def context() -> ToolContext:
    return ToolContext(system=System(RedProbe(), 0), log=ExperimentLog(), image_size=64)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``pip install`` the template into a target directory; yields that directory."""
    tmp = tmp_path_factory.mktemp("occlusion")
    source = tmp / "src"
    shutil.copytree(TEMPLATE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp / "site"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=HANG_S,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(target.glob("aim_plugin_occlusion-*.dist-info"))
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    yield target
    sys.path.remove(str(target))
    for name in [m for m in sys.modules if m == "aim_occlusion" or m.startswith("aim_occlusion.")]:
        del sys.modules[name]
    importlib.invalidate_caches()


@pytest.fixture(scope="module")
def plugins(installed):
    from aim_agent.plugins import AimPlugins

    return AimPlugins()  # a fresh manager: entry points are read again, the template's included


def test_aim_plugins_lists_the_installed_plugin(installed):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(installed), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [AIM, "plugins", "--json"], capture_output=True, text=True, env=env, timeout=HANG_S, cwd=installed
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    occlusion = next(p for p in data["plugins"] if p["name"] == "occlusion")
    assert occlusion["module"] == "aim_occlusion.plugin"
    assert occlusion["source"].startswith("entry point aim_agent:occlusion (aim-plugin-occlusion 0.1.0")
    assert occlusion["tools"] == ["occlusion_map"]
    text = subprocess.run([AIM, "plugins"], capture_output=True, text=True, env=env, timeout=HANG_S,
                          cwd=installed).stdout
    assert "occlusion" in text and "tools: occlusion_map" in text


def test_the_tool_is_in_the_python_tools_and_finds_the_region(plugins):
    from aim_agent.tools.registry import all_tools

    specs = all_tools(plugins)
    spec = next(s for s in specs if s.name == "occlusion_map")
    assert spec.plugin == "aim_occlusion"
    tools = Tools(context(), specs)
    assert "occlusion_map" in dir(tools)
    result = tools.occlusion_map(red_square_top_left(), patch=0.25, stride=0.125)
    x0, y0, x1, y1 = result["box"]
    assert x0 <= 8 and y0 <= 8 and x1 <= 32 and y1 <= 32  # the red square is at the top left
    assert result["base_activation"] > 0.3 and result["relative_drop"] > 0.5
    assert result["overlay"].size == (64, 64)
    drops = np.array(result["drops"])
    assert drops[0, 0] > drops[-1, -1]  # hiding the bottom right changes nothing


def test_the_tool_is_in_the_agents_api_text(plugins):
    api = importlib.import_module("aim_agent.tools.api_text")
    from aim_agent.tools.registry import all_tools

    text = api.api_text(all_tools(plugins))
    assert "occlusion_map" in text and "grey patch" in text


@pytest.mark.anyio
async def test_the_tool_is_served_over_mcp(plugins, tmp_path):
    import base64
    import io

    from mcp import Client

    from aim_agent.images import to_base64
    from aim_agent.mcp_server import ServerOptions, build_server

    server = build_server(ServerOptions(plugins=plugins, context_factory=context, runs_dir=tmp_path))
    image = to_base64(red_square_top_left())
    async with Client(server) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        assert "occlusion_map" in listed
        props = listed["occlusion_map"].input_schema["properties"]
        assert props["patch"]["maximum"] == 0.75 and "image" in listed["occlusion_map"].input_schema["required"]
        assert listed["occlusion_map"].meta["aim/plugin"] == "aim_occlusion"
        result = await client.call_tool("occlusion_map", {"image": image})
        assert not result.is_error, result.content
        assert result.structured_content["box"][0] <= 8
        overlay = next(c for c in result.content if c.type == "image")
        assert Image.open(io.BytesIO(base64.b64decode(overlay.data))).size == (64, 64)
        too_many = await client.call_tool("occlusion_map", {"image": image, "stride": 0.02})
        assert too_many.is_error and "patch positions" in too_many.content[0].text


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
