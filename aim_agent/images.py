"""Images as they travel through AIM, and what AIM knows about each one.

Every image a tool makes (a world render, an edit, an activation overlay) is registered in
the process-wide :data:`STORE` under a content id (``img_<hash>``). The id survives any
lossless trip (PNG bytes over the sandbox pipe, base64 over MCP), so a describer can find
the scene graph behind an overlay, and an agent can refer to an image by id instead of
sending its pixels back.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

ImageLike = Image.Image | str | bytes


@dataclass
class ImageRecord:
    """What is known about one image.

    ``scene`` is a world scene graph (a plain dict) when the image was rendered by the world;
    ``parent`` is the id of the image an overlay or edit was made from; ``mask`` is the
    boolean highlight mask (H, W) of an activation overlay; ``meta`` holds anything else
    (prompt, activation, unit).
    """

    id: str
    scene: dict[str, Any] | None = None
    parent: str | None = None
    mask: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def image_id(image: Image.Image) -> str:
    """Content id of an image: the same pixels always give the same id."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    digest = hashlib.blake2b(rgb.tobytes(), digest_size=10)
    digest.update(f"{rgb.width}x{rgb.height}".encode())
    return "img_" + digest.hexdigest()


class ImageStore:
    """A bounded, thread-safe map from image id to :class:`ImageRecord` (and the pixels)."""

    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self._records: OrderedDict[str, ImageRecord] = OrderedDict()
        self._pixels: OrderedDict[str, Image.Image] = OrderedDict()
        self._lock = threading.Lock()

    def register(self, image: Image.Image, **info: Any) -> ImageRecord:
        """Remember ``image``; ``info`` fields (scene, parent, mask, meta) are merged in."""
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
            elif value is not None:
                setattr(record, key, value)
        self._records[iid] = record
        self._records.move_to_end(iid)
        self._pixels[iid] = image.convert("RGB") if image.mode != "RGB" else image
        self._pixels.move_to_end(iid)
        while len(self._records) > self.capacity:
            old, _ = self._records.popitem(last=False)
            self._pixels.pop(old, None)
        return record

    def record(self, image_or_id: Image.Image | str) -> ImageRecord | None:
        """The record of an image (or id), or None when AIM never saw it."""
        iid = image_or_id if isinstance(image_or_id, str) else image_id(image_or_id)
        with self._lock:
            return self._records.get(iid)

    def pixels(self, iid: str) -> Image.Image:
        """The image with id ``iid``; KeyError with a readable message when unknown."""
        with self._lock:
            if iid not in self._pixels:
                raise KeyError(f"unknown image id {iid!r}: ids come from tools that return images")
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


STORE = ImageStore()


def to_png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def to_base64(image: Image.Image) -> str:
    """PNG, base64-encoded (no data-URL prefix)."""
    return base64.b64encode(to_png_bytes(image)).decode("ascii")


def load_image(value: ImageLike) -> Image.Image:
    """Accept a PIL image, an image id from the store, a base64 string, a data URL, or PNG/JPEG bytes."""
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, bytes):
        return Image.open(io.BytesIO(value)).convert("RGB")
    if isinstance(value, str):
        if value.startswith("img_"):
            return STORE.pixels(value)
        data = value.split(",", 1)[1] if value.startswith("data:") else value
        try:
            return Image.open(io.BytesIO(base64.b64decode(data, validate=True))).convert("RGB")
        except Exception as exc:
            raise ValueError(
                "an image must be a PIL image, an id like 'img_…' returned by a tool, or base64 PNG/JPEG"
            ) from exc
    raise TypeError(f"cannot read an image from {type(value).__name__}")
