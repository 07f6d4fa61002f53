"""Which upstream units drive a target unit (attribution), and what removing them does (ablation).

The target's activation on an image is its unit map reduced over space (max or mean, as
:class:`~aim_agent.system.System` reads it): ``T(a)`` as a function of the upstream units'
maps ``a`` ``(U, h, w)``.

- **activation × gradient**: ``score_u = Σ_hw a_u · ∂T/∂a_u``, averaged over the images. The
  first-order estimate of what zeroing unit ``u`` would change.
- **integrated gradients** (Sundararajan et al. 2017): ``score_u = Σ_hw (a_u − a⁰_u) ·
  mean_α ∂T/∂a_u (a⁰ + α(a − a⁰))`` with ``steps`` midpoints ``α``; the scores add up to
  ``T(a) − T(a⁰)`` (completeness) up to the quadrature error. Baseline ``a⁰``: zero, or each
  unit's mean over the images.
- **ablation**: ``T`` with units set to zero (or to their mean over the images and positions,
  or to given values) against ``T`` untouched, image by image: the causal check of an edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from aim_agent.circuits.sites import CircuitError, Site, run_sites
from aim_agent.models.base import LoadedModel
from aim_agent.system import Reduce

Method = Literal["grad_x_act", "integrated_gradients"]
AblationMode = Literal["zero", "mean"]
METHODS: tuple[str, ...] = ("grad_x_act", "integrated_gradients")


def reduce_maps(maps: torch.Tensor, reduce: Reduce) -> torch.Tensor:
    """``(B, h, w)`` -> ``(B,)``: the spatial max or mean, as ``System`` reduces a unit's map."""
    flat = maps.flatten(1)
    return flat.amax(1) if reduce == "max" else flat.mean(1)


def _check_unit(site: Site, units: torch.Tensor, unit: int, what: str) -> None:
    if not 0 <= unit < units.shape[1]:
        raise CircuitError(
            f"{what} {unit} is out of range for {site.describe()}: valid units are 0..{units.shape[1] - 1}"
        )


@dataclass
class Attribution:
    """Scores of every upstream unit for one target unit, over a batch of images."""

    scores: torch.Tensor  # (U,) mean over images
    per_image: torch.Tensor  # (B, U)
    target: torch.Tensor  # (B,) the target's activation, untouched
    upstream_mean: torch.Tensor  # (U,) each upstream unit's mean activation (images and positions)
    method: str
    baseline_target: torch.Tensor | None = None  # (B,) T(a⁰), integrated gradients only

    def ranked(self, top: int | None = None, *, by: Literal["score", "abs"] = "score") -> list[int]:
        """Upstream units, strongest first (``score``: most positive; ``abs``: largest magnitude)."""
        key = self.scores if by == "score" else self.scores.abs()
        order = torch.argsort(key, descending=True, stable=True)
        return [int(i) for i in order[: top or len(order)]]


def _grads(model: LoadedModel, x: torch.Tensor, target: Site, unit: int, upstream: Site, values: torch.Tensor,
           reduce: Reduce) -> tuple[torch.Tensor, torch.Tensor]:
    """(T per image, ∂ΣT/∂a) with the upstream units set to ``values``."""
    leaf = values.detach().clone().requires_grad_(True)
    run = run_sites(model, x, target, upstream, edit=lambda _units: leaf)
    _check_unit(target, run.target, unit, "target unit")
    t = reduce_maps(run.target[:, unit], reduce)
    (grad,) = torch.autograd.grad(t.sum(), leaf)
    return t.detach(), grad


