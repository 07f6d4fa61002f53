"""Sparse autoencoders (SAEs): training, loading, and their latents as units.

- :mod:`~aim_agent.sae.model`: :class:`SparseAutoencoder` (ReLU, TopK, BatchTopK, JumpReLU);
- :mod:`~aim_agent.sae.train`: activations split by image, :func:`train_sae` with AuxK
  dead-latent revival, held-out FVU / L0 / dead fraction and their history;
- :mod:`~aim_agent.sae.formats`: AIM, SAELens and overcomplete checkpoints (safetensors only);
- :mod:`~aim_agent.sae.probe`: :class:`SAEProbe`, whose units are an SAE's latents, so
  ``System``, exemplars, the agent, MCP and reports work on latents unchanged.
"""

from aim_agent.sae.formats import SAEFormatError, load_sae
from aim_agent.sae.model import ACTIVATIONS, Activation, SparseAutoencoder
from aim_agent.sae.probe import SAEProbe, sae_sparsity
from aim_agent.sae.train import (
    ActivationSet,
    FitResult,
    SAEMetrics,
    TrainSettings,
    collect_activations,
    default_k,
    evaluate,
    fit_sae,
    train_sae,
)

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "ActivationSet",
    "FitResult",
    "SAEFormatError",
    "SAEMetrics",
    "SAEProbe",
    "SparseAutoencoder",
    "TrainSettings",
    "collect_activations",
    "default_k",
    "evaluate",
    "fit_sae",
    "load_sae",
    "sae_sparsity",
    "train_sae",
]
