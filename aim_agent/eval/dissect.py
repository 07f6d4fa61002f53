"""Network Dissection on datasets with exact concept masks: a reference label for every unit of a layer.

For a layer and a dataset whose images have exact masks (a concept annotator, hook ``aim_vocabularies``:
the world annotates its own datasets), one pass runs the model over every image and keeps each unit's
spatial activations; then, for every unit ``u`` and concept ``c``:

- **IoU** (Bau et al., 2017): the unit's threshold ``T_u`` is the ``quantile`` (0.995: the top 0.5%) of
  all its spatial activations over the dataset; its map of each image is upsampled (bilinear) to the mask
  size and thresholded at ``T_u``; ``IoU(u, c) = sum_x |A_u(x) & M_c(x)| / sum_x |A_u(x) | M_c(x)|``
  over every image ``x``. The concept with the highest IoU is the unit's label.
- **AUC**: how well the presence of ``c`` in an image predicts the unit's activation (spatial max) on
  it, as the area under the ROC curve (Mann-Whitney U). The concept with the highest AUC is the one
  whose presence best predicts the unit, wherever in the image the unit fires.

Concepts seen in fewer than :data:`MIN_IMAGES` images are left out (their scores are noise). Results
are cached as JSON, keyed by the probe, the dataset, the annotator and the settings.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aim_agent.exemplars.cache import cache_key
from aim_agent.exemplars.dataset import ImageFolder, default_cache_dir, resolve_dataset
from aim_agent.files import atomic_write
from aim_agent.system import LayerProbe
from aim_agent.vocabulary import ConceptAnnotator, ConceptInfo, Vocabularies, installed_vocabularies

DEFAULT_QUANTILE = 0.995
MIN_IMAGES = 10
TOP = 3
VERSION = 1


@dataclass
class Scored:
    """One concept's score for one unit."""

    concept: str
    score: float


@dataclass
class UnitDissection:
    """What the dissection says about one unit."""

    unit: int
    threshold: float
    max_activation: float
    iou: list[Scored]  # best first (:data:`TOP`)
    auc: list[Scored]

    @property
    def iou_concept(self) -> str | None:
        return self.iou[0].concept if self.iou else None

    @property
    def auc_concept(self) -> str | None:
        return self.auc[0].concept if self.auc else None

    @property
    def dead(self) -> bool:
        """Never active on the dataset."""
        return self.max_activation <= 0.0


@dataclass
class Dissection:
    """A dissection of one layer over one dataset."""

    model_name: str
    layer: str
    dataset: str
    images: int
    quantile: float
    mask_size: int
    concepts: list[ConceptInfo]
    units: list[UnitDissection]
    seconds: float = 0.0
    cache_path: str | None = None
    from_cache: bool = False
    concept_images: dict[str, int] = field(default_factory=dict)

    def concept(self, key: str) -> ConceptInfo | None:
        return next((c for c in self.concepts if c.key == key), None)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("from_cache")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Dissection:
        units = [UnitDissection(unit=u["unit"], threshold=u["threshold"], max_activation=u["max_activation"],
                                iou=[Scored(**s) for s in u["iou"]], auc=[Scored(**s) for s in u["auc"]])
                 for u in data["units"]]
        concepts = [ConceptInfo(**{**c, "words": tuple(c["words"]), "category_words": tuple(c["category_words"])})
                    for c in data["concepts"]]
        return cls(model_name=data["model_name"], layer=data["layer"], dataset=data["dataset"], images=data["images"],
                   quantile=data["quantile"], mask_size=data["mask_size"], concepts=concepts, units=units,
                   seconds=data.get("seconds", 0.0), cache_path=data.get("cache_path"),
                   concept_images=data.get("concept_images", {}))


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks (1-based) of each column of ``values`` ``(N, U)``, ties sharing their average rank."""
    n, u = values.shape
    order = np.argsort(values, axis=0, kind="stable")
    ranks = np.empty((n, u), dtype=np.float64)
    cols = np.arange(u)
    ranks[order, cols[None, :]] = np.arange(1, n + 1, dtype=np.float64)[:, None]
    sorted_vals = np.take_along_axis(values, order, axis=0)
    for j in range(u):  # average the ranks of ties (rare for real activations, common for zeros)
        col = sorted_vals[:, j]
        starts = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])
        if len(starts) == n:
            continue
        ends = np.r_[starts[1:], n]
        for s, e in zip(starts, ends, strict=True):
            if e - s > 1:
                ranks[order[s:e, j], j] = (s + 1 + e) / 2.0
    return ranks


def auc_matrix(scores: np.ndarray, presence: np.ndarray) -> np.ndarray:
    """``(C, U)`` AUC of each concept's presence ``(N, C)`` bool against each unit's score ``(N, U)``."""
    ranks = average_ranks(scores)
    pos = presence.sum(axis=0).astype(np.float64)  # (C,)
    neg = presence.shape[0] - pos
    rank_sums = presence.T.astype(np.float64) @ ranks  # (C, U)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sums - pos[:, None] * (pos[:, None] + 1) / 2) / (pos[:, None] * neg[:, None])
    return np.asarray(np.nan_to_num(auc, nan=0.5))


def find_annotator(folder: ImageFolder, vocabularies: Vocabularies | None = None) -> ConceptAnnotator:
    """The annotator of ``folder`` from the installed vocabularies; an error that says what to do otherwise."""
    vocabularies = vocabularies if vocabularies is not None else installed_vocabularies()
    annotator = vocabularies.annotator(folder.root)
    if annotator is None:
        known = ", ".join(v.name for v in vocabularies.items) or "none installed"
        raise ValueError(
            f"dataset {folder.name!r} has no exact concept masks that an installed vocabulary can read "
            f"(vocabularies: {known}). Dissection needs a dataset with masks, such as the world's "
            "(--dataset world, or a folder written by `aim world dataset`)."
        )
    return annotator


def _linear_weights(n: int, size: int) -> torch.Tensor:
    """``(n, size)``: 1-D linear interpolation from ``n`` cells to ``size`` (``align_corners=False``)."""
    eye = torch.eye(n)[None]  # (1, n, n): each row a basis vector
    return torch.nn.functional.interpolate(eye, size=size, mode="linear", align_corners=False)[0]


def _upsampled(maps: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, U, h, w)`` -> ``(B, U, size, size)``, bilinear (as Network Dissection), as two small matrix
    products (bilinear interpolation is separable; much faster than ``interpolate`` on a CPU)."""
    h, w = maps.shape[-2:]
    if h == size and w == size:
        return maps
    return _linear_weights(h, size).T @ maps @ _linear_weights(w, size)


