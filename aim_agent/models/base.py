"""What a loaded model is, and the one entry point that loads any model by name.

Loaders come from plugins (hook ``aim_model_loaders``). ``load_model(spec)`` asks each loader
whether it recognises ``spec``; when none can load it, the error lists every place each
loader looked and how to provide weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aim_agent import plugins
from aim_agent.contracts import LoadedModel as LoadedModel
from aim_agent.contracts import ModelLoader as ModelLoader


class ModelNotFound(LookupError):
    """No loader could load a model spec; the message says where each looked."""


def _plugin_loaders() -> Sequence[ModelLoader]:
    return plugins.plugin_manager().model_loaders()


def load_model(spec: str, loaders: Sequence[ModelLoader] | None = None) -> LoadedModel:
    """Load ``spec`` with the first loader that recognises it (plugin loaders by default)."""
    loaders = _plugin_loaders() if loaders is None else loaders
    for loader in loaders:
        if loader.can_load(spec):
            return loader.load(spec)
    tried = "\n".join(f"  - {lo.name}: {lo.where_looked(spec)}" for lo in loaders) or "  (no loaders)"
    hint = plugins.plugin_manager().missing_hint("model", spec.split(":", 1)[0])
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


def open_model(spec: str, *, input_size: int | None = None) -> LoadedModel:
    """:func:`load_model` with every plugin loader, passing ``input_size`` to loaders that take one."""
    loaders = plugins.plugin_manager().model_loaders()
    if input_size is not None:
        for loader in loaders:
            if hasattr(loader, "input_size"):
                loader.input_size = input_size
    return load_model(spec, loaders)


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
