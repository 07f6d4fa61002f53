"""A blind photo describer: an ImageNet classifier's top classes and their WordNet kinds, from pixels only.

It is built on a real model *different from the one under study*: ``photo-tagger-lite2`` (EfficientNet-Lite2;
``photo-tagger`` is the same) describes for a study of Lite0, and ``photo-tagger-lite0`` describes for a study
of Lite2 (never let a model describe its own units: its classes would echo the unit under study).

What it sees: the pixels of each image and, for an activation overlay, the overlay's mask and the original it
was made from (:func:`aim_agent.images.current_store`: ``record.mask``, ``record.parent``). It then tags a crop
of the original around the highlighted region (a margin around the mask's bounding box, at least a third of
each side), otherwise the whole image. It never reads ``record.meta``, a scene, a file name or a label.

A description is one line, exactly::

    tabby (0.62), tiger cat (0.21), Egyptian cat (0.08); kinds: domestic cat (0.93), cat (0.95), feline (0.95)

- the top classes: at most :data:`TOP_CLASSES`, those with probability >= :data:`MIN_CLASS_P` (at least the
  top one), each with its probability;
- ``kinds``: WordNet ancestors of those top classes, each with the summed probability of every class under it
  (>= :data:`MIN_KIND_P`), the most specific first (fewest classes under it), at most :data:`MAX_KINDS`,
  leaving out synsets that cover more than half the classes (entity, object, whole). The ``; kinds: ...``
  part is absent when no kind reaches :data:`MIN_KIND_P`.

Forward passes are batched (:data:`BATCH_SIZE`); nothing is cached on disk.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from aim_agent.images import current_store
from aim_imagenet.wordnet import Taxonomy, taxonomy

if TYPE_CHECKING:
    import torch

    from aim_agent.models.base import LoadedModel

#: top classes named at most, and the least probability a class needs beyond the first
TOP_CLASSES = 5
MIN_CLASS_P = 0.02
#: the least summed probability of a kind, and how many kinds at most
MIN_KIND_P = 0.1
MAX_KINDS = 12
#: synsets covering more than this share of the classes are too broad to name a kind
MAX_KIND_SHARE = 0.5
#: region crops: margin added on each side of the mask's box (share of the box), least side (share of the image)
MARGIN = 0.15
MIN_SIDE = 1 / 3
#: images per forward pass
BATCH_SIZE = 32
#: describer name -> the model it runs (``photo-tagger`` means Lite2)
TAGGERS = {
    "photo-tagger-lite2": "efficientnet-lite2",
    "photo-tagger-lite0": "efficientnet-lite0",
    "photo-tagger": "efficientnet-lite2",
}


@dataclass(frozen=True)
class Tagging:
    """What the tagger saw in one image: top classes and kinds as ``(wnid, probability)``, most likely first."""

    classes: list[tuple[str, float]]
    kinds: list[tuple[str, float]]

    def text(self, tax: Taxonomy) -> str:
        """The description line (see the module docstring)."""
        line = ", ".join(f"{tax.name(w)} ({p:.2f})" for w, p in self.classes)
        if self.kinds:
            line += "; kinds: " + ", ".join(f"{tax.name(w)} ({p:.2f})" for w, p in self.kinds)
        return line


@dataclass(frozen=True)
class KindTable:
    """Which classes lie under each synset, as a matrix: summed class probabilities per synset in one product."""

    wnids: list[str]
    matrix: np.ndarray  # (synsets, classes) float32, 1 where the class lies under the synset
    share: np.ndarray  # (synsets,) share of the classes under each synset

    @staticmethod
    def build(tax: Taxonomy) -> KindTable:
        wnids = sorted(w for w in tax.lemmas if tax.index(w) is None)
        matrix = np.zeros((len(wnids), len(tax.classes)), dtype=np.float32)
        for row, wnid in enumerate(wnids):
            matrix[row, sorted(tax.classes_under(wnid))] = 1.0
        return KindTable(wnids, matrix, matrix.sum(1) / len(tax.classes))


@cache
def kind_table() -> KindTable:
    return KindTable.build(taxonomy())


def tag_probabilities(probs: np.ndarray, tax: Taxonomy | None = None) -> list[Tagging]:
    """Class probabilities ``(N, 1000)`` -> one :class:`Tagging` per row."""
    tax = tax or taxonomy()
    table = kind_table()
    row_of = {w: i for i, w in enumerate(table.wnids)}
    kind_probs = probs @ table.matrix.T  # (N, synsets)
    out: list[Tagging] = []
    for p, kp in zip(probs, kind_probs, strict=True):
        top = np.argsort(-p, kind="stable")[:TOP_CLASSES]
        shown = [int(i) for n, i in enumerate(top) if n == 0 or p[i] >= MIN_CLASS_P]
        candidates = {a for i in top for a in tax.ancestors(tax.classes[int(i)].wnid)}
        kinds = [(w, float(kp[row_of[w]])) for w in candidates
                 if kp[row_of[w]] >= MIN_KIND_P and table.share[row_of[w]] <= MAX_KIND_SHARE]
        kinds.sort(key=lambda wp: (table.share[row_of[wp[0]]], -tax.depth(wp[0]), wp[0]))
        out.append(Tagging([(tax.classes[i].wnid, float(p[i])) for i in shown], kinds[:MAX_KINDS]))
    return out


def region_box(mask: np.ndarray, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The crop box ``(left, top, right, bottom)`` in an image of ``size`` (w, h) around ``mask``'s True pixels.

    The mask may have another size than the image (it is scaled); the box gets a :data:`MARGIN` on each side
    and is at least :data:`MIN_SIDE` of the image on each axis; None for an empty mask.
    """
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    width, height = size
    sx, sy = width / mask.shape[1], height / mask.shape[0]
    x0, x1, y0, y1 = xs.min() * sx, (xs.max() + 1) * sx, ys.min() * sy, (ys.max() + 1) * sy

    def side(lo: float, hi: float, full: int) -> tuple[int, int]:
        span = max((hi - lo) * (1 + 2 * MARGIN), full * MIN_SIDE)
        centre = (lo + hi) / 2
        start = min(max(0.0, centre - span / 2), max(0.0, full - span))
        return round(start), round(min(full, start + span))

    left, right = side(x0, x1, width)
    top, bottom = side(y0, y1, height)
    return left, top, right, bottom


