"""A tiny photo world for the concept scientist's tests: generated "photos", a pixel-only tagger, a unit.

Each photo is a noisy backdrop with a square object of one colour. The tagger (``--plugin aim_photo_fakes``,
describer ``pixel-tagger``) sees only pixels: it names the colour of the centre square with a probability,
and the colour's kind (``warm colour`` for red/orange/yellow, ``cool colour`` for blue/green), in the
photo tagger's format. The unit (``aim_photo_fakes:red_system``) fires on red pixels, a little on orange.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aim_agent.hookspecs import hookimpl
from aim_agent.images import current_store
from aim_agent.system import LayerProbe, System

COLORS = {"red": (215, 25, 25), "orange": (240, 150, 30), "yellow": (225, 215, 40), "blue": (30, 60, 215),
          "green": (40, 170, 60), "grey": (128, 128, 128)}
KIND = {"red": "warm colour", "orange": "warm colour", "yellow": "warm colour", "blue": "cool colour",
        "green": "cool colour", "grey": "neutral colour"}


def write_photos(folder: Path, per_color: int = 8, size: int = 48, seed: int = 0) -> list[str]:
    """``per_color`` photos of each colour (file names say nothing); returns the colours in file order."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    colors = [c for c in COLORS for _ in range(per_color)]
    order = rng.permutation(len(colors))
    shown = []
    for number, i in enumerate(order):
        color = colors[i]
        arr = rng.integers(60, 200, size=(size, size, 3)).astype(np.uint8)
        q = size // 4 + int(rng.integers(-3, 4))
        arr[q: size - q, q: size - q] = np.clip(np.asarray(COLORS[color]) + rng.integers(-12, 13, 3), 0, 255)
        Image.fromarray(arr).save(folder / f"img{number:03d}.png")
        shown.append(color)
    return shown


def _nearest(rgb: np.ndarray) -> tuple[str, float]:
    dist = {c: float(np.linalg.norm(rgb - np.asarray(v))) for c, v in COLORS.items()}
    best = min(dist, key=lambda c: dist[c])
    return best, round(max(0.3, 1.0 - dist[best] / 200), 2)


class PixelTagger:
    """Names the colour of the highlighted region (the centre of a whole image) from pixels alone."""

    name = "pixel-tagger"

    def _region(self, image: Image.Image) -> np.ndarray:
        record = current_store().record(image)
        arr = np.asarray(image.convert("RGB"), dtype=np.float32)
        if record is not None and record.mask is not None and record.parent is not None and record.mask.any():
            parent = np.asarray(current_store().pixels(record.parent).convert("RGB"), dtype=np.float32)
            if parent.shape[:2] == record.mask.shape:
                return parent[record.mask]
        h, w = arr.shape[:2]
        return arr[h // 3: 2 * h // 3, w // 3: 2 * w // 3].reshape(-1, 3)

    def describe(self, images: list[Image.Image]) -> list[str]:
        out = []
        for image in images:
            color, p = _nearest(np.median(self._region(image), axis=0))
            out.append(f"{color} ({p:.2f}); kinds: {KIND[color]} ({p:.2f})")
        return out

    def summarize(self, images: list[Image.Image]) -> str:
        return "; ".join(self.describe(images))


class RedProbe(LayerProbe):
    """Unit 0: redness (red minus the larger of green and blue), on a 6x6 grid."""

    model_name = "red-unit"
    layer = "pixels"
    num_units = 1

    def forward(self, images: Sequence[Image.Image]) -> torch.Tensor:
        arr = torch.stack([torch.as_tensor(np.asarray(im.convert("RGB").resize((48, 48)), dtype=np.float32) / 255)
                           for im in images]).permute(0, 3, 1, 2)
        red = (arr[:, 0] - arr[:, 1:].amax(1)).clamp(min=0)[:, None]
        return torch.nn.functional.avg_pool2d(red, 8)


def red_system() -> System:
    return System(RedProbe(), 0)


@hookimpl
def aim_describers() -> list[object]:
    return [PixelTagger()]
