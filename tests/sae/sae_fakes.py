"""Test helpers: small models with known weights as LoadedModels, noise images, planted sparse data."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from aim_agent.models.base import LoadedModel


def to_batch(images: Sequence[Image.Image], size: int = 8) -> torch.Tensor:
    """RGB images -> (B, 3, size, size) floats in [0, 1] (nearest resize: exact for same-size images)."""
    arrays = [np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.NEAREST), dtype=np.float32) / 255
              for im in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def loaded(module: torch.nn.Module, name: str = "tiny", size: int = 8) -> LoadedModel:
    return LoadedModel(name=name, module=module.eval(), preprocess=lambda ims: to_batch(ims, size), input_size=size,
                       fingerprint=f"{name}-fixed", prefix_tokens=0)


class TwoConv(torch.nn.Module):
    """conv1: 1x1, 3 -> C1 channels, ReLU; conv2: 1x1, C1 -> C2 channels (no ReLU)."""

    def __init__(self, w1: torch.Tensor, w2: torch.Tensor) -> None:
        super().__init__()
        self.conv1 = torch.nn.Sequential(torch.nn.Conv2d(3, w1.shape[0], 1, bias=False), torch.nn.ReLU())
        self.conv2 = torch.nn.Conv2d(w2.shape[1], w2.shape[0], 1, bias=False)
        with torch.no_grad():
            self.conv1[0].weight.copy_(w1[:, :, None, None])
            self.conv2.weight.copy_(w2[:, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


def noise_images(n: int, seed: int = 0, size: int = 8) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def pixels(images: Sequence[Image.Image]) -> torch.Tensor:
    """(B, H, W, 3) floats in [0, 1]: what to_batch feeds the model, channels last."""
    return torch.stack([torch.tensor(np.asarray(im.convert("RGB")), dtype=torch.float32) / 255 for im in images])


def planted(n: int, d: int, atoms: int, k: int, seed: int, offset: int = 0) -> torch.Tensor:
    """``n`` vectors, each a positive combination of ``k`` of ``atoms`` fixed unit directions (the dictionary
    depends on ``seed`` only; ``offset`` draws other codes from the same dictionary)."""
    g = torch.Generator().manual_seed(seed)
    dictionary = torch.nn.functional.normalize(torch.randn(atoms, d, generator=g), dim=1)
    g = torch.Generator().manual_seed(seed * 1000 + offset + 1)
    idx = torch.stack([torch.randperm(atoms, generator=g)[:k] for _ in range(n)])
    codes = torch.zeros(n, atoms).scatter(1, idx, 0.5 + torch.rand(n, k, generator=g))
    return codes @ dictionary + 0.01 * torch.randn(n, d, generator=g)
