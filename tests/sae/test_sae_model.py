"""The SAE itself: TopK / BatchTopK sparsity, the decoder constraint, save and reload, metric definitions."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from aim_agent.sae import SparseAutoencoder, evaluate, load_sae
from aim_agent.sae.train import reconstruction_metrics


def test_topk_keeps_exactly_the_k_largest_positive_pre_activations() -> None:
    torch.manual_seed(0)
    sae = SparseAutoencoder(16, 64, activation="topk", k=5)
    x = torch.randn(200, 16) * 3
    z = sae.encode(x)
    pre = F.relu(sae.pre_activations(x))
    nonzero = (z > 0).sum(-1)
    assert int(nonzero.max()) <= 5
    # where at least 5 pre-activations are positive, exactly 5 are kept: the 5 largest, unchanged
    full = (pre > 0).sum(-1) >= 5
    assert bool(full.any()) and bool((nonzero[full] == 5).all())
    top = torch.topk(pre, 5, dim=-1)
    torch.testing.assert_close(torch.gather(z, 1, top.indices), top.values)
    assert bool((z >= 0).all())


def test_batchtopk_keeps_k_per_vector_on_average_in_training_and_uses_its_threshold_in_eval() -> None:
    torch.manual_seed(1)
    sae = SparseAutoencoder(8, 32, activation="batchtopk", k=3).train()
    x = torch.randn(50, 8)
    z = sae.encode(x)
    assert int((z > 0).sum()) == 3 * 50  # k * B over the whole batch, not per vector
    assert int((z > 0).sum(-1).max()) > 3 or int((z > 0).sum(-1).min()) < 3  # varies per vector
    sae.threshold.fill_(0.4)
    sae.eval()
    pre = sae.pre_activations(x)
    torch.testing.assert_close(sae.encode(x), F.relu(pre) * (pre > 0.4))


def test_decoder_gradient_projection_keeps_unit_norm_columns() -> None:
    torch.manual_seed(2)
    sae = SparseAutoencoder(8, 16, activation="relu")
    x = torch.randn(64, 8)
    x_hat, _ = sae(x)
    (x_hat - x).pow(2).mean().backward()
    sae.project_decoder_grad()
    w, g = sae.decoder.weight, sae.decoder.weight.grad
    assert g is not None
    torch.testing.assert_close((w * g).sum(0), torch.zeros(16), atol=1e-6, rtol=0)  # no radial component
    torch.testing.assert_close(w.norm(dim=0), torch.ones(16))


def test_save_reload_is_identical(tmp_path) -> None:
    torch.manual_seed(3)
    sae = SparseAutoencoder(12, 40, activation="batchtopk", k=4)
    with torch.no_grad():
        for p in sae.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        sae.scale.fill_(2.5)
        sae.threshold.fill_(0.3)
    sae.meta = {"layer": "conv4", "history": [{"fvu": 0.2, "l0": 4.0}], "metrics": {"fvu": 0.2}}
    sae.eval().save(tmp_path / "s")
    loaded = load_sae(tmp_path / "s")
    assert loaded.config() == sae.config() and loaded.meta == {**sae.meta, "format": "aim"}
    for key, value in sae.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = torch.randn(30, 12)
    assert torch.equal(loaded.encode(x), sae.encode(x))
    assert torch.equal(loaded.decode(sae.encode(x)), sae.decode(sae.encode(x)))
    assert not loaded.training


def test_an_sae_saved_before_thresholds_existed_still_loads(tmp_path) -> None:
    from safetensors.torch import save_file

    sae = SparseAutoencoder(6, 10, activation="topk", k=2)
    state = {k: v.contiguous() for k, v in sae.state_dict().items() if k != "threshold"}
    (tmp_path / "old").mkdir()
    save_file(state, str(tmp_path / "old" / "sae.safetensors"))
    (tmp_path / "old" / "sae.json").write_text(json.dumps({**sae.config(), "meta": {}}))
    loaded = load_sae(tmp_path / "old")
    x = torch.randn(5, 6)
    assert torch.equal(loaded.encode(x), sae.encode(x))


def test_metrics_definitions() -> None:
    torch.manual_seed(4)
    x = torch.randn(100, 6) + 3.0
    fired = torch.tensor([True, True, False, False])
    perfect = reconstruction_metrics(x, x, 2.0, fired)
    assert perfect.fvu == 0.0 and perfect.l0 == 2.0 and perfect.dead_fraction == 0.5
    # predicting the mean explains no variance: FVU 1
    assert reconstruction_metrics(x, x.mean(0).expand_as(x), 0.0, fired).fvu == pytest.approx(1.0)
    # evaluate() on an SAE: L0 and dead fraction from its codes
    sae = SparseAutoencoder(6, 8, activation="topk", k=3)
    m = evaluate(sae, x)
    with torch.no_grad():
        z = sae.encode(x)
        x_hat = sae.decode(z)
    assert m.l0 == pytest.approx(float((z > 0).sum(-1).float().mean()))
    assert m.dead_fraction == pytest.approx(float((~(z > 0).any(0)).float().mean()))
    assert m.fvu == pytest.approx(float((x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum()), rel=1e-5)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="activation must be one of"):
        SparseAutoencoder(4, 8, activation="gelu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be at least 1"):
        SparseAutoencoder(4, 8, k=0)
    assert SparseAutoencoder(4, 1024).k == 32 and SparseAutoencoder(4, 24).k == 1
