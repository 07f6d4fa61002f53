"""The activation cache: an image's maps for every unit of a layer, computed once per (model, layer).

A sweep interprets many units of one layer, and their experiments show the model many of the same
images (the same prompts render the same pixels). :class:`ActivationCache` keeps, for one probe
(:meth:`~aim_agent.system.LayerProbe.fingerprint`: the model's weights and the layer), the spatial maps
``(U, h, w)`` of *all* units for each image id, so that a second unit, a second worker or a rerun reads
them instead of running the model again:

- in memory, bounded in bytes, least recently used first out;
- on disk (when a folder is given: a sweep's workers use ``$AIM_CACHE/activations``), one ``.npy`` file
  per image, ``<folder>/<fingerprint>/<id[4:6]>/<id>.npy``, written to a temporary name and renamed, so a
  reader sees no file or a whole one. It is read with ``allow_pickle=False``; a file that does not load
  or has the wrong shape counts as missing and is written again.

Only probes whose output is a function of the pixels alone are cached (``LayerProbe.cacheable``: a
model layer; not synthetic neurons, which read scene graphs). The cache is off unless a process turns it
on: a sweep's workers do (:func:`enable`, with ``$AIM_CACHE/activations``), and ``AIM_ACTIVATION_CACHE=DIR``
does for any process. It trusts the probe's fingerprint to change with the weights (loaders hash them);
a process that builds several models under one fingerprint must leave it off. ``AIM_FAST_PATH=0`` turns
it off everywhere.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from aim_agent.files import atomic_write

#: bytes of maps one process keeps in memory per probe
MEMORY_BYTES = 256 * 1024**2


class ActivationCache:
    """Maps of every unit of one layer, per image id, in memory and optionally on disk."""

    def __init__(self, fingerprint: str, folder: Path | None = None, max_bytes: int = MEMORY_BYTES) -> None:
        self.fingerprint = fingerprint
        self.folder = None if folder is None else Path(folder) / _safe(fingerprint)
        self.max_bytes = max_bytes
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.stats = {"memory_hits": 0, "disk_hits": 0, "misses": 0, "written": 0}

    def path(self, iid: str) -> Path | None:
        """Where the maps of ``iid`` live on disk (None without a folder)."""
        if self.folder is None:
            return None
        return self.folder / iid[4:6] / f"{iid}.npy"

    def get(self, iid: str, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
        """The maps ``(U, h, w)`` of image ``iid``, or None; ``shape`` (when given) must match."""
        with self._lock:
            maps = self._memory.get(iid)
            if maps is not None:
                self._memory.move_to_end(iid)
                self.stats["memory_hits"] += 1
                return maps
        path = self.path(iid)
        if path is not None:
            maps = _read(path, shape)
            if maps is not None:
                with self._lock:
                    self.stats["disk_hits"] += 1
                    self._keep(iid, maps)
                return maps
        with self._lock:
            self.stats["misses"] += 1
        return None

    def put(self, iid: str, maps: np.ndarray) -> None:
        """Remember the maps ``(U, h, w)`` of image ``iid`` (float32), in memory and on disk."""
        maps = np.ascontiguousarray(maps, dtype=np.float32)
        maps.setflags(write=False)
        with self._lock:
            self._keep(iid, maps)
        path = self.path(iid)
        if path is not None and not path.exists():
            buf = io.BytesIO()
            np.save(buf, maps, allow_pickle=False)
            atomic_write(path, buf.getvalue(), fsync=False)
            with self._lock:
                self.stats["written"] += 1

    def _keep(self, iid: str, maps: np.ndarray) -> None:
        if iid in self._memory:
            self._memory.move_to_end(iid)
            return
        self._memory[iid] = maps
        self._bytes += maps.nbytes
        while len(self._memory) > 1 and self._bytes > self.max_bytes:
            _, old = self._memory.popitem(last=False)
            self._bytes -= old.nbytes


def _read(path: Path, shape: tuple[int, ...] | None) -> np.ndarray | None:
    maps: np.ndarray | None
    try:
        maps = np.asarray(np.load(path, allow_pickle=False))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError):  # not a whole .npy (never written half-way by us): damage
        maps = None
    if maps is None or maps.dtype != np.float32 or maps.ndim != 3 or (
            shape is not None and tuple(maps.shape) != tuple(shape)):
        with contextlib.suppress(OSError):
            path.unlink()  # so that it is written again
        return None
    maps.setflags(write=False)
    return maps


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:120] or "probe"


_CACHES: dict[tuple[str, Path | None], ActivationCache] = {}
#: [on, folder]: whether this process caches activations, and where on disk (None: memory only)
_STATE: list[Any] = [False, None]
_LOCK = threading.Lock()


def enable(folder: Path | None, on: bool = True) -> None:
    """Cache activations in this process from now on, on disk under ``folder`` (None: in memory only).

    A sweep's workers call this with ``$AIM_CACHE/activations``; ``AIM_ACTIVATION_CACHE=DIR`` does the
    same for any process. ``on=False`` turns it off again.
    """
    with _LOCK:
        _STATE[:] = [on, None if folder is None else Path(folder)]


@contextlib.contextmanager
def enabled(folder: Path | None) -> Iterator[None]:
    """:func:`enable` for the duration of the block, then as before (a sweep's unit run inline in a caller's
    process leaves that process as it was; the maps stay in memory for the next unit of the same folder)."""
    with _LOCK:
        before = list(_STATE)
        _STATE[:] = [True, None if folder is None else Path(folder)]
    try:
        yield
    finally:
        with _LOCK:
            _STATE[:] = before


def cache_for(probe: Any) -> ActivationCache | None:
    """The activation cache of ``probe`` in this process, or None when it is not to be cached."""
    from aim_agent.images import fast_path

    if not getattr(probe, "cacheable", False) or not fast_path():
        return None
    env = os.environ.get("AIM_ACTIVATION_CACHE", "").strip()
    if not _STATE[0] and not env:
        return None
    fingerprint = str(probe.fingerprint())
    with _LOCK:
        folder = _STATE[1] if _STATE[0] else Path(env).expanduser()
        cache = _CACHES.get((fingerprint, folder))
        if cache is None:
            cache = _CACHES[fingerprint, folder] = ActivationCache(fingerprint, folder)
        return cache


def all_stats() -> dict[str, int]:
    """Hits and misses of every activation cache of this process, added up."""
    total = {"memory_hits": 0, "disk_hits": 0, "misses": 0, "written": 0}
    with _LOCK:
        for cache in _CACHES.values():
            for key, value in cache.stats.items():
                total[key] += value
    return total
