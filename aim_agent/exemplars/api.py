"""Exemplars of one unit, ready for the agent: activations, overlays, sources, threshold."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from aim_agent.exemplars.dataset import ImageFolder, default_cache_dir, resolve_dataset
from aim_agent.exemplars.engine import DEFAULT_K, DEFAULT_QUANTILE, compute_exemplars
from aim_agent.images import current_store, image_id
from aim_agent.overlay import unit_overlay
from aim_agent.system import System


@dataclass
class ExemplarSet:
    """The top dataset images of one unit, highest first.

    ``images`` are overlays (the region above ``threshold`` kept and outlined, the rest
    dimmed), registered in the image store with their mask and ``parent`` = the source's id;
    ``sources`` are the images as the model saw them (resized and cropped).
    """

    activations: list[float]
    images: list[Image.Image]
    sources: list[Image.Image]
    threshold: float
    files: list[str] = field(default_factory=list)


def exemplars_for_system(
    system: System,
    k: int = DEFAULT_K,
    dataset: str | Path | ImageFolder | None = None,
    *,
    cache_dir: str | Path | None = None,
    batch_size: int = 32,
    quantile: float = DEFAULT_QUANTILE,
    progress: bool | None = None,
    on_images: Callable[[int, int], None] | None = None,
) -> ExemplarSet:
    """Top-``k`` exemplars of ``system``'s unit (computed for the whole layer once, then cached).

    Sets ``system.threshold`` to the unit's dataset threshold when it has none yet, so later
    overlays from ``system.neuron`` use the same mask rule as the exemplars.
    ``on_images(done, total)`` is told the dataset images processed so far, batch by batch
    (and once, all of them, when the layer's pass is done or was cached).
    """
    folder = resolve_dataset(dataset, cache_dir=Path(cache_dir).expanduser() if cache_dir else default_cache_dir())
    total = len(folder)

    def on_batch(batches: int) -> None:
        if on_images is not None:
            on_images(min(batches * batch_size, total), total)

    layer = compute_exemplars(
        system.probe, folder, k=k, batch_size=batch_size, cache_dir=cache_dir, quantile=quantile,
        reduce=system.reduce, progress=progress, on_batch=on_batch,
    )
    if on_images is not None:
        on_images(total, total)
    threshold = layer.threshold(system.unit)
    if system.threshold is None:
        system.threshold = threshold
    view = getattr(system.probe, "view", None)
    activations, overlays, sources, files = [], [], [], []
    for ex in layer.top(system.unit, k):
        original = layer.dataset.load(ex.index)  # registers the file (and its world scene)
        source = view(original) if callable(view) else original
        if source is not original:
            current_store().register(source, parent=image_id(original), meta={"file": ex.file})
        overlay = unit_overlay(
            source, ex.map, system.threshold,
            {"activation": ex.activation, "unit": system.unit, "layer": system.layer, "file": ex.file,
             "rank": ex.rank, "exemplar": True},
        )
        activations.append(round(ex.activation, 4))
        overlays.append(overlay)
        sources.append(source)
        files.append(ex.file)
    return ExemplarSet(activations=activations, images=overlays, sources=sources, threshold=threshold, files=files)
