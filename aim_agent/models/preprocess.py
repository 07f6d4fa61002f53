"""Image preprocessing without torchvision: resize, centre crop, rescale, normalise.

:class:`Preprocess` is a callable ``images -> (B, 3, H, W) float32`` that also knows the
geometry alone (:meth:`Preprocess.view`): the image exactly as the model sees it, before
normalisation, so activation maps can be drawn over the right pixels.
:func:`from_hf_preprocessor` reads a Hugging Face ``preprocessor_config.json`` (ViT, DINO,
CLIP and ConvNext/ResNet styles); :func:`imagenet_preprocess` is the usual default.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_RESAMPLE_NAMES = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}


@dataclass(frozen=True)
class Preprocess:
    """Resize (shortest edge, or an exact ``(height, width)``), centre-crop, rescale, normalise."""

    resize_shortest: int | None = None
    resize_exact: tuple[int, int] | None = None  # (height, width)
    crop: tuple[int, int] | None = None  # (height, width)
    resample: int = Image.Resampling.BICUBIC
    rescale: float = 1 / 255
    mean: tuple[float, float, float] | None = IMAGENET_MEAN
    std: tuple[float, float, float] | None = IMAGENET_STD

    @property
    def output_size(self) -> tuple[int, int] | None:
        """(height, width) of every output, when fixed by the settings."""
        if self.crop is not None:
            return self.crop
        return self.resize_exact

    def view(self, image: Image.Image) -> Image.Image:
        """The image as the model sees it (RGB, resized and cropped; not normalised)."""
        image = image.convert("RGB") if image.mode != "RGB" else image
        if self.resize_exact is not None:
            height, width = self.resize_exact
            if image.size != (width, height):
                image = image.resize((width, height), self.resample)
        elif self.resize_shortest is not None:
            w, h = image.size
            short, long = (w, h) if w <= h else (h, w)
            new_short, new_long = self.resize_shortest, int(self.resize_shortest * long / short)
            size = (new_short, new_long) if w <= h else (new_long, new_short)
            if size != image.size:
                image = image.resize(size, self.resample)
        if self.crop is not None:
            ch, cw = self.crop
            w, h = image.size
            if (w, h) != (cw, ch):
                if w < cw or h < ch:  # pad (black) like HF's center_crop, then crop
                    canvas = Image.new("RGB", (max(w, cw), max(h, ch)))
                    canvas.paste(image, ((canvas.width - w) // 2, (canvas.height - h) // 2))
                    image, (w, h) = canvas, canvas.size
                top, left = (h - ch) // 2, (w - cw) // 2
                image = image.crop((left, top, left + cw, top + ch))
        return image

    def to_array(self, image: Image.Image) -> np.ndarray:
        """One image -> (3, H, W) float32, normalised."""
        arr = np.asarray(self.view(image), dtype=np.float32) * self.rescale
        if self.mean is not None and self.std is not None:
            arr = np.asarray((arr - np.asarray(self.mean, dtype=np.float32)) / np.asarray(self.std, dtype=np.float32),
                             dtype=np.float32)
        return arr.transpose(2, 0, 1)

    def __call__(self, images: Sequence[Image.Image]) -> torch.Tensor:
        if not images:
            raise ValueError("no images to preprocess")
        arrays = [self.to_array(im) for im in images]
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            raise ValueError(
                f"preprocessed images differ in size {sorted(shapes)}: this preprocessing has no centre crop, "
                "so give images of one size or a model whose preprocessing crops"
            )
        return torch.from_numpy(np.stack(arrays))

    def describe(self) -> dict[str, Any]:
        return asdict(self)

    def digest(self) -> str:
        return hashlib.blake2b(json.dumps(self.describe(), sort_keys=True).encode(), digest_size=8).hexdigest()


def imagenet_preprocess(input_size: int = 224, resize_ratio: float = 256 / 224) -> Preprocess:
    """Torchvision's classic ImageNet evaluation transform: resize the shortest edge, centre crop."""
    return Preprocess(
        resize_shortest=math.floor(input_size * resize_ratio),
        crop=(input_size, input_size),
        resample=Image.Resampling.BILINEAR,
    )


