"""Training SAEs, and the numbers the field reports about them.

:func:`collect_activations` streams a dataset through a layer probe once and keeps its
activation vectors (one per spatial position) in memory, split **by image** into a training
set and a held-out set, so no held-out vector comes from an image seen in training.

:func:`fit_sae` trains on those vectors:

- loss: mean squared reconstruction error of the normalised activations; ReLU SAEs add
  ``l1_coeff`` times the latents' L1 norm;
- TopK and BatchTopK sparsity (:mod:`aim_agent.sae.model`), with the decoder's columns held
  at unit norm (the gradient's radial part is removed before each step and the columns
  renormalised after it);
- dead-latent revival: the AuxK loss of Gao et al. (2024). A latent that has not fired on
  the last ``dead_window`` training vectors is *dead*; the ``k_aux`` largest pre-activations
  among dead latents (``d_in / 2`` at most) are asked to reconstruct the residual of the
  live ones, weighted by ``aux_coeff``;
- Adam, learning rate constant then decayed linearly to zero over the last fifth of training;
- every ``eval_every`` steps (and at the end) it measures on the held-out vectors
  (:func:`evaluate`): **FVU** (fraction of variance unexplained:
  ``Σ‖x − x̂‖² / Σ‖x − mean(x)‖²``), **L0** (mean number of active latents per vector) and
  the **dead fraction** (latents that fire on no held-out vector), kept as ``history``.

:func:`train_sae` is both in one call; ``sae.meta`` keeps the final metrics, the history and
where the activations came from.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from aim_agent.exemplars.dataset import ImageFolder, resolve_dataset
from aim_agent.sae.model import Activation, SparseAutoencoder, default_k
from aim_agent.system import LayerProbe


def to_vectors(maps: torch.Tensor) -> torch.Tensor:
    """Unit maps ``(B, D, h, w)`` -> activation vectors ``(B*h*w, D)`` (image-major, then row, column)."""
    return maps.permute(0, 2, 3, 1).reshape(-1, maps.shape[1])


# ----------------------------------------------------------------------------------------------
# activations


@dataclass
class ActivationSet:
    """A layer's activation vectors over a dataset, split by image into training and held-out sets."""

    train: torch.Tensor  # (N, D) float32
    held_out: torch.Tensor  # (M, D) float32
    model_name: str
    layer: str
    probe: str  # the probe's fingerprint
    dataset: str
    dataset_fingerprint: str
    images: int  # images that decoded
    held_out_images: int
    cells: int  # spatial positions per image (h*w)
    vectors_per_image: int  # kept per image (all cells unless max_vectors subsampled them)
    seconds: float

    @property
    def d_in(self) -> int:
        return int(self.train.shape[1])

    def describe(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "layer": self.layer, "probe": self.probe, "dataset": self.dataset,
                "dataset_fingerprint": self.dataset_fingerprint, "images": self.images,
                "held_out_images": self.held_out_images, "cells_per_image": self.cells,
                "vectors_per_image": self.vectors_per_image, "train_vectors": int(self.train.shape[0]),
                "held_out_vectors": int(self.held_out.shape[0]), "d_in": self.d_in}


def _progress(enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), disable=not enabled, transient=False)


