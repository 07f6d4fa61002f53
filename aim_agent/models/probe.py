"""Reading a layer of a loaded model: :class:`ModelProbe` and :func:`list_layers`.

A forward hook on the named module captures its output and turns it into unit maps
``(B, U, h, w)``:

- conv output ``(B, C, H, W)``: as is (units = channels);
- token output ``(B, T, D)`` (a transformer block may return a tuple: its first element):
  the prefix tokens (CLS, registers) are dropped and the patches laid back on their grid,
  ``(B, D, gh, gw)`` (units = hidden dimensions);
- vector output ``(B, D)`` (pooled features, logits): ``(B, D, 1, 1)``.

With ``stop_early=True`` (the default) the hook ends the forward pass as soon as the layer
has run, so reading an early layer does not pay for the rest of the network.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from PIL import Image

from aim_agent.models.base import LoadedModel
from aim_agent.system import LayerProbe

LayerKind = Literal["conv", "tokens", "vector"]


class _StopForward(Exception):
    """Raised by a probe hook to end the forward pass once the probed layer has run."""


class LayerNotFound(LookupError):
    """A layer name that the model does not have; the message lists close matches."""


@dataclass(frozen=True)
class LayerInfo:
    """One probe-able layer: its kind, its raw output shape for one image, its unit count."""

    name: str
    kind: LayerKind
    shape: tuple[int, ...]
    units: int
    grid: tuple[int, int] = (1, 1)  # (h, w) of the unit maps
    module_type: str = ""


def first_tensor(output: Any) -> torch.Tensor | None:
    """The tensor a module produced: itself, the first of a tuple, or a model output's main field."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, tuple | list) and output:
        return first_tensor(output[0])
    if isinstance(output, dict):
        if isinstance(output.get("last_hidden_state"), torch.Tensor):
            hidden: torch.Tensor = output["last_hidden_state"]
            return hidden
        for value in output.values():
            if isinstance(value, torch.Tensor):
                return value
    return None


def _patch_side(tokens: int, prefix: int) -> int | None:
    """Side of the square patch grid left after dropping ``prefix`` tokens, or None."""
    if tokens - prefix <= 0:
        return None
    side = math.isqrt(tokens - prefix)
    return side if side * side == tokens - prefix else None


def kind_of(tensor: torch.Tensor) -> LayerKind | None:
    return {4: "conv", 3: "tokens", 2: "vector"}.get(tensor.dim())  # type: ignore[return-value]


def to_unit_maps(tensor: torch.Tensor, prefix_tokens: int) -> torch.Tensor:
    """A layer output -> ``(B, U, h, w)`` float32 (see the module docstring)."""
    if tensor.dim() == 4:
        maps = tensor
    elif tensor.dim() == 3:
        batch, tokens, dim = tensor.shape
        # Drop the prefix when what remains is a square grid; a layer that never had a prefix
        # (a patch embedding: T = gh*gw) keeps all its tokens.
        side = _patch_side(tokens, prefix_tokens)
        drop = prefix_tokens
        if side is None:
            side, drop = _patch_side(tokens, 0), 0
        if side is None:
            raise ValueError(
                f"token output with {tokens} tokens is not a square patch grid after dropping "
                f"{prefix_tokens} prefix token(s); AIM reads token layers of square inputs"
            )
        maps = tensor[:, drop:, :].transpose(1, 2).reshape(batch, dim, side, side)
    elif tensor.dim() == 2:
        maps = tensor[:, :, None, None]
    else:
        raise ValueError(f"cannot read units from an output of shape {tuple(tensor.shape)}: expected 2, 3 or 4 dims")
    return maps.detach().float().contiguous().cpu()


def _module_names(model: LoadedModel) -> list[str]:
    return [name for name, _ in model.module.named_modules() if name]


