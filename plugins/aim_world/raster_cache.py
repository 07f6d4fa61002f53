"""An on-disk cache of the world's rasters: glyph masks, backgrounds, texture patterns.

Rasterising a glyph from the font, filling its holes, scaling it and drawing a background cost
milliseconds each; a fresh process would pay them again for every noun, size and background it
meets. They depend only on their key (and on the font, Pillow and this module's version), so the
first process to compute one writes it here and later processes read it back: the same arrays,
bit for bit, so the pixels are identical with or without the cache.

Safe for several processes at once: each entry is written to a temporary file and renamed into
place (atomic), so a reader sees a whole entry or none. Bounded: entries stop being written once
the folder holds ``$AIM_WORLD_RASTER_CACHE_MB`` megabytes (default 256; 0 turns the cache off).
Entries are raw bytes with a small numeric header (no pickle, nothing that can run code); a
damaged one is a miss and is removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import numpy as np
import PIL

VERSION = 3  # raise when a cached raster's recipe changes (3: glyph weights, background layout variants)
DEFAULT_MB = 256
_MAX_ARRAYS = 4  # arrays in one entry
_MAX_DIMS = 3


def _dtype_code(a: np.ndarray) -> int:
    return {np.dtype(bool): 0, np.dtype(np.uint8): 1}[a.dtype]


class RasterCache:
    """Arrays (bool or uint8) by string key, in ``root``; at most ``max_bytes`` on disk (written by this class)."""

    def __init__(self, root: Path | None, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._used: int | None = None  # bytes in the folder, counted on first write

    @property
    def enabled(self) -> bool:
        return self.root is not None and self.max_bytes > 0

    def _file(self, key: str) -> str:
        assert self.root is not None
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        return os.path.join(self.root, digest[:2], f"{digest}.raster")

    def _path(self, key: str) -> Path:
        return Path(self._file(key))

    def get(self, key: str) -> list[np.ndarray] | None:
        """The arrays stored under ``key``, read-only; None when absent or unreadable."""
        if not self.enabled:
            return None
        path = self._file(key)  # a plain string and open(): reads are on every cold render's path
        try:
            with open(path, "rb") as fh:
                return _decode(fh.read())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            with contextlib.suppress(OSError):
                os.unlink(path)
            return None

    def put(self, key: str, arrays: list[np.ndarray]) -> None:
        """Store ``arrays`` under ``key`` (atomically; skipped when the cache is full or off)."""
        if not self.enabled:
            return
        assert self.root is not None
        data = _encode(arrays)
        if data is None:
            return
        if self._used is None:
            self._used = _folder_bytes(self.root)
        if self._used + len(data) > self.max_bytes:
            return
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".raster")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, path)  # atomic: readers see the whole entry or none
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError:  # a read-only or full disk: the cache is an optimisation, never an error
            return
        self._used += len(data)


# An entry: MAGIC, then int64 count, then per array int64 (dtype code, ndim, 3 dims), then the arrays'
# bytes in order (bool arrays bit-packed). Plain numbers and bytes: nothing in it can run code.
MAGIC = b"AIMRAST1"
_SLOT = 2 + _MAX_DIMS


def _encode(arrays: list[np.ndarray]) -> bytes | None:
    if not 1 <= len(arrays) <= _MAX_ARRAYS:
        return None
    header = np.zeros(1 + _SLOT * len(arrays), dtype="<i8")
    header[0] = len(arrays)
    payload = []
    for k, a in enumerate(arrays):
        if not 1 <= a.ndim <= _MAX_DIMS or a.dtype not in (np.dtype(bool), np.dtype(np.uint8)):
            return None
        header[1 + k * _SLOT : 1 + k * _SLOT + 2 + a.ndim] = [_dtype_code(a), a.ndim, *a.shape]
        payload.append(np.packbits(a, axis=None).tobytes() if a.dtype == bool else np.ascontiguousarray(a).tobytes())
    return MAGIC + header.tobytes() + b"".join(payload)


def _decode(data: bytes) -> list[np.ndarray]:
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 8:
        raise ValueError("not a raster entry")
    pos = len(MAGIC)
    count = int(np.frombuffer(data, dtype="<i8", count=1, offset=pos)[0])
    if not 1 <= count <= _MAX_ARRAYS:
        raise ValueError("bad header")
    header = np.frombuffer(data, dtype="<i8", count=_SLOT * count, offset=pos + 8).reshape(count, _SLOT)
    pos += 8 + header.nbytes
    out = []
    for code, ndim, *dims in header.tolist():
        if code not in (0, 1) or not 1 <= ndim <= _MAX_DIMS or any(d < 0 or d > 1 << 16 for d in dims[:ndim]):
            raise ValueError("bad header")
        shape = tuple(dims[:ndim])
        n = math.prod(shape)  # np.prod costs more than the rest of a small entry's decoding
        size = (n + 7) // 8 if code == 0 else n
        if pos + size > len(data):
            raise ValueError("truncated entry")
        raw = np.frombuffer(data, dtype=np.uint8, count=size, offset=pos)
        pos += size
        array = np.unpackbits(raw, count=n).astype(bool).reshape(shape) if code == 0 else raw.reshape(shape)
        array.setflags(write=False)
        out.append(array)
    if pos != len(data):
        raise ValueError("trailing bytes")
    return out


def _folder_bytes(root: Path) -> int:
    total = 0
    if not root.is_dir():
        return 0
    for sub in root.iterdir():
        if sub.is_dir():
            for entry in os.scandir(sub):
                with contextlib.suppress(OSError):
                    total += entry.stat().st_size
    return total


_current: list[RasterCache] = []  # a cache chosen with :func:`using` (the bench measures first use with one)


def raster_cache() -> RasterCache:
    """The cache in use: the one :func:`using` chose, else :func:`default_raster_cache`."""
    return _current[-1] if _current else default_raster_cache()


@contextlib.contextmanager
def using(store: RasterCache) -> Iterator[RasterCache]:
    """Use ``store`` as the raster cache inside the block (e.g. an empty folder, to time first use)."""
    _current.append(store)
    try:
        yield store
    finally:
        _current.pop()


@cache
def default_raster_cache() -> RasterCache:
    """``$AIM_CACHE/world-rasters/v<VERSION>-<digest of the font file, Pillow and numpy versions>``."""
    from aim_agent.exemplars.dataset import default_cache_dir
    from aim_world.vocabulary import font_path

    try:
        mb = float(os.environ.get("AIM_WORLD_RASTER_CACHE_MB", DEFAULT_MB))
    except ValueError:
        raise ValueError(
            f"AIM_WORLD_RASTER_CACHE_MB must be a number of megabytes (0 turns the cache off), "
            f"not {os.environ['AIM_WORLD_RASTER_CACHE_MB']!r}"
        ) from None
    font = hashlib.sha256(font_path().read_bytes()).hexdigest()
    identity = f"{VERSION}|{font}|{PIL.__version__}|{np.__version__}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return RasterCache(default_cache_dir() / "world-rasters" / f"v{VERSION}-{digest}", int(mb * 1024 * 1024))


def cached(key: str, compute: Callable[[], list[np.ndarray]]) -> list[np.ndarray]:
    """``compute()`` (a list of arrays), read from the raster cache when an earlier process stored it."""
    store = raster_cache()
    found = store.get(key)
    if found is not None:
        return found
    arrays = compute()
    store.put(key, arrays)
    return arrays
