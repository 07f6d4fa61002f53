"""`aim sae train` end to end: the saved SAE opens as a probe whose units are its latents."""

from __future__ import annotations

import importlib

import numpy as np
from PIL import Image

from aim_agent.cli import main
from aim_agent.models.probe import open_probe
from aim_agent.system import System


def test_sae_train_then_interpretable_latents(tmp_path, capsys):
    datasets = importlib.import_module("aim_world.datasets")
    folder = tmp_path / "data"
    datasets.write_dataset(folder, 24, 0)
    out = tmp_path / "sae"
    code = main(["sae", "train", "--model", "world-cnn", "--layer", "conv4", "--dataset", str(folder),
                 "--latents", "32", "--epochs", "2", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "32 latents" in printed and "reconstruction error per epoch" in printed

    base = open_probe("world-cnn", "conv4")
    probe = open_probe("world-cnn", "conv4", sae=str(out))
    assert probe.num_units == 32 and probe.num_units != base.num_units
    images = [Image.open(p).convert("RGB") for p in sorted(folder.rglob("*.png"))[:2]]
    acts = System(probe, 3).activations(images).activations
    assert acts.shape == (2,) and np.isfinite(acts).all()


def test_sae_train_rejects_bad_arguments(tmp_path, capsys):
    code = main(["sae", "train", "--model", "world-cnn", "--layer", "conv4", "--latents", "0", "--out", str(tmp_path)])
    assert code == 2 and "--latents" in capsys.readouterr().err