def collect_activations(
    probe: LayerProbe,
    dataset: str | Path | ImageFolder | None = None,
    *,
    held_out: float = 0.1,
    max_vectors: int = 4_000_000,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool | None = None,
) -> ActivationSet:
    """Every activation vector of ``probe``'s layer over ``dataset`` (default: the world dataset).

    A fraction ``held_out`` of the images (chosen with ``seed``) gives the held-out vectors.
    When the dataset has more than ``max_vectors`` vectors, each image contributes the same
    number of randomly chosen positions, so the total stays under it.
    """
    if not 0.0 < held_out < 1.0:
        raise ValueError(f"held_out must be between 0 and 1 (exclusive), not {held_out}")
    folder = resolve_dataset(dataset)
    n = len(folder)
    if n < 2:
        raise ValueError(f"dataset {folder.name!r} has {n} image(s): an SAE needs at least 2 (training and held out)")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator)
    n_held = min(n - 1, max(1, round(n * held_out)))
    is_held = torch.zeros(n, dtype=torch.bool)
    is_held[order[:n_held]] = True
    train_parts: list[torch.Tensor] = []
    held_parts: list[torch.Tensor] = []
    images = held_images = cells = keep = 0
    started = time.perf_counter()
    show = sys.stderr.isatty() if progress is None else progress
    with _progress(show) as bar, contextlib.closing(folder.batches(batch_size)) as batches, torch.inference_mode():
        task = bar.add_task(f"activations {probe.layer}", total=n)
        for batch in batches:
            bar.update(task, completed=batch.stop)
            if not batch.images:
                continue
            maps = probe.forward(batch.images).float()
            b, _, h, w = maps.shape
            if cells == 0:
                cells = h * w
                keep = min(cells, max(1, max_vectors // n))
            vectors = to_vectors(maps).reshape(b, cells, -1)
            if keep < cells:
                pick = torch.stack([torch.randperm(cells, generator=generator)[:keep] for _ in range(b)])
                vectors = torch.gather(vectors, 1, pick[:, :, None].expand(-1, -1, vectors.shape[2]))
            held = is_held[torch.as_tensor(batch.indices)]
            train_parts.append(vectors[~held].reshape(-1, vectors.shape[2]).clone())
            held_parts.append(vectors[held].reshape(-1, vectors.shape[2]).clone())
            images += b
            held_images += int(held.sum())
    if images == 0:
        raise ValueError(f"no image in {folder.name!r} could be decoded: cannot collect activations")
    train, held_vectors = torch.cat(train_parts), torch.cat(held_parts)
    if train.shape[0] == 0 or held_vectors.shape[0] == 0:
        raise ValueError(f"dataset {folder.name!r}: too few readable images to hold some out ({images} decoded)")
    return ActivationSet(
        train=train, held_out=held_vectors, model_name=probe.model_name, layer=probe.layer,
        probe=probe.fingerprint(), dataset=folder.name, dataset_fingerprint=folder.fingerprint(), images=images,
        held_out_images=held_images, cells=cells, vectors_per_image=keep, seconds=time.perf_counter() - started,
    )


# ----------------------------------------------------------------------------------------------
# metrics


@dataclass
class SAEMetrics:
    """How well an SAE (or any sparse code) reconstructs a set of vectors."""

    fvu: float  # fraction of variance unexplained
    l0: float  # mean active latents per vector
    dead_fraction: float  # latents active on no vector
    mse: float  # mean squared error per element
    vectors: int

    def as_dict(self) -> dict[str, float | int]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def reconstruction_metrics(x: torch.Tensor, x_hat: torch.Tensor, l0: float, fired: torch.Tensor) -> SAEMetrics:
    """FVU from vectors ``x`` ``(N, D)`` and their reconstructions ``x_hat``, with the code's ``l0`` (mean
    active latents per vector) and ``fired`` (which latents were active on some vector). One definition for
    AIM's SAEs and the reference dictionary learner."""
    x64, xh64 = x.double(), x_hat.double()
    residual = (x64 - xh64).pow(2).sum()
    total = (x64 - x64.mean(0)).pow(2).sum().clamp_min(1e-12)
    return SAEMetrics(fvu=float(residual / total), l0=float(l0), dead_fraction=float((~fired).double().mean()),
                      mse=float(residual / x.numel()), vectors=int(x.shape[0]))


@torch.no_grad()
def evaluate(sae: SparseAutoencoder, vectors: torch.Tensor, *, chunk: int = 8192) -> SAEMetrics:
    """FVU, L0 and dead fraction of ``sae`` on ``vectors`` (in eval mode: BatchTopK uses its threshold)."""
    was_training = sae.training
    sae.eval()
    try:
        x_hat, fired, active = [], torch.zeros(sae.n_latents, dtype=torch.bool), 0.0
        for lo in range(0, vectors.shape[0], chunk):
            out, z = sae(vectors[lo : lo + chunk])
            x_hat.append(out)
            fired |= (z > 0).any(0)
            active += float((z > 0).sum())
        return reconstruction_metrics(vectors, torch.cat(x_hat), active / max(1, vectors.shape[0]), fired)
    finally:
        sae.train(was_training)


# ----------------------------------------------------------------------------------------------
# training


@dataclass
class TrainSettings:
    """How :func:`fit_sae` trains (defaults suit a few hundred thousand vectors of a few hundred dimensions)."""

    n_latents: int
    activation: Activation = "topk"
    k: int | None = None
    epochs: int = 5
    batch_vectors: int = 2048
    lr: float = 2e-3
    l1_coeff: float = 3e-3  # relu only
    aux_coeff: float = 1 / 32  # AuxK, topk and batchtopk
    dead_window: int = 100_000  # training vectors without firing before a latent counts as dead
    eval_every: int = 0  # steps between held-out evaluations; 0: once per epoch
    seed: int = 0

    def resolved_k(self) -> int | None:
        if self.activation not in ("topk", "batchtopk"):
            return None
        return min(self.n_latents, self.k or default_k(self.n_latents))


@dataclass
class FitResult:
    sae: SparseAutoencoder
    metrics: SAEMetrics  # held out, at the end
    history: list[dict[str, float | int]] = field(default_factory=list)
    seconds: float = 0.0  # training only
    steps: int = 0
    train_vectors_per_s: float = 0.0


def init_sae(train: torch.Tensor, settings: TrainSettings) -> SparseAutoencoder:
    """A fresh SAE for ``train``: scale and pre-encoder bias from the data, encoder = decoder transposed."""
    sae = SparseAutoencoder(train.shape[1], settings.n_latents, activation=settings.activation,
                            k=settings.resolved_k())
    sample = train[: 65536]
    with torch.no_grad():
        mean = sample.mean(0)
        scale = (sample - mean).pow(2).mean().sqrt().clamp_min(1e-6)
        sae.scale.fill_(scale)
        sae.b_pre.copy_(mean / scale)
    return sae


def _aux_loss(sae: SparseAutoencoder, pre: torch.Tensor, residual: torch.Tensor, dead: torch.Tensor) -> torch.Tensor:
    """AuxK: the top ``k_aux`` dead latents reconstruct the (normalised) residual of the live ones."""
    n_dead = int(dead.sum())
    k_aux = min(sae.d_in // 2 or 1, n_dead)
    masked = torch.where(dead, pre, torch.full_like(pre, float("-inf")))
    top = torch.topk(masked, k_aux, dim=-1)
    # the raw pre-activations, not their ReLU: a latent pushed below zero still gets a gradient (as in SAELens)
    z_aux = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
    recon = sae.decoder(z_aux)
    scale = min(n_dead / k_aux, 1.0)
    loss: torch.Tensor = scale * (recon - residual).pow(2).mean() / residual.pow(2).mean().clamp_min(1e-12)
    return loss


def fit_sae(
    train: torch.Tensor,
    held_out: torch.Tensor,
    settings: TrainSettings,
    *,
    progress: bool | None = None,
    on_eval: Callable[[dict[str, float | int]], None] | None = None,
    start: SparseAutoencoder | None = None,
) -> FitResult:
    """Train an SAE on ``train`` vectors ``(N, D)``; measure it on ``held_out`` (see the module docstring).

    ``start`` continues training that SAE (its width and activation must match ``settings``)
    instead of a fresh one initialised from the data.
    """
    if train.dim() != 2 or held_out.dim() != 2 or train.shape[1] != held_out.shape[1]:
        raise ValueError(f"expected (N, D) training and held-out vectors, got {tuple(train.shape)} and "
                         f"{tuple(held_out.shape)}")
    if settings.epochs < 1 or settings.batch_vectors < 1 or settings.n_latents < 1:
        raise ValueError("epochs, batch_vectors and n_latents must be at least 1")
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    if start is not None and (start.n_latents, start.activation, start.d_in) != (
            settings.n_latents, settings.activation, train.shape[1]):
        raise ValueError(f"start SAE ({start.d_in} -> {start.n_latents}, {start.activation}) does not match the "
                         f"settings ({train.shape[1]} -> {settings.n_latents}, {settings.activation})")
    sae = start if start is not None else init_sae(train, settings)
    sae.train()
    optimizer = torch.optim.Adam(sae.parameters(), lr=settings.lr)
    n = train.shape[0]
    batch = min(settings.batch_vectors, n)
    steps_per_epoch = math.ceil(n / batch)
    total_steps = steps_per_epoch * settings.epochs
    decay_from = int(total_steps * 0.8)
    eval_every = settings.eval_every or steps_per_epoch
    last_fired = torch.zeros(settings.n_latents, dtype=torch.long)  # vectors seen when each last fired
    seen = 0
    history: list[dict[str, float | int]] = []
    loss_sum, loss_steps = 0.0, 0
    train_seconds = 0.0
    uses_aux = settings.activation in ("topk", "batchtopk") and settings.aux_coeff > 0
    threshold_ready = False
    show = sys.stderr.isatty() if progress is None else progress
    step = 0

    def record(epoch: int) -> None:
        nonlocal loss_sum, loss_steps
        metrics = evaluate(sae, held_out)
        entry: dict[str, float | int] = {
            "step": step, "epoch": epoch, "vectors": seen, "seconds": round(train_seconds, 3),
            "train_loss": round(loss_sum / max(1, loss_steps), 6), "fvu": round(metrics.fvu, 6),
            "l0": round(metrics.l0, 3), "dead_fraction": round(metrics.dead_fraction, 6),
            "dead_in_training": round(float(((seen - last_fired) > settings.dead_window).double().mean()), 6),
        }
        history.append(entry)
        loss_sum, loss_steps = 0.0, 0
        if on_eval is not None:
            on_eval(entry)

    with _progress(show) as bar:
        task = bar.add_task(f"SAE {settings.n_latents} latents", total=total_steps)
        for epoch in range(settings.epochs):
            order = torch.randperm(n, generator=generator)
            for lo in range(0, n, batch):
                tick = time.perf_counter()
                x = train[order[lo : lo + batch]]
                if step >= decay_from:
                    for group in optimizer.param_groups:
                        group["lr"] = settings.lr * (total_steps - step) / max(1, total_steps - decay_from)
                pre = sae.pre_activations(x)
                z = sae.activate(pre)
                x_hat = sae.decode(z)
                x_norm, x_hat_norm = x / sae.scale, x_hat / sae.scale
                loss = (x_hat_norm - x_norm).pow(2).mean()
                recon = float(loss.detach())
                if settings.activation == "relu":
                    loss = loss + settings.l1_coeff * z.abs().sum(-1).mean()
                fired = (z > 0).any(0)
                seen += x.shape[0]
                last_fired[fired] = seen
                dead = (seen - last_fired) > settings.dead_window
                if uses_aux and bool(dead.any()):
                    residual = (x_norm - x_hat_norm).detach()
                    loss = loss + settings.aux_coeff * _aux_loss(sae, pre, residual, dead)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                sae.project_decoder_grad()
                optimizer.step()
                sae.normalize_decoder()
                if settings.activation == "batchtopk":
                    with torch.no_grad():
                        positive = z[z > 0]
                        if positive.numel():
                            low = float(positive.min())
                            value = low if not threshold_ready else 0.99 * float(sae.threshold[0]) + 0.01 * low
                            sae.threshold.fill_(value)
                            threshold_ready = True
                train_seconds += time.perf_counter() - tick
                loss_sum += recon
                loss_steps += 1
                step += 1
                if step % eval_every == 0 or step == total_steps:
                    record(epoch)
                    last = history[-1]
                    bar.update(task, description=f"SAE {settings.n_latents} latents  FVU {last['fvu']:.3f}  "
                               f"L0 {last['l0']:.1f}  dead {100 * float(last['dead_fraction']):.1f}%")
                bar.advance(task)
    sae.eval()
    metrics = evaluate(sae, held_out)
    return FitResult(sae=sae, metrics=metrics, history=history, seconds=train_seconds, steps=step,
                     train_vectors_per_s=seen / max(train_seconds, 1e-9))


def train_sae(
    probe: LayerProbe,
    dataset: str | Path | ImageFolder | None,
    n_latents: int,
    *,
    activation: Activation = "topk",
    k: int | None = None,
    epochs: int = 5,
    batch_vectors: int = 2048,
    lr: float = 2e-3,
    l1_coeff: float = 3e-3,
    aux_coeff: float = 1 / 32,
    held_out: float = 0.1,
    max_vectors: int = 4_000_000,
    batch_size: int = 32,
    seed: int = 0,
    save_to: str | Path | None = None,
    progress: bool | None = None,
    activations: ActivationSet | None = None,
) -> SparseAutoencoder:
    """Fit an SAE to the activation vectors of ``probe``'s layer over ``dataset``; optionally save it.

    ``sae.meta`` holds ``metrics`` (held-out FVU, L0, dead fraction), ``history`` (the same,
    every evaluation) and where the activations came from. ``activations`` reuses vectors
    collected earlier with :func:`collect_activations`.
    """
    started = time.perf_counter()
    acts = activations or collect_activations(probe, dataset, held_out=held_out, max_vectors=max_vectors,
                                              batch_size=batch_size, seed=seed, progress=progress)
    settings = TrainSettings(n_latents=n_latents, activation=activation, k=k, epochs=epochs,
                             batch_vectors=batch_vectors, lr=lr, l1_coeff=l1_coeff, aux_coeff=aux_coeff, seed=seed)
    fit = fit_sae(acts.train, acts.held_out, settings, progress=progress)
    sae = fit.sae
    sae.meta.update(
        **acts.describe(), metrics=fit.metrics.as_dict(), history=fit.history,
        training={**{k: v for k, v in asdict(settings).items() if k != "n_latents"}, "k": sae.k, "steps": fit.steps,
                  "train_seconds": round(fit.seconds, 3), "collect_seconds": round(acts.seconds, 3),
                  "total_seconds": round(time.perf_counter() - started, 3),
                  "train_vectors_per_s": round(fit.train_vectors_per_s, 1)},
        format="aim",
    )
    if save_to is not None:
        sae.save(save_to)
    return sae


__all__ = ["ActivationSet", "FitResult", "SAEMetrics", "TrainSettings", "collect_activations", "default_k",
           "evaluate", "fit_sae", "init_sae", "reconstruction_metrics", "to_vectors", "train_sae"]
