"""`System`: one unit of a vision model, instrumented so experiments can be run on it.

A unit is read through a :class:`LayerProbe`, which maps a batch of images to the spatial
activations of *every* unit of one layer, ``(B, U, h, w)``. A conv layer gives its feature
grid, a token layer (ViT) gives its patch grid, an SAE gives latents over that grid, a
synthetic neuron set gives maps drawn from scene graphs. :class:`System` picks one unit and
turns those maps into what an experimenter needs: one activation per image and an overlay
that shows where the unit fired.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from PIL import Image

from aim_agent.activations import ActivationCache, cache_for
from aim_agent.images import ImageLike, current_store, fast_path, image_id, load_image
from aim_agent.overlay import unit_overlay, upsample_maps

Reduce = Literal["max", "mean"]

#: what model-written code may call on ``system`` (sandbox proxy and prompt API text both read these)
SYSTEM_METHODS = ("neuron", "call_neuron", "activations", "describe")
#: what it may read; never ``ground_truth`` or ``probe``
SYSTEM_ATTRIBUTES = {
    "model_name": "name of the model under study",
    "layer": "name of the layer that holds the unit",
    "unit": "index of the unit in that layer",
}


class LayerProbe(ABC):
    """Reads all units of one layer at once: images -> activations ``(B, U, h, w)``."""

    #: name of the model (as given to the loader), e.g. ``world-cnn`` or a path
    model_name: str
    #: layer name as listed by ``aim layers``
    layer: str
    #: number of units in the layer
    num_units: int
    #: whether the maps are a function of the pixels alone, so that :mod:`aim_agent.activations` may keep
    #: them per image id (a model layer: yes; synthetic neurons that read scene graphs: no)
    cacheable: bool = False

    @abstractmethod
    def forward(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Spatial activations ``(B, U, h, w)`` as float32 on the CPU."""

    def fingerprint(self) -> str:
        """A string that changes whenever the probe's outputs could change (weights, layer)."""
        return f"{self.model_name}:{self.layer}"

    def unit_label(self, unit: int) -> str | None:
        """Ground truth for a unit, when one exists (synthetic neurons); None otherwise."""
        return None

    def check_unit(self, unit: int) -> None:
        if not 0 <= unit < self.num_units:
            raise IndexError(
                f"unit {unit} is out of range for layer {self.layer!r} of {self.model_name!r}: "
                f"valid units are 0..{self.num_units - 1}"
            )


@dataclass
class UnitResponse:
    """A unit's response to a batch: one activation per image and its spatial maps."""

    activations: np.ndarray  # (B,)
    maps: np.ndarray  # (B, h, w), the probe's own resolution


