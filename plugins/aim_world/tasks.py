"""The world's model-level evaluation tasks (hook ``aim_eval_tasks``): ``spurious`` on ``world-cnn-spawrious``
and ``bias`` on ``world-cnn-bias``.

Each draws labelled images of its splits from the same samplers the models were trained with
(:mod:`aim_world.datasets`), at seeds no training run used, and holds the answer (which background went with
which class in train; the planted biases and how much of each the shipped model learned). The core reads
:meth:`truth` only after its scientists concluded; nothing here is handed to a scientist.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from typing import Any

import numpy as np

from aim_agent.eval.tasks import LabelledImages
from aim_world.cnn import weights_path
from aim_world.datasets import (
    CLASSIFY_CLASSES,
    PLANTED_BIASES,
    SPAWRIOUS_CLASSES,
    SPAWRIOUS_CORRELATION,
    SPAWRIOUS_PAIRS,
    SPAWRIOUS_SIZES,
    Sample,
    _classify_scene,
    bias_samples,
    spawrious_samples,
)

RENDER_SIZE = 224  # what training rendered; the model resizes to 64 px
# seed offsets: far from the training (0) and in-distribution test (10_000) seeds of aim_world.train
VALIDATION_SEED, TEST_SEED, BALANCED_SEED = 20_000, 30_000, 40_000


def _render(samples: Iterable[Sample]) -> LabelledImages:
    """Render and register each image (its scene in the current image store, for the describer)."""
    from aim_world.providers import generate_scene_image

    images, labels = [], []
    for sample in samples:
        images.append(generate_scene_image(sample.scene, RENDER_SIZE, source="task"))
        labels.append(sample.label or "")
    return LabelledImages(images=images, labels=labels)


def balanced_spawrious_samples(n: int, seed: int) -> Iterator[Sample]:
    """Every class on every training environment equally often (cells cycle, order shuffled by seed)."""
    rng = np.random.default_rng([seed, 2, 2])
    backgrounds = list(SPAWRIOUS_PAIRS.values())
    cells = [(c, b) for c in SPAWRIOUS_CLASSES for b in backgrounds]
    order = [cells[i % len(cells)] for i in range(n)]
    rng.shuffle(order)
    for cls, background in order:
        scene = _classify_scene(rng, cls, background=background, size_range=SPAWRIOUS_SIZES, p_distractor=0.0)
        yield Sample(scene, cls)


def _check(split: str, valid: tuple[str, ...], n: int) -> None:
    if split not in valid:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(valid)}")
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")


class SpuriousTask:
    """Animals on environments (``world-cnn-spawrious``): in train each class sits on its own environment
    95% of the time; the shifted test shows only the other pairings."""

    name = "spurious"
    model = "world-cnn-spawrious"
    classes = SPAWRIOUS_CLASSES
    domain = tuple(SPAWRIOUS_PAIRS.values())  # the environments, without their pairing
    feature_layer = "conv5"
    logits_layer = "fc"
    splits = ("validation", "test", "balanced")

    def images(self, split: str, n: int, seed: int) -> LabelledImages:
        _check(split, self.splits, n)
        if split == "validation":
            return _render(spawrious_samples(n, seed + VALIDATION_SEED, "train"))
        if split == "test":
            return _render(spawrious_samples(n, seed + TEST_SEED, "test"))
        return _render(balanced_spawrious_samples(n, seed + BALANCED_SEED))

    def truth(self) -> dict[str, Any]:
        return {"spurious_pairs": dict(SPAWRIOUS_PAIRS), "correlation_in_train": SPAWRIOUS_CORRELATION,
                "test": "only the other pairings"}


class BiasTask:
    """The 20 classes with planted correlations in train (``world-cnn-bias``)."""

    name = "bias"
    model = "world-cnn-bias"
    classes = CLASSIFY_CLASSES
    domain: tuple[str, ...] = ()
    feature_layer = "conv5"
    logits_layer = "fc"
    splits = ("test",)

    def images(self, split: str, n: int, seed: int) -> LabelledImages:
        _check(split, self.splits, n)
        return _render(bias_samples(n, seed + TEST_SEED, "test"))

    def truth(self) -> dict[str, Any]:
        """The planted biases, and for each how much the shipped model needs its feature (measured when the
        weights were made, ``bias.json``): accuracy on the class with and without the feature, on counterfactual
        twins (the same scenes with the feature added and removed; ``aim world bias-twins``), and as observed
        on the unbiased test split (images that happened to have the feature or not)."""
        info = json.loads(weights_path("bias").with_suffix(".json").read_text())
        accuracy = info.get("accuracy", {})
        observed = {m["class"]: m for m in accuracy.get("biases", [])}
        twins = {m["class"]: m for m in accuracy.get("counterfactual", [])}
        planted = []
        for bias in PLANTED_BIASES:
            row = asdict(bias)
            seen, twin = observed.get(bias.cls, {}), twins.get(bias.cls)
            row["observed_accuracy_with_feature"] = seen.get("accuracy_class_with_feature")
            row["observed_accuracy_without_feature"] = seen.get("accuracy_class_without_feature")
            if twin is not None:
                row["measured_on"] = f"{twin['n']} counterfactual twins"
                row["accuracy_with_feature"] = twin["accuracy_with_feature"]
                row["accuracy_without_feature"] = twin["accuracy_without_feature"]
            else:
                row["measured_on"] = "the unbiased test split"
                row["accuracy_with_feature"] = row["observed_accuracy_with_feature"]
                row["accuracy_without_feature"] = row["observed_accuracy_without_feature"]
            planted.append(row)
        return {"planted": planted}
