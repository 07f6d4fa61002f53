"""Model loading: one registry of loaders (world CNN, transformers, user modules, plugins)."""

from aim_agent.models.base import LoadedModel, ModelLoader, ModelNotFound, load_model

__all__ = ["LoadedModel", "ModelLoader", "ModelNotFound", "load_model"]