def dissect(
    probe: LayerProbe,
    dataset: str | Path | ImageFolder | None = None,
    *,
    annotator: ConceptAnnotator | None = None,
    quantile: float = DEFAULT_QUANTILE,
    batch_size: int = 32,
    cache_dir: str | Path | None = None,
    min_images: int = MIN_IMAGES,
    progress: bool | None = None,
) -> Dissection:
    """Dissect every unit of ``probe``'s layer over ``dataset`` (default ``world``); cached.

    One pass runs the model over the dataset and annotates each image; activations are kept on disk
    (float16, in a temporary file) until the thresholds are known, then IoU and AUC are computed from them.
    """
    import sys

    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be between 0 and 1 (exclusive), not {quantile}")
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder = resolve_dataset(dataset, cache_dir=root)
    annotator = annotator or find_annotator(folder)
    key = cache_key(kind="dissect", version=VERSION, probe=probe.fingerprint(), layer=probe.layer,
                    dataset=folder.fingerprint(), annotator=annotator.fingerprint(), quantile=quantile,
                    min_images=min_images)
    path = root / "dissect" / _safe(probe.model_name) / f"{_safe(probe.layer)}-{key}.json"
    if path.is_file():
        try:
            found = Dissection.from_json(json.loads(path.read_text()))
            found.from_cache = True
            return found
        except (ValueError, KeyError, TypeError):
            pass  # an unreadable cache entry is recomputed
    started = time.perf_counter()
    if progress is None:
        progress = sys.stderr.isatty()
    with tempfile.TemporaryDirectory(dir=_mkdir(root / "dissect")) as tmp:
        stored = _stream(probe, folder, annotator, batch_size, Path(tmp), progress)
        result = _score(probe, folder, annotator, stored, quantile, min_images)
    result.seconds = time.perf_counter() - started
    result.cache_path = str(path)
    atomic_write(path, json.dumps(result.to_json()).encode())
    return result


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _safe(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")[-80:] or "model"


@dataclass
class _Stored:
    """What the pass kept: activations ``(N, U, h, w)`` float16 on disk, masks ``(N, S, S)`` and atoms."""

    acts: np.ndarray
    labels: np.ndarray
    atoms: list[list[tuple[int, ...]]]
    files: list[str]


def _stream(probe: LayerProbe, folder: ImageFolder, annotator: ConceptAnnotator, batch_size: int, tmp: Path,
            progress: bool) -> _Stored:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    n = len(folder)
    size = annotator.size
    acts: np.ndarray | None = None
    labels = np.lib.format.open_memmap(tmp / "labels.npy", mode="w+", dtype=np.int16, shape=(n, size, size))
    atoms: list[list[tuple[int, ...]]] = []
    files: list[str] = []
    bar = Progress(TextColumn("dissect {task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), console=Console(stderr=True), disable=not progress)
    row = 0
    with bar, torch.inference_mode():
        task = bar.add_task(probe.layer, total=n)
        for batch in folder.batches(batch_size):
            kept = []
            for index, image in zip(batch.indices, batch.images, strict=True):
                note = annotator.annotate(folder.files[index])
                if note is not None:
                    kept.append((index, image, note))
            if kept:
                out = probe.forward([image for _, image, _ in kept]).float().cpu().numpy()
                if acts is None:
                    acts = np.lib.format.open_memmap(tmp / "acts.npy", mode="w+", dtype=np.float16,
                                                     shape=(n, *out.shape[1:]))
                for k, (index, _, note) in enumerate(kept):
                    acts[row] = out[k]
                    labels[row] = note.labels
                    atoms.append(note.atoms)
                    files.append(folder.files[index])
                    row += 1
            bar.update(task, completed=batch.stop)
    if acts is None or row == 0:
        raise ValueError(f"no image of {folder.name!r} could be read with its concept masks; nothing to dissect")
    return _Stored(acts[:row], labels[:row], atoms, files)


def _score(probe: LayerProbe, folder: ImageFolder, annotator: ConceptAnnotator, stored: _Stored, quantile: float,
           min_images: int) -> Dissection:
    acts = stored.acts
    n, units = acts.shape[0], acts.shape[1]
    n_concepts = len(annotator.concepts)
    size = annotator.size
    # thresholds: the quantile of every spatial value of each unit (a few units at a time)
    thresholds = np.empty(units, dtype=np.float64)
    scores = np.empty((n, units), dtype=np.float32)
    step = max(1, int(2**26 // max(1, n * acts.shape[2] * acts.shape[3])))
    for lo in range(0, units, step):
        chunk = np.asarray(acts[:, lo:lo + step], dtype=np.float32)  # (N, u, h, w)
        flat = chunk.transpose(1, 0, 2, 3).reshape(chunk.shape[1], -1)
        thresholds[lo:lo + step] = np.quantile(flat, quantile, axis=1)
        scores[:, lo:lo + step] = chunk.reshape(n, chunk.shape[1], -1).max(axis=2)
    inter = np.zeros((units, n_concepts), dtype=np.float64)
    concept_area = np.zeros(n_concepts, dtype=np.float64)
    unit_area = np.zeros(units, dtype=np.float64)
    presence = np.zeros((n, n_concepts), dtype=bool)
    limit = torch.from_numpy(thresholds.astype(np.float32))[None, :, None, None]
    chunk_images = 16
    for lo in range(0, n, chunk_images):
        block = torch.from_numpy(np.asarray(acts[lo:lo + chunk_images], dtype=np.float32))
        fired_block = _upsampled(block, size) > limit  # (B, U, S, S)
        unit_area += np.count_nonzero(fired_block.flatten(2).numpy(), axis=2).sum(axis=0)
        fired_np = fired_block.reshape(block.shape[0], units, -1).numpy()
        for k in range(block.shape[0]):
            i = lo + k
            labels = np.asarray(stored.labels[i]).reshape(-1)
            for atom, members in enumerate(stored.atoms[i]):
                where = np.flatnonzero(labels == atom)
                if not len(where) or not members:
                    continue
                hits = np.count_nonzero(fired_np[k][:, where], axis=1)
                for c in members:
                    presence[i, c] = True
                    inter[:, c] += hits
                    concept_area[c] += len(where)
    union = unit_area[:, None] + concept_area[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    auc = auc_matrix(scores, presence).T  # (U, C)
    counts = presence.sum(axis=0)
    usable = counts >= min_images
    iou[:, ~usable] = -1.0
    auc[:, ~usable] = -1.0
    concepts = list(annotator.concepts)
    out = []
    for u in range(units):
        best_iou = np.argsort(-iou[u], kind="stable")[:TOP]
        best_auc = np.argsort(-auc[u], kind="stable")[:TOP]
        out.append(UnitDissection(
            unit=u, threshold=round(float(thresholds[u]), 6), max_activation=round(float(scores[:, u].max()), 6),
            iou=[Scored(concepts[c].key, round(float(iou[u, c]), 4)) for c in best_iou if usable[c]],
            auc=[Scored(concepts[c].key, round(float(auc[u, c]), 4)) for c in best_auc if usable[c]],
        ))
    return Dissection(model_name=probe.model_name, layer=probe.layer, dataset=folder.name, images=n,
                      quantile=quantile, mask_size=size, concepts=concepts, units=out,
                      concept_images={concepts[c].key: int(counts[c]) for c in range(n_concepts) if counts[c]})


def dissection_table(result: Dissection, units: Sequence[int] | None = None) -> Any:
    """A rich table of the dissection: per unit, the IoU label and the AUC label with their scores."""
    from rich.table import Table

    table = Table(title=f"dissection of {result.model_name} {result.layer} over {result.dataset} "
                        f"({result.images} images, top {100 * (1 - result.quantile):.2g}% threshold)")
    for name in ("unit", "IoU concept", "IoU", "AUC concept", "AUC", "max act"):
        table.add_column(name, justify="right" if name in ("unit", "IoU", "AUC", "max act") else "left")
    chosen = set(units) if units is not None else None
    for u in result.units:
        if chosen is not None and u.unit not in chosen:
            continue
        table.add_row(str(u.unit), u.iou_concept or "-", f"{u.iou[0].score:.3f}" if u.iou else "-",
                      u.auc_concept or "-", f"{u.auc[0].score:.3f}" if u.auc else "-", f"{u.max_activation:.3g}")
    return table
