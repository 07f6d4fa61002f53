"""SAELens and overcomplete checkpoints, written by the test in their documented layouts, read exactly;
pickles refused without being opened."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from aim_agent.sae import SAEFormatError, load_sae

D, N = 10, 24


def _saelens(folder, arch: str, *, apply_b_dec: bool = True, extra: dict | None = None, old_style: bool = False):
    torch.manual_seed(0)
    state = {"W_enc": torch.randn(D, N), "W_dec": torch.randn(N, D), "b_enc": torch.randn(N) * 0.1,
             "b_dec": torch.randn(D)}
    if arch == "jumprelu":
        state["threshold"] = torch.rand(N) * 0.5
    cfg = {"d_in": D, "d_sae": N, "architecture": arch, "apply_b_dec_to_input": apply_b_dec,
           "normalize_activations": "none", "dtype": "float32", "device": "cpu",
           "metadata": {"hook_name": "blocks.3.hook_resid_post", "model_name": "tiny"}, **(extra or {})}
    if old_style:  # SAELens < 6: top-k named through the activation function
        cfg.pop("architecture")
        cfg.update(activation_fn_str="topk", activation_fn_kwargs={"k": 4})
    folder.mkdir()
    save_file(state, str(folder / "sae_weights.safetensors"))
    (folder / "cfg.json").write_text(json.dumps(cfg))
    return state


def _saelens_reference(state, x, arch, *, apply_b_dec=True, k=None):
    """SAELens's formulas, written out: z = act((x - b_dec*apply) W_enc + b_enc), x̂ = z W_dec + b_dec."""
    pre = (x - state["b_dec"] * apply_b_dec) @ state["W_enc"] + state["b_enc"]
    if arch == "standard":
        z = torch.relu(pre)
    elif arch == "topk":
        top = torch.topk(pre, k, dim=-1)
        z = torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))
    else:
        z = torch.relu(pre) * (pre > state["threshold"])
    return z, z @ state["W_dec"] + state["b_dec"]


@pytest.mark.parametrize(("arch", "apply_b_dec", "k"), [("standard", True, None), ("standard", False, None),
                                                         ("topk", True, 4), ("jumprelu", True, None)])
def test_saelens_layouts_load_exactly(tmp_path, arch, apply_b_dec, k) -> None:
    state = _saelens(tmp_path / "sl", arch, apply_b_dec=apply_b_dec, extra={"k": k} if k else None)
    sae = load_sae(tmp_path / "sl")
    assert sae.meta["format"] == "saelens" and sae.meta["hook_name"] == "blocks.3.hook_resid_post"
    x = torch.randn(40, D) * 2
    z_ref, x_ref = _saelens_reference(state, x, arch, apply_b_dec=apply_b_dec, k=k)
    z, x_hat = sae.encode(x), sae.decode(sae.encode(x))
    torch.testing.assert_close(z, z_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x_hat, x_ref, atol=1e-4, rtol=1e-5)
    # the weights file alone is enough too
    torch.testing.assert_close(load_sae(tmp_path / "sl" / "sae_weights.safetensors").encode(x), z)


def test_old_saelens_topk_config_and_unsupported_settings(tmp_path) -> None:
    state = _saelens(tmp_path / "old", "standard", old_style=True)
    x = torch.randn(7, D)
    torch.testing.assert_close(load_sae(tmp_path / "old").encode(x), _saelens_reference(state, x, "topk", k=4)[0])
    _saelens(tmp_path / "norm", "standard", extra={"normalize_activations": "constant_norm_rescale"})
    with pytest.raises(SAEFormatError, match="normalize_activations"):
        load_sae(tmp_path / "norm")
    _saelens(tmp_path / "gated", "gated")
    with pytest.raises(SAEFormatError, match="architecture 'gated' is not supported"):
        load_sae(tmp_path / "gated")


def _overcomplete(path, *, jump: bool = False, multiplier: float = 0.0):
    torch.manual_seed(5)
    state = {"encoder.final_block.0.weight": torch.randn(N, D), "encoder.final_block.0.bias": torch.randn(N) * 0.1,
             "dictionary._weights": torch.randn(N, D), "dictionary.multiplier": torch.tensor(multiplier)}
    if jump:
        state["thresholds"] = torch.randn(N) * 0.3 - 1.0
    save_file(state, str(path))
    return state


