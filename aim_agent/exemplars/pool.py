"""A described pool: every image of an exemplar dataset described once by the run's blind describer.

Experiments on real models need real images with and without a concept. A text-to-image model may
not be at hand (offline) or may draw what the model under study never saw (the world's renders are
no photos to an ImageNet model), so AIM also *retrieves*: :class:`DescribedPool` describes every
image of the dataset once, whole, with the blind describer (which never sees the unit, a label or a
file name), and :meth:`DescribedPool.search` returns images whose description names a concept, or
names none of a list. Descriptions are cached per describer and file (the file behind a link, its size
and time) under the cache directory, written atomically chunk by chunk: a photo shared by two folders is
described once, and an interrupted pass starts again from its last saved chunk.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aim_agent.exemplars.dataset import ImageFolder, default_cache_dir
from aim_agent.files import atomic_write
from aim_agent.providers import Describer
from aim_agent.terms import SHOWS, normal, terms_of

#: images described per describer call (and per saved chunk of the cache)
CHUNK = 64
#: the pool's cache file format; bump when the file layout changes
FORMAT = 2


@dataclass(frozen=True)
class PoolImage:
    """One image of the pool: its position in the dataset, its description and the terms in it."""

    index: int
    file: str
    description: str
    terms: dict[str, float]


class DescribedPool:
    """The images of one dataset with their blind descriptions, searchable by concept."""

    def __init__(self, folder: ImageFolder, items: list[PoolImage]) -> None:
        self.folder = folder
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def search(self, concepts: list[str], without: list[str], n: int, *, skip: int = 0,
               minimum: float = SHOWS, leave_out: set[str] | frozenset[str] = frozenset()) -> list[PoolImage]:
        """Up to ``n`` images that show any of ``concepts`` (all images when empty) and none of ``without``.

        Images that show a concept come strongest first; the others (controls) in a fixed
        shuffled order, so two searches for controls with different ``skip`` give different images.
        ``without`` excludes images that name a concept at any strength a describer reports;
        ``leave_out`` excludes files (the exemplars a run has already seen).
        """
        wanted = [normal(c) for c in concepts if c.strip()]
        avoid = [normal(c) for c in without if c.strip()]

        def excluded(item: PoolImage) -> bool:
            return item.file in leave_out or any(item.terms.get(a, 0.0) > 0.0 for a in avoid)

        if wanted:
            found = [(max(item.terms.get(c, 0.0) for c in wanted), item) for item in self.items]
            ranked = sorted(((s, it) for s, it in found if s >= minimum and not excluded(it)),
                            key=lambda pair: (-pair[0], pair[1].index))
            chosen = [it for _, it in ranked]
        else:
            chosen = sorted((it for it in self.items if not excluded(it)), key=lambda it: _shuffle_key(it.file))
        return chosen[skip: skip + n]


def _shuffle_key(file: str) -> str:
    return hashlib.blake2b(file.encode(), digest_size=8).hexdigest()


def pool_cache_path(describer_name: str, cache_dir: Path | None = None) -> Path:
    """One cache of descriptions per describer, shared by every dataset (a photo in two folders is described once)."""
    key = hashlib.blake2b(f"{describer_name}\0{FORMAT}".encode(), digest_size=10).hexdigest()
    return (cache_dir or default_cache_dir()) / "pools" / f"{key}.json"


def _file_key(path: Path) -> str:
    """The file behind ``path`` (links followed), with its size and modification time."""
    real = path.resolve()
    st = real.stat()
    return f"{real}\0{st.st_size}\0{st.st_mtime_ns}"


def _read_cache(path: Path, describer_name: str) -> dict[str, str]:
    try:
        saved = json.loads(path.read_text())
        if saved.get("format") == FORMAT and saved.get("describer") == describer_name:
            return {str(k): str(v) for k, v in saved["descriptions"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # absent or damaged: rebuilt, never trusted
    return {}


def described_pool(folder: ImageFolder, describer: Describer, *, cache_dir: Path | None = None,
                   progress: Any = None) -> DescribedPool:
    """Every image of ``folder`` described by ``describer`` (cached per file; resumable chunk by chunk).

    ``progress(done, total)`` is called after each chunk when given.
    """
    path = pool_cache_path(describer.name, cache_dir)
    known = _read_cache(path, describer.name)
    keys = [_file_key(folder.path(i)) for i in range(len(folder))]
    missing = [i for i, key in enumerate(keys) if key not in known]
    for start in range(0, len(missing), CHUNK):
        chunk = missing[start: start + CHUNK]
        texts = describer.describe([folder.load(i, register=False) for i in chunk])
        known = {**_read_cache(path, describer.name), **known}  # keep what another process added meanwhile
        known.update({keys[i]: text for i, text in zip(chunk, texts, strict=True)})
        atomic_write(path, json.dumps({"format": FORMAT, "describer": describer.name, "descriptions": known}).encode(),
                     fsync=False)
        if progress is not None:
            progress(len(keys) - len(missing) + start + len(chunk), len(keys))
    items = [PoolImage(index=i, file=folder.files[i], description=known[key], terms=terms_of(known[key]))
             for i, key in enumerate(keys)]
    return DescribedPool(folder, items)
