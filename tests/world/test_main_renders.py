"""Prompts that do not use the newer grammar (negation, idioms, close-ups) render byte-identically to
the renderer they were recorded with: the same pixels and the same per-object masks.

``data/main_renders.json`` holds, for each prompt, a hash of the image and the owner map (which
object each pixel belongs to), computed from main before the grammar grew. Another session
measures the offline scientist on these renders, so they must not drift.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from aim_world.parse import parse
from aim_world.render import render

CASES = json.loads((Path(__file__).parent / "data" / "main_renders.json").read_text())


def _digest(prompt: str, seed: int, size: int) -> str:
    rendered = render(parse(prompt, seed=seed), size)
    h = hashlib.sha256()
    h.update(np.asarray(rendered.image).tobytes())
    h.update(rendered.owner.tobytes())
    return h.hexdigest()[:24]


def test_the_recorded_set_is_large_and_varied() -> None:
    assert len(CASES) >= 100
    assert {c["size"] for c in CASES} == {96, 224}


@pytest.mark.parametrize("case", CASES, ids=[c["prompt"][:40] for c in CASES])
def test_ordinary_prompts_render_as_on_main(case: dict) -> None:
    assert _digest(case["prompt"], case["seed"], case["size"]) == case["sha"]
