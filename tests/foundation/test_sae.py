"""SAE latents as units: training reduces reconstruction error; SAEProbe values are exact."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from aim_agent.exemplars import compute_exemplars
from aim_agent.models import LoadedModel
from aim_agent.models.probe import ModelProbe
from aim_agent.sae import SAEProbe, SparseAutoencoder, train_sae
from aim_agent.system import System


@pytest.fixture(scope="module")
def trained(resnet: LoadedModel, image_folder: Path, tmp_path_factory: pytest.TempPathFactory):
    base = ModelProbe(resnet, "resnet.encoder.stages.1")
    out = tmp_path_factory.mktemp("sae")
    sae = train_sae(base, image_folder, 24, activation="topk", k=4, epochs=6, batch_size=8, vectors_per_step=32,
                    lr=3e-3, save_to=out, progress=False)
    return base, sae, out


def test_training_reduces_reconstruction_error(trained) -> None:
    _, sae, _ = trained
    history = sae.meta["history"]
    assert len(history) == 6
    assert history[-1] < 0.8 * history[0]
    assert sae.meta["layer"] == "resnet.encoder.stages.1"


def test_sae_probe_shapes_and_a_latent_equals_a_direct_computation(trained) -> None:
    base, sae, _ = trained
    probe = SAEProbe(base, sae)
    assert probe.num_units == 24 and probe.layer == "resnet.encoder.stages.1/sae24"
    images = [Image.new("RGB", (40, 40), (30 * i, 80, 160)) for i in range(3)]
    latents = probe.forward(images)
    assert latents.shape == (3, 24, 4, 4)
    acts = base.forward(images)  # (3, 16, 4, 4)
    x = acts[1, :, 2, 3]  # the activation vector of image 1 at cell (2, 3)
    pre = F.relu(sae.encoder.weight @ (x / sae.scale - sae.b_pre) + sae.encoder.bias)
    keep = torch.topk(pre, 4).indices
    direct = torch.zeros(24)
    direct[keep] = pre[keep]
    torch.testing.assert_close(latents[1, :, 2, 3], direct)
    assert int((latents[1, :, 2, 3] > 0).sum()) <= 4


def test_saved_sae_round_trips_and_works_with_system_and_exemplars(
    trained, image_folder: Path, tmp_path: Path
) -> None:
    base, sae, out = trained
    loaded = SparseAutoencoder.load(out)
    assert loaded.config() == sae.config() and loaded.meta["history"] == sae.meta["history"]
    images = [Image.new("RGB", (32, 32), (200, 20, 20))]
    torch.testing.assert_close(SAEProbe(base, loaded).forward(images), SAEProbe(base, sae).forward(images))
    assert SAEProbe(base, loaded).fingerprint() == SAEProbe(base, sae).fingerprint() != base.fingerprint()
    probe = SAEProbe(base, loaded)
    system = System(probe, 5)
    acts, overlays = system.neuron(images)
    assert len(acts) == 1 and overlays[0].size == (32, 32)
    result = compute_exemplars(probe, image_folder, batch_size=8, cache_dir=tmp_path, progress=False)
    assert result.values.shape == (24, 50) and result.layer.endswith("/sae24")
    with pytest.raises(IndexError, match=r"0\.\.23"):
        System(probe, 24)


def test_relu_sae_and_mismatched_width() -> None:
    sae = SparseAutoencoder(8, 16, activation="relu")
    z = sae.encode(torch.randn(5, 8))
    assert z.shape == (5, 16) and bool((z >= 0).all())
    torch.testing.assert_close(sae.decoder.weight.norm(dim=0), torch.ones(16))

    class Fake:
        num_units, layer, model_name = 4, "x", "m"

    with pytest.raises(ValueError, match="reads 8-dim activations but layer 'x' has 4 units"):
        SAEProbe(Fake(), sae)  # type: ignore[arg-type]