def find_layer(model: LoadedModel, layer: str) -> torch.nn.Module:
    """The module named ``layer``; :class:`LayerNotFound` lists close matches when there is none."""
    modules = dict(model.module.named_modules())
    if layer and layer in modules:
        module: torch.nn.Module = modules[layer]
        return module
    names = _module_names(model)
    close = difflib.get_close_matches(layer, names, n=6, cutoff=0.6)
    close += [n for n in names if layer and (n.endswith("." + layer) or layer in n) and n not in close][:6]
    torchvision_style = re.fullmatch(r"layer(\d)", layer)
    if torchvision_style:  # torchvision's layer1..4 are the stages 0..3 of a transformers ResNet
        stage = f"stages.{int(torchvision_style[1]) - 1}"
        close = [n for n in names if n.endswith(stage)] + close
    if close:
        hint = "close matches: " + ", ".join(close[:8])
    else:
        blocks = sorted((n for n in names if n.rsplit(".", 1)[-1].isdigit()), key=lambda n: n.count("."))
        shown = blocks[:10] or names[:10]
        hint = "layers include: " + ", ".join(shown) + (" and more" if len(names) > len(shown) else "")
    raise LayerNotFound(
        f"model {model.name!r} has no layer {layer!r}; {hint}. "
        f"List all {len(names)} layers with `aim layers {model.name}`"
    )


def _dummy_batch(model: LoadedModel) -> torch.Tensor:
    image = Image.new("RGB", (model.input_size, model.input_size), (124, 116, 104))
    return model.preprocess([image])


