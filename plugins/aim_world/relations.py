"""Whether a scene's relations hold in its pixels: each one checked from the rendered masks.

The layout places objects so that their relations hold, but clipping to the frame, crowding and chains of
relations can move an object after it was placed. :func:`failed_relations` reads the picture itself: the
objects' masks (where each would be drawn, and what is visible of it once later objects cover it), so the
scene graph records only what a viewer of the image would agree with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aim_world.render import object_box, object_pixels
from aim_world.scene import Scene, SceneRelation

#: two objects "side by side" or "one above the other" may share at most this fraction of the smaller extent
MAX_SHARED_EXTENT = 0.5
#: "next to": the gap between the two may be at most this fraction of the larger one's width
NEXT_TO_GAP = 0.75
#: "on top of": the upper one's lowest pixel may float at most this fraction of the lower one's height above it
ON_TOP_GAP = 0.12
#: "with" / "holding": the attached object's box may be at most this fraction of its own size from its owner's
ATTACH_GAP = 0.3
#: resolution of the check (the layout's own: :data:`~aim_world.render.VISIBILITY_SIZE`)
CHECK_SIZE = 224


@dataclass(frozen=True)
class Extent:
    """Where an object's pixels lie (as if nothing covered it, clipped to the frame), in pixels."""

    mask: np.ndarray  # (H, W) bool
    x0: float
    y0: float
    x1: float
    y1: float
    cx: float
    cy: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0


def _extent(scene: Scene, i: int, size: int) -> Extent | None:
    glyph = object_pixels(scene.objects[i], size)[0]  # shares the renderer's cache: drawing it next is free
    x0, y0, x1, y1 = object_box(scene.objects[i], size)
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)
    if cx0 >= cx1 or cy0 >= cy1:
        return None
    inside = glyph[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    ys, xs = np.nonzero(inside)
    if not len(xs):
        return None
    mask = np.zeros((size, size), dtype=bool)
    mask[cy0:cy1, cx0:cx1] = inside
    return Extent(mask, float(xs.min() + cx0), float(ys.min() + cy0), float(xs.max() + 1 + cx0),
                  float(ys.max() + 1 + cy0), float(xs.mean() + cx0), float(ys.mean() + cy0))


def _shared(a0: float, a1: float, b0: float, b1: float) -> float:
    """The length two intervals share, as a fraction of the shorter one."""
    shorter = min(a1 - a0, b1 - b0)
    return max(0.0, min(a1, b1) - max(a0, b0)) / shorter if shorter > 0 else 1.0


def holds(relation: str, s: Extent, o: Extent, owner: np.ndarray, si: int, oi: int) -> bool:
    """Whether ``s`` stands ``relation`` ``o`` in the picture (``owner``: the index drawn at each pixel)."""
    if relation in ("left of", "right of"):
        before = s.cx < o.cx if relation == "left of" else s.cx > o.cx
        return before and _shared(s.x0, s.x1, o.x0, o.x1) <= MAX_SHARED_EXTENT
    if relation in ("above", "below"):
        before = s.cy < o.cy if relation == "above" else s.cy > o.cy
        return before and _shared(s.y0, s.y1, o.y0, o.y1) <= MAX_SHARED_EXTENT
    if relation == "next to":
        gap = max(s.x0 - o.x1, o.x0 - s.x1)
        side_by_side = _shared(s.y0, s.y1, o.y0, o.y1) > 0 and _shared(s.x0, s.x1, o.x0, o.x1) <= MAX_SHARED_EXTENT
        return side_by_side and gap <= NEXT_TO_GAP * max(s.width, o.width)
    if relation == "on top of":
        over = o.x0 <= s.cx <= o.x1 and s.cy < o.cy
        return over and s.y1 >= o.y0 - ON_TOP_GAP * o.height
    if relation == "behind":  # part of it is hidden by the other
        return bool((s.mask & (owner == oi)).any())
    if relation == "in front of":  # it hides part of the other
        return bool((o.mask & (owner == si)).any())
    if relation in ("with", "holding"):  # the owner is the subject; the attached object touches it
        reach = ATTACH_GAP * max(o.width, o.height)
        return max(s.x0 - o.x1, o.x0 - s.x1, s.y0 - o.y1, o.y0 - s.y1) <= reach
    raise ValueError(f"unknown relation {relation!r}")


def failed_relations(scene: Scene, size: int = CHECK_SIZE) -> list[SceneRelation]:
    """The relations of ``scene`` its pixels do not show at ``size`` px (an object out of the frame shows none).
    Reads only the objects' masks: each one as drawn, and what later objects leave visible of it."""
    if not scene.relations:
        return []
    extents = [_extent(scene, i, size) for i in range(len(scene.objects))]
    owner = np.full((size, size), -1, dtype=np.int16)
    for i, e in enumerate(extents):  # drawing order: later objects cover earlier ones
        if e is not None:
            owner[e.mask] = i
    failed = []
    for r in scene.relations:
        s, o = extents[r.subject], extents[r.object]
        if s is None or o is None or not holds(r.relation, s, o, owner, r.subject, r.object):
            failed.append(r)
    return failed
