"""One streaming pass over a dataset that finds exemplars for every unit of a layer at once.

For each unit the pass keeps

- the top ``keep`` images (``keep = max(k, 50)``, so later calls with a larger ``k`` up to
  ``keep`` are served from the cache) ranked by the unit's spatial max (or mean), with their
  activation maps at probe resolution (float16). Ties go to the earlier file. The running
  top-k is merged batch by batch with a stable sort, so the result equals sorting all
  images at once;
- its **threshold**: the ``quantile`` (default 0.99) of all the unit's spatial activation
  values over the dataset, with linear interpolation (``torch.quantile``'s definition).
  This is exact: a quantile at q only depends on the values above it, so the pass keeps
  the largest ``ceil((1-q)(M-1)) + 2`` values per unit, ``M`` being the number of values the
  dataset can give. When that would exceed the memory budget (``quantile_budget_mb``), the
  threshold is the exact quantile of a deterministic subsample: the values of every s-th
  file (by sorted position), with ``s`` the smallest stride that fits. The result says
  which (``quantile_method``).

The running state is checkpointed atomically every ``checkpoint_every`` batches (at most
once per ``checkpoint_seconds``) and on Ctrl-C; a rerun after an interruption (even
``kill -9``) resumes from the checkpoint. A finished result is stored in the cache and
returned without any forward pass next time.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aim_agent.exemplars.cache import (
    cache_key,
    checkpoint_path,
    load_tensors,
    result_path,
    save_tensors,
)
from aim_agent.exemplars.dataset import ImageFolder, default_cache_dir, resolve_dataset
from aim_agent.system import LayerProbe, Reduce

MIN_KEEP = 50
DEFAULT_K = 15
DEFAULT_QUANTILE = 0.99


@dataclass
class Exemplar:
    """One top image of one unit."""

    rank: int
    index: int  # position of the file in the dataset's sorted list
    file: str  # path relative to the dataset root
    activation: float
    map: np.ndarray  # (h, w) float32, probe resolution


@dataclass
class LayerExemplars:
    """Exemplars and thresholds of every unit of one layer over one dataset."""

    model_name: str
    layer: str
    dataset: ImageFolder
    values: torch.Tensor  # (U, keep) float32, descending; -inf where the dataset had fewer images
    indices: torch.Tensor  # (U, keep) int64 file positions; -1 where empty
    maps: torch.Tensor  # (U, keep, h, w) float16
    thresholds: torch.Tensor  # (U,) float32
    images_seen: int
    skipped: list[tuple[str, str]]  # (relative path, reason)
    reduce: Reduce
    quantile: float
    quantile_method: str
    keep: int
    cache_path: Path | None = None
    from_cache: bool = False
    batches_run: int = 0  # batches this call ran (0 when served from the cache)
    seconds: float = 0.0

    @property
    def num_units(self) -> int:
        return int(self.values.shape[0])

    @property
    def grid(self) -> tuple[int, int]:
        return int(self.maps.shape[2]), int(self.maps.shape[3])

    def _check(self, unit: int) -> None:
        if not 0 <= unit < self.num_units:
            raise IndexError(
                f"unit {unit} is out of range for layer {self.layer!r}: valid units are 0..{self.num_units - 1}"
            )

    def threshold(self, unit: int) -> float:
        self._check(unit)
        return float(self.thresholds[unit])

    def top(self, unit: int, k: int = DEFAULT_K) -> list[Exemplar]:
        """The ``k`` highest-activating images of ``unit``, best first."""
        self._check(unit)
        if k > self.keep:
            raise ValueError(f"k={k} exceeds the {self.keep} exemplars kept; recompute with keep >= {k}")
        found = []
        for rank in range(k):
            index = int(self.indices[unit, rank])
            if index < 0:
                break
            found.append(
                Exemplar(
                    rank=rank,
                    index=index,
                    file=self.dataset.files[index],
                    activation=float(self.values[unit, rank]),
                    map=self.maps[unit, rank].float().numpy(),
                )
            )
        return found


@dataclass
class _State:
    """The running state of a pass; replaced as a whole after each batch, so it is always consistent."""

    top_values: torch.Tensor  # (U, K)
    top_indices: torch.Tensor  # (U, K)
    top_maps: torch.Tensor  # (U, K, h, w) f16
    q_values: torch.Tensor  # (U, <= m) largest values seen so far
    q_count: int  # values per unit that went into the quantile
    next_index: int  # first file not yet processed
    images_seen: int
    batches_done: int
    skipped: list[tuple[int, str]] = field(default_factory=list)
    pending: list[torch.Tensor] = field(default_factory=list)  # quantile values not yet merged


def _quantile_capacity(total: int, quantile: float) -> int:
    """How many of the largest values decide the ``quantile`` of ``total`` values (with margin)."""
    return min(total, math.ceil((1.0 - quantile) * max(total - 1, 0)) + 2)


def _exact_quantile(top_desc: torch.Tensor, count: int, quantile: float) -> torch.Tensor:
    """``torch.quantile(values, q, dim=1)`` of ``count`` values per row, from the rows' largest values."""
    if count == 0:
        return torch.full((top_desc.shape[0],), float("nan"))
    q = torch.tensor(quantile, dtype=torch.float32)
    pos = q * (count - 1)  # float32, as torch.quantile computes ranks in the input dtype
    below, above = int(torch.floor(pos)), int(torch.ceil(pos))
    weight = pos - below
    lo_col, hi_col = count - 1 - below, count - 1 - above
    if lo_col >= top_desc.shape[1]:
        raise RuntimeError(f"quantile state too small: need column {lo_col}, have {top_desc.shape[1]}")
    return torch.lerp(top_desc[:, lo_col], top_desc[:, hi_col], weight)


