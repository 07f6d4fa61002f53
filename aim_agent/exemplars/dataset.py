"""Image folders as exemplar datasets: listing, fingerprinting, streaming decode.

:class:`ImageFolder` lists a folder recursively (``.jpg .jpeg .png .webp``, sorted by
relative path, so an index always means the same file) and streams it in batches of file
positions. Decoding runs in one background thread (the machines AIM targets have few cores;
PIL releases the GIL while decoding) a couple of batches ahead of the model. A file that
cannot be decoded is skipped and reported, never fatal.

A folder written by the world dataset generator carries ``scenes.jsonl`` (lines
``{"file": relative path, "scene": {...}}``); images loaded with :meth:`ImageFolder.load`
are then registered in the image store (:func:`aim_agent.images.current_store`) with their scene, so world describers
and synthetic neurons can read it.

A dataset *name* (not a path) resolves through the plugins' ``aim_datasets`` hook: objects
with ``name`` and ``materialize(root) -> Path``. The default dataset is ``world``.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
import warnings
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from aim_agent.images import current_store

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
DEFAULT_DATASET = "world"
SCENES_FILE = "scenes.jsonl"


def default_cache_dir() -> Path:
    """``$AIM_CACHE``, else ``~/.cache/aim``."""
    return Path(os.environ.get("AIM_CACHE") or "~/.cache/aim").expanduser()


@dataclass
class Batch:
    """Files ``start .. stop-1`` of a folder: the images that decoded, and the ones that did not."""

    start: int
    stop: int
    indices: list[int]
    images: list[Image.Image]
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (file index, reason)


def decode(path: Path) -> Image.Image:
    """Open and fully decode one image as RGB (raises on a corrupt or truncated file)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PIL's EXIF/ICC chatter on odd files
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")


class ImageFolder:
    """A folder of images, listed once, in sorted order."""

    def __init__(self, root: str | Path, *, name: str | None = None) -> None:
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset folder {str(root)!r} does not exist (give a folder of images)")
        self.name = name or str(self.root)
        self.files: list[str] = sorted(
            p.relative_to(self.root).as_posix()
            for p in self.root.rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        if not self.files:
            raise FileNotFoundError(
                f"dataset folder {str(self.root)!r} holds no images: expected files ending in "
                f"{', '.join(IMAGE_SUFFIXES)} (searched recursively)"
            )
        self._scenes: dict[str, dict[str, Any]] | None = None
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return f"ImageFolder({str(self.root)!r}, {len(self.files)} files)"

    def path(self, index: int) -> Path:
        return self.root / self.files[index]

    def fingerprint(self) -> str:
        """Hash of the file list with each file's size and modification time."""
        if self._fingerprint is None:
            digest = hashlib.blake2b(digest_size=12)
            for rel in self.files:
                st = (self.root / rel).stat()
                digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    @property
    def scenes(self) -> dict[str, dict[str, Any]]:
        """Scene graphs by relative path, from ``scenes.jsonl`` (empty when there is none)."""
        if self._scenes is None:
            self._scenes = {}
            path = self.root / SCENES_FILE
            if path.is_file():
                for number, line in enumerate(path.read_text().splitlines(), 1):
                    if not line.strip():
                        continue
                    try:
                        entry = json.loads(line)
                        self._scenes[str(entry["file"])] = entry["scene"]
                    except (ValueError, KeyError, TypeError):
                        warnings.warn(f"{path}:{number}: not a {{'file', 'scene'}} line; ignored", stacklevel=2)
        return self._scenes

    def load(self, index: int, *, register: bool = True) -> Image.Image:
        """Decode file ``index``; with ``register``, record it (and its scene) in the image store."""
        rel = self.files[index]
        image = decode(self.root / rel)
        if register:
            current_store().register(image, scene=self.scenes.get(rel), meta={"file": rel, "dataset": self.name})
        return image

    def batches(
        self, batch_size: int, *, start: int = 0, register: bool = False, prefetch: int = 2
    ) -> Generator[Batch, None, None]:
        """Batches of ``batch_size`` files from ``start``, decoded in a background thread.

        ``register`` records each decoded image in the image store (with its scene). The
        exemplar engine leaves it off: the store keeps pixels, and only the top images are
        needed later (they are registered when loaded for display).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        out: queue.Queue[Batch | BaseException | None] = queue.Queue(maxsize=max(1, prefetch))
        stop = threading.Event()

        def put(item: Batch | BaseException | None) -> bool:
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                for lo in range(start, len(self.files), batch_size):
                    hi = min(lo + batch_size, len(self.files))
                    batch = Batch(start=lo, stop=hi, indices=[], images=[])
                    for index in range(lo, hi):
                        if stop.is_set():
                            return
                        try:
                            batch.images.append(self.load(index, register=register))
                            batch.indices.append(index)
                        except Exception as exc:  # corrupt, truncated, unreadable: skip and report
                            batch.skipped.append((index, f"{type(exc).__name__}: {exc}"))
                    if not put(batch):
                        return
                put(None)
            except BaseException as exc:  # surface unexpected errors in the consumer
                put(exc)

        worker = threading.Thread(target=produce, name="aim-image-decode", daemon=True)
        worker.start()
        try:
            while True:
                item = out.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            worker.join(timeout=5)


def resolve_dataset(dataset: str | Path | ImageFolder | None = None, *, cache_dir: Path | None = None) -> ImageFolder:
    """A folder path, a dataset name from a plugin (materialised under the cache), or an ImageFolder."""
    if isinstance(dataset, ImageFolder):
        return dataset
    spec = DEFAULT_DATASET if dataset is None else str(dataset)
    path = Path(spec).expanduser()
    if path.exists():
        return ImageFolder(path)
    from aim_agent.plugins import plugin_manager

    pm = plugin_manager()
    names = pm.provider_names("dataset")
    if spec in names:
        root = (cache_dir or default_cache_dir()) / "datasets" / spec
        root.parent.mkdir(parents=True, exist_ok=True)  # the provider decides how to fill (or reuse) root
        return ImageFolder(pm.provider("dataset", spec).materialize(root), name=spec)
    hint = pm.missing_hint("dataset", spec)
    raise LookupError(
        (f"{hint}. " if hint else "")
        + f"no dataset {spec!r}: it is neither a folder nor a dataset name from a plugin "
        f"(installed datasets: {', '.join(names) or 'none'}). Give a folder of images with --dataset PATH"
    )
