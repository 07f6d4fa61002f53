"""Opening SAE checkpoints: AIM's own, SAELens's and overcomplete's. Safetensors only, never pickles.

Each layout maps exactly onto :class:`~aim_agent.sae.model.SparseAutoencoder`:

**AIM** (``aim sae train``): a folder with ``sae.safetensors`` (the module's state dict)
and ``sae.json`` (``d_in``, ``n_latents``, ``activation``, ``k``, ``meta``).

**SAELens** (``SAE.save_model``): a folder with ``cfg.json`` and ``sae_weights.safetensors``
holding ``W_enc (d_in, d_sae)``, ``W_dec (d_sae, d_in)``, ``b_enc (d_sae)``, ``b_dec (d_in)``
and, for JumpReLU, ``threshold (d_sae)``. ``cfg.json`` gives ``d_in``, ``d_sae``,
``architecture`` (``standard``, ``topk`` with ``k``, ``jumprelu``; BatchTopK SAEs are saved
as ``jumprelu``), ``apply_b_dec_to_input`` and ``normalize_activations``; older files give
``activation_fn_str`` / ``activation_fn_kwargs`` instead. SAELens computes
``z = act((x - b_dec·apply) W_enc + b_enc)``, ``x̂ = z W_dec + b_dec``.

**overcomplete** (``overcomplete.sae``, default ``linear`` encoder): a ``.safetensors`` file
(or a folder holding one) of the model's state dict: ``encoder.final_block.0.weight
(n, d_in)``, ``encoder.final_block.0.bias (n)``, ``dictionary._weights (n, d_in)``,
``dictionary.multiplier`` and, for ``JumpSAE``, ``thresholds (n)`` (log thresholds). What the
state dict does not hold comes from a JSON sidecar (``<file>.json`` or ``config.json``) or the
safetensors metadata: ``{"sae": "SAE" | "TopKSAE" | "BatchTopKSAE" | "JumpSAE", "top_k": 32,
"running_threshold": 0.1, "dictionary_normalization": "l2"}``. overcomplete computes
``z = act(x W^T + b)``, ``x̂ = z D`` with ``D = normalize(_weights) · exp(multiplier)``.

A ``.pt``/``.pth``/``.ckpt``/``.bin`` file is refused: those are pickles, and unpickling runs
code from the file. Convert once, in a process you trust::

    from safetensors.torch import save_file
    save_file(torch.load("sae.pt", weights_only=True), "sae.safetensors")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from aim_agent.sae.model import META_FILE, WEIGHTS_FILE, SparseAutoencoder

SAELENS_CFG = "cfg.json"
SAELENS_WEIGHTS = "sae_weights.safetensors"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle")
OVERCOMPLETE_KEYS = ("encoder.final_block.0.weight", "encoder.final_block.0.bias", "dictionary._weights")


class SAEFormatError(ValueError):
    """A checkpoint that is not in a layout AIM reads; the message says which layouts it expects."""


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    tensors: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt") as f:
        metadata = dict(f.metadata() or {})
        for key in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
            tensors[key] = f.get_tensor(key).float()
    return tensors, metadata


def _expect(tensors: dict[str, torch.Tensor], key: str, shape: tuple[int, ...], where: Path) -> torch.Tensor:
    if key not in tensors:
        raise SAEFormatError(f"{where} has no tensor {key!r} (it has {', '.join(sorted(tensors)) or 'none'})")
    tensor = tensors[key]
    if tuple(tensor.shape) != shape:
        raise SAEFormatError(f"{where}: {key} has shape {tuple(tensor.shape)}, expected {shape}")
    return tensor


def describe_layouts() -> str:
    return (
        f"an AIM SAE folder ({META_FILE} + {WEIGHTS_FILE}), a SAELens folder ({SAELENS_CFG} + {SAELENS_WEIGHTS}), "
        "or an overcomplete state dict in a .safetensors file (keys encoder.final_block.0.weight, "
        "dictionary._weights, ...)"
    )


def load_sae(path: str | Path) -> SparseAutoencoder:
    """The SAE at ``path`` in any layout of the module docstring, in eval mode.

    ``sae.meta["format"]`` says which layout it came from.
    """
    path = Path(path).expanduser()
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise SAEFormatError(
            f"{path.name} is a pickle file; AIM loads SAEs from safetensors only (unpickling runs code from "
            "the file). Convert it where you trust it: save_file(torch.load(PATH, weights_only=True), "
            "'sae.safetensors'), then give that file or its folder"
        )
    if not path.exists():
        raise FileNotFoundError(f"no SAE at {str(path)!r}: expected {describe_layouts()}")
    if path.is_dir():
        if (path / META_FILE).is_file() and (path / WEIGHTS_FILE).is_file():
            sae = _load_aim(path)
        elif (path / SAELENS_CFG).is_file() and (path / SAELENS_WEIGHTS).is_file():
            sae = _load_saelens(path)
        else:
            candidates = sorted(path.glob("*.safetensors"))
            if len(candidates) != 1:
                found = ", ".join(p.name for p in path.iterdir()) or "nothing"
                raise SAEFormatError(f"no SAE layout recognised in {str(path)!r} (it holds {found}); "
                                     f"expected {describe_layouts()}")
            sae = _load_overcomplete(candidates[0])
    elif path.suffix == ".safetensors":
        if path.name == WEIGHTS_FILE and (path.parent / META_FILE).is_file():
            sae = _load_aim(path.parent)
        elif path.name == SAELENS_WEIGHTS and (path.parent / SAELENS_CFG).is_file():
            sae = _load_saelens(path.parent)
        else:
            sae = _load_overcomplete(path)
    else:
        raise SAEFormatError(f"cannot open {str(path)!r} as an SAE: expected {describe_layouts()}")
    return sae.eval()


def _load_aim(directory: Path) -> SparseAutoencoder:
    info = json.loads((directory / META_FILE).read_text())
    sae = SparseAutoencoder.from_config(info)
    state, _ = _read_safetensors(directory / WEIGHTS_FILE)
    state.setdefault("threshold", torch.zeros(sae.n_latents))  # SAEs saved before thresholds existed
    try:
        sae.load_state_dict(state)
    except RuntimeError as exc:
        raise SAEFormatError(f"{directory / WEIGHTS_FILE} does not match {directory / META_FILE}: {exc}") from None
    sae.meta = dict(info.get("meta") or {})
    sae.meta.setdefault("format", "aim")
    return sae


def _saelens_architecture(cfg: dict[str, Any]) -> tuple[str, int | None]:
    arch = str(cfg.get("architecture") or "standard")
    fn = str(cfg.get("activation_fn_str") or cfg.get("activation_fn") or "relu")
    kwargs = cfg.get("activation_fn_kwargs") or {}
    if arch == "standard" and fn == "topk":  # SAELens < 6
        arch = "topk"
    k = cfg.get("k", kwargs.get("k"))
    return arch, int(k) if k is not None else None


def _load_saelens(directory: Path) -> SparseAutoencoder:
    where = directory / SAELENS_WEIGHTS
    cfg = json.loads((directory / SAELENS_CFG).read_text())
    d_in, d_sae = int(cfg["d_in"]), int(cfg["d_sae"])
    arch, k = _saelens_architecture(cfg)
    norm = str(cfg.get("normalize_activations") or "none")
    if norm != "none":
        raise SAEFormatError(
            f"{directory}: normalize_activations={norm!r} is not supported (AIM reads SAELens SAEs with 'none'); "
            "fold the normalisation into the weights (SAELens: fold_activation_norm_scaling_factor) and save again"
        )
    if str(cfg.get("reshape_activations") or "none") != "none":
        raise SAEFormatError(f"{directory}: reshape_activations (hook_z SAEs) is not supported")
    state, _ = _read_safetensors(where)
    w_enc = _expect(state, "W_enc", (d_in, d_sae), where)
    w_dec = _expect(state, "W_dec", (d_sae, d_in), where)
    b_enc = _expect(state, "b_enc", (d_sae,), where)
    b_dec = _expect(state, "b_dec", (d_in,), where)
    if arch == "standard":
        sae = SparseAutoencoder(d_in, d_sae, activation="relu")
    elif arch == "topk":
        if k is None:
            raise SAEFormatError(f"{directory / SAELENS_CFG}: a topk SAE needs 'k'")
        sae = SparseAutoencoder(d_in, d_sae, activation="topk", k=k)
    elif arch == "jumprelu":
        sae = SparseAutoencoder(d_in, d_sae, activation="jumprelu")
        if "threshold" in state:
            threshold = _expect(state, "threshold", (d_sae,), where)
        else:
            threshold = torch.exp(_expect(state, "log_threshold", (d_sae,), where))
        sae.threshold.copy_(threshold)
    else:
        raise SAEFormatError(
            f"{directory}: SAELens architecture {arch!r} is not supported; AIM reads standard, topk and jumprelu "
            "(BatchTopK SAEs are saved as jumprelu)"
        )
    apply_b_dec = bool(cfg.get("apply_b_dec_to_input", True))
    with torch.no_grad():
        sae.encoder.weight.copy_(w_enc.T)
        # AIM subtracts b_pre before encoding; SAELens only when apply_b_dec_to_input: fold the difference
        sae.encoder.bias.copy_(b_enc if apply_b_dec else b_enc + b_dec @ w_enc)
        sae.decoder.weight.copy_(w_dec.T)
        sae.b_pre.copy_(b_dec)
        sae.scale.fill_(1.0)
    meta = cfg.get("metadata") or cfg.get("meta") or {}
    sae.meta = {"format": "saelens", "source": str(directory), "architecture": arch,
                "hook_name": meta.get("hook_name", cfg.get("hook_name")),
                "model_name": meta.get("model_name", cfg.get("model_name"))}
    return sae


def _overcomplete_config(path: Path, metadata: dict[str, str]) -> dict[str, Any]:
    for side in (path.with_suffix(".json"), path.parent / "config.json"):
        if side.is_file():
            data = json.loads(side.read_text())
            if isinstance(data, dict):
                return data
    config: dict[str, Any] = {}
    for key, value in metadata.items():
        try:
            config[key] = json.loads(value)
        except ValueError:
            config[key] = value
    return config


def _normalize_rows(d: torch.Tensor, how: str) -> torch.Tensor:
    """overcomplete's dictionary normalisations (each row is one atom)."""
    l2: torch.Tensor = torch.linalg.vector_norm(d, dim=1, keepdim=True)
    l1: torch.Tensor = d.abs().sum(dim=1, keepdim=True)
    divisors = {"l2": l2 + 1e-8, "max_l2": l2.amax(dim=0, keepdim=True), "l1": l1 + 1e-8,
                "max_l1": l1.amax(dim=0, keepdim=True), "identity": torch.ones(())}
    if how in divisors:
        return d / divisors[how]
    raise SAEFormatError(f"unknown dictionary_normalization {how!r}; expected l2, max_l2, l1, max_l1 or identity")