class _Pass:
    def __init__(self, probe: LayerProbe, folder: ImageFolder, *, keep: int, reduce: Reduce, quantile: float,
                 budget_bytes: int) -> None:
        self.probe = probe
        self.folder = folder
        self.keep = keep
        self.reduce = reduce
        self.quantile = quantile
        self.budget_bytes = budget_bytes
        self.capacity = 0
        self.stride = 1

    # -- quantile bookkeeping ------------------------------------------------------------
    def plan_quantile(self, units: int, cells: int) -> None:
        """Pick the per-unit capacity and, when the exact state would not fit, a file stride."""
        n = len(self.folder)
        stride = 1
        while True:
            files = math.ceil(n / stride)
            capacity = _quantile_capacity(files * cells, self.quantile)
            if capacity * units * 4 <= self.budget_bytes or files == 1:
                break
            stride += max(1, stride // 4)
        self.capacity, self.stride = capacity, stride

    @property
    def quantile_method(self) -> str:
        if self.stride == 1:
            return "exact"
        return f"exact over every {self.stride}th file (memory budget)"

    def compact(self, q_values: torch.Tensor, pending: list[torch.Tensor]) -> torch.Tensor:
        """The largest ``capacity`` values per unit of ``q_values`` and ``pending`` together."""
        if not pending:
            return q_values
        merged = torch.cat([q_values, *pending], dim=1)
        if merged.shape[1] > self.capacity:
            merged = torch.topk(merged, self.capacity, dim=1, sorted=False).values
        return merged

    # -- one batch -----------------------------------------------------------------------
    def init_state(self, acts: torch.Tensor) -> _State:
        units, h, w = int(acts.shape[1]), int(acts.shape[2]), int(acts.shape[3])
        self.plan_quantile(units, h * w)
        return _State(
            top_values=torch.full((units, self.keep), float("-inf")),
            top_indices=torch.full((units, self.keep), -1, dtype=torch.int64),
            top_maps=torch.zeros((units, self.keep, h, w), dtype=torch.float16),
            q_values=torch.empty((units, 0)),
            q_count=0,
            next_index=0,
            images_seen=0,
            batches_done=0,
        )

    def update(self, state: _State, acts: torch.Tensor, indices: list[int]) -> _State:
        if acts.dim() != 4 or acts.shape[0] != len(indices):
            raise ValueError(
                f"probe returned shape {tuple(acts.shape)} for {len(indices)} images; expected (B, U, h, w)"
            )
        units, keep = state.top_values.shape
        if tuple(acts.shape[1:]) != (units, *state.top_maps.shape[2:]):
            raise ValueError(
                f"probe output changed shape from {(units, *state.top_maps.shape[2:])} to {tuple(acts.shape[1:])}"
            )
        acts = acts.float()
        flat = acts.flatten(2)  # (B, U, hw)
        scores = (flat.amax(2) if self.reduce == "max" else flat.mean(2)).T  # (U, B)
        batch_idx = torch.as_tensor(indices, dtype=torch.int64)
        cand_values = torch.cat([state.top_values, scores], dim=1)
        order = torch.sort(cand_values, dim=1, descending=True, stable=True).indices[:, :keep]
        top_values = torch.gather(cand_values, 1, order)
        top_indices = torch.gather(torch.cat([state.top_indices, batch_idx.expand(units, -1)], dim=1), 1, order)
        if bool((order >= keep).any()):
            h, w = state.top_maps.shape[2:]
            cand_maps = torch.cat([state.top_maps, acts.transpose(0, 1).to(torch.float16)], dim=1)
            top_maps = torch.gather(cand_maps, 1, order[:, :, None, None].expand(units, keep, h, w))
        else:
            top_maps = state.top_maps
        # quantile: values of the files that the stride keeps
        q_count, pending = state.q_count, list(state.pending)
        rows = [i for i, index in enumerate(indices) if index % self.stride == 0]
        if rows:
            sub = acts[rows] if len(rows) < len(indices) else acts
            values = sub.transpose(0, 1).reshape(units, -1)
            q_count += values.shape[1]
            if values.shape[1] > self.capacity:
                values = torch.topk(values, self.capacity, dim=1, sorted=False).values
            pending.append(values)
        q_values = state.q_values
        if sum(p.shape[1] for p in pending) >= max(self.capacity, 4096):
            q_values, pending = self.compact(q_values, pending), []
        return _State(
            top_values=top_values,
            top_indices=top_indices,
            top_maps=top_maps,
            q_values=q_values,
            q_count=q_count,
            next_index=state.next_index,
            images_seen=state.images_seen + len(indices),
            batches_done=state.batches_done,
            skipped=state.skipped,
            pending=pending,
        )

    def thresholds(self, state: _State) -> torch.Tensor:
        q_desc = torch.sort(self.compact(state.q_values, state.pending), dim=1, descending=True).values
        return _exact_quantile(q_desc, state.q_count, self.quantile)


def _progress(enabled: bool, total: int, start: int, description: str) -> tuple[Any, Any]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("images"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )
    task = progress.add_task(description, total=total, completed=start)
    return progress, task


def compute_exemplars(
    probe: LayerProbe,
    dataset: str | Path | ImageFolder | None = None,
    *,
    k: int = DEFAULT_K,
    batch_size: int = 32,
    cache_dir: str | Path | None = None,
    quantile: float = DEFAULT_QUANTILE,
    reduce: Reduce = "max",
    keep: int | None = None,
    checkpoint_every: int = 10,
    checkpoint_seconds: float = 20.0,
    quantile_budget_mb: float = 512,
    progress: bool | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> LayerExemplars:
    """Top images, maps and thresholds of every unit of ``probe``'s layer over ``dataset``.

    ``dataset`` is a folder, a plugin dataset name (default ``world``) or an ImageFolder.
    Results are cached under ``cache_dir`` (default ``$AIM_CACHE`` or ``~/.cache/aim``) and
    reused; an interrupted pass resumes from its last checkpoint, written every
    ``checkpoint_every`` batches but at most once per ``checkpoint_seconds`` (a fast GPU should
    not spend its time writing checkpoints), and on Ctrl-C. ``on_batch(batches_done)``
    is called after each batch (progress hooks, tests that interrupt a pass).
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be between 0 and 1 (exclusive), not {quantile}")
    if reduce not in ("max", "mean"):
        raise ValueError(f"reduce must be 'max' or 'mean', not {reduce!r}")
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    cache_root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder = resolve_dataset(dataset, cache_dir=cache_root)
    keep = max(k, MIN_KEEP) if keep is None else max(keep, k)
    budget = int(quantile_budget_mb * 2**20)
    key = cache_key(
        probe=probe.fingerprint(), layer=probe.layer, dataset=folder.fingerprint(), reduce=reduce,
        quantile=quantile, budget=budget,
    )
    path = result_path(cache_root, probe.model_name, probe.layer, key)
    cached = load_tensors(path)
    if cached is not None and cached[1].get("keep", 0) >= k:
        return _result_from(cached, folder, probe, path)

    started = time.perf_counter()
    run = _Pass(probe, folder, keep=keep, reduce=reduce, quantile=quantile, budget_bytes=budget)
    ckpt = checkpoint_path(path)
    state = _resume(run, ckpt, key)
    batches_run = 0
    if progress is None:
        progress = sys.stderr.isatty()
    bar, task = _progress(progress, len(folder), state.next_index if state else 0,
                          f"exemplars {probe.layer}")

    skipped_before: list[tuple[int, str]] = []  # files skipped before the first image decoded
    last_checkpoint = time.monotonic()
    try:
        batches = folder.batches(batch_size, start=state.next_index if state else 0)
        with bar, torch.inference_mode(), contextlib.closing(batches):  # closing: stop the decoder thread
            for batch in batches:
                if batch.images:
                    acts = probe.forward(batch.images)
                    if state is None:
                        state = run.init_state(acts)
                        state.skipped = skipped_before
                    new = run.update(state, acts, batch.indices)
                elif state is None:
                    skipped_before = skipped_before + batch.skipped
                    bar.update(task, completed=batch.stop)
                    continue
                else:
                    new = replace(state)
                new.skipped = state.skipped + batch.skipped
                new.next_index = batch.stop
                new.batches_done = state.batches_done + 1
                state = new  # one assignment: an interrupt sees the old state or the new one, whole
                batches_run += 1
                bar.update(task, completed=batch.stop)
                if (checkpoint_every and state.batches_done % checkpoint_every == 0
                        and time.monotonic() - last_checkpoint >= checkpoint_seconds):
                    _save_checkpoint(run, ckpt, key, state)
                    last_checkpoint = time.monotonic()
                if on_batch is not None:
                    on_batch(state.batches_done)
    except KeyboardInterrupt:
        if state is not None:
            _save_checkpoint(run, ckpt, key, state)
        raise
    if state is None or state.images_seen == 0:
        skipped = state.skipped if state else skipped_before
        first = "; ".join(f"{folder.files[i]} ({why})" for i, why in skipped[:3])
        raise ValueError(
            f"no image in {folder.name!r} could be decoded ({len(skipped)} of {len(folder)} files skipped"
            + (f": {first}" if first else "")
            + "); give a folder of readable .jpg/.png/.webp images"
        )
    thresholds = run.thresholds(state)
    result = LayerExemplars(
        model_name=probe.model_name,
        layer=probe.layer,
        dataset=folder,
        values=state.top_values,
        indices=state.top_indices,
        maps=state.top_maps,
        thresholds=thresholds,
        images_seen=state.images_seen,
        skipped=[(folder.files[i], why) for i, why in state.skipped],
        reduce=reduce,
        quantile=quantile,
        quantile_method=run.quantile_method,
        keep=keep,
        cache_path=path,
        from_cache=False,
        batches_run=batches_run,
        seconds=time.perf_counter() - started,
    )
    save_tensors(
        path,
        {"values": result.values, "indices": result.indices, "maps": result.maps, "thresholds": thresholds},
        {
            "model_name": probe.model_name, "layer": probe.layer, "probe": probe.fingerprint(), "key": key,
            "dataset": folder.name, "dataset_root": str(folder.root), "dataset_fingerprint": folder.fingerprint(),
            "images_seen": result.images_seen, "skipped": result.skipped, "reduce": reduce,
            "quantile": quantile, "quantile_method": result.quantile_method, "keep": keep,
            "seconds": result.seconds, "created": time.time(),
        },
    )
    ckpt.unlink(missing_ok=True)
    return result


def _result_from(cached: tuple[dict[str, torch.Tensor], dict[str, Any]], folder: ImageFolder, probe: LayerProbe,
                 path: Path) -> LayerExemplars:
    tensors, meta = cached
    return LayerExemplars(
        model_name=probe.model_name,
        layer=probe.layer,
        dataset=folder,
        values=tensors["values"],
        indices=tensors["indices"],
        maps=tensors["maps"],
        thresholds=tensors["thresholds"],
        images_seen=int(meta["images_seen"]),
        skipped=[(str(f), str(w)) for f, w in meta.get("skipped", [])],
        reduce=meta["reduce"],
        quantile=float(meta["quantile"]),
        quantile_method=str(meta.get("quantile_method", "exact")),
        keep=int(meta["keep"]),
        cache_path=path,
        from_cache=True,
        batches_run=0,
        seconds=float(meta.get("seconds", 0.0)),
    )


def _save_checkpoint(run: _Pass, path: Path, key: str, state: _State) -> None:
    save_tensors(
        path,
        {"top_values": state.top_values, "top_indices": state.top_indices, "top_maps": state.top_maps,
         "q_values": run.compact(state.q_values, state.pending)},
        {"key": key, "keep": run.keep, "capacity": run.capacity, "stride": run.stride, "q_count": state.q_count,
         "next_index": state.next_index, "images_seen": state.images_seen, "batches_done": state.batches_done,
         "skipped": state.skipped},
    )


def _resume(run: _Pass, path: Path, key: str) -> _State | None:
    loaded = load_tensors(path)
    if loaded is None:
        return None
    tensors, meta = loaded
    if meta.get("key") != key or meta.get("keep") != run.keep:
        return None  # a checkpoint of other settings (or another keep): start over
    run.capacity, run.stride = int(meta["capacity"]), int(meta["stride"])
    return _State(
        top_values=tensors["top_values"],
        top_indices=tensors["top_indices"],
        top_maps=tensors["top_maps"],
        q_values=tensors["q_values"],
        q_count=int(meta["q_count"]),
        next_index=int(meta["next_index"]),
        images_seen=int(meta["images_seen"]),
        batches_done=int(meta["batches_done"]),
        skipped=[(int(i), str(w)) for i, w in meta.get("skipped", [])],
    )