def attribute(
    model: LoadedModel,
    x: torch.Tensor,
    target: Site,
    unit: int,
    upstream: Site,
    *,
    method: Method = "grad_x_act",
    steps: int = 16,
    baseline: AblationMode = "zero",
    reduce: Reduce = "max",
) -> Attribution:
    """Score every unit of ``upstream`` by its contribution to unit ``unit`` of ``target`` on batch ``x``."""
    if method not in METHODS:
        raise CircuitError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    if steps < 1:
        raise CircuitError(f"steps must be at least 1, not {steps}")
    with torch.inference_mode(False), torch.enable_grad():
        x = x.clone()  # an input made under inference mode cannot take part in autograd
        with torch.no_grad():
            clean = run_sites(model, x, target, upstream)
        assert clean.upstream is not None
        _check_unit(target, clean.target, unit, "target unit")
        a = clean.upstream
        mean = a.mean(dim=(0, 2, 3))
        if method == "grad_x_act":
            t, grad = _grads(model, x, target, unit, upstream, a, reduce)
            per_image = (a * grad).sum(dim=(2, 3))
            return Attribution(scores=per_image.mean(0), per_image=per_image, target=t, upstream_mean=mean,
                               method=method)
        a0 = torch.zeros_like(a) if baseline == "zero" else mean[None, :, None, None].expand_as(a).clone()
        total = torch.zeros_like(a)
        for i in range(steps):
            alpha = (i + 0.5) / steps
            _, grad = _grads(model, x, target, unit, upstream, a0 + alpha * (a - a0), reduce)
            total += grad
        with torch.no_grad():
            t_base = reduce_maps(run_sites(model, x, target, upstream, edit=lambda _u: a0).target[:, unit], reduce)
        per_image = ((a - a0) * total / steps).sum(dim=(2, 3))
        return Attribution(scores=per_image.mean(0), per_image=per_image,
                           target=reduce_maps(clean.target[:, unit], reduce), upstream_mean=mean, method=method,
                           baseline_target=t_base)


@dataclass
class Ablation:
    """The target's activation on each image before and after ablating some upstream units."""

    units: list[int]
    mode: str
    before: torch.Tensor  # (B,)
    after: torch.Tensor  # (B,)

    @property
    def effect(self) -> float:
        """Mean change of the target (after − before)."""
        return float((self.after - self.before).mean())

    @property
    def relative(self) -> float:
        """Mean change relative to the mean activation before (0 when that is 0)."""
        base = float(self.before.mean())
        return self.effect / abs(base) if abs(base) > 1e-12 else 0.0


def ablate(
    model: LoadedModel,
    x: torch.Tensor,
    target: Site,
    unit: int,
    upstream: Site,
    units: Sequence[int],
    *,
    mode: AblationMode = "zero",
    values: torch.Tensor | None = None,
    reduce: Reduce = "max",
) -> Ablation:
    """Set ``units`` of ``upstream`` to zero (``mode='zero'``), to their mean over this batch's images and
    positions (``'mean'``) or to ``values[u]`` (one value per upstream unit), and measure the target."""
    if mode not in ("zero", "mean"):
        raise CircuitError(f"mode must be 'zero' or 'mean', not {mode!r}")
    chosen = sorted(set(int(u) for u in units))
    if not chosen:
        raise CircuitError("no units to ablate: give at least one upstream unit")
    with torch.no_grad():
        clean = run_sites(model, x, target, upstream)
        assert clean.upstream is not None
        _check_unit(target, clean.target, unit, "target unit")
        count = clean.upstream.shape[1]
        bad = [u for u in chosen if not 0 <= u < count]
        if bad:
            raise CircuitError(f"upstream units {bad} are out of range for {upstream.describe()}: valid units are "
                               f"0..{count - 1}")
        index = torch.as_tensor(chosen)
        if values is not None:
            fill = values.float()[index]
        elif mode == "mean":
            fill = clean.upstream[:, index].mean(dim=(0, 2, 3))
        else:
            fill = torch.zeros(len(chosen))

        def edit(units_now: torch.Tensor) -> torch.Tensor:
            out = units_now.clone()
            out[:, index] = fill[None, :, None, None].to(out.dtype).expand(out.shape[0], -1, *out.shape[2:])
            return out

        after = run_sites(model, x, target, upstream, edit=edit).target[:, unit]
        return Ablation(units=chosen, mode="values" if values is not None else mode,
                        before=reduce_maps(clean.target[:, unit], reduce), after=reduce_maps(after, reduce))


__all__ = ["METHODS", "Ablation", "AblationMode", "Attribution", "Method", "ablate", "attribute", "reduce_maps"]
