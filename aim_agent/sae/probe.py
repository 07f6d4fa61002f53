"""SAE latents as units: :class:`SAEProbe` turns a layer probe into one whose units are an SAE's latents."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from PIL import Image

from aim_agent.models.fingerprint import module_fingerprint
from aim_agent.sae.model import SparseAutoencoder
from aim_agent.sae.train import to_vectors
from aim_agent.system import LayerProbe


class SAEProbe(LayerProbe):
    """The latents of an SAE over a base layer probe: ``(B, n_latents, h, w)``.

    :class:`~aim_agent.system.System`, the exemplar engine and every tool read it like any
    layer, so the agent, MCP and the report work on latents unchanged.
    """

    def __init__(self, base: LayerProbe, sae: SparseAutoencoder) -> None:
        if base.num_units != sae.d_in:
            raise ValueError(
                f"the SAE reads {sae.d_in}-dim activations but layer {base.layer!r} has {base.num_units} units"
            )
        self.base = base
        self.sae = sae.eval()
        self.model_name = base.model_name
        self.layer = f"{base.layer}/sae{sae.n_latents}"
        self.num_units = sae.n_latents
        self._fingerprint = hashlib.blake2b(
            f"{base.fingerprint()}|{module_fingerprint(sae, sae.config())}".encode(), digest_size=12
        ).hexdigest()

    @property
    def base_layer(self) -> str:
        return self.base.layer

    def encode_maps(self, maps: torch.Tensor) -> torch.Tensor:
        """Base unit maps ``(B, D, h, w)`` -> latent maps ``(B, n_latents, h, w)`` (differentiable)."""
        b, _, h, w = maps.shape
        z = self.sae.encode(to_vectors(maps.float()))
        return z.reshape(b, h, w, self.num_units).permute(0, 3, 1, 2)

    def forward(self, images: Sequence[Image.Image]) -> torch.Tensor:
        acts = self.base.forward(images)
        with torch.no_grad():
            return self.encode_maps(acts).contiguous()

    def view(self, image: Image.Image) -> Image.Image:
        view = getattr(self.base, "view", None)
        return view(image) if callable(view) else image

    def fingerprint(self) -> str:
        return self._fingerprint


def sae_sparsity(sae: SparseAutoencoder, vectors: torch.Tensor) -> float:
    """Mean number of active latents per vector (L0)."""
    with torch.no_grad():
        return float((sae.encode(vectors) > 0).float().sum(-1).mean())