def _overcomplete_reference(state, x, *, top_k=None, threshold=None, log_thresholds=None):
    """overcomplete's formulas: pre = x W^T + b, codes = relu(pre) (then top-k / threshold), x̂ = codes D."""
    pre = x @ state["encoder.final_block.0.weight"].T + state["encoder.final_block.0.bias"]
    codes = torch.relu(pre)
    if top_k is not None:
        top = torch.topk(codes, top_k, dim=-1)
        codes = torch.zeros_like(codes).scatter(-1, top.indices, top.values)
    if threshold is not None:
        codes = codes * (codes >= threshold)
    if log_thresholds is not None:
        codes = codes.clone()
        codes[codes < torch.exp(log_thresholds).expand_as(codes)] = 0
    w = state["dictionary._weights"]
    dictionary = w / (w.norm(dim=1, keepdim=True) + 1e-8) * torch.exp(state["dictionary.multiplier"])
    return codes, codes @ dictionary


def test_overcomplete_topk_with_a_sidecar(tmp_path) -> None:
    state = _overcomplete(tmp_path / "oc.safetensors", multiplier=0.3)
    (tmp_path / "oc.json").write_text(json.dumps({"sae": "TopKSAE", "top_k": 5}))
    sae = load_sae(tmp_path / "oc.safetensors")
    assert sae.meta["format"] == "overcomplete" and sae.k == 5
    x = torch.randn(30, D)
    z_ref, x_ref = _overcomplete_reference(state, x, top_k=5)
    torch.testing.assert_close(sae.encode(x), z_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sae.decode(sae.encode(x)), x_ref, atol=1e-4, rtol=1e-4)


def test_overcomplete_jump_and_batchtopk_from_metadata(tmp_path) -> None:
    folder = tmp_path / "jump"
    folder.mkdir()
    state = _overcomplete(folder / "model.safetensors", jump=True)
    x = torch.randn(30, D) * 2
    z_ref, x_ref = _overcomplete_reference(state, x, log_thresholds=state["thresholds"])
    sae = load_sae(folder)  # a folder holding one safetensors file
    assert sae.activation == "jumprelu"
    torch.testing.assert_close(sae.encode(x), z_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sae.decode(sae.encode(x)), x_ref, atol=1e-4, rtol=1e-4)
    # BatchTopKSAE: its running threshold is not in the state dict, so it comes in the metadata
    path = tmp_path / "btk.safetensors"
    state = _overcomplete(path)
    data = {k: v for k, v in state.items()}
    save_file(data, str(path), metadata={"sae": "BatchTopKSAE", "top_k": "64", "running_threshold": "0.7"})
    z_ref, _ = _overcomplete_reference(state, x, threshold=0.7)
    torch.testing.assert_close(load_sae(path).encode(x), z_ref, atol=1e-5, rtol=1e-5)


def test_topk_without_k_and_other_encoders_are_refused(tmp_path) -> None:
    _overcomplete(tmp_path / "a.safetensors")
    (tmp_path / "a.json").write_text(json.dumps({"sae": "TopKSAE"}))
    with pytest.raises(SAEFormatError, match="needs top_k"):
        load_sae(tmp_path / "a.safetensors")
    state = _overcomplete(tmp_path / "b.safetensors")
    state["encoder.mlp_blocks.0.0.weight"] = torch.randn(D, D)
    save_file(state, str(tmp_path / "b.safetensors"))
    with pytest.raises(SAEFormatError, match="other than 'linear'"):
        load_sae(tmp_path / "b.safetensors")
    save_file({"weight": torch.zeros(2)}, str(tmp_path / "c.safetensors"))
    with pytest.raises(SAEFormatError, match="not an overcomplete SAE"):
        load_sae(tmp_path / "c.safetensors")


class _Boom:
    """Unpickling this would write a marker file: the loader must never unpickle."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickles_are_refused_unopened(tmp_path) -> None:
    marker = tmp_path / "unpickled"
    for name in ("sae.pt", "sae.pth", "sae.ckpt", "sae.bin"):
        (tmp_path / name).write_bytes(pickle.dumps(_Boom(str(marker))))
        with pytest.raises(SAEFormatError, match="pickle"):
            load_sae(tmp_path / name)
    assert not marker.exists()
    with pytest.raises(FileNotFoundError, match="no SAE at"):
        load_sae(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SAEFormatError, match="no SAE layout recognised"):
        load_sae(tmp_path / "empty")
