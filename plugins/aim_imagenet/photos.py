"""Photo folders as exemplar datasets, anonymised, with a fixed discovery/held-out split.

A *source* is a flat folder of photos (labels from names ``<wnid>_<name>.JPEG`` where they match, else none)
or an ImageFolder-style tree (label = the first folder). :func:`materialize_photos` writes an anonymised
*view* of it under a cache folder::

    ROOT/images/p0000.jpg ...        every photo (a symlink to the source, a copy where links fail)
    ROOT/images-discovery/p0007.jpg  the discovery half, same names
    ROOT/images-heldout/p0003.jpg    the held-out half, same names
    ROOT/labels.json                 p0000.jpg -> {wnid, label, source, split}: for evaluations only
    ROOT/view.json                   what the view was made from (rebuilt when the source changes)

With ``variants`` (:data:`VARIANTS`: ``flip``, ``crop``, ``zoom-out``), each photo also gets transformed copies
(written as JPEG files, anonymised with the photos and kept in their photo's half); ``labels.json`` records
each copy's variant and source photo (its provenance).

Names and order come from a keyed hash of each photo's source path, so neither tells anything about a
photo's class; ``labels.json`` lies beside ``images/``, never inside it, and nothing that describes or
interprets images (the tagger, the scientist, the agent) reads it. A photo's half also comes from a keyed
hash of its source path: the split is stable (adding photos moves no other photo) and the halves disjoint.

Datasets (hook ``aim_datasets``): ``imagenet-sample`` (every photo), ``imagenet-sample-discovery`` and
``imagenet-sample-heldout``; ``imagenet-sample-variants`` (each photo and its three variants, 4x the pool) with
its ``-discovery`` and ``-heldout`` halves. The source is found by :func:`photo_source`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal

from PIL import Image, ImageOps, ImageStat

#: environment variable naming the photo folder
SOURCE_ENV = "AIM_IMAGENET_SAMPLE"
#: the sample's folder name (beside the checkout in CI, under the cache after ``aim photos fetch``)
SAMPLE_DIR = "imagenet-sample-1000"
#: the view folder every ``imagenet-sample*`` dataset shares, under the datasets cache
VIEW_DIR = "imagenet-sample"
#: keys of the hashes that name and split photos (fixed: a view is the same on every machine)
NAME_KEY = b"aim-imagenet-photo-names-v1"
SPLIT_KEY = b"aim-imagenet-photo-split-v1"
#: written into ``view.json``; a view of another version is rebuilt
VIEW_VERSION = 2
FETCH_HINT = "aim photos fetch"
Split = Literal["discovery", "heldout"]
SPLITS: tuple[Split, ...] = ("discovery", "heldout")
_WNID_NAME = re.compile(r"^(n\d{8})_(.+)$")
_WNID = re.compile(r"^n\d{8}$")


@dataclass(frozen=True)
class PhotoLabel:
    """What an evaluation may know about one anonymised photo (never shown to the agent)."""

    #: the ImageNet wnid, when the file or folder name gives one
    wnid: str | None
    #: the class name or folder name, when there is one
    label: str | None
    #: the photo's path relative to the source folder
    source: str
    split: Split
    #: the transformation this file is of its source photo (:data:`VARIANTS`), None for the photo itself
    variant: str | None = None


def _centre_crop(image: Image.Image, share: float = 0.7) -> Image.Image:
    w, h = image.size
    cw, ch = round(w * share), round(h * share)
    left, top = (w - cw) // 2, (h - ch) // 2
    return image.crop((left, top, left + cw, top + ch))


def _zoom_out(image: Image.Image, share: float = 0.6) -> Image.Image:
    fill = tuple(round(v) for v in ImageStat.Stat(image).mean[:3])
    canvas = Image.new("RGB", image.size, fill)
    small = image.resize((round(image.width * share), round(image.height * share)), Image.Resampling.BILINEAR)
    canvas.paste(small, ((image.width - small.width) // 2, (image.height - small.height) // 2))
    return canvas


#: photo variants: a mirror image, the central 70% (closer), the photo at 60% on its mean colour (farther)
VARIANTS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "flip": ImageOps.mirror,
    "crop": _centre_crop,
    "zoom-out": _zoom_out,
}
#: JPEG quality of written variants
VARIANT_QUALITY = 92


def _keyed(text: str, key: bytes) -> bytes:
    return hashlib.blake2b(text.encode(), key=key, digest_size=8).digest()


def split_of(relative: str) -> Split:
    """The half a photo belongs to, from a keyed hash of its source-relative path."""
    return "discovery" if _keyed(relative, SPLIT_KEY)[0] < 128 else "heldout"


def label_of(relative: str) -> tuple[str | None, str | None]:
    """(wnid, label) from a source-relative path: the first folder of a tree, else a ``<wnid>_<name>`` file."""
    parts = relative.split("/")
    if len(parts) > 1:
        folder = parts[0]
        return (folder if _WNID.match(folder) else None), folder
    match = _WNID_NAME.match(Path(parts[0]).stem)
    if match:
        return match[1], match[2].replace("_", " ")
    return None, None


def _dataset_module() -> ModuleType:
    """``aim_agent.exemplars.dataset``, imported on use: its package imports torch, this module must not."""
    from aim_agent.exemplars import dataset

    return dataset


def is_photo(path: Path) -> bool:
    """Whether ``path`` has an image suffix the exemplar engine reads."""
    return path.suffix.lower() in _dataset_module().IMAGE_SUFFIXES


def list_photos(source: Path) -> list[str]:
    """Photo paths relative to ``source`` (recursive, sorted); FileNotFoundError when there are none."""
    suffixes = _dataset_module().IMAGE_SUFFIXES
    if not source.is_dir():
        raise FileNotFoundError(f"photo folder {source} does not exist")
    files = sorted(p.relative_to(source).as_posix() for p in source.rglob("*")
                   if p.suffix.lower() in suffixes and p.is_file())
    if not files:
        raise FileNotFoundError(f"photo folder {source} holds no images ({', '.join(suffixes)})")
    return files


def _entry_key(rel: str, variant: str | None) -> str:
    return rel if variant is None else f"{rel}#{variant}"


def anonymised_names(files: list[str], variants: Sequence[str] = ()) -> dict[tuple[str, str | None], str]:
    """(source-relative path, variant or None) -> ``p0000.jpg``-style name, numbered in keyed-hash order."""
    entries = [(rel, v) for rel in files for v in (None, *variants)]
    order = sorted(entries, key=lambda e: (_keyed(_entry_key(*e), NAME_KEY), _entry_key(*e)))
    width = max(4, len(str(len(entries) - 1)))
    out: dict[tuple[str, str | None], str] = {}
    for number, (rel, variant) in enumerate(order):
        suffix = Path(rel).suffix.lower() if variant is None else ".jpg"
        out[rel, variant] = f"p{number:0{width}d}{'.jpg' if suffix == '.jpeg' else suffix}"
    return out


@dataclass(frozen=True)
class PhotoView:
    """An anonymised view of a photo folder (see the module docstring)."""

    root: Path

    @property
    def images(self) -> Path:
        """Every photo."""
        return self.root / "images"

    @property
    def discovery(self) -> Path:
        """The discovery half (where a unit is interpreted)."""
        return self.root / "images-discovery"

    @property
    def heldout(self) -> Path:
        """The held-out half (where a label is tested)."""
        return self.root / "images-heldout"

    @property
    def labels_file(self) -> Path:
        return self.root / "labels.json"

    def folder(self, part: Literal["all", "discovery", "heldout"]) -> Path:
        return {"all": self.images, "discovery": self.discovery, "heldout": self.heldout}[part]

    def labels(self) -> dict[str, PhotoLabel]:
        """Anonymised file name -> :class:`PhotoLabel`. For evaluations only."""
        data = json.loads(self.labels_file.read_text())
        return {name: PhotoLabel(**entry) for name, entry in data.items()}


def _digest(source: Path, files: list[str]) -> str:
    digest = hashlib.blake2b(digest_size=12)
    for rel in files:
        st = (source / rel).stat()
        digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _manifest(source: Path, files: list[str], variants: Sequence[str]) -> dict[str, object]:
    return {"version": VIEW_VERSION, "source": str(source), "count": len(files), "digest": _digest(source, files),
            "variants": list(variants)}


def _current(root: Path, manifest: dict[str, object]) -> bool:
    try:
        return bool(json.loads((root / "view.json").read_text()) == manifest)
    except (OSError, ValueError):
        return False


def _link(target: Path, link: Path) -> None:
    try:
        os.symlink(target, link)
    except OSError:  # no symlinks here (some filesystems, Windows without rights): copy
        shutil.copy2(target, link)


def _write_variants(tmp: Path, source: Path, rel: str, names: dict[tuple[str, str | None], str],
                    variants: Sequence[str], split: Split) -> None:
    with Image.open(source / rel) as im:
        photo = im.convert("RGB")
    for variant in variants:
        name = names[rel, variant]
        VARIANTS[variant](photo).save(tmp / "images" / name, quality=VARIANT_QUALITY)
        _link(Path("..") / "images" / name, tmp / f"images-{split}" / name)  # relative: survives the rename


def _build(tmp: Path, source: Path, files: list[str], variants: Sequence[str], manifest: dict[str, object]) -> None:
    names = anonymised_names(files, variants)
    labels: dict[str, dict[str, object]] = {}
    for folder in ("images", "images-discovery", "images-heldout"):
        (tmp / folder).mkdir()
    for rel in files:
        name, split = names[rel, None], split_of(rel)
        wnid, label = label_of(rel)
        _link(source / rel, tmp / "images" / name)
        _link(source / rel, tmp / f"images-{split}" / name)
        labels[name] = asdict(PhotoLabel(wnid=wnid, label=label, source=rel, split=split))
        if variants:
            _write_variants(tmp, source, rel, names, variants, split)
            for variant in variants:
                labels[names[rel, variant]] = asdict(PhotoLabel(wnid, label, rel, split, variant))
    (tmp / "labels.json").write_text(json.dumps(dict(sorted(labels.items())), indent=1))
    (tmp / "view.json").write_text(json.dumps(manifest))


def materialize_photos(source: str | Path, root: str | Path, variants: Sequence[str] = ()) -> PhotoView:
    """The anonymised view of ``source`` at ``root``, built once (atomically) and rebuilt when the source changes.

    ``variants`` (names in :data:`VARIANTS`) adds transformed copies of every photo. Safe to re-run and to run
    concurrently: a view is built in a temporary folder beside ``root`` and renamed into place; a finished view
    whose ``view.json`` matches the source and variants is reused as is.
    """
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown photo variants {unknown}; known: {', '.join(VARIANTS)}")
    source, root = Path(source).expanduser().resolve(), Path(root).expanduser()
    files = list_photos(source)
    manifest = _manifest(source, files, variants)
    view = PhotoView(root)
    if _current(root, manifest):
        return view
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        _build(tmp, source, files, variants, manifest)
        if root.exists():  # an outdated view: move it aside, then remove it
            stale = Path(tempfile.mkdtemp(prefix=f".{root.name}.old.", dir=root.parent))
            with contextlib.suppress(OSError):
                os.replace(root, stale / "view")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(tmp, root)
        except OSError:  # another process put a view there first
            if not _current(root, manifest):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return view


def repo_root() -> Path | None:
    """The checkout this package lies in (the folder holding ``plugins/``), or None for an installed copy."""
    here = Path(__file__).resolve().parent
    return here.parents[1] if here.parent.name == "plugins" else None


def candidate_sources() -> list[Path]:
    """Where :func:`photo_source` looks, in order."""
    found: list[Path] = []
    if os.environ.get(SOURCE_ENV):
        found.append(Path(os.environ[SOURCE_ENV]).expanduser())
    repo = repo_root()
    if repo is not None:
        found.append(repo.parent / "shared" / "datasets" / SAMPLE_DIR)
    found.append(_dataset_module().default_cache_dir() / SAMPLE_DIR)
    return found


def photo_source() -> Path | None:
    """The first photo folder found (``$AIM_IMAGENET_SAMPLE``, ``<checkout>/../shared/datasets/...``, the cache)."""
    for path in candidate_sources():
        if path.is_dir() and any(is_photo(p) for p in path.rglob("*")):
            return path
    return None


def require_source() -> Path:
    """:func:`photo_source`, or FileNotFoundError naming where it looked and how to fetch the photos."""
    source = photo_source()
    if source is None:
        looked = ", ".join(str(p) for p in candidate_sources())
        cached = _dataset_module().default_cache_dir() / SAMPLE_DIR
        raise FileNotFoundError(
            f"no ImageNet sample photos found (looked in: {looked}). Run `{FETCH_HINT}` to download them "
            f"(1000 photos, ~107 MB) into {cached}, or set {SOURCE_ENV} to a folder of photos of your own"
        )
    return source


class PhotoDataset:
    """The sample photos as an exemplar dataset: every photo, or one half of the split (with or without variants)."""

    def __init__(self, name: str, part: Literal["all", "discovery", "heldout"], *, view: str = VIEW_DIR,
                 variants: Sequence[str] = ()) -> None:
        self.name = name
        self.part = part
        self.view = view
        self.variants = tuple(variants)

    def materialize(self, root: str | Path) -> Path:
        """The image folder of this dataset; the view it shares with its halves lies beside ``root``."""
        view = materialize_photos(require_source(), Path(root).parent / self.view, self.variants)
        return view.folder(self.part)


def photo_datasets() -> list[PhotoDataset]:
    """``imagenet-sample`` and ``imagenet-sample-variants``, each whole and as its two halves."""
    out: list[PhotoDataset] = []
    for view, variants in ((VIEW_DIR, ()), (f"{VIEW_DIR}-variants", tuple(VARIANTS))):
        out += [PhotoDataset(view, "all", view=view, variants=variants),
                PhotoDataset(f"{view}-discovery", "discovery", view=view, variants=variants),
                PhotoDataset(f"{view}-heldout", "heldout", view=view, variants=variants)]
    return out


__all__ = ["SOURCE_ENV", "SPLITS", "VARIANTS", "PhotoDataset", "PhotoLabel", "PhotoView", "anonymised_names",
           "candidate_sources", "label_of", "list_photos", "materialize_photos", "photo_datasets", "photo_source",
           "require_source", "split_of"]
