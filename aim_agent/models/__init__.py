"""Model loading: one registry of loaders (world CNN, transformers, user modules, plugins)."""

from aim_agent.models.base import LoadedModel, ModelLoader, ModelNotFound, load_model
from aim_agent.models.trust import ModelNotAllowed, ModelPolicy, UntrustedModel, trusting

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
