"""The world's variety: how an object looks beyond what a prompt or a dataset asks for.

Photos never show one pose of one drawing. Every object the parser, the editor or a dataset makes
gets a seeded *look*: a glyph style (stroke weight of the variable Noto Emoji font), a small
rotation, a left-right flip, a mild shear (a hint of perspective), a light gradient and texture
noise on its fill. All of it is recorded on the :class:`~aim_world.scene.SceneObject`, so the scene
graph still says exactly what is drawn, and the masks stay exact (the renderer transforms mask and
paint together).

Things that stand on the ground barely tilt (a car does not stand on one wheel); things in the sky
or anywhere tilt more.
"""

from __future__ import annotations

import numpy as np

from aim_world.scene import FONT_WEIGHTS
from aim_world.vocabulary import NOUN_BY_NAME

#: largest rotation in degrees, by where a thing usually is
MAX_ROTATION = {"ground": 7.0, "sky": 20.0, "any": 15.0}
MAX_SHEAR = 0.18
SHADE_RANGE = (0.1, 0.4)
GRAIN_RANGE = (0.0, 0.1)


def object_look(rng: np.random.Generator, noun: str) -> dict[str, object]:
    """A seeded look for one object: the :class:`SceneObject` fields weight, rotation, flip, shear,
    shade and grain."""
    limit = MAX_ROTATION[NOUN_BY_NAME[noun].zone]
    return {
        "weight": int(FONT_WEIGHTS[int(rng.integers(len(FONT_WEIGHTS)))]),
        "rotation": round(float(rng.uniform(-limit, limit)), 2),
        "flip": bool(rng.random() < 0.5),
        "shear": round(float(rng.uniform(-MAX_SHEAR, MAX_SHEAR)), 3),
        "shade": round(float(rng.uniform(*SHADE_RANGE)), 3),
        "grain": round(float(rng.uniform(*GRAIN_RANGE)), 3),
    }