class ModelProbe(LayerProbe):
    """All units of one layer of a :class:`LoadedModel`, read with a forward hook."""

    cacheable = True  # the maps are a function of the pixels and the weights (the fingerprint)

    def __init__(self, model: LoadedModel, layer: str, *, stop_early: bool = True) -> None:
        self.model = model
        self.model_name = model.name
        self.layer = layer
        self.stop_early = stop_early
        self.module = find_layer(model, layer)
        self.module_type = type(self.module).__name__
        with torch.no_grad():
            raw = self._capture(_dummy_batch(model))
        kind = kind_of(raw)
        if kind is None:
            raise ValueError(
                f"layer {layer!r} of {model.name!r} outputs shape {tuple(raw.shape)}; AIM reads conv (B,C,H,W), "
                f"token (B,T,D) and vector (B,D) layers. See `aim layers {model.name}`"
            )
        self.kind: LayerKind = kind
        maps = to_unit_maps(raw, model.prefix_tokens)
        self.num_units = int(maps.shape[1])
        self.grid: tuple[int, int] = (int(maps.shape[2]), int(maps.shape[3]))

    def _capture(self, x: torch.Tensor) -> torch.Tensor:
        captured: list[torch.Tensor] = []
        stop = self.stop_early

        def hook(module: torch.nn.Module, inputs: Any, output: Any) -> None:
            if captured:  # a module called twice in one pass: keep its first call
                return
            tensor = first_tensor(output)
            if tensor is None:
                raise ValueError(f"layer {self.layer!r} ({type(module).__name__}) returned no tensor")
            captured.append(tensor)
            if stop:
                raise _StopForward

        handle = self.module.register_forward_hook(hook)
        try:
            self.model.run(self.model.module, x)
        except _StopForward:
            pass
        finally:
            handle.remove()
        if not captured:
            raise RuntimeError(f"layer {self.layer!r} did not run in the forward pass of {self.model_name!r}")
        return captured[0]

    def prepare(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Images -> the model's input batch (the model's own preprocessing)."""
        return self.model.preprocess(list(images))

    def forward_prepared(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return to_unit_maps(self._capture(x), self.model.prefix_tokens)

    def forward(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.forward_prepared(self.prepare(images))

    def view(self, image: Image.Image) -> Image.Image:
        """The image as the model sees it (resized and cropped), for drawing maps on."""
        view = getattr(self.model.preprocess, "view", None)
        return view(image) if callable(view) else image.convert("RGB")

    def fingerprint(self) -> str:
        digest = hashlib.blake2b(f"{self.model.fingerprint}|{self.layer}|{self.model.prefix_tokens}".encode(),
                                 digest_size=12)
        return digest.hexdigest()

    def __repr__(self) -> str:
        return f"ModelProbe({self.model_name!r}, {self.layer!r}, {self.kind}, units={self.num_units}, grid={self.grid})"


def list_layers(model: LoadedModel, *, dedupe: bool = True) -> list[LayerInfo]:
    """Every layer AIM can read, from one forward pass of a blank image, in module order.

    A module whose output is the very tensor another module already produced (a dropout or
    identity in eval mode, a container that returns its last child's output) is listed once:
    under the outer name when one contains the other (``stages.3``, not ``stages.3.layers.2``).
    Any module name works with :class:`ModelProbe`, listed or not.
    """
    order = {name: i for i, name in enumerate(_module_names(model))}
    outputs: dict[str, torch.Tensor] = {}
    handles = []

    def make_hook(name: str) -> Any:
        def hook(module: torch.nn.Module, inputs: Any, output: Any) -> None:
            # whole-model wrappers return a ModelOutput/dict: their tensor is listed under the block
            # that made it (``stages.3``, not ``resnet.encoder``); they stay probe-able by name
            if isinstance(output, dict):
                return
            tensor = first_tensor(output)
            if name not in outputs and tensor is not None and kind_of(tensor) is not None:
                outputs[name] = tensor

        return hook

    try:
        for name, module in model.module.named_modules():
            if not name or isinstance(module, torch.jit.ScriptModule):
                continue
            handles.append(module.register_forward_hook(make_hook(name)))
        with torch.no_grad():
            model.run(model.module, _dummy_batch(model))
    finally:
        for handle in handles:
            handle.remove()
    modules = dict(model.module.named_modules())
    owner: dict[int, str] = {}
    keep: dict[str, torch.Tensor] = {}
    for name in sorted(outputs, key=lambda n: order[n]):  # parents before children
        tensor = outputs[name]
        if dedupe and id(tensor) in owner:
            continue  # the outer (or earlier) name already lists this output
        owner[id(tensor)] = name
        keep[name] = tensor
    infos = []
    for name, tensor in keep.items():
        try:
            maps = to_unit_maps(tensor[:1], model.prefix_tokens)
        except ValueError:
            continue
        infos.append(
            LayerInfo(
                name=name,
                kind=kind_of(tensor),  # type: ignore[arg-type]
                shape=tuple(int(s) for s in tensor.shape[1:]),
                units=int(maps.shape[1]),
                grid=(int(maps.shape[2]), int(maps.shape[3])),
                module_type=type(modules[name]).__name__,
            )
        )
    return infos


def open_probe(
    spec: str,
    layer: str,
    *,
    sae: str | None = None,
    stop_early: bool = True,
    input_size: int | None = None,
    loaders: Sequence[Any] | None = None,
) -> LayerProbe:
    """The probe for ``layer`` of model ``spec``: every caller (CLI, agent, MCP) opens units here.

    Loaders that make probes directly (the world's ``synthetic`` neurons) come first; any
    other model is loaded and hooked with :class:`ModelProbe`. With ``sae`` (a directory saved
    by :class:`aim_agent.sae.SparseAutoencoder`) the units are that SAE's latents.
    """
    from aim_agent.models.base import load_model, load_probe, open_model

    probe: LayerProbe | None = load_probe(spec, layer, loaders)
    if probe is None:
        model = load_model(spec, loaders) if loaders is not None else open_model(spec, input_size=input_size)
        probe = ModelProbe(model, layer, stop_early=stop_early)
    if sae:
        from aim_agent.sae import SAEProbe, load_sae

        probe = SAEProbe(probe, load_sae(sae))  # the units are its latents
    return probe
