"""Dataset exemplars: one streaming, cached, resumable pass per layer (see ``engine``)."""

from aim_agent.exemplars.api import ExemplarSet, exemplars_for_system
from aim_agent.exemplars.dataset import DEFAULT_DATASET, ImageFolder, default_cache_dir, resolve_dataset
from aim_agent.exemplars.engine import Exemplar, LayerExemplars, compute_exemplars

__all__ = [
    "DEFAULT_DATASET",
    "Exemplar",
    "ExemplarSet",
    "ImageFolder",
    "LayerExemplars",
    "compute_exemplars",
    "default_cache_dir",
    "exemplars_for_system",
    "resolve_dataset",
]
