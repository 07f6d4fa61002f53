"""Fixtures of the SAE and circuit tests (helpers live in sae_fakes.py)."""

from __future__ import annotations

import pytest
import torch
from sae_fakes import TwoConv, loaded


@pytest.fixture
def two_conv():
    """``two_conv(w1, w2)``: a TwoConv with those weights, as a LoadedModel."""

    def make(w1: torch.Tensor, w2: torch.Tensor):
        return loaded(TwoConv(w1, w2))

    return make
