"""WorldCNN: the small target model AIM ships trained on world images, and its loader.

Architecture (pure PyTorch, no torchvision): five blocks ``conv 3x3 -> BatchNorm -> ReLU``,
the first three followed by 2x2 max pooling, then global average pooling, dropout and a
linear classifier. About 0.4 M parameters (1.6 MB of float32 weights).

==========  ========  ===================  =========================
layer       channels  grid at 64 px input  what it tends to see
==========  ========  ===================  =========================
``conv1``   16        32 x 32              edges, colours
``conv2``   32        16 x 16              strokes, textures
``conv3``   64        8 x 8                glyph parts
``conv4``   128       8 x 8 (no pooling)   parts, backgrounds
``conv5``   256       8 x 8 (no pooling)   objects, backgrounds
``fc``      classes   -                    logits
==========  ========  ===================  =========================

Input size: images are rendered (or given) at any size and resized to **64 x 64** by
:func:`preprocess` (RGB, bilinear with antialiasing, ``(x/255 - 0.5) / 0.25``). 64 px is
what lets a training run (40-50k image presentations) finish in a few minutes on two CPU
cores; world glyphs are at least a fifth of the image side, 13+ px at 64 px, which the
network tells apart at >95% accuracy. The last two blocks keep an 8 x 8 grid so activation
maps still localise objects. Training renders scenes at 224 px and uses exactly this
:func:`preprocess`, so what the shipped weights saw in training and what they see through AIM
(a 224 px world image) is the same.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

INPUT_SIZE = 64
WIDTHS = (16, 32, 64, 128, 256)
MEAN = 0.5
STD = 0.25
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: model spec -> shipped weights name
MODELS = {"world-cnn": "classify", "world-cnn-spawrious": "spawrious", "world-cnn-bias": "bias"}


class ConvBlock(nn.Module):
    """``conv 3x3 -> BatchNorm -> ReLU`` then optional 2x2 max pooling; the block's output is the unit grid."""

    def __init__(self, c_in: int, c_out: int, pool: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.relu(self.bn(self.conv(x))))


