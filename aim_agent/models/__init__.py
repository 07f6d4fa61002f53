"""Model loading: one registry of loaders (world CNN, transformers, user modules, plugins).

The names below load on first use (PEP 562): ``aim_agent.models.trust`` is needed by code that
must start fast (``aim mcp``) and must not pull torch in through this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aim_agent.models.base import LoadedModel, ModelLoader, ModelNotFound, load_model
    from aim_agent.models.trust import ModelNotAllowed, ModelPolicy, UntrustedModel, trusting

_WHERE = {
    "LoadedModel": "base",
    "ModelLoader": "base",
    "ModelNotFound": "base",
    "load_model": "base",
    "ModelNotAllowed": "trust",
    "ModelPolicy": "trust",
    "UntrustedModel": "trust",
    "trusting": "trust",
}

__all__ = [
    "LoadedModel",
    "ModelLoader",
    "ModelNotAllowed",
    "ModelNotFound",
    "ModelPolicy",
    "UntrustedModel",
    "load_model",
    "trusting",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'aim_agent.models' has no attribute {name!r}")
    return getattr(importlib.import_module(f"aim_agent.models.{_WHERE[name]}"), name)
