"""Fixtures of the ImageNet plugin's tests: tiny random-weight models."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def random_lite0(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state dict of EfficientNet-Lite0 with random weights (seeded), written once per session."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "random-lite0.pth"
    torch.save(EfficientNet.from_name("efficientnet-lite0").state_dict(), path)
    return path
