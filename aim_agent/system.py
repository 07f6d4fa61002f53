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

from aim_agent.images import ImageLike, current_store, load_image
from aim_agent.overlay import unit_overlay

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
        """Activation (spatial max or mean) and spatial map of this unit for each image."""
        pil = [load_image(im) for im in images]
        if not pil:
            raise ValueError("no images given: pass a non-empty list of images")
        maps = []
        for start in range(0, len(pil), self.batch_size):
            with torch.inference_mode():
                out = self.probe.forward(pil[start : start + self.batch_size])
            maps.append(out[:, self.unit].float().cpu().numpy())
        grid = np.concatenate(maps, axis=0)
        flat = grid.reshape(grid.shape[0], -1)
        acts = flat.max(axis=1) if self.reduce == "max" else flat.mean(axis=1)
        return UnitResponse(activations=acts.astype(np.float64), maps=grid)

    def overlays(self, images: Sequence[ImageLike], response: UnitResponse | None = None) -> list[Image.Image]:
        """Overlay images for ``images`` (registered in the image store with their masks)."""
        pil = [load_image(im) for im in images]
        response = response or self.activations(pil)
        return [
            unit_overlay(image, grid, self.threshold,
                         {"activation": float(act), "unit": self.unit, "layer": self.layer})
            for image, grid, act in zip(pil, response.maps, response.activations, strict=True)
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
