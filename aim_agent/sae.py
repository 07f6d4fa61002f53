"""Sparse autoencoder (SAE) latents as units.

A :class:`SparseAutoencoder` maps a layer's activation vector ``x`` (one per spatial
position: a conv cell or a ViT patch) to sparse latents and back::

    x_n = x / scale                      (scale: RMS of the centred activations)
    z   = act(W_enc (x_n - b_pre) + b_enc)   act: ReLU, or TopK (ReLU, keep the k largest)
    x̂   = (W_dec z + b_pre) * scale      (decoder columns kept at unit norm)

:func:`train_sae` fits one over a dataset in a streaming pass per epoch (activations are kept
in memory after the first epoch when they fit ``buffer_mb``). :class:`SAEProbe` turns a layer
probe into a probe whose units are the SAE's latents, ``(B, n_latents, h, w)``, so
:class:`~aim_agent.system.System`, exemplars and every tool work on latents unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file

from aim_agent.exemplars.dataset import ImageFolder, resolve_dataset
from aim_agent.models.fingerprint import module_fingerprint
from aim_agent.system import LayerProbe

Activation = Literal["relu", "topk"]
WEIGHTS_FILE = "sae.safetensors"
META_FILE = "sae.json"


class SparseAutoencoder(torch.nn.Module):
    """Linear encoder + ReLU or TopK, linear decoder with unit-norm columns."""

    def __init__(self, d_in: int, n_latents: int, *, activation: Activation = "topk", k: int | None = None) -> None:
        super().__init__()
        if activation not in ("relu", "topk"):
            raise ValueError(f"activation must be 'relu' or 'topk', not {activation!r}")
        if n_latents < 1 or d_in < 1:
            raise ValueError(f"d_in and n_latents must be positive (got {d_in}, {n_latents})")
        self.d_in, self.n_latents, self.activation = d_in, n_latents, activation
        self.k = min(n_latents, k or max(1, n_latents // 16)) if activation == "topk" else None
        self.encoder = torch.nn.Linear(d_in, n_latents)
        self.decoder = torch.nn.Linear(n_latents, d_in, bias=False)
        self.b_pre = torch.nn.Parameter(torch.zeros(d_in))
        self.scale: torch.Tensor
        self.register_buffer("scale", torch.ones(()))
        with torch.no_grad():
            self.decoder.weight.copy_(self.encoder.weight.T)
            self.normalize_decoder()
            self.encoder.weight.copy_(self.decoder.weight.T)
            self.encoder.bias.zero_()
        #: anything worth keeping with the weights (layer, model, training history)
        self.meta: dict[str, Any] = {}

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        self.decoder.weight.div_(self.decoder.weight.norm(dim=0, keepdim=True).clamp_min(1e-8))

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.encoder(x / self.scale - self.b_pre)
        return out

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., d_in)`` activations -> ``(..., n_latents)`` sparse latents."""
        z = F.relu(self.pre_activations(x))
        if self.activation == "topk" and self.k is not None and self.k < self.n_latents:
            top = torch.topk(z, self.k, dim=-1)
            z = torch.zeros_like(z).scatter(-1, top.indices, top.values)
        return z

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = (self.decoder(z) + self.b_pre) * self.scale
        return out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return self.decode(z), z

    # -- persistence ---------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {"d_in": self.d_in, "n_latents": self.n_latents, "activation": self.activation, "k": self.k}

    def save(self, directory: str | Path) -> Path:
        """Weights (safetensors) and ``sae.json`` (config + meta) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(directory / WEIGHTS_FILE))
        (directory / META_FILE).write_text(json.dumps({**self.config(), "meta": self.meta}, indent=2))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> SparseAutoencoder:
        directory = Path(directory)
        meta_path, weights = directory / META_FILE, directory / WEIGHTS_FILE
        if not meta_path.is_file() or not weights.is_file():
            raise FileNotFoundError(f"no SAE in {str(directory)!r}: expected {META_FILE} and {WEIGHTS_FILE}")
        info = json.loads(meta_path.read_text())
        sae = cls(int(info["d_in"]), int(info["n_latents"]), activation=info["activation"], k=info.get("k"))
        sae.load_state_dict(load_file(str(weights)))
        sae.meta = dict(info.get("meta") or {})
        return sae.eval()


def _vectors(acts: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w) -> (B*h*w, D)."""
    return acts.permute(0, 2, 3, 1).reshape(-1, acts.shape[1])


