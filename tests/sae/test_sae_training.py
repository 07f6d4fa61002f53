"""Training: a planted sparse dictionary is recovered, metrics and their history are reported on held-out
vectors, AuxK revives dead latents, and an SAE's latents read through System equal a direct computation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sae_fakes import noise_images, pixels, planted

from aim_agent.models.probe import ModelProbe
from aim_agent.sae import SAEProbe, SparseAutoencoder, TrainSettings, collect_activations, fit_sae, train_sae
from aim_agent.sae.train import init_sae
from aim_agent.system import System


def test_fit_recovers_a_planted_sparse_code_and_reports_held_out_history() -> None:
    train, held = planted(n=6000, d=16, atoms=32, k=3, seed=0), planted(n=1000, d=16, atoms=32, k=3, seed=0, offset=1)
    settings = TrainSettings(n_latents=64, activation="topk", k=3, epochs=12, batch_vectors=256, lr=1e-2,
                             eval_every=47)
    seen: list[dict] = []
    result = fit_sae(train, held, settings, progress=False, on_eval=seen.append)
    assert result.metrics.fvu < 0.15 and result.metrics.l0 == pytest.approx(3.0)
    assert result.history == seen and len(seen) == 7  # every 47 of 288 steps, and the last
    assert {"step", "epoch", "vectors", "seconds", "train_loss", "fvu", "l0", "dead_fraction",
            "dead_in_training"} <= set(seen[0])
    assert seen[-1]["fvu"] < 0.5 * seen[0]["fvu"]  # it learned
    assert seen[-1]["fvu"] == pytest.approx(result.metrics.fvu, abs=1e-5)
    torch.testing.assert_close(result.sae.decoder.weight.norm(dim=0), torch.ones(64))


def test_batchtopk_training_reaches_its_sparsity_with_a_threshold() -> None:
    train, held = planted(n=6000, d=16, atoms=32, k=3, seed=1), planted(n=1000, d=16, atoms=32, k=3, seed=1, offset=1)
    result = fit_sae(train, held, TrainSettings(n_latents=64, activation="batchtopk", k=3, epochs=10,
                                                batch_vectors=256, lr=5e-3), progress=False)
    assert float(result.sae.threshold[0]) > 0
    assert 1.5 < result.metrics.l0 < 4.5 and result.metrics.fvu < 0.25


def test_auxk_revives_dead_latents() -> None:
    train, held = planted(n=8000, d=16, atoms=48, k=2, seed=2), planted(n=1000, d=16, atoms=48, k=2, seed=2, offset=1)

    def run(aux: float) -> float:
        settings = TrainSettings(n_latents=96, activation="topk", k=2, epochs=6, batch_vectors=256, lr=3e-3,
                                 aux_coeff=aux, dead_window=2000, seed=3)
        torch.manual_seed(3)
        sae = init_sae(train, settings)
        with torch.no_grad():  # start with most latents dead: a bias no input overcomes
            sae.encoder.bias[16:] = -6.0
        return fit_sae(train, held, settings, progress=False, start=sae).metrics.dead_fraction

    without, with_aux = run(0.0), run(1.0)
    assert without > 0.6  # nothing brings them back
    assert with_aux < without - 0.3


def test_latents_through_system_equal_a_direct_computation(two_conv, tmp_path) -> None:
    torch.manual_seed(7)
    model = two_conv(torch.randn(6, 3), torch.randn(4, 6))
    base = ModelProbe(model, "conv1")
    images = noise_images(40, seed=1)
    sae = train_sae(base, _folder(tmp_path, images), 24, k=3, epochs=3, batch_vectors=128, progress=False)
    assert sae.meta["layer"] == "conv1" and sae.meta["images"] == 40 and sae.meta["held_out_images"] == 4
    assert set(sae.meta["metrics"]) >= {"fvu", "l0", "dead_fraction"}
    probe = SAEProbe(base, sae)
    assert probe.layer == "conv1/sae24" and probe.num_units == 24
    test_images = noise_images(3, seed=9)
    for unit in (0, 5, 23):
        got = System(probe, unit).activations(test_images).activations
        # by hand: conv1 = relu(W1 x) per pixel; the SAE's formula; max over the 8x8 grid
        x = pixels(test_images)  # (B, 8, 8, 3)
        w1 = model.module.conv1[0].weight[:, :, 0, 0].detach()
        acts = F.relu(x @ w1.T)  # (B, 8, 8, 6)
        pre = ((acts / sae.scale - sae.b_pre) @ sae.encoder.weight.T + sae.encoder.bias).detach()
        z = F.relu(pre)
        top = torch.topk(z, 3, dim=-1)
        z = torch.zeros_like(z).scatter(-1, top.indices, top.values)
        direct = z[..., unit].flatten(1).amax(1)
        torch.testing.assert_close(torch.as_tensor(got, dtype=torch.float32), direct, atol=1e-5, rtol=1e-5)


def _folder(tmp_path, images):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(images):
        image.save(folder / f"{i:03d}.png")
    return folder


def test_collect_activations_splits_by_image_and_subsamples(two_conv, tmp_path) -> None:
    torch.manual_seed(8)
    base = ModelProbe(two_conv(torch.randn(5, 3), torch.randn(2, 5)), "conv1")
    folder = _folder(tmp_path, noise_images(20, seed=2))
    acts = collect_activations(base, folder, held_out=0.25, progress=False)
    assert acts.held_out_images == 5 and acts.cells == 64
    assert acts.train.shape == (15 * 64, 5) and acts.held_out.shape == (5 * 64, 5)
    small = collect_activations(base, folder, held_out=0.25, max_vectors=200, progress=False)
    assert small.vectors_per_image == 10 and small.train.shape[0] + small.held_out.shape[0] == 200
    # the same held-out images whatever the subsampling: vectors of held-out images are a subset
    full_rows = {tuple(v.tolist()) for v in acts.held_out}
    assert all(tuple(v.tolist()) in full_rows for v in small.held_out)
    with pytest.raises(ValueError, match="held_out must be between 0 and 1"):
        collect_activations(base, folder, held_out=1.0, progress=False)


def test_sae_width_must_match_the_layer() -> None:
    sae = SparseAutoencoder(8, 16, activation="relu")

    class Fake:
        num_units, layer, model_name = 4, "x", "m"

    with pytest.raises(ValueError, match="reads 8-dim activations but layer 'x' has 4 units"):
        SAEProbe(Fake(), sae)  # type: ignore[arg-type]
