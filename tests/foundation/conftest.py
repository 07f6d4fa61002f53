"""Tiny random-weight transformers models saved to disk, and a small image folder.

Everything is built from configs (no downloads) once per test session.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

N_GOOD = 21  # decodable images in the folder (3 batches of 8 at batch_size=8)


def _save(model: torch.nn.Module, directory: Path, preprocessor: dict | None = None) -> Path:
    model.save_pretrained(directory)
    if preprocessor is not None:
        (directory / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return directory


@pytest.fixture(scope="session")
def resnet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=3, image_size=32)
    # ConvNext-style processor (as microsoft/resnet-*): resize to 32/0.875 = 36, centre crop 32
    pre = {"crop_pct": 0.875, "do_normalize": True, "do_resize": True, "image_mean": [0.485, 0.456, 0.406],
           "image_std": [0.229, 0.224, 0.225], "resample": 3, "size": 32,
           "feature_extractor_type": "ConvNextFeatureExtractor"}
    return _save(ResNetForImageClassification(config), tmp_path_factory.mktemp("resnet"), pre)


@pytest.fixture(scope="session")
def vit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(1)
    config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                       image_size=32, patch_size=8)
    pre = {"do_normalize": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
           "resample": 2, "size": 32, "feature_extractor_type": "ViTFeatureExtractor"}
    # saved without a pooler, like DINO checkpoints
    return _save(ViTModel(config, add_pooling_layer=False), tmp_path_factory.mktemp("vit"), pre)


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(2)
    config = CLIPConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                           image_size=32, patch_size=8),
        text_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                         vocab_size=100),
        projection_dim=16,
    )
    pre = {"crop_size": 32, "do_center_crop": True, "do_normalize": True, "do_resize": True,
           "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
           "resample": 3, "size": 32, "feature_extractor_type": "CLIPFeatureExtractor"}
    return _save(CLIPModel(config), tmp_path_factory.mktemp("clip"), pre)


def write_images(folder: Path, n: int, seed: int = 0, *, corrupt: bool = True) -> Path:
    """``n`` random images (some nested, mixed formats and sizes) plus one corrupt file."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sub").mkdir(exist_ok=True)
    for i in range(n):
        arr = rng.integers(0, 256, (40 + i % 3, 48, 3), dtype=np.uint8)
        arr[: 10 + i % 20] //= 1 + i % 4  # some structure so units differ across images
        target = folder / ("sub" if i % 5 == 0 else ".") / f"img{i:03d}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray(arr).save(target)
    if corrupt:
        (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (folder / "notes.txt").write_text("not an image: ignored")
    return folder


@pytest.fixture(scope="session")
def make_images():
    """``make_images(folder, n, seed=0, corrupt=True)``: write a test image folder."""
    return write_images


@pytest.fixture(scope="session")
def n_good() -> int:
    return N_GOOD


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_images(tmp_path_factory.mktemp("images"), N_GOOD)


@pytest.fixture(scope="session")
def resnet(resnet_dir: Path):
    from aim_transformers.loader import TransformersLoader

    return TransformersLoader().load(str(resnet_dir))


@pytest.fixture(scope="session")
def vit(vit_dir: Path):
    from aim_transformers.loader import TransformersLoader

    return TransformersLoader().load(str(vit_dir))


@pytest.fixture(autouse=True)
def _private_aim_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes to the user's ~/.cache/aim, even one that forgets ``cache_dir``."""
    monkeypatch.setenv("AIM_CACHE", str(tmp_path_factory.mktemp("aim-cache")))