def _hw(value: Any, *, square_int: bool) -> tuple[str, int | tuple[int, int]] | None:
    """Interpret an HF ``size``/``crop_size`` value: ('shortest', n) or ('exact', (h, w))."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return ("exact", (int(value), int(value))) if square_int else ("shortest", int(value))
    if isinstance(value, Mapping):
        if "height" in value and "width" in value:
            return "exact", (int(value["height"]), int(value["width"]))
        if "shortest_edge" in value:
            return "shortest", int(value["shortest_edge"])
        if "longest_edge" in value:
            return "exact", (int(value["longest_edge"]), int(value["longest_edge"]))
    if isinstance(value, Sequence) and len(value) == 2:
        return "exact", (int(value[0]), int(value[1]))
    raise ValueError(f"cannot read an image size from {value!r}")


def _resample(value: Any, default: int) -> int:
    if isinstance(value, int) and 0 <= value <= 5:
        return value
    if isinstance(value, str) and value.lower() in _RESAMPLE_NAMES:
        return _RESAMPLE_NAMES[value.lower()]
    return default


def from_hf_preprocessor(config: Mapping[str, Any] | None, default_size: int = 224) -> Preprocess:
    """A :class:`Preprocess` equivalent to a Hugging Face image processor config.

    Handles the ViT style (``size`` int = square resize), the CLIP style (shortest edge, then
    ``crop_size`` centre crop) and the ConvNext/ResNet style (``crop_pct``: resize the
    shortest edge to ``size / crop_pct``, then crop ``size``). Without a config: resize the
    shortest edge to ``default_size * 256/224``, crop ``default_size``, ImageNet statistics.
    """
    if not config:
        return imagenet_preprocess(default_size)
    kind = str(config.get("image_processor_type") or config.get("feature_extractor_type") or "")
    do_resize = bool(config.get("do_resize", True))
    do_crop = bool(config.get("do_center_crop", "crop_size" in config and "ConvNext" not in kind))
    do_norm = bool(config.get("do_normalize", True))
    resample = _resample(config.get("resample"), Image.Resampling.BILINEAR)
    rescale = float(config.get("rescale_factor", 1 / 255)) if config.get("do_rescale", True) else 1.0
    mean = tuple(config.get("image_mean") or IMAGENET_MEAN) if do_norm else None
    std = tuple(config.get("image_std") or IMAGENET_STD) if do_norm else None
    # an int `size` means a square resize unless the processor resizes the shortest edge (CLIP, crops)
    size = _hw(config.get("size"), square_int=not do_crop and "CLIP" not in kind and "crop_pct" not in config)
    resize_shortest: int | None = None
    resize_exact: tuple[int, int] | None = None
    crop: tuple[int, int] | None = None
    if "crop_pct" in config and do_resize and size is not None and size[0] == "shortest":
        # ConvNext style (microsoft/resnet-*): below 384 px, resize to size/crop_pct and crop size
        shortest = int(size[1])  # type: ignore[arg-type]
        if shortest < 384:
            resize_shortest = int(shortest / float(config["crop_pct"] or 0.875))
            crop = (shortest, shortest)
        else:
            resize_exact = (shortest, shortest)
    else:
        if do_resize and size is not None:
            if size[0] == "shortest":
                resize_shortest = int(size[1])  # type: ignore[arg-type]
            else:
                resize_exact = size[1]  # type: ignore[assignment]
        if do_crop:
            crop_size = _hw(config.get("crop_size", default_size), square_int=True)
            crop = crop_size[1] if crop_size is not None else None  # type: ignore[assignment]
    if resize_exact is None and crop is None:
        # no fixed output size would make batches ragged; crop to a square of the resize size
        edge = resize_shortest or default_size
        if resize_shortest is None:
            resize_shortest = edge
        crop = (edge, edge)
    return Preprocess(
        resize_shortest=resize_shortest,
        resize_exact=resize_exact,
        crop=crop,
        resample=resample,
        rescale=rescale,
        mean=mean,
        std=std,
    )