def train_sae(
    probe: LayerProbe,
    dataset: str | Path | ImageFolder | None,
    n_latents: int,
    *,
    activation: Activation = "topk",
    k: int | None = None,
    epochs: int = 3,
    batch_size: int = 32,
    vectors_per_step: int = 1024,
    lr: float = 1e-3,
    l1_coeff: float = 1e-3,
    buffer_mb: float = 1024,
    seed: int = 0,
    save_to: str | Path | None = None,
    progress: bool | None = None,
) -> SparseAutoencoder:
    """Fit an SAE to the spatial activation vectors of ``probe``'s layer over ``dataset``.

    Each epoch streams the images through the probe (or, after the first epoch, reads the
    activations kept in memory when they fit ``buffer_mb``) and takes Adam steps on shuffled
    minibatches of ``vectors_per_step`` vectors. The loss is the mean squared reconstruction
    error of the normalised activations (plus ``l1_coeff`` times the latents' L1 norm for
    ReLU SAEs). ``sae.meta["history"]`` holds the mean reconstruction error of each epoch.
    """
    from rich.progress import Progress

    folder = resolve_dataset(dataset)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    sae: SparseAutoencoder | None = None
    optimizer: torch.optim.Optimizer | None = None
    buffer: list[torch.Tensor] = []
    buffer_bytes, buffer_full = 0, False
    history: list[float] = []
    show = sys.stderr.isatty() if progress is None else progress

    def step(x: torch.Tensor) -> float:
        assert sae is not None and optimizer is not None
        x_hat, z = sae(x)
        recon = F.mse_loss(x_hat / sae.scale, x / sae.scale)
        loss = recon + (l1_coeff * z.abs().sum(-1).mean() if activation == "relu" else 0.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        sae.normalize_decoder()
        return float(recon.detach())

    def train_on(vectors: torch.Tensor) -> tuple[float, int]:
        order = torch.randperm(vectors.shape[0], generator=generator)
        total, steps = 0.0, 0
        for lo in range(0, len(order), vectors_per_step):
            total += step(vectors[order[lo : lo + vectors_per_step]])
            steps += 1
        return total, steps

    with Progress(disable=not show, transient=True) as bar:
        task = bar.add_task(f"SAE {probe.layer} ({n_latents} latents)", total=epochs * len(folder))
        for epoch in range(epochs):
            total, steps = 0.0, 0
            if epoch > 0 and buffer and not buffer_full:
                all_vectors = torch.cat(buffer)
                total, steps = train_on(all_vectors)
                bar.advance(task, len(folder))
            else:
                with contextlib.closing(folder.batches(batch_size)) as batches:  # stops the decoder thread
                    for batch in batches:
                        if not batch.images:
                            continue
                        with torch.no_grad():
                            vectors = _vectors(probe.forward(batch.images)).float().clone()
                        if sae is None:
                            sae = SparseAutoencoder(vectors.shape[1], n_latents, activation=activation, k=k)
                            with torch.no_grad():
                                mean = vectors.mean(0)
                                scale = (vectors - mean).pow(2).mean().sqrt().clamp_min(1e-6)
                                sae.scale.fill_(scale)
                                sae.b_pre.copy_(mean / scale)
                            optimizer = torch.optim.Adam(sae.parameters(), lr=lr)
                        if epoch == 0 and epochs > 1 and not buffer_full:
                            buffer_bytes += vectors.numel() * 4
                            if buffer_bytes <= buffer_mb * 2**20:
                                buffer.append(vectors)
                            else:
                                buffer, buffer_full = [], True
                        t, s = train_on(vectors)
                        total, steps = total + t, steps + s
                        bar.advance(task, batch.stop - batch.start)
            if sae is None:
                raise ValueError(f"no image in {folder.name!r} could be decoded: cannot train an SAE")
            history.append(total / max(steps, 1))
    assert sae is not None
    sae.meta.update(
        model_name=probe.model_name, layer=probe.layer, probe=probe.fingerprint(), dataset=folder.name,
        dataset_fingerprint=folder.fingerprint(), epochs=epochs, history=history, lr=lr, seed=seed,
    )
    sae.eval()
    if save_to is not None:
        sae.save(save_to)
    return sae


class SAEProbe(LayerProbe):
    """The latents of an SAE over a base layer probe: ``(B, n_latents, h, w)``."""

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

    def forward(self, images: Sequence[Image.Image]) -> torch.Tensor:
        acts = self.base.forward(images)
        b, _, h, w = acts.shape
        with torch.no_grad():
            z = self.sae.encode(_vectors(acts.float()))
        return z.reshape(b, h, w, self.num_units).permute(0, 3, 1, 2).contiguous()

    def view(self, image: Image.Image) -> Image.Image:
        view = getattr(self.base, "view", None)
        return view(image) if callable(view) else image

    def fingerprint(self) -> str:
        return self._fingerprint


def sae_sparsity(sae: SparseAutoencoder, vectors: torch.Tensor) -> float:
    """Mean number of active latents per vector (L0)."""
    with torch.no_grad():
        return float((sae.encode(vectors) > 0).float().sum(-1).mean())


__all__ = ["SAEProbe", "SparseAutoencoder", "sae_sparsity", "train_sae"]
