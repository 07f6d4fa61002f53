"""Sites: places in a model whose units can be read, replaced and differentiated.

A :class:`Site` is a module's output seen as units, the same way a probe sees it:

- :class:`ChannelSite`: the module's unit maps ``(B, U, h, w)`` (conv channels; the hidden
  dimensions of a token layer laid on its patch grid; a vector layer as ``1 x 1`` maps);
- :class:`LatentSite`: the latents of an SAE over those maps. Replacing latents changes the
  module's output by exactly the change in the SAE's reconstruction: ``x' = x + decode(z') -
  decode(z)``; the SAE's reconstruction error stays in, so an untouched SAE changes nothing.

:func:`run_sites` runs the model once with a forward hook on the upstream site, which may
replace its units (``edit``), and a hook on the target site that records its units and ends
the forward pass there. Gradients flow from the target back to the upstream units when
``edit`` returns a tensor that requires them (:mod:`aim_agent.circuits.attribution`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from aim_agent.models.base import LoadedModel
from aim_agent.models.probe import ModelProbe, _patch_side, find_layer, first_tensor
from aim_agent.sae.model import SparseAutoencoder
from aim_agent.sae.train import to_vectors
from aim_agent.system import LayerProbe


class CircuitError(ValueError):
    """A circuit experiment that cannot run as asked; the message says why and what to do."""


class _Stop(Exception):
    """Ends a forward pass once the target site has run."""


def _token_drop(tokens: int, prefix: int) -> tuple[int, int]:
    """(grid side, tokens dropped) of a token output, as :func:`aim_agent.models.probe.to_unit_maps` reads it."""
    side = _patch_side(tokens, prefix)
    if side is not None:
        return side, prefix
    side = _patch_side(tokens, 0)
    if side is None:
        raise CircuitError(f"a token output with {tokens} tokens is not a square patch grid")
    return side, 0


class Site:
    """A module of a model, its output read as units (see the module docstring)."""

    def __init__(self, model: LoadedModel, layer: str) -> None:
        self.model = model
        self.layer = layer
        self.module = find_layer(model, layer)

    @property
    def name(self) -> str:
        return self.layer

    def maps(self, raw: torch.Tensor) -> torch.Tensor:
        """The module's raw output -> unit maps ``(B, U, h, w)``, keeping the autograd graph."""
        if raw.dim() == 4:
            return raw.float()
        if raw.dim() == 3:
            side, drop = _token_drop(raw.shape[1], self.model.prefix_tokens)
            return raw[:, drop:, :].float().transpose(1, 2).reshape(raw.shape[0], raw.shape[2], side, side)
        if raw.dim() == 2:
            return raw.float()[:, :, None, None]
        raise CircuitError(f"layer {self.layer!r} outputs shape {tuple(raw.shape)}; expected 2, 3 or 4 dims")

    def unmaps(self, raw: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`maps`: ``raw`` with its units replaced by ``maps`` (prefix tokens kept)."""
        maps = maps.to(raw.dtype)
        if raw.dim() == 4:
            return maps
        if raw.dim() == 3:
            _, drop = _token_drop(raw.shape[1], self.model.prefix_tokens)
            tokens = maps.flatten(2).transpose(1, 2)
            return torch.cat([raw[:, :drop, :], tokens], dim=1) if drop else tokens
        return maps[:, :, 0, 0]

    # units: channels by default; LatentSite overrides
    def units(self, raw: torch.Tensor) -> torch.Tensor:
        return self.maps(raw)

    def replace(self, raw: torch.Tensor, units: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        """``raw`` with its units ``original`` replaced by ``units``."""
        return self.unmaps(raw, units)

    def describe(self) -> str:
        return f"channels of {self.layer}"


ChannelSite = Site


class LatentSite(Site):
    """The latents of ``sae`` over a module's unit maps."""

    def __init__(self, model: LoadedModel, layer: str, sae: SparseAutoencoder) -> None:
        super().__init__(model, layer)
        self.sae = sae.eval()

    @property
    def name(self) -> str:
        return f"{self.layer}/sae{self.sae.n_latents}"

    def units(self, raw: torch.Tensor) -> torch.Tensor:
        maps = self.maps(raw)
        if maps.shape[1] != self.sae.d_in:
            raise CircuitError(
                f"the SAE reads {self.sae.d_in}-dim vectors but {self.layer!r} has {maps.shape[1]} units"
            )
        b, _, h, w = maps.shape
        z = self.sae.encode(to_vectors(maps))
        return z.reshape(b, h, w, -1).permute(0, 3, 1, 2)

    def replace(self, raw: torch.Tensor, units: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        maps = self.maps(raw)
        b, d, h, w = maps.shape
        delta = self.sae.decoder(to_vectors(units) - to_vectors(original).detach()) * self.sae.scale
        new = maps.detach() + delta.reshape(b, h, w, d).permute(0, 3, 1, 2)
        return self.unmaps(raw, new)

    def describe(self) -> str:
        return f"latents of an SAE ({self.sae.n_latents}) on {self.layer}"


def _replace_output(output: Any, tensor: torch.Tensor) -> Any:
    if isinstance(output, torch.Tensor):
        return tensor
    if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
        return (tensor, *output[1:])
    if isinstance(output, list) and output and isinstance(output[0], torch.Tensor):
        return [tensor, *output[1:]]
    raise CircuitError(f"cannot replace an output of type {type(output).__name__}; hook a module that returns a tensor")


Edit = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class SiteRun:
    """What one forward pass recorded: the target's units and, when hooked, the upstream units before the edit."""

    target: torch.Tensor  # (B, U, h, w), with its graph when the edit required gradients
    upstream: torch.Tensor | None  # (B, U', h', w'), detached


def run_sites(
    model: LoadedModel,
    x: torch.Tensor,
    target: Site,
    upstream: Site | None = None,
    edit: Edit | None = None,
) -> SiteRun:
    """One forward pass: optionally edit ``upstream``'s units, record ``target``'s units, stop there."""
    recorded: dict[str, torch.Tensor] = {}
    handles = []
    if upstream is not None:

        def upstream_hook(module: torch.nn.Module, inputs: Any, output: Any) -> Any:
            if "upstream" in recorded:  # a module called twice: edit its first call only
                return None
            raw = first_tensor(output)
            if raw is None:
                raise CircuitError(f"layer {upstream.layer!r} returned no tensor")
            units = upstream.units(raw)
            recorded["upstream"] = units.detach()
            if edit is None:
                return None
            new_units = edit(units.detach())
            new_raw = upstream.replace(raw, new_units, units).clone()  # never hand a leaf to in-place ops
            return _replace_output(output, new_raw)

        handles.append(upstream.module.register_forward_hook(upstream_hook))

    def target_hook(module: torch.nn.Module, inputs: Any, output: Any) -> None:
        if "target" in recorded:
            return
        raw = first_tensor(output)
        if raw is None:
            raise CircuitError(f"layer {target.layer!r} returned no tensor")
        recorded["target"] = target.units(raw)
        raise _Stop

    handles.append(target.module.register_forward_hook(target_hook))
    try:
        model.run(model.module, x)
    except _Stop:
        pass
    finally:
        for handle in handles:
            handle.remove()
    if "target" not in recorded:
        raise CircuitError(f"layer {target.layer!r} did not run in the forward pass of {model.name!r}")
    if upstream is not None and "upstream" not in recorded:
        raise CircuitError(
            f"layer {upstream.layer!r} does not run before {target.layer!r} in {model.name!r}: "
            "choose an upstream layer that comes earlier (see `aim layers`)"
        )
    return SiteRun(target=recorded["target"], upstream=recorded.get("upstream"))


# ----------------------------------------------------------------------------------------------
# from probes and names to sites


def model_of(probe: LayerProbe) -> tuple[LoadedModel, Site]:
    """The model under a probe, and the probe's units as a site (channels, or an SAE's latents)."""
    from aim_agent.sae.probe import SAEProbe

    if isinstance(probe, SAEProbe) and isinstance(probe.base, ModelProbe):
        return probe.base.model, LatentSite(probe.base.model, probe.base.layer, probe.sae)
    if isinstance(probe, ModelProbe):
        return probe.model, Site(probe.model, probe.layer)
    raise CircuitError(
        f"circuits need a model's layer; {probe.model_name}:{probe.layer} is not one (synthetic neurons and "
        "custom probes have no upstream layers to attribute to)"
    )


def previous_layer(model: LoadedModel, layer: str) -> str:
    """The layer before ``layer``: the previous listed layer at the same depth (``conv3`` for ``conv4``,
    ``encoder.layer.2`` for ``encoder.layer.3``), else the previous listed layer."""
    from aim_agent.models.probe import list_layers

    names = [info.name for info in list_layers(model)]
    if layer not in names:
        find_layer(model, layer)  # a clear error for an unknown name
        raise CircuitError(f"layer {layer!r} is not among the listed layers of {model.name!r}; give --upstream")
    index = names.index(layer)
    depth = layer.count(".")
    parent = layer.rsplit(".", 1)[0] if depth else ""
    for name in reversed(names[:index]):
        if name.count(".") == depth and (name.rsplit(".", 1)[0] if depth else "") == parent:
            return name
    for name in reversed(names[:index]):
        if not layer.startswith(name + ".") and not name.startswith(layer + "."):
            return name
    raise CircuitError(f"{layer!r} is the first layer of {model.name!r}: there is nothing upstream of it")


def prepare(model: LoadedModel, images: Sequence[Image.Image]) -> torch.Tensor:
    if not images:
        raise CircuitError("no images given: pass a non-empty list of images")
    return model.preprocess(list(images))


__all__ = ["ChannelSite", "CircuitError", "LatentSite", "Site", "SiteRun", "model_of", "prepare", "previous_layer",
           "run_sites"]
