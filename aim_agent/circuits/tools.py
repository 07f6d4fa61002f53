"""The circuit tools ``attribute`` and ``ablate``: defined once, reached from Python, code mode, LangChain and MCP.

Both work on the loaded unit (``needs_system``): its model, its layer, and, when the unit is
an SAE latent, its SAE. The upstream units are the channels of an earlier layer (default: the
layer just before the unit's own) or the latents of an SAE trained on that layer (``sae``).

A caller names an upstream SAE the way MCP clients name models: only SAEs the person who
started AIM chose can be loaded. That is a name the context offers (``ctx.saes``,
name -> path) or a path in the current trust scope (:mod:`aim_agent.models.trust`: the
command line's models and ``--trust-model``, an MCP server's configured ``[models]``).
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from aim_agent.tools.base import AimImage, ToolContext, ToolError, ToolInput, ToolOutput, tool

if TYPE_CHECKING:  # torch comes with these: imported when a tool runs, so listing the tools stays fast
    from aim_agent.circuits.sites import Site
    from aim_agent.models.base import LoadedModel

MAX_CIRCUIT_IMAGES = 64  # one call: gradients through the model for each image, several times for IG
MAX_UNITS = 256
_LOCK = threading.Lock()


@lru_cache(maxsize=4)
def _sae_at(path: str, mtime_ns: int) -> Any:
    from aim_agent.sae.formats import load_sae

    return load_sae(path)


def load_sae_cached(path: str) -> Any:
    """An SAE by path, loaded once per file version."""
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise ToolError(f"no SAE at {path!r}: give the folder `aim sae train --out` wrote (or a SAELens/overcomplete "
                        "checkpoint)")
    stamp = max((p.stat().st_mtime_ns for p in resolved.rglob("*")), default=0) if resolved.is_dir() else \
        resolved.stat().st_mtime_ns
    with _LOCK:
        return _sae_at(str(resolved), stamp)


def offered_sae(ctx: ToolContext, text: str) -> str:
    """The path of the SAE a call named, if the person who started AIM offered it (see the module docstring)."""
    from aim_agent.models.trust import HOW_TO_TRUST, is_trusted

    offered = ctx.saes
    if text in offered:
        return str(offered[text])
    if is_trusted(text):
        return text
    names = ", ".join(repr(n) for n in offered) or "none"
    raise ToolError(
        f"the SAE {text!r} is not offered here (offered by name: {names}). Only SAEs the person who started AIM "
        f"chose can be loaded; {HOW_TO_TRUST}"
    )


def upstream_site(model: LoadedModel, target: Site, layer: str | None, sae: str | None) -> Site:
    """The upstream units of a call: channels of ``layer`` (default: the layer before the target's),
    or the latents of the SAE at ``sae`` on that layer."""
    from aim_agent.circuits.sites import LatentSite, Site, previous_layer

    name = layer or previous_layer(model, target.layer)
    if sae:
        return LatentSite(model, name, load_sae_cached(sae))
    return Site(model, name)


class UpstreamInput(ToolInput):
    layer: str | None = Field(default=None, max_length=300,
                              description="upstream layer (default: the layer just before the unit's own)")
    sae: str | None = Field(default=None, max_length=500,
                            description="an SAE trained on that layer (a name or path AIM offers): its latents are the "
                            "upstream units")


class AttributeInput(UpstreamInput):
    images: list[AimImage] = Field(min_length=1, max_length=MAX_CIRCUIT_IMAGES,
                                   description="images on which to measure (e.g. the unit's top exemplars)")
    top: int = Field(default=10, ge=1, le=100, description="how many upstream units to return")
    method: Literal["grad_x_act", "integrated_gradients"] = Field(
        default="grad_x_act", description="activation x gradient, or integrated gradients (slower, exact in sum)")
    steps: int = Field(default=16, ge=2, le=64, description="integration steps (integrated_gradients only)")


class UpstreamUnit(BaseModel):
    unit: int = Field(description="index of the upstream unit (channel or SAE latent)")
    score: float = Field(description="its contribution to the unit's activation, averaged over the images")
    share: float = Field(description="score / sum of |scores| over all upstream units")
    mean_activation: float = Field(description="the upstream unit's mean activation on the images")


class AttributeOutput(ToolOutput):
    upstream: str = Field(description="what the upstream units are")
    method: str = Field(description="how the scores were computed (grad_x_act or integrated_gradients)")
    units: list[UpstreamUnit] = Field(description="the top upstream units, largest contribution first")
    target_activations: list[float] = Field(description="the unit's activation on each image")
    total: float = Field(description="sum of all upstream scores (integrated gradients: about activation - baseline)")

    def python(self) -> tuple[list[int], list[float]]:
        return [u.unit for u in self.units], [u.score for u in self.units]


@tool("attribute", positional=("images",), read_only=True, idempotent=True, needs_system=True)
def attribute_tool(ctx: ToolContext, args: AttributeInput) -> AttributeOutput:
    """Rank the upstream units (an earlier layer's channels, or an SAE's latents) by how much they drive the unit.

    Score of an upstream unit: its activation times the gradient of the unit's activation with
    respect to it, summed over positions and averaged over the images (``method=
    "integrated_gradients"`` integrates the gradient from a zero baseline instead). Positive
    scores excite the unit, negative ones inhibit it. Check a candidate with ``ablate``.
    Python: ``units, scores = tools.attribute(exemplar_images, top=5)``.
    """
    model, target = _sites(ctx)
    upstream = upstream_site(model, target, args.layer, offered_sae(ctx, args.sae) if args.sae else None)
    system = ctx.require_system()
    from aim_agent.circuits.attribution import attribute
    from aim_agent.circuits.sites import prepare

    result = attribute(model, prepare(model, args.images), target, system.unit, upstream, method=args.method,
                       steps=args.steps, reduce=system.reduce)
    norm = float(result.scores.abs().sum()) or 1.0
    units = [UpstreamUnit(unit=u, score=round(float(result.scores[u]), 6),
                          share=round(float(result.scores[u]) / norm, 4),
                          mean_activation=round(float(result.upstream_mean[u]), 6))
             for u in result.ranked(args.top)]
    return AttributeOutput(upstream=upstream.describe(), method=args.method, units=units,
                           target_activations=[round(float(v), 4) for v in result.target],
                           total=round(float(result.scores.sum()), 6))


class AblateInput(UpstreamInput):
    units: list[int] = Field(min_length=1, max_length=MAX_UNITS, description="upstream units to ablate together")
    images: list[AimImage] = Field(min_length=1, max_length=MAX_CIRCUIT_IMAGES, description="images to test on")
    mode: Literal["zero", "mean"] = Field(
        default="zero", description="zero: set the units to 0; mean: to their mean over these images and positions")


class AblateOutput(ToolOutput):
    upstream: str = Field(description="what the upstream units are")
    units: list[int] = Field(description="the upstream units that were ablated")
    mode: str = Field(description="zero or mean: what the ablated units were set to")
    before: list[float] = Field(description="the unit's activation on each image, untouched")
    after: list[float] = Field(description="the unit's activation on each image with the upstream units ablated")
    mean_before: float = Field(description="mean of before")
    mean_after: float = Field(description="mean of after")
    relative_change: float = Field(description="(mean_after - mean_before) / |mean_before|")

    def python(self) -> tuple[list[float], list[float]]:
        return self.before, self.after


@tool("ablate", positional=("units", "images"), read_only=True, idempotent=True, needs_system=True)
def ablate_tool(ctx: ToolContext, args: AblateInput) -> AblateOutput:
    """Ablate upstream units and measure the unit: its activation on each image before and after.

    The units (channels of an earlier layer, or latents of an SAE on it) are set to zero, or to
    their mean over these images, all at once; the rest of the network runs unchanged. A large
    drop means the unit depends on them: a causal edge of its circuit.
    Python: ``before, after = tools.ablate([12, 40], images)``.
    """
    model, target = _sites(ctx)
    upstream = upstream_site(model, target, args.layer, offered_sae(ctx, args.sae) if args.sae else None)
    system = ctx.require_system()
    from aim_agent.circuits.attribution import ablate
    from aim_agent.circuits.sites import prepare

    result = ablate(model, prepare(model, args.images), target, system.unit, upstream, args.units, mode=args.mode,
                    reduce=system.reduce)
    return AblateOutput(upstream=upstream.describe(), units=result.units, mode=result.mode,
                        before=[round(float(v), 4) for v in result.before],
                        after=[round(float(v), 4) for v in result.after],
                        mean_before=round(float(result.before.mean()), 6),
                        mean_after=round(float(result.after.mean()), 6), relative_change=round(result.relative, 4))


def _sites(ctx: ToolContext) -> tuple[LoadedModel, Site]:
    from aim_agent.circuits.sites import CircuitError, model_of

    try:
        return model_of(ctx.require_system().probe)
    except CircuitError as exc:
        raise ToolError(str(exc)) from None


CIRCUIT_TOOLS = [attribute_tool, ablate_tool]

__all__ = ["CIRCUIT_TOOLS", "ablate_tool", "attribute_tool", "load_sae_cached", "offered_sae",
           "upstream_site"]
