"""A test plugin (``--plugin aim_fake_plugin``): colour-drawing providers and a colour-sensitive model.

Providers named ``fake`` draw a coloured square for the colour named in a prompt; the model
``fake-color`` has a layer ``relu`` whose units 0/1/2/3 fire on red/green/blue/brightness.
It lets the MCP server be driven end to end (stdio included) without the world.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from aim_agent.hookspecs import hookimpl
from aim_agent.images import current_store
from aim_agent.log import ExperimentLog
from aim_agent.models.base import LoadedModel
from aim_agent.providers import Edited, Generated, ProviderError
from aim_agent.system import LayerProbe, System
from aim_agent.tools.base import ToolContext

COLORS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "grey": (128, 128, 128)}


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
            current_store().register(image, meta={"prompt": prompt})
            out.append(Generated(image=image, prompt=prompt, notes=[] if color_of(prompt) != "grey" else ["no colour"]))
        return out


class FakeEditor:
    name = "fake"

    def edit(self, images: list[Image.Image], instructions: list[str], *, seed: int = 0) -> list[Edited]:
        out = []
        for image, instruction in zip(images, instructions, strict=True):
            edited = draw(color_of(instruction), image.width)
            current_store().register(edited, meta={"instruction": instruction})
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


def _color_maps(batch: np.ndarray) -> np.ndarray:
    """(B, 16, 16, 3) in [0, 1] -> (B, 4, 4, 4) unit maps: red, green, blue, brightness."""
    grid = batch.reshape(len(batch), 4, 4, 4, 4, 3).mean(axis=(2, 4))
    r, g, b = grid[..., 0], grid[..., 1], grid[..., 2]
    maps = np.stack([r - (g + b) / 2, g - (r + b) / 2, b - (r + g) / 2, (r + g + b) / 3], axis=1)
    return np.clip(maps, 0, None).astype(np.float32)


class ColorProbe(LayerProbe):
    """The same four colour units as a bare probe (no model)."""

    model_name = "fake-color"
    layer = "color"
    num_units = 4

    def forward(self, images: Sequence[Image.Image]) -> torch.Tensor:
        batch = np.stack([np.asarray(im.convert("RGB").resize((16, 16)), dtype=np.float32) / 255 for im in images])
        return torch.from_numpy(_color_maps(batch))


class ColorNet(nn.Module):
    """A real torch module with named layers: pool (16 -> 4 px), colour (1x1 conv), relu."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(4)
        self.color = nn.Conv2d(3, 4, 1)
        weights = torch.tensor([[1, -0.5, -0.5], [-0.5, 1, -0.5], [-0.5, -0.5, 1], [1 / 3, 1 / 3, 1 / 3]])
        with torch.no_grad():
            self.color.weight.copy_(weights[:, :, None, None])
            self.color.bias.zero_()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.color(self.pool(x)))


def _preprocess(images: Sequence[Image.Image]) -> torch.Tensor:
    arrays = [np.asarray(im.convert("RGB").resize((16, 16)), dtype=np.float32) / 255 for im in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


class FakeLoader:
    """Loads 'fake-color' only."""

    name = "fake"

    def can_load(self, spec: str) -> bool:
        return spec == "fake-color"

    def load(self, spec: str) -> LoadedModel:
        return LoadedModel(
            name=spec,
            module=ColorNet().eval(),
            preprocess=_preprocess,
            input_size=16,
            fingerprint="fake-color-v1",
            source="test plugin",
        )

    def where_looked(self, spec: str) -> str:
        return "only the name 'fake-color'"


def fake_context(system: System | None = None) -> ToolContext:
    return ToolContext(
        system=system,
        text2image=FakeTextToImage(),
        editor=FakeEditor(),
        describer=FakeDescriber(),
        log=ExperimentLog(None),
        image_size=64,
    )


@hookimpl
def aim_text2image() -> list[Any]:
    return [FakeTextToImage]


@hookimpl
def aim_image_editors() -> list[Any]:
    return [FakeEditor]


@hookimpl
def aim_describers() -> list[Any]:
    return [FakeDescriber]


@hookimpl
def aim_model_loaders() -> list[Any]:
    return [FakeLoader()]
