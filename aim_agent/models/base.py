"""What a loaded model is, and the one entry point that loads any model by name.

Loaders come from plugins (hook ``aim_model_loaders``). ``load_model(spec)`` asks each loader
whether it recognises ``spec``; when none can load it, the error lists every place each
loader looked and how to provide weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from PIL import Image


@dataclass
class LoadedModel:
    """A vision model ready for probing.

    ``preprocess`` turns PIL images into the input batch; ``run`` calls the module on that
    batch (transformers models want ``pixel_values=``); ``prefix_tokens`` is how many leading
    tokens (CLS, registers) a token layer carries before its patch grid.
    """

    name: str
    module: torch.nn.Module
    preprocess: Callable[[Sequence[Image.Image]], torch.Tensor]
    input_size: int
    fingerprint: str
    run: Callable[[torch.nn.Module, torch.Tensor], Any] = field(default=lambda m, x: m(x))
    prefix_tokens: int = 1
    labels: list[str] | None = None
    source: str = ""


class ModelNotFound(LookupError):
    """No loader could load a model spec; the message says where each looked."""


@runtime_checkable
class ModelLoader(Protocol):
    """A way to load models. ``can_load`` must be cheap and never raise."""

    name: str

    def can_load(self, spec: str) -> bool: ...

    def load(self, spec: str) -> LoadedModel: ...

    def where_looked(self, spec: str) -> str:
        """One line: where this loader looked for ``spec`` and how a user provides it."""
        ...


def _plugin_loaders() -> Sequence[ModelLoader]:
    from aim_agent.plugins import plugin_manager

    return plugin_manager().model_loaders()


def load_model(spec: str, loaders: Sequence[ModelLoader] | None = None) -> LoadedModel:
    """Load ``spec`` with the first loader that recognises it (plugin loaders by default)."""
    loaders = _plugin_loaders() if loaders is None else loaders
    for loader in loaders:
        if loader.can_load(spec):
            return loader.load(spec)
    tried = "\n".join(f"  - {lo.name}: {lo.where_looked(spec)}" for lo in loaders) or "  (no loaders)"
    from aim_agent.plugins import plugin_manager

    hint = plugin_manager().missing_hint("model", spec.split(":", 1)[0])
    raise ModelNotFound(
        (f"{hint}.\n" if hint else "")
        + f"cannot load model {spec!r}. Looked in:\n{tried}\n"
        "Give a local directory with a transformers config and weights, a cached Hugging Face id "
        "(downloaded beforehand; AIM never downloads at run time), 'package.module:factory', "
        "a TorchScript/torch.save file, or a plugin's model (`aim layers` lists them)."
    )


def known_models(loaders: Sequence[ModelLoader] | None = None) -> list[dict[str, Any]]:
    """The named models the loaders ship or know: each loader's optional ``known_models()``
    (dicts with ``name``, ``available``, maybe ``note``), with the loader's ``name`` added."""
    loaders = _plugin_loaders() if loaders is None else loaders
    found: list[dict[str, Any]] = []
    for loader in loaders:
        listing = getattr(loader, "known_models", None)
        if callable(listing):
            found += [{**item, "loader": loader.name} for item in listing()]
    return found


def load_probe(spec: str, layer: str, loaders: Sequence[ModelLoader] | None = None) -> Any | None:
    """A ready :class:`~aim_agent.system.LayerProbe` from a loader that makes probes directly, or None.

    Some models are not torch modules (the world's ``synthetic`` neurons): their loader has
    ``can_probe(spec)`` and ``probe(spec, layer)`` instead of returning a :class:`LoadedModel`.
    Callers try this first and fall back to ``load_model`` + a module probe when it gives None.
    """
    loaders = _plugin_loaders() if loaders is None else loaders
    for loader in loaders:
        can_probe = getattr(loader, "can_probe", None)
        if callable(can_probe) and can_probe(spec):
            return loader.probe(spec, layer)  # type: ignore[attr-defined]
    return None
