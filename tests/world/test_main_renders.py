"""Ordinary prompts render byte-identically to the renderer they were recorded with: the same pixels and
the same per-object masks.

``data/main_renders.json`` holds, for each prompt, a hash of the image and the owner map (which object each
pixel belongs to). Another session measures the offline scientist on these renders, so a change to them must
be deliberate: the set was last recorded when the world's variety (glyph styles, transforms, shading,
backdrops, real-world proportions) became the default. To record it again after such a change, run
``python tests/world/test_main_renders.py`` and say why in the commit.
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


if __name__ == "__main__":  # record the set again (a deliberate change of the renderer)
    path = Path(__file__).parent / "data" / "main_renders.json"
    for case in CASES:
        case["sha"] = _digest(case["prompt"], case["seed"], case["size"])
    path.write_text(json.dumps(CASES, indent=1) + "\n")
    print(f"recorded {len(CASES)} renders in {path}")
