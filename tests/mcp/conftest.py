"""Fakes for the MCP server's unit tests: a colour-sensitive probe and colour-drawing providers.

They let the server be tested without the world; the end-to-end tests use the real world.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch
from PIL import Image

from aim_agent.images import STORE
from aim_agent.log import ExperimentLog
from aim_agent.providers import Edited, Generated, ProviderError
from aim_agent.system import LayerProbe, System
from aim_agent.tools.base import ToolContext

COLORS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "grey": (128, 128, 128)}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class ColorProbe(LayerProbe):
    """Unit 0 fires on red, 1 on green, 2 on blue, 3 on brightness; a 4x4 grid."""

    model_name = "fake-color"
    layer = "color"
    num_units = 4

    def forward(self, images: Sequence[Image.Image]) -> torch.Tensor:
        batch = np.stack([np.asarray(im.convert("RGB").resize((16, 16)), dtype=np.float32) / 255 for im in images])
        grid = batch.reshape(len(images), 4, 4, 4, 4, 3).mean(axis=(2, 4))  # (B, 4, 4, 3)
        r, g, b = grid[..., 0], grid[..., 1], grid[..., 2]
        maps = np.stack([r - (g + b) / 2, g - (r + b) / 2, b - (r + g) / 2, (r + g + b) / 3], axis=1)
        return torch.from_numpy(np.clip(maps, 0, None).astype(np.float32))


def draw(color: str, size: int = 64) -> Image.Image:
    image = Image.new("RGB", (size, size), COLORS["grey"])
    image.paste(Image.new("RGB", (size // 2, size // 2), COLORS[color]), (size // 4, size // 4))
    return image


def color_of(text: str) -> str:
    return next((c for c in COLORS if c in text.lower()), "grey")


class FakeTextToImage:
    name = "fake"

    def generate(self, prompts: list[str], *, size: int = 224, seed: int = 0) -> list[Generated]:
        out = []
        for prompt in prompts:
            if "unicorn" in prompt:
                raise ProviderError("the fake generator cannot draw unicorns; try a colour")
            image = draw(color_of(prompt), size)
            STORE.register(image, meta={"prompt": prompt})
            out.append(Generated(image=image, prompt=prompt, notes=[] if color_of(prompt) != "grey" else ["no colour"]))
        return out


class FakeEditor:
    name = "fake"

    def edit(self, images: list[Image.Image], instructions: list[str], *, seed: int = 0) -> list[Edited]:
        out = []
        for image, instruction in zip(images, instructions, strict=True):
            edited = draw(color_of(instruction), image.width)
            STORE.register(edited, meta={"instruction": instruction})
            out.append(Edited(original=image, edited=edited, instruction=instruction))
        return out


class FakeDescriber:
    name = "fake"

    def describe(self, images: list[Image.Image]) -> list[str]:
        out = []
        for image in images:
            r, g, b = np.asarray(image.convert("RGB"), dtype=np.float32).reshape(-1, 3).mean(axis=0)
            out.append("a reddish square" if r > g and r > b else "a square")
        return out

    def summarize(self, images: list[Image.Image]) -> str:
        return "; ".join(sorted(set(self.describe(images))))


def fake_context(system: System | None = None) -> ToolContext:
    return ToolContext(
        system=system,
        text2image=FakeTextToImage(),
        editor=FakeEditor(),
        describer=FakeDescriber(),
        log=ExperimentLog(None),
        image_size=64,
    )


@pytest.fixture
def fake_server(tmp_path):
    """An AIM MCP server over the fakes: every session starts with red unit 0 of the colour probe."""
    from aim_agent.mcp_server import build_server

    return build_server(
        context_factory=lambda: fake_context(System(ColorProbe(), 0)),
        runs_dir=tmp_path / "runs",
        progress_interval=0.05,
    )


@pytest.fixture
def fakes():
    """The fake classes, for tests that build their own server."""
    from types import SimpleNamespace

    return SimpleNamespace(ColorProbe=ColorProbe, FakeTextToImage=FakeTextToImage, FakeEditor=FakeEditor,
                           FakeDescriber=FakeDescriber, fake_context=fake_context, draw=draw)