class WorldCNN(nn.Module):
    """A five-block CNN for world images; layers ``conv1`` .. ``conv5`` and ``fc``."""

    def __init__(self, num_classes: int, widths: Sequence[int] = WIDTHS) -> None:
        super().__init__()
        if len(widths) != 5:
            raise ValueError(f"WorldCNN needs five block widths, got {list(widths)}")
        chans = [3, *widths]
        self.conv1 = ConvBlock(chans[0], chans[1], pool=True)
        self.conv2 = ConvBlock(chans[1], chans[2], pool=True)
        self.conv3 = ConvBlock(chans[2], chans[3], pool=True)
        self.conv4 = ConvBlock(chans[3], chans[4], pool=False)
        self.conv5 = ConvBlock(chans[4], chans[5], pool=False)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(chans[5], num_classes)
        self.num_classes = num_classes

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv5(self.conv4(self.conv3(self.conv2(self.conv1(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.gap(self.features(x)), 1)))


def to_array(image: Image.Image, size: int = INPUT_SIZE) -> np.ndarray:
    """One image as ``uint8 (3, size, size)``: RGB, bilinear (antialiased) resize."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


def normalize(batch_uint8: torch.Tensor) -> torch.Tensor:
    """``uint8 (B, 3, H, W)`` -> the float input the network expects."""
    return (batch_uint8.float() / 255.0 - MEAN) / STD


def preprocess(images: Sequence[Image.Image], size: int = INPUT_SIZE) -> torch.Tensor:
    """PIL images -> normalised float batch ``(B, 3, size, size)``; the same path as in training."""
    if not images:
        raise ValueError("preprocess needs at least one image")
    arr = np.stack([to_array(im, size) for im in images])
    return normalize(torch.from_numpy(arr))


class WorldPreprocess:
    """:func:`preprocess` at a fixed size, with ``view`` (the image as the network sees it)."""

    def __init__(self, size: int = INPUT_SIZE) -> None:
        self.size = size

    def __call__(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return preprocess(images, self.size)

    def view(self, image: Image.Image) -> Image.Image:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        return rgb if rgb.size == (self.size, self.size) else rgb.resize((self.size, self.size),
                                                                          Image.Resampling.BILINEAR)

    def describe(self) -> str:
        return f"world: RGB, bilinear resize to {self.size}x{self.size}, (x/255 - {MEAN}) / {STD}"

    def __repr__(self) -> str:
        return f"WorldPreprocess({self.size})"


# --------------------------------------------------------------------------- weights


def weights_path(task: str, directory: Path | None = None) -> Path:
    return (directory or WEIGHTS_DIR) / f"{task}.safetensors"


def file_hash(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=12)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_model(model: WorldCNN, path: Path, info: dict[str, Any]) -> None:
    """Write ``path`` (.safetensors) and its ``.json`` sidecar (class names, settings, accuracy)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(".safetensors.tmp")
    save_file(state, str(tmp), metadata={"classes": json.dumps(info["classes"])})
    tmp.chmod(0o644)
    tmp.replace(path)
    side = path.with_suffix(".json")
    tmp_json = side.with_suffix(".json.tmp")
    tmp_json.write_text(json.dumps(info, indent=2) + "\n")
    tmp_json.replace(side)


def load_weights(path: Path) -> tuple[WorldCNN, dict[str, Any]]:
    """A WorldCNN in eval mode from ``path`` and the info of its ``.json`` sidecar."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise FileNotFoundError(
            f"no world CNN weights at {path}. Train them with `aim world train --task <task> --out {path}`"
        )
    side = path.with_suffix(".json")
    info: dict[str, Any] = json.loads(side.read_text()) if side.is_file() else {}
    state = load_file(str(path))
    classes = info.get("classes")
    num_classes = len(classes) if classes else state["fc.weight"].shape[0]
    widths = tuple(info.get("widths", WIDTHS))
    model = WorldCNN(num_classes, widths)
    model.load_state_dict(state)
    model.eval()
    info.setdefault("classes", [str(i) for i in range(num_classes)])
    return model, info


# --------------------------------------------------------------------------- loader


class WorldModelLoader:
    """Loads the shipped world CNNs: ``world-cnn`` (20 classes), ``world-cnn-spawrious``, ``world-cnn-bias``.

    A spec may also be ``world-cnn:/path/to/weights.safetensors`` (weights trained with
    ``aim world train``). The synthetic neurons are not a torch module, so they are not a
    :class:`LoadedModel`; :meth:`probe` returns their :class:`LayerProbe` for ``synthetic``.
    """

    name = "world"

    def can_load(self, spec: str) -> bool:
        try:
            return spec in MODELS or (spec.startswith("world-cnn:") and spec.endswith(".safetensors"))
        except Exception:
            return False

    def _path(self, spec: str) -> Path:
        if spec in MODELS:
            return weights_path(MODELS[spec])
        return Path(spec.split(":", 1)[1]).expanduser()

    def load(self, spec: str):  # -> LoadedModel
        from aim_agent.models.base import LoadedModel

        if not self.can_load(spec):
            raise LookupError(f"the world loader cannot load {spec!r}; it knows {', '.join(MODELS)}")
        path = self._path(spec)
        model, info = load_weights(path)
        size = int(info.get("input_size", INPUT_SIZE))
        return LoadedModel(
            name=spec,
            module=model,
            preprocess=WorldPreprocess(size),
            input_size=size,
            fingerprint=f"{spec}:{file_hash(path)}",
            labels=list(info["classes"]),
            source=str(path),
            prefix_tokens=0,
        )

    def known_models(self) -> list[dict[str, Any]]:
        """The shipped world CNNs, and whether their weights are on disk."""
        return [{"name": name, "available": weights_path(task).is_file()} for name, task in MODELS.items()]

    def where_looked(self, spec: str) -> str:
        names = ", ".join(f"{k} ({weights_path(v)})" for k, v in MODELS.items())
        return f"shipped world models {names}; 'world-cnn:PATH.safetensors'; 'synthetic' via probe()"

    # Not part of the ModelLoader protocol: models that are probes, not torch modules.
    def can_probe(self, spec: str) -> bool:
        return spec == "synthetic"

    def probe(self, spec: str, layer: str = "neurons"):  # -> LayerProbe
        """The :class:`~aim_world.neurons.SyntheticProbe` for ``spec == 'synthetic'``."""
        if not self.can_probe(spec):
            raise LookupError(f"the world loader has no probe named {spec!r}; try 'synthetic'")
        from aim_world.neurons import SyntheticProbe

        return SyntheticProbe.for_layer(layer)
