"""Suite-wide settings: no network, and a cache that is the test session's own."""

from __future__ import annotations

import os

import pytest

# Nothing in the suite may reach a hub; transformers/diffusers honour these.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True, scope="session")
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Exemplar and world-dataset caches live in a temp dir shared by the session (never ~/.cache)."""
    if "AIM_CACHE_KEEP" in os.environ:  # a developer may opt to reuse a warm cache
        return
    os.environ["AIM_CACHE"] = str(tmp_path_factory.mktemp("aim-cache"))
