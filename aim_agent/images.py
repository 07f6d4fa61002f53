"""Images as they travel through AIM, and what AIM knows about each one.

Every image a tool makes (a world render, an edit, an activation overlay) is registered in an
:class:`ImageStore` under a content id (``img_<hash>``), together with what is known about it
(:class:`ImageRecord`: the world scene graph, the parent image, the highlight mask, the edit
that made it). The id survives any lossless trip (PNG bytes over the sandbox pipe, base64
over MCP), so a describer can find the scene behind an overlay, and an agent can refer to an
image by id instead of sending its pixels back.

Each :class:`~aim_agent.tools.base.ToolContext` owns its store (``ctx.images``): a run, an
MCP session, a test each see only their own images. While a tool runs, its context's store is
*bound* (:func:`use_store`), and provider code reaches it with :func:`current_store`; outside
any tool call that is a process-wide default store. A store is bounded in bytes and images,
and can be written next to a run's images and read back (:meth:`ImageStore.save_record`,
:meth:`ImageStore.load_dir`), so a resumed run, a report and an MCP resource keep scenes,
masks and edit provenance.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import json
import os
import threading
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from aim_agent.files import atomic_write

ImageLike = Image.Image | str | bytes

#: the largest image AIM decodes from bytes, base64 or a file (checked from the header, before decoding)
MAX_DECODE_PIXELS = 4096 * 4096
#: the largest encoded image accepted from a caller (bytes, before base64)
MAX_ENCODED_BYTES = 32 * 1024 * 1024


@dataclass
class ImageRecord:
    """What is known about one image.

    ``scene`` is a world scene graph (a plain dict) when the image was rendered by the world;
    ``parent`` is the id of the image an overlay or edit was made from; ``mask`` is the
    boolean highlight mask (H, W) of an activation overlay; ``edit`` is the structured
    provenance of an edit (what the editor changed, as the editor reports it); ``meta``
    holds anything else (prompt, activation, unit).
    """

    id: str
    scene: dict[str, Any] | None = None
    parent: str | None = None
    mask: np.ndarray | None = None
    edit: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        """The record as JSON data, without the mask (saved as its own PNG)."""
        return {"id": self.id, "scene": self.scene, "parent": self.parent, "edit": self.edit,
                "meta": _jsonable(self.meta)}


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return json.loads(json.dumps(value, default=str))


def fast_path() -> bool:
    """Whether issue 27's fast path is on (the default): image ids remembered per object, images as raw
    pixels on the sandbox wire, a unit's activations served from the layer's activation cache.

    ``AIM_FAST_PATH=0`` turns it off: every image is hashed at each use and sent as PNG, every activation
    is a forward pass (the path before; ``aim bench sweep`` measures both in one run).
    """
    return os.environ.get("AIM_FAST_PATH", "1").strip() not in ("0", "false", "no", "off")


#: ids of the image objects this process already hashed and keeps (stored pixels, decoded wire images):
#: ``id(object)`` -> (a weak reference to it, its content id). An image AIM keeps is never changed in place
#: (the store hands the same object to every reader), so its id is computed once, not at every use.
_ID_MEMO: dict[int, tuple[weakref.ref[Image.Image], str]] = {}


def raw_image_id(raw: bytes, size: tuple[int, int]) -> str:
    """The id of an RGB image from its raw pixel bytes (row-major, 3 bytes a pixel) and (width, height)."""
    digest = hashlib.blake2b(raw, digest_size=10)
    digest.update(f"{size[0]}x{size[1]}".encode())
    return "img_" + digest.hexdigest()


def image_id(image: Image.Image) -> str:
    """Content id of an image: the same pixels always give the same id (a hash of the RGB pixel bytes)."""
    known = _ID_MEMO.get(id(image))
    if known is not None and known[0]() is image:
        return known[1]
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return raw_image_id(rgb.tobytes(), rgb.size)


def remember_id(image: Image.Image, iid: str) -> None:
    """Remember that ``image`` (an object AIM keeps and never changes) has the id ``iid``."""
    if not fast_path():
        return
    key = id(image)

    def forget(ref: weakref.ref[Image.Image], key: int = key) -> None:
        entry = _ID_MEMO.get(key)
        if entry is not None and entry[0] is ref:
            _ID_MEMO.pop(key, None)

    _ID_MEMO[key] = (weakref.ref(image, forget), iid)


def _nbytes(image: Image.Image) -> int:
    return image.width * image.height * 3


class ImageStore:
    """A bounded, thread-safe map from image id to :class:`ImageRecord` and the pixels.

    The oldest images are evicted first when more than ``max_images`` images or more than
    ``max_bytes`` bytes of pixels (3 bytes a pixel) are held.
    """

    def __init__(self, max_images: int = 20_000, max_bytes: int = 2 * 1024**3) -> None:
        self.max_images = max_images
        self.max_bytes = max_bytes
        self._records: OrderedDict[str, ImageRecord] = OrderedDict()
        self._pixels: OrderedDict[str, Image.Image] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._saved: dict[Path, set[str]] = {}  # folder -> ids whose PNG and record are written there
        self._save_lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    @property
    def nbytes(self) -> int:
        """Bytes of pixels held now."""
        with self._lock:
            return self._bytes

    def register(self, image: Image.Image, **info: Any) -> ImageRecord:
        """Remember ``image``; ``info`` fields (scene, parent, mask, edit, meta) are merged in."""
        iid = image_id(image)
        with self._lock:
            return self._put(iid, image, info)

    def ensure(self, image: Image.Image) -> str:
        """The id of ``image``, registering it first when the store does not know it yet.

        A known image keeps its record as it is (unlike :meth:`register`, nothing is merged).
        """
        iid = image_id(image)
        with self._lock:
            if iid not in self._records:
                self._put(iid, image, {})
        return iid

    def _put(self, iid: str, image: Image.Image, info: dict[str, Any]) -> ImageRecord:
        """Merge ``info`` into the record of ``iid`` and keep the pixels; the caller holds the lock."""
        record = self._records.get(iid) or ImageRecord(id=iid)
        for key, value in info.items():
            if key == "meta":
                record.meta.update(value or {})
            elif key not in ("scene", "parent", "mask", "edit"):
                raise TypeError(f"unknown image record field {key!r}; valid: scene, parent, mask, edit, meta")
            elif value is not None:
                setattr(record, key, value)
        self._records[iid] = record
        self._records.move_to_end(iid)
        if iid not in self._pixels:
            self._pixels[iid] = image.convert("RGB") if image.mode != "RGB" else image
            self._bytes += _nbytes(self._pixels[iid])
            remember_id(self._pixels[iid], iid)
        self._pixels.move_to_end(iid)
        while len(self._records) > 1 and (len(self._records) > self.max_images or self._bytes > self.max_bytes):
            old, _ = self._records.popitem(last=False)
            gone = self._pixels.pop(old, None)
            if gone is not None:
                self._bytes -= _nbytes(gone)
        return record

    def record(self, image_or_id: Image.Image | str) -> ImageRecord | None:
        """The record of an image (or id), or None when this store never saw it."""
        iid = image_or_id if isinstance(image_or_id, str) else image_id(image_or_id)
        with self._lock:
            return self._records.get(iid)

    def records(self) -> list[ImageRecord]:
        """Every record this store holds, oldest first."""
        with self._lock:
            return list(self._records.values())

    def pixels(self, iid: str) -> Image.Image:
        """The image with id ``iid``; KeyError with a readable message when unknown."""
        with self._lock:
            if iid not in self._pixels:
                raise KeyError(f"unknown image id {iid!r}: ids come from tools that return images in this session")
            return self._pixels[iid]

    def scene_of(self, image_or_id: Image.Image | str) -> dict[str, Any] | None:
        """The world scene graph behind an image, following overlay/edit parents."""
        record = self.record(image_or_id)
        seen = 0
        while record is not None and seen < 8:
            if record.scene is not None:
                return record.scene
            record = self.record(record.parent) if record.parent else None
            seen += 1
        return None

    def lineage(self, image_or_id: Image.Image | str, depth: int = 8) -> list[ImageRecord]:
        """The record of an image and of its parents, nearest first."""
        found: list[ImageRecord] = []
        record = self.record(image_or_id)
        while record is not None and len(found) < depth:
            found.append(record)
            record = self.record(record.parent) if record.parent else None
        return found

    # -- persistence next to a run's images ---------------------------------------------------

    def save_record(self, image_dir: Path, iid: str) -> None:
        """Write ``iid`` as ``image_dir/<id>.png`` and what is known about it as a line of ``records.jsonl``.

        Parents are written too (their PNG and record), so a scene behind an overlay or an
        edit survives the process. Each PNG is written atomically and only once; the records of
        a folder are one append-only file (:data:`RECORDS`: scene, parent, edit, meta and the
        highlight mask, bit-packed), not a ``.json`` and a ``.mask.png`` per image.
        """
        image_dir = Path(image_dir)
        with self._save_lock:
            saved = self._saved.get(image_dir)
            if saved is None:
                saved = self._saved[image_dir] = _saved_ids(image_dir)
            lines = []
            for record in self.lineage(iid):
                png = image_dir / f"{record.id}.png"
                if record.id in saved and png.exists():
                    continue
                if record.id in saved:  # its PNG is gone (an MCP session pruned it, or the folder was emptied)
                    saved = self._saved[image_dir] = _saved_ids(image_dir)
                with contextlib.suppress(KeyError):
                    _write_png(png, self.pixels(record.id))
                if record.id in saved or not png.exists():
                    continue  # its record is there already (an MCP session pruned the PNG); or no pixels to save
                lines.append(json.dumps(_record_line(record)) + "\n")
                saved.add(record.id)
            if lines:
                with open(image_dir / RECORDS, "a", encoding="utf-8") as f:
                    f.write("".join(lines))

    def load_dir(self, image_dir: Path) -> int:
        """Register every ``img_*.png`` of ``image_dir`` with its saved record; how many were new.

        Records come from ``records.jsonl``, or from a folder written before it existed, from each
        image's ``<id>.json`` and ``<id>.mask.png``.
        """
        image_dir = Path(image_dir)
        if not image_dir.is_dir():
            return 0
        lines = _read_records(image_dir)
        count = 0
        for path in sorted(image_dir.glob("img_*.png")):
            if path.name.endswith(".mask.png"):
                continue
            iid = path.stem
            known = self.record(iid)
            info: dict[str, Any] = {}
            data = lines.get(iid)
            meta_path = path.with_suffix(".json")
            if data is None and meta_path.is_file():  # a folder written before records.jsonl
                try:
                    data = json.loads(meta_path.read_text())
                except (OSError, ValueError):
                    data = {}
                mask_path = image_dir / f"{iid}.mask.png"
                if mask_path.is_file():
                    with Image.open(mask_path) as m:
                        info["mask"] = np.asarray(m.convert("L")) > 127
            if data is not None:
                info.update({k: data.get(k) for k in ("scene", "parent", "edit")})
                info["meta"] = data.get("meta") or {}
                if isinstance(data.get("mask"), dict):
                    with contextlib.suppress(KeyError, TypeError, ValueError, binascii.Error):
                        info["mask"] = _unpack_mask(data["mask"])
            if known is not None and not info:
                continue
            with Image.open(path) as im:
                image = im.convert("RGB")
            self.register(image, **info)
            count += known is None
        return count


#: the records of a folder of images, one JSON object a line (:meth:`ImageStore.save_record`)
RECORDS = "records.jsonl"


def _record_line(record: ImageRecord) -> dict[str, Any]:
    data = record.public()
    if record.mask is not None:
        # as the mask PNGs were: 255 where the mask is set, read back as > 127
        bits = (record.mask.astype(np.uint8) * 255) > 127
        packed = np.packbits(bits).tobytes()
        data["mask"] = {"shape": list(bits.shape), "bits": base64.b64encode(packed).decode("ascii")}
    return data


def _unpack_mask(data: dict[str, Any]) -> np.ndarray:
    shape = tuple(int(n) for n in data["shape"])
    bits = np.unpackbits(np.frombuffer(base64.b64decode(data["bits"]), dtype=np.uint8), count=int(np.prod(shape)))
    return bits.reshape(shape).astype(bool)


def _read_records(image_dir: Path) -> dict[str, dict[str, Any]]:
    """Id -> record data from ``records.jsonl`` (a line a killed writer left half-written is skipped)."""
    out: dict[str, dict[str, Any]] = {}
    try:
        text = (image_dir / RECORDS).read_text(encoding="utf-8")
    except OSError:
        return out
    for line in text.splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("id"), str):
            out[data["id"]] = data
    return out


def _saved_ids(image_dir: Path) -> set[str]:
    """Ids whose record a folder holds already (records.jsonl, or an older folder's ``<id>.json``); a half
    line a killed writer left is ended, so the next record starts on a line of its own."""
    path = image_dir / RECORDS
    with contextlib.suppress(OSError), open(path, "rb+") as f:
        f.seek(0, io.SEEK_END)
        if f.tell() > 0:
            f.seek(-1, io.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
    return set(_read_records(image_dir)) | {p.stem for p in image_dir.glob("img_*.json")}


#: zlib level of the PNGs AIM writes for itself (run folders, the sandbox wire): a run writes thousands, and
#: level 1 encodes about twice as fast as the default 6 for ~10% more bytes (lossless either way)
FAST_PNG = 1


def _write_png(path: Path, image: Image.Image) -> None:
    if not path.exists():
        atomic_write(path, to_png_bytes(image, FAST_PNG), fsync=False)


#: the store used outside any tool call (library use, scripts)
DEFAULT_STORE = ImageStore()
_CURRENT: ContextVar[ImageStore | None] = ContextVar("aim_image_store", default=None)


def current_store() -> ImageStore:
    """The image store of the tool call running now (its context's ``images``), else the default."""
    store = _CURRENT.get()
    return DEFAULT_STORE if store is None else store  # not ``or``: an empty store is falsy


@contextlib.contextmanager
def use_store(store: ImageStore) -> Iterator[ImageStore]:
    """Bind ``store`` as :func:`current_store` for the duration of the block (this thread/task)."""
    token = _CURRENT.set(store)
    try:
        yield store
    finally:
        _CURRENT.reset(token)


def to_png_bytes(image: Image.Image, compress_level: int = 6) -> bytes:
    """PNG bytes (``compress_level`` 0-9: zlib's speed against size; the pixels are the same)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def to_base64(image: Image.Image) -> str:
    """PNG, base64-encoded (no data-URL prefix)."""
    return base64.b64encode(to_png_bytes(image)).decode("ascii")


#: pixels that all the images decoded from bytes for one call may hold together (3 bytes each as RGB):
#: one call of a tool, of the sandbox's ``system``/``tools``, or one MCP request (:func:`pixel_budget`)
MAX_CALL_PIXELS = 32 * 1024 * 1024

_CALL_PIXELS: ContextVar[list[int] | None] = ContextVar("aim_call_pixels", default=None)


@contextlib.contextmanager
def pixel_budget(max_pixels: int = MAX_CALL_PIXELS) -> Iterator[None]:
    """Within this block, every image :func:`decode_image` reads shares one budget of ``max_pixels``.

    Each image's size is read from its header and charged before it is decoded, so eight
    4096x4096 PNGs in one call are refused at the first one over the budget instead of taking
    gigabytes. A block inside another shares the outer budget (a tool called by a sandbox call).
    """
    if _CALL_PIXELS.get() is not None:
        yield
        return
    token = _CALL_PIXELS.set([max_pixels])
    try:
        yield
    finally:
        _CALL_PIXELS.reset(token)


def _charge_pixels(width: int, height: int) -> None:
    budget = _CALL_PIXELS.get()
    if budget is None:
        return
    if width * height > budget[0]:
        raise ValueError(
            f"the image is {width}x{height} pixels, over what is left ({budget[0]}) of the budget of one call "
            f"({MAX_CALL_PIXELS} pixels by default); send fewer or smaller images per call"
        )
    budget[0] -= width * height


def decode_image(data: bytes, *, max_pixels: int = MAX_DECODE_PIXELS) -> Image.Image:
    """PNG/JPEG/... bytes as an RGB image; the size is checked from the header before decoding.

    A decompression bomb (a small file that claims a huge size) is refused without being
    decoded, with a ValueError that says the limit; inside :func:`pixel_budget` the image is
    also charged to the call's budget before it is decoded.
    """
    if len(data) > MAX_ENCODED_BYTES:
        raise ValueError(f"the image is {len(data)} bytes encoded; the limit is {MAX_ENCODED_BYTES}")
    try:
        with warnings.catch_warnings():  # PIL's own bomb warning: we check the size ourselves, just below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
        with im:
            width, height = im.size
            if width * height > max_pixels:
                raise ValueError(
                    f"the image is {width}x{height} pixels; the limit is {max_pixels} pixels "
                    "(resize it before sending)"
                )
            _charge_pixels(width, height)
            return im.convert("RGB")
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"the bytes are not an image PIL can read ({type(exc).__name__})") from exc


def load_image(value: ImageLike, store: ImageStore | None = None) -> Image.Image:
    """Accept a PIL image, an image id (from ``store``, default :func:`current_store`), base64, a data URL or bytes."""
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, bytes | bytearray):
        return decode_image(bytes(value))
    if isinstance(value, str):
        if value.startswith("img_"):
            return (store or current_store()).pixels(value)
        data = value.split(",", 1)[1] if value.startswith("data:") else value
        if len(data) > MAX_ENCODED_BYTES * 4 // 3 + 4:
            raise ValueError(f"the base64 image is {len(data)} characters; the limit is {MAX_ENCODED_BYTES} bytes")
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(
                "an image must be a PIL image, an id like 'img_…' returned by a tool, or base64 PNG/JPEG"
            ) from exc
        return decode_image(raw)
    raise TypeError(f"cannot read an image from {type(value).__name__}")
