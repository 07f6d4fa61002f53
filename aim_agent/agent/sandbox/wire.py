"""The sandbox wire: length-prefixed JSON frames with a small tagged encoding.

Both sides of the sandbox use this module: the parent imports it as
``aim_agent.agent.sandbox.wire``, the child loads it from its file before any model code
runs. It imports only the standard library at module level; numpy, Pillow and torch are
imported lazily, and only where a value of that kind is actually sent or received, so the
child stays light unless the model's code imports them itself.

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON. Values
that JSON cannot hold travel as objects tagged with :data:`TAG`:

=============  ==================================================================================
``tuple``      ``{"__aim__": "tuple", "items": [...]}``
``set``        ``{"__aim__": "set", "items": [...]}``
``dict``       only when a key is not a string: ``{"__aim__": "dict", "items": [[k, v], ...]}``
``bytes``      ``{"__aim__": "bytes", "data": base64}``
``complex``    ``{"__aim__": "complex", "real": x, "imag": y}``
``image``      a PIL image as raw pixels: ``{"__aim__": "image", "mode": "RGB", "size": [w, h], "raw": base64}``
               (row-major, the mode's bytes per pixel; :data:`IMAGE_FORMAT` ``"png"`` sends
               ``{"__aim__": "image", "png": base64 PNG}`` instead, the format before issue 27)
``ndarray``    ``{"__aim__": "ndarray", "dtype": "<f4", "shape": [...], "data": base64}``
``tensor``     a torch tensor, same fields as ``ndarray`` (bfloat16 travels as float32)
``record``     a pydantic model, dataclass or namedtuple: ``{"__aim__": "record", "name": ..., "fields": {...}}``
=============  ==================================================================================

Records decode as :class:`Record` (fields read as attributes or items) on both sides.

Decoding never runs code and never trusts the sender: array dtypes must be plain numbers
(no ``object``), byte counts must match shapes, images must be PNG or raw pixels whose bytes match
their size and mode, and not larger than a pixel budget, nesting is bounded. Anything else raises
:class:`WireError`. The parent never unpickles anything the child sends.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import json
import math
import re
import struct
import sys
from collections.abc import Callable, Iterator
from typing import Any, Literal

TAG = "__aim__"
HEADER = struct.Struct(">I")
#: default cap on one frame, both directions
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: default cap on the pixels of all images decoded from one message (a small PNG can hold a huge image)
MAX_IMAGE_PIXELS = 64 * 1024 * 1024
#: deepest nesting of lists/dicts/tuples the codec accepts
MAX_DEPTH = 64
#: default cap on the values (list items, dict entries, ...) the parent reads from one message of the child:
#: converting a 5-million-item list cost the agent 33 s of CPU outside every limit; an array counts as one value
MAX_ITEMS = 200_000
#: zlib level of images on the wire: a call may carry hundreds, and level 1 encodes about twice as fast as the
#: default 6 for ~10% more bytes (lossless either way; this file stands alone in the child, so not imported)
PNG_LEVEL = 1
#: how images are sent: ``"raw"`` (pixels with a small header: no encoding, and the receiver can hash the
#: bytes it got into the image's id without building an image) or ``"png"`` (before issue 27; kept for
#: ``AIM_FAST_PATH=0``). Both are always decoded.
IMAGE_FORMAT: Literal["raw", "png"] = "raw"
#: image modes sent as raw pixels (bytes per pixel); any other mode is sent as RGBA or RGB
RAW_MODES = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "I": 4, "F": 4}

_DTYPE = re.compile(r"^[<>|=]?[biufc][0-9]{1,2}$")
_SENDABLE = (
    "str, int, float, bool, None, bytes, lists, tuples, sets, dicts, PIL images, numpy arrays, "
    "torch tensors, and pydantic models or dataclasses made of those"
)

TensorMode = Literal["torch", "numpy", "if_imported"]


class WireError(ValueError):
    """A frame or value that does not follow the sandbox protocol."""


class TooManyValues(WireError):
    """A value holds more items than the reader accepts; the text says to send an array or a summary."""


class MessageTooLarge(ValueError):
    """A message is over the size limit; the text says by how much and what to do."""

    def __init__(self, size: int, limit: int, what: str = "message") -> None:
        super().__init__(
            f"the {what} is {size / 2**20:.1f} MB, over the sandbox limit of {limit / 2**20:.0f} MB; "
            "send fewer or smaller images or arrays"
        )
        self.size = size
        self.limit = limit


class Record:
    """A tool's result object (pydantic model or dataclass) as the other side receives it.

    Fields read as attributes (``out.images``) or items (``out["images"]``); ``vars(out)``
    gives a plain dict. The original class name is kept for ``repr``.
    """

    __slots__ = ("__dict__", "_aim_name")

    def __init__(self, name: str, fields: dict[str, Any]) -> None:
        object.__setattr__(self, "_aim_name", name)
        self.__dict__.update(fields)

    def __getattr__(self, key: str) -> Any:
        raise AttributeError(f"{self._aim_name} has no field {key!r}; fields: {', '.join(self.__dict__)}")

    def __getitem__(self, key: str) -> Any:
        return self.__dict__[key]

    def __contains__(self, key: object) -> bool:
        return key in self.__dict__

    def __iter__(self) -> Iterator[str]:  # field names, like a dict
        return iter(self.__dict__)

    def __len__(self) -> int:
        return len(self.__dict__)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Record):
            return self._aim_name == other._aim_name and self.__dict__ == other.__dict__
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"{self._aim_name}({inner})"


class _Budget:
    """Counts the payload bytes of one message while it is encoded, to fail early and cheaply."""

    def __init__(self, limit: int, images: str | None = None) -> None:
        self.limit = limit
        self.used = 0
        self.images = images or IMAGE_FORMAT

    def add(self, size: int) -> None:
        self.used += size
        if self.used > self.limit:
            raise MessageTooLarge(self.used, self.limit, "value")


def _b64(data: bytes, budget: _Budget) -> str:
    budget.add(4 * ((len(data) + 2) // 3))
    return base64.b64encode(data).decode("ascii")


def encode(value: Any, *, limit: int = MAX_MESSAGE_BYTES, images: Literal["raw", "png"] | None = None) -> Any:
    """``value`` as JSON-ready data; TypeError for anything that cannot be sent.

    ``images`` chooses how images travel (default :data:`IMAGE_FORMAT`).
    """
    return _encode(value, _Budget(limit, images), 0)


def _encode(value: Any, budget: _Budget, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise TypeError(f"the value is nested more than {MAX_DEPTH} levels deep and cannot be sent")
    if value is None or isinstance(value, bool | int | str):
        if isinstance(value, str):
            budget.add(len(value))
        return value if type(value) in (bool, int, str) or value is None else _plain_scalar(value)
    if isinstance(value, float):
        return float(value)
    down = depth + 1
    if isinstance(value, list):
        return [_encode(v, budget, down) for v in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return {TAG: "tuple", "items": [_encode(v, budget, down) for v in value]}
    if isinstance(value, tuple):  # namedtuple: keep the field names
        return _record(type(value).__name__, value._asdict(), budget, down)  # type: ignore[attr-defined]
    if isinstance(value, Record):
        return _record(value._aim_name, vars(value), budget, down)
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and TAG not in value:
            return {k: _encode(v, budget, down) for k, v in value.items()}
        return {TAG: "dict", "items": [[_encode(k, budget, down), _encode(v, budget, down)] for k, v in value.items()]}
    if isinstance(value, set | frozenset):
        return {TAG: "set", "items": [_encode(v, budget, down) for v in value]}
    if isinstance(value, bytes | bytearray | memoryview):
        return {TAG: "bytes", "data": _b64(bytes(value), budget)}
    if isinstance(value, complex):
        return {TAG: "complex", "real": value.real, "imag": value.imag}
    pil = sys.modules.get("PIL.Image")
    if pil is not None and isinstance(value, pil.Image):
        return _encode_image(value, budget)
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(value, np.ndarray):
            return _encode_array("ndarray", value, budget)
        if isinstance(value, np.generic):
            return _encode(value.item(), budget, down)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
        if tensor.dtype not in (torch.float64, torch.float32, torch.float16) and tensor.is_floating_point():
            tensor = tensor.float()  # bfloat16 and float8 have no numpy dtype
        return _encode_array("tensor", tensor.contiguous().numpy(), budget)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return _record(type(value).__name__, fields, budget, down)
    model_fields = getattr(type(value), "model_fields", None)
    if isinstance(model_fields, dict) and hasattr(value, "model_dump"):
        return _record(type(value).__name__, {k: getattr(value, k) for k in model_fields}, budget, down)
    raise TypeError(f"cannot send an object of type {type(value).__name__} across the sandbox; send {_SENDABLE}")


def _plain_scalar(value: Any) -> Any:
    """Subclasses of int/str (IntEnum, StrEnum) as the plain builtin."""
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    return str(value)


def _record(name: str, fields: dict[str, Any], budget: _Budget, depth: int) -> dict[str, Any]:
    return {TAG: "record", "name": str(name), "fields": {str(k): _encode(v, budget, depth) for k, v in fields.items()}}


def _encode_image(image: Any, budget: _Budget) -> dict[str, Any]:
    if budget.images == "png":
        return _encode_png(image, budget)
    if image.mode not in RAW_MODES:
        try:
            image = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
        except (OSError, ValueError) as exc:
            raise TypeError(
                f"cannot send a PIL image of mode {image.mode!r} ({exc}); convert it first, "
                "e.g. image.convert('RGB'), or send a numpy array"
            ) from None
    width, height = image.size
    budget.add(width * height * RAW_MODES[image.mode] * 4 // 3)
    return {TAG: "image", "mode": image.mode, "size": [width, height], "raw": _b64(image.tobytes(), budget)}


def _encode_png(image: Any, budget: _Budget) -> dict[str, Any]:
    buf = io.BytesIO()
    try:
        image.save(buf, format="PNG", compress_level=PNG_LEVEL)
    except (OSError, ValueError, KeyError) as exc:
        raise TypeError(
            f"cannot send a PIL image of mode {image.mode!r} ({exc}); convert it first, "
            "e.g. image.convert('RGB'), or send a numpy array"
        ) from None
    return {TAG: "image", "png": _b64(buf.getvalue(), budget)}


def _encode_array(tag: str, array: Any, budget: _Budget) -> dict[str, Any]:
    if array.dtype.kind not in "biufc":
        raise TypeError(
            f"cannot send an array of dtype {array.dtype}: only bool, integer, float and complex arrays cross "
            "the sandbox (convert strings or objects to lists)"
        )
    budget.add(array.nbytes * 4 // 3)
    data = array.tobytes(order="C")  # after the budget check, so a huge array fails before it is copied
    return {TAG: tag, "dtype": array.dtype.str, "shape": list(array.shape), "data": _b64(data, budget)}


def decode(
    data: Any,
    *,
    tensors: TensorMode = "if_imported",
    on_image: Callable[[Any], Any] | None = None,
    max_image_pixels: int = MAX_IMAGE_PIXELS,
    max_items: int | None = None,
    on_raw: Callable[[str, tuple[int, int], bytes], Any] | None = None,
) -> Any:
    """Rebuild a value from :func:`encode`'s output; :class:`WireError` for anything malformed.

    ``tensors`` says what a ``tensor`` becomes: ``"torch"`` (falls back to numpy when torch
    is not installed), ``"numpy"``, or ``"if_imported"`` (torch only when this process has
    already imported it: the child never imports torch on its own). ``on_image`` maps each
    decoded PIL image to the object to return (the parent looks it up in the image store).
    ``on_raw`` (raw images only) is asked first with ``(mode, (width, height), pixel bytes)`` and may return
    the object to use without an image being built (the parent finds a known image by the hash of those
    bytes); None goes on as without it.
    ``max_image_pixels`` bounds the pixels of all images in ``data`` together; ``max_items``
    the values it holds (:class:`TooManyValues` past it, found before the rest is converted).
    """
    if max_items is not None:
        _count(data, max_items)
    try:
        return _decode(data, 0, tensors, (on_image, on_raw), [max_image_pixels])
    except WireError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RecursionError) as exc:
        raise WireError(f"malformed value on the sandbox wire: {type(exc).__name__}: {exc}") from None


def _count(data: Any, limit: int) -> None:
    """Raise :class:`TooManyValues` when the JSON value ``data`` holds more than ``limit`` values.

    Iterative and cheap (no conversion), so a hostile value costs at most ``limit`` steps.
    """
    left = limit
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, list):
            children: Any = value
        elif isinstance(value, dict) and value.get(TAG) not in ("ndarray", "tensor", "image", "bytes"):
            children = value.values()
        else:
            continue
        left -= len(children)
        if left < 0:  # checked before the items are touched
            raise TooManyValues(
                f"the value holds more than {limit} items (list entries, dict fields, ...); return a numpy array, "
                "fewer items, or a summary"
            )
        stack.extend(children)


def _decode(data: Any, depth: int, tensors: TensorMode, on_image: tuple[Any, Any], max_pixels: list[int]) -> Any:
    if depth > MAX_DEPTH + 2:
        raise WireError(f"value nested more than {MAX_DEPTH} levels deep")
    if data is None or isinstance(data, bool | int | float | str):
        return data

    def down(v: Any) -> Any:
        return _decode(v, depth + 1, tensors, on_image, max_pixels)

    if isinstance(data, list):
        return [down(v) for v in data]
    if not isinstance(data, dict):
        raise WireError(f"unexpected JSON value of type {type(data).__name__}")
    tag = data.get(TAG)
    if tag is None:
        return {k: down(v) for k, v in data.items()}
    if tag == "tuple":
        return tuple(down(v) for v in _list(data["items"]))
    if tag == "set":
        return {down(v) for v in _list(data["items"])}
    if tag == "dict":
        return {down(k): down(v) for k, v in (_pair(item) for item in _list(data["items"]))}
    if tag == "bytes":
        return _unb64(data["data"])
    if tag == "complex":
        return complex(_number(data["real"]), _number(data["imag"]))
    if tag == "record":
        fields = data["fields"]
        if not isinstance(fields, dict):
            raise WireError("record fields must be an object")
        return Record(str(data["name"]), {str(k): down(v) for k, v in fields.items()})
    if tag == "image":
        adopt, on_raw = on_image
        if "raw" in data:
            mode, size, raw = _raw_image(data, max_pixels)
            if on_raw is not None:
                known = on_raw(mode, size, raw)
                if known is not None:
                    return known
            from PIL import Image

            image = Image.frombytes(mode, size, raw)
        else:
            image = _decode_image(_unb64(data["png"]), max_pixels)
        return adopt(image) if adopt is not None else image
    if tag in ("ndarray", "tensor"):
        array = _decode_array(data)
        if tag == "tensor" and tensors != "numpy":
            torch = sys.modules.get("torch")
            if torch is None and tensors == "torch":
                try:
                    import torch
                except ImportError:
                    torch = None
            if torch is not None:
                return torch.from_numpy(array)
        return array
    raise WireError(f"unknown tag {tag!r} on the sandbox wire")


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise WireError("expected a list of items")
    return value


def _pair(value: Any) -> tuple[Any, Any]:
    if not isinstance(value, list) or len(value) != 2:
        raise WireError("dict items must be [key, value] pairs")
    return value[0], value[1]


def _number(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise WireError("expected a number")
    return float(value)


def _unb64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise WireError("expected base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WireError(f"bad base64 data: {exc}") from None


def _raw_image(data: dict[str, Any], budget: list[int]) -> tuple[str, tuple[int, int], bytes]:
    """Mode, size and pixel bytes of a raw image, checked (mode, size, byte count, pixel budget) before use."""
    mode, size = data["mode"], data["size"]
    if not isinstance(mode, str) or mode not in RAW_MODES:
        raise WireError(f"image mode {mode!r} is not one of {', '.join(RAW_MODES)}")
    if (not isinstance(size, list) or len(size) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in size)):
        raise WireError(f"image size {size!r} must be [width, height], two positive integers")
    width, height = size
    if width * height > budget[0]:
        raise WireError(
            f"image of {width}x{height} pixels is over what is left of the limit of pixels per message; "
            "send fewer or smaller images"
        )
    raw = _unb64(data["raw"])
    if len(raw) != width * height * RAW_MODES[mode]:
        raise WireError(f"image data has {len(raw)} bytes, but {width}x{height} of mode {mode} needs "
                        f"{width * height * RAW_MODES[mode]}")
    budget[0] -= width * height
    return mode, (width, height), raw


def _decode_image(png: bytes, budget: list[int]) -> Any:
    """Decode one PNG; ``budget`` holds the pixels still allowed for this message (checked before decoding)."""
    from PIL import Image

    try:
        image: Image.Image = Image.open(io.BytesIO(png), formats=["PNG"])
        width, height = image.size
        if width * height > budget[0]:
            raise WireError(
                f"image of {width}x{height} pixels is over what is left of the limit of pixels per message; "
                "send fewer or smaller images"
            )
        budget[0] -= width * height
        image.load()
        image = image.copy()  # a plain Image, detached from the PNG reader
    except WireError:
        raise
    except Exception as exc:  # Pillow raises many kinds on corrupt data
        raise WireError(f"bad PNG image on the sandbox wire: {type(exc).__name__}: {exc}") from None
    return image


def _decode_array(data: dict[str, Any]) -> Any:
    dtype, shape = data["dtype"], data["shape"]
    if not isinstance(dtype, str) or not _DTYPE.match(dtype):
        raise WireError(f"array dtype {dtype!r} is not a plain number type")
    if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise WireError(f"array shape {shape!r} must be a list of non-negative integers")
    raw = _unb64(data["data"])
    import numpy as np

    dt = np.dtype(dtype)
    if dt.kind not in "biufc":
        raise WireError(f"array dtype {dtype!r} is not a plain number type")
    if len(raw) != math.prod(shape) * dt.itemsize:
        raise WireError(
            f"array data has {len(raw)} bytes, but shape {shape} of {dtype} needs {math.prod(shape) * dt.itemsize}"
        )
    return np.frombuffer(raw, dtype=dt).reshape(shape).copy()


def dumps(message: dict[str, Any], limit: int = MAX_MESSAGE_BYTES) -> bytes:
    """One frame (header + JSON) for a message whose values are already encoded."""
    payload = json.dumps(message, separators=(",", ":")).encode("utf-8")
    if len(payload) > limit:
        raise MessageTooLarge(len(payload), limit)
    return HEADER.pack(len(payload)) + payload


def frame_length(header: bytes, limit: int = MAX_MESSAGE_BYTES) -> int:
    """The payload length a header announces; WireError when it is over ``limit``."""
    length = int(HEADER.unpack(header)[0])
    if length > limit:
        raise WireError(f"frame of {length} bytes announced, over the limit of {limit} bytes")
    return length


def loads(payload: bytes) -> dict[str, Any]:
    """The message in one frame's payload; WireError unless it is a JSON object with a ``type``."""
    try:
        message = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise WireError(f"frame is not JSON: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise WireError("frame is not a message object with a 'type'")
    return message
