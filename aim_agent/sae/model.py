"""The sparse autoencoder: one class for the SAEs AIM trains and the ones it loads.

A :class:`SparseAutoencoder` maps a layer's activation vector ``x`` (one per spatial
position: a conv cell or a ViT patch) to sparse latents and back::

    x_n = x / scale                                   (scale: RMS of the centred activations)
    pre = W_enc (x_n - b_pre) + b_enc
    z   = act(pre)
    x̂   = (W_dec z + b_pre) * scale                   (decoder columns kept at unit norm in training)

``act`` is one of

- ``relu``: ``relu(pre)`` (an L1 penalty makes it sparse);
- ``topk``: ``relu(pre)`` with all but the ``k`` largest entries of each vector zeroed;
- ``batchtopk``: in training, the ``k * B`` largest entries of a batch of ``B`` vectors are
  kept (``k`` active latents per vector on average, Bussmann et al. 2024); in evaluation, a
  latent is active when ``pre > threshold``, the threshold being a running estimate of the
  smallest activation training kept (so inference does not depend on the batch);
- ``jumprelu``: ``relu(pre) * (pre > threshold)`` (per-latent thresholds; loaded SAEs).

SAELens and overcomplete checkpoints map onto this form exactly (:mod:`aim_agent.sae.formats`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F

Activation = Literal["relu", "topk", "batchtopk", "jumprelu"]
ACTIVATIONS: tuple[str, ...] = ("relu", "topk", "batchtopk", "jumprelu")
WEIGHTS_FILE = "sae.safetensors"
#: default for ``k``: 32 active latents, fewer for small SAEs
MAX_DEFAULT_K = 32
META_FILE = "sae.json"


def default_k(n_latents: int) -> int:
    """Active latents per vector when none is given: ``n_latents / 16``, at most 32, at least 1."""
    return max(1, min(MAX_DEFAULT_K, n_latents // 16))


class SparseAutoencoder(torch.nn.Module):
    """Linear encoder + ReLU / TopK / BatchTopK / JumpReLU, linear decoder (see the module docstring)."""

    scale: torch.Tensor
    threshold: torch.Tensor

    def __init__(self, d_in: int, n_latents: int, *, activation: Activation = "topk", k: int | None = None) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, not {activation!r}")
        if n_latents < 1 or d_in < 1:
            raise ValueError(f"d_in and n_latents must be positive (got {d_in}, {n_latents})")
        if k is not None and k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        self.d_in, self.n_latents = d_in, n_latents
        self.activation: Activation = activation
        self.k = min(n_latents, k or default_k(n_latents)) if activation in ("topk", "batchtopk") else None
        self.encoder = torch.nn.Linear(d_in, n_latents)
        self.decoder = torch.nn.Linear(n_latents, d_in, bias=False)
        self.b_pre = torch.nn.Parameter(torch.zeros(d_in))
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("threshold", torch.zeros(n_latents))
        with torch.no_grad():
            self.decoder.weight.copy_(torch.randn(d_in, n_latents))
            self.normalize_decoder()
            self.encoder.weight.copy_(self.decoder.weight.T)
            self.encoder.bias.zero_()
        #: anything worth keeping with the weights (layer, model, metrics, training history, source format)
        self.meta: dict[str, Any] = {}

    # -- the constraint on the decoder ------------------------------------------------------
    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Unit-norm decoder columns (one column per latent)."""
        self.decoder.weight.div_(self.decoder.weight.norm(dim=0, keepdim=True).clamp_min(1e-8))

    @torch.no_grad()
    def project_decoder_grad(self) -> None:
        """Remove the part of the decoder gradient that would change the columns' norms.

        With :meth:`normalize_decoder` after each step this keeps the columns on the unit
        sphere without the optimizer fighting the constraint (as in Bricken et al. 2023).
        """
        grad = self.decoder.weight.grad
        if grad is None:
            return
        w = self.decoder.weight
        grad.sub_(w * (grad * w).sum(dim=0, keepdim=True))

    # -- encoding and decoding ----------------------------------------------------------------
    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.encoder(x / self.scale - self.b_pre)
        return out

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        """``pre`` -> sparse latents (the activation function of the module docstring)."""
        z = F.relu(pre)
        if self.activation == "topk" and self.k is not None and self.k < self.n_latents:
            top = torch.topk(z, self.k, dim=-1)
            z = torch.zeros_like(z).scatter(-1, top.indices, top.values)
        elif self.activation == "batchtopk" and self.training:
            assert self.k is not None
            flat = z.reshape(-1, self.n_latents)
            keep = min(flat.numel(), self.k * flat.shape[0])
            top = torch.topk(flat.flatten(), keep)
            z = torch.zeros_like(flat).flatten().scatter(-1, top.indices, top.values).reshape(z.shape)
        elif self.activation in ("batchtopk", "jumprelu"):
            z = z * (pre > self.threshold)
        return z

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., d_in)`` activations -> ``(..., n_latents)`` sparse latents."""
        return self.activate(self.pre_activations(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = (self.decoder(z) + self.b_pre) * self.scale
        return out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return self.decode(z), z

    def latent_directions(self) -> torch.Tensor:
        """``(n_latents, d_in)``: what one unit of each latent adds to the reconstruction."""
        return (self.decoder.weight * self.scale).T.detach()

    # -- persistence ----------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {"d_in": self.d_in, "n_latents": self.n_latents, "activation": self.activation, "k": self.k}

    def save(self, directory: str | Path) -> Path:
        """Weights (safetensors) and ``sae.json`` (config + meta) into ``directory`` (read back with
        :func:`aim_agent.sae.formats.load_sae`, which opens SAELens and overcomplete checkpoints too)."""
        from safetensors.torch import save_file

        from aim_agent.files import atomic_write

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()}, str(directory / WEIGHTS_FILE))
        atomic_write(directory / META_FILE, json.dumps({**self.config(), "meta": self.meta}, indent=2).encode(),
                     fsync=False)
        return directory

    @classmethod
    def from_config(cls, info: dict[str, Any]) -> SparseAutoencoder:
        activation = str(info.get("activation", "topk"))
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown SAE activation {activation!r}; expected one of {', '.join(ACTIVATIONS)}")
        k = info.get("k")
        return cls(int(info["d_in"]), int(info["n_latents"]), activation=cast(Activation, activation),
                   k=int(k) if k is not None else None)