class System:
    """One unit of one layer of one model; the object experiments are run on.

    ``system.neuron(images)`` keeps MAIA's name and return shape: a list of activations and a
    list of overlay images in which the region where the unit fires above its threshold is
    kept bright and outlined and the rest is dimmed. ``system.activations(images)`` gives the
    raw numbers and maps.
    """

    def __init__(
        self,
        probe: LayerProbe,
        unit: int,
        *,
        reduce: Reduce = "max",
        threshold: float | None = None,
        batch_size: int = 32,
    ) -> None:
        probe.check_unit(unit)
        if reduce not in ("max", "mean"):
            raise ValueError(f"reduce must be 'max' or 'mean', not {reduce!r}")
        self.probe = probe
        self.unit = unit
        self.reduce: Reduce = reduce
        self.threshold = threshold
        self.batch_size = batch_size

    @property
    def model_name(self) -> str:
        return self.probe.model_name

    @property
    def layer(self) -> str:
        return self.probe.layer

    @property
    def ground_truth(self) -> str | None:
        """The known label of this unit (synthetic neurons), else None."""
        return self.probe.unit_label(self.unit)

    def describe(self) -> str:
        return f"unit {self.unit} of layer {self.layer} of {self.model_name}"

    def activations(self, images: Sequence[ImageLike]) -> UnitResponse:
        """Activation (spatial max or mean) and spatial map of this unit for each image.

        The layer's maps of an image the probe's activation cache holds (:mod:`aim_agent.activations`:
        another unit of the sweep, another round, a rerun already showed it) are read, not computed.
        """
        pil = [load_image(im) for im in images]
        if not pil:
            raise ValueError("no images given: pass a non-empty list of images")
        cache = cache_for(self.probe)
        grid = self._maps(pil) if cache is None else self._cached_maps(pil, cache)
        flat = grid.reshape(grid.shape[0], -1)
        acts = flat.max(axis=1) if self.reduce == "max" else flat.mean(axis=1)
        return UnitResponse(activations=acts.astype(np.float64), maps=grid)

    def _layer_maps(self, pil: Sequence[Image.Image], pad_single: bool = False) -> list[torch.Tensor]:
        """The probe's maps ``(B, U, h, w)`` of ``pil``, batch by batch.

        ``pad_single``: a batch of one image is run as two (the image twice) and the first kept. A CPU
        convolution takes another path for a batch of one, whose results differ in the last bits (world-cnn
        conv5: 1.5e-5) from the same image's in any larger batch, which all agree; the activation cache
        keeps only maps measured in a batch of two or more, so that they equal what a call with several
        images measures.
        """
        out = []
        for start in range(0, len(pil), self.batch_size):
            batch = list(pil[start : start + self.batch_size])
            with torch.inference_mode():
                maps = self.probe.forward(batch * 2 if pad_single and len(batch) == 1 else batch)
            out.append(maps[: len(batch)])
        return out

    def _maps(self, pil: Sequence[Image.Image]) -> np.ndarray:
        return np.concatenate([b[:, self.unit].float().cpu().numpy() for b in self._layer_maps(pil)], axis=0)

    def _cached_maps(self, pil: Sequence[Image.Image], cache: ActivationCache) -> np.ndarray:
        if len(pil) == 1:  # measured alone, as without the cache (see _layer_maps: a batch of one differs)
            return self._maps(pil)
        ids = [image_id(im) for im in pil]
        found: dict[str, np.ndarray] = {}
        todo: list[int] = []  # the first image of each id the cache does not hold
        for i, iid in enumerate(ids):
            if iid in found:
                continue
            maps = cache.get(iid)
            if maps is None:
                found[iid] = np.empty(0, dtype=np.float32)  # placeholder: computed below
                todo.append(i)
            else:
                found[iid] = maps
        if todo:
            start = 0
            for batch in self._layer_maps([pil[i] for i in todo], pad_single=True):
                for maps in batch.float().cpu().numpy():
                    iid = ids[todo[start]]
                    cache.put(iid, maps)
                    found[iid] = maps
                    start += 1
        return np.stack([found[iid][self.unit] for iid in ids]).astype(np.float32, copy=False)

    def overlays(self, images: Sequence[ImageLike], response: UnitResponse | None = None) -> list[Image.Image]:
        """Overlay images for ``images`` (registered in the image store with their masks)."""
        pil = [load_image(im) for im in images]
        response = response or self.activations(pil)
        full: list[np.ndarray | None] = [None] * len(pil)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(pil):
            by_size.setdefault(image.size, []).append(i)
        if fast_path():  # one interpolation per image size, not one per image (the same maps)
            for size, index in by_size.items():
                for i, up in zip(index, upsample_maps(response.maps[index], size), strict=True):
                    full[i] = up
        return [
            unit_overlay(image, grid, self.threshold,
                         {"activation": float(act), "unit": self.unit, "layer": self.layer}, full_map)
            for image, grid, act, full_map in zip(pil, response.maps, response.activations, full, strict=True)
        ]

    def neuron(self, image_list: Sequence[ImageLike]) -> tuple[list[float], list[Image.Image]]:
        """MAIA's call: (activation per image, overlay per image)."""
        pil = [load_image(im) for im in image_list]
        for im in pil:
            current_store().ensure(im)
        response = self.activations(pil)
        return [round(float(a), 4) for a in response.activations], self.overlays(pil, response)

    # A clearer alias for people reading code.
    call_neuron = neuron
