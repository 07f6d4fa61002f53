"""Activation maps -> what the VLM looks at: the firing region kept, the rest dimmed, outlined."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from aim_agent.images import current_store, image_id

DIM = 0.25  # brightness kept outside the firing region
OUTLINE = np.array([255, 220, 0], dtype=np.uint8)  # yellow contour, visible on most scenes


def upsample_map(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of an (h, w) map to an image of ``size`` = (width, height)."""
    t = torch.as_tensor(np.asarray(grid, dtype=np.float32))[None, None]
    width, height = size
    if t.shape[-2:] == (height, width):
        return t[0, 0].numpy()
    return F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)[0, 0].numpy()


def activation_mask(full_map: np.ndarray, threshold: float | None) -> np.ndarray:
    """Where the unit fires: above the unit's dataset threshold when known.

    Without a threshold (no exemplar run yet) the region is where the map reaches half of its
    own maximum; a map that never goes above zero highlights nothing.
    """
    if threshold is not None:
        # at the threshold counts as firing (a unit whose peak equals it is not dark), except at or
        # below zero, where ">=" would light up every silent pixel of a ReLU map
        return np.asarray(full_map >= threshold if threshold > 0 else full_map > threshold, dtype=bool)
    peak = float(full_map.max())
    if peak <= 0:
        return np.zeros(full_map.shape, dtype=bool)
    return full_map >= 0.5 * peak


def _edges(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    edge = mask & ~inner
    # thicken to 2 px so it survives downscaling in a VLM
    thick = edge.copy()
    thick[1:, :] |= edge[:-1, :]
    thick[:, 1:] |= edge[:, :-1]
    return np.asarray(thick, dtype=bool)


def make_overlay(image: Image.Image, mask: np.ndarray) -> Image.Image:
    """The image with pixels outside ``mask`` dimmed and the mask's border drawn."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    out = np.where(mask[..., None], rgb, rgb * DIM).astype(np.uint8)
    out[_edges(mask)] = OUTLINE
    return Image.fromarray(out)


def upsample_maps(grids: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """:func:`upsample_map` of a stack of maps ``(B, h, w)`` in one call: ``(B, height, width)``, each the same
    as alone (bilinear interpolation treats each map by itself)."""
    t = torch.as_tensor(np.asarray(grids, dtype=np.float32))[:, None]
    width, height = size
    if t.shape[-2:] == (height, width):
        return t[:, 0].numpy()
    return F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)[:, 0].numpy()


def unit_overlay(image: Image.Image, grid: np.ndarray, threshold: float | None, meta: dict[str, Any],
                 full_map: np.ndarray | None = None) -> Image.Image:
    """The overlay of a unit's map ``grid`` (probe resolution) on ``image``, upsampled to its size.

    The overlay is registered in the image store with its mask, ``parent`` = the image's id
    and ``meta``. ``full_map``: the map already upsampled to the image's size (:func:`upsample_maps`).
    """
    mask = activation_mask(upsample_map(grid, image.size) if full_map is None else full_map, threshold)
    overlay = make_overlay(image, mask)
    current_store().register(overlay, parent=image_id(image), mask=mask, meta=meta)
    return overlay