def region_of(image: Image.Image) -> Image.Image:
    """What to tag: for an activation overlay, the crop of its original around the mask; else the image.

    Reads only the image record's ``mask`` and ``parent`` (never ``meta``): the pixels decide.
    """
    record = current_store().record(image)
    mask = None if record is None else record.mask
    if mask is None:
        return image
    source = image
    if record is not None and record.parent:
        try:
            source = current_store().pixels(record.parent)
        except KeyError:  # the original was evicted: the overlay's own pixels, dimmed outside the mask
            source = image
    box = region_box(np.asarray(mask, dtype=bool), source.size)
    return image if box is None else source.crop(box)


@cache
def _shared_model(arch: str) -> LoadedModel:
    from aim_imagenet.models import load_efficientnet

    return load_efficientnet(arch)


class PhotoTagger:
    """A describer (``aim_agent.providers.Describer``) that tags photos with a real ImageNet classifier.

    Args:
        name: the describer's name (``photo-tagger-lite2``, ``photo-tagger-lite0``, ``photo-tagger``).
        model: a loaded ImageNet classifier to use instead of the one ``name`` implies (tests use random weights).
        batch_size: images per forward pass.
    """

    def __init__(self, name: str = "photo-tagger-lite2", *, model: LoadedModel | None = None,
                 batch_size: int = BATCH_SIZE) -> None:
        if model is None and name not in TAGGERS:
            raise KeyError(f"unknown photo tagger {name!r}; known: {', '.join(TAGGERS)}")
        self.name = name
        self.arch = TAGGERS.get(name, "")
        self._model = model
        self.batch_size = batch_size

    @property
    def model(self) -> LoadedModel:
        """The classifier, loaded on first use (shared by taggers of one architecture)."""
        if self._model is None:
            self._model = _shared_model(self.arch)
        return self._model

    def probabilities(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Class probabilities ``(N, 1000)`` of the regions to tag, in batches."""
        import torch

        regions = [region_of(image) for image in images]
        model = self.model
        out: list[torch.Tensor] = []
        with torch.no_grad():
            for lo in range(0, len(regions), self.batch_size):
                logits = model.run(model.module, model.preprocess(regions[lo:lo + self.batch_size]))
                out.append(logits.float().softmax(-1))
        return torch.cat(out).numpy() if out else np.zeros((0, 1000), dtype=np.float32)

    def taggings(self, images: Sequence[Image.Image]) -> list[Tagging]:
        """One :class:`Tagging` per image."""
        return tag_probabilities(self.probabilities(images)) if images else []

    def tags(self, images: Sequence[Image.Image]) -> list[list[tuple[str, float]]]:
        """Per image, ``(wnid, probability)`` of its top classes, then of its kinds."""
        return [t.classes + t.kinds for t in self.taggings(images)]

    def describe(self, images: list[Image.Image]) -> list[str]:
        """One description line per image (format: the module docstring)."""
        tax = taxonomy()
        return [t.text(tax) for t in self.taggings(images)]

    def summarize(self, images: list[Image.Image]) -> str:
        """The kinds (and top classes) most shared across the images, with how many images show each."""
        taggings = self.taggings(images)
        if not taggings:
            return "no images"
        tax, n = taxonomy(), len(taggings)
        kinds = Counter(w for t in taggings for w, _ in t.kinds)
        tops = Counter(t.classes[0][0] for t in taggings)
        shared = sorted(kinds.items(), key=lambda wc: (-wc[1], tax.pool_share(wc[0]), wc[0]))[:MAX_KINDS // 2]
        common = sorted(tops.items(), key=lambda wc: (-wc[1], wc[0]))[:3]
        line = "shared kinds: " + (", ".join(f"{tax.name(w)} ({c}/{n})" for w, c in shared) or "none")
        return line + "; top classes: " + ", ".join(f"{tax.name(w)} ({c}/{n})" for w, c in common)


def photo_taggers() -> list[PhotoTagger]:
    """The three registered taggers (each loads its model on first use)."""
    return [PhotoTagger(name) for name in TAGGERS]


__all__ = ["TAGGERS", "KindTable", "PhotoTagger", "Tagging", "photo_taggers", "region_box", "region_of",
           "tag_probabilities"]