def _load_overcomplete(path: Path) -> SparseAutoencoder:
    state, metadata = _read_safetensors(path)
    missing = [k for k in OVERCOMPLETE_KEYS if k not in state]
    if missing:
        raise SAEFormatError(
            f"{path} is not an overcomplete SAE with the default linear encoder (missing {', '.join(missing)}); "
            f"expected {describe_layouts()}"
        )
    extra = sorted(k for k in state if k.startswith("encoder.") and k not in OVERCOMPLETE_KEYS)
    if extra:
        raise SAEFormatError(f"{path}: overcomplete encoders other than 'linear' are not supported (found {extra[0]})")
    weight, bias, dictionary = (state[k] for k in OVERCOMPLETE_KEYS)
    n, d_in = weight.shape
    _expect(state, "encoder.final_block.0.bias", (n,), path)
    _expect(state, "dictionary._weights", (n, d_in), path)
    config = _overcomplete_config(path, metadata)
    kind = str(config.get("sae", "JumpSAE" if "thresholds" in state else "SAE"))
    if kind == "SAE":
        sae = SparseAutoencoder(d_in, n, activation="relu")
    elif kind in ("TopKSAE", "BatchTopKSAE"):
        if config.get("top_k") is None:
            raise SAEFormatError(f"{path}: a {kind} needs top_k (in {path.with_suffix('.json').name}, "
                                 "config.json, or the safetensors metadata)")
        if kind == "TopKSAE":
            sae = SparseAutoencoder(d_in, n, activation="topk", k=int(config["top_k"]))
        else:
            if config.get("running_threshold") is None:
                raise SAEFormatError(f"{path}: a BatchTopKSAE needs its running_threshold (it is not in the "
                                     "state dict): add it to the JSON sidecar")
            sae = SparseAutoencoder(d_in, n, activation="jumprelu")
            sae.threshold.fill_(float(config["running_threshold"]))
    elif kind == "JumpSAE":
        sae = SparseAutoencoder(d_in, n, activation="jumprelu")
        sae.threshold.copy_(torch.exp(_expect(state, "thresholds", (n,), path)))  # stored as log thresholds
    else:
        raise SAEFormatError(f"{path}: overcomplete SAE class {kind!r} is not supported "
                             "(SAE, TopKSAE, BatchTopKSAE and JumpSAE are)")
    multiplier = state.get("dictionary.multiplier", torch.zeros(()))
    directions = _normalize_rows(dictionary, str(config.get("dictionary_normalization", "l2")))
    directions = directions * torch.exp(multiplier)
    with torch.no_grad():
        sae.encoder.weight.copy_(weight)
        sae.encoder.bias.copy_(bias)
        sae.decoder.weight.copy_(directions.T)
        sae.b_pre.zero_()
        sae.scale.fill_(1.0)
    sae.meta = {"format": "overcomplete", "source": str(path), "class": kind}
    return sae


__all__ = ["SAEFormatError", "describe_layouts", "load_sae"]
