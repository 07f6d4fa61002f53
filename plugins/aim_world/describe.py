"""An exact describer: what lies inside a highlighted region of a world image.

It reads the scene graph, never a hypothesis: the region (the boolean mask of an activation
overlay) is intersected with the rendered object masks and the background's parts, and the
overlaps are put into words, largest first. :func:`summarize_regions` says what several
regions have in common and what varies.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from PIL import Image

from aim_world.render import background_parts, render
from aim_world.scene import Scene
from aim_world.vocabulary import NOUN_BY_NAME, plurals

MIN_SHARE = 0.08  # an object is mentioned when it fills this much of the region ...
MIN_COVER = 0.25  # ... or this much of the object lies inside the region
MIN_BACKGROUND_SHARE = 0.1


@dataclass
class Overlap:
    """One thing inside a region: an object (index) or a background part (index None)."""

    label: str  # 'red striped dog' / 'sand'
    share: float  # fraction of the region it fills
    cover: float  # fraction of the thing inside the region (1.0 for background parts)
    index: int | None = None
    where: str = ""  # which part of the object, when only part of it is inside


def _square(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    if h == w:
        return mask
    side = max(h, w)
    return np.asarray(Image.fromarray(mask).resize((side, side), Image.NEAREST), dtype=bool)


def _part_name(rows: np.ndarray, cols: np.ndarray, box: tuple[int, int, int, int]) -> str:
    x0, y0, x1, y1 = box
    cy = (rows.mean() - y0) / max(1, y1 - y0)
    cx = (cols.mean() - x0) / max(1, x1 - x0)
    vert = "upper" if cy < 0.36 else "lower" if cy > 0.64 else ""
    horiz = "left" if cx < 0.36 else "right" if cx > 0.64 else ""
    name = " ".join(w for w in (vert, horiz) if w)
    return f"{name} part" if name else "middle"


def _position(mask: np.ndarray) -> str:
    rows, cols = np.nonzero(mask)
    h, w = mask.shape
    cy, cx = rows.mean() / h, cols.mean() / w
    vert = "top" if cy < 0.33 else "bottom" if cy > 0.67 else ""
    horiz = "left" if cx < 0.33 else "right" if cx > 0.67 else ""
    if not vert and not horiz:
        return "the centre"
    return "the " + " ".join(w for w in (vert, horiz) if w)


def region_overlaps(scene: Scene, mask: np.ndarray | None) -> tuple[list[Overlap], float]:
    """What fills a region (largest share first) and the fraction of the image the region covers."""
    size = 224 if mask is None else max(np.shape(mask))
    region = np.ones((size, size), dtype=bool) if mask is None else _square(mask)
    total = int(region.sum())
    if total == 0:
        return [], 0.0
    rendered = render(scene, size)
    found: list[Overlap] = []
    for i, obj_mask in enumerate(rendered.masks):
        inside = obj_mask & region
        n = int(inside.sum())
        if n == 0:
            continue
        share, cover = n / total, n / max(1, int(obj_mask.sum()))
        if share < MIN_SHARE and cover < MIN_COVER:
            continue
        where = ""
        if cover < 0.6:
            rows, cols = np.nonzero(inside)
            where = _part_name(rows, cols, rendered.boxes[i])
        found.append(Overlap(scene.objects[i].phrase(), share, cover, i, where))
    labels, parts = background_parts(scene.background, size, scene.seed, scene.omitted_details())
    in_bg = rendered.background_mask & region
    if in_bg.any():
        counts = np.bincount(labels[in_bg], minlength=len(parts))
        for k, part in enumerate(parts):
            share = counts[k] / total
            if share >= MIN_BACKGROUND_SHARE:
                found.append(Overlap(part, float(share), 1.0))
    found.sort(key=lambda o: -o.share)
    return found, total / (size * size)


def _pct(x: float) -> str:
    return f"{round(100 * x)}%"


def describe_region(scene: Scene, mask: np.ndarray | None) -> str:
    """Words for what lies inside ``mask`` (None: the whole image) of a rendered scene."""
    found, fraction = region_overlaps(scene, mask)
    if fraction == 0:
        return "Nothing is highlighted: the region is empty."
    if fraction > 0.97 or mask is None:
        where = "the whole image"
    else:
        where = f"{_pct(fraction)} of the image, around {_position(_square(mask))}"
    objects = [o for o in found if o.index is not None]
    background = [o for o in found if o.index is None]
    phrases: list[str] = []
    grouped: dict[tuple[str, str], list[Overlap]] = {}
    for o in objects:
        kind = "whole" if o.cover >= 0.6 else "part"
        grouped.setdefault((o.label, kind), []).append(o)
    for (label, kind), items in sorted(grouped.items(), key=lambda kv: -sum(o.share for o in kv[1])):
        share = sum(o.share for o in items)
        n = len(items)
        thing = f"a {label}" if n == 1 else f"{n} {plurals(label)[0]}"
        if label[0] in "aeiou" and n == 1:
            thing = f"an {label}"
        if kind == "part":
            parts = sorted({o.where for o in items})
            thing = f"the {' and '.join(parts)} of {thing}"
        phrases.append(f"{thing} ({_pct(share)} of the region)")
    if background:
        bg = ", ".join(f"{o.label} ({_pct(o.share)})" for o in background)
        phrases.append(f"background of the {scene.background} scene: {bg}")
    if not phrases:
        return f"The highlighted region ({where}) holds only small slivers of objects and background."
    return f"The highlighted region ({where}) contains " + "; ".join(phrases) + "."


def concepts(scene: Scene, mask: np.ndarray | None) -> set[str]:
    """The concepts present in a region: nouns, categories, colours, textures, background parts."""
    found, _ = region_overlaps(scene, mask)
    out: set[str] = set()
    for o in found:
        if o.index is None:
            out.add(f"background: {o.label}")
            continue
        if o.share < 0.15 and o.cover < 0.5:
            continue
        obj = scene.objects[o.index]
        out.add(obj.noun)
        out.add(f"category: {NOUN_BY_NAME[obj.noun].category}")
        out.add(obj.color)
        if obj.texture:
            out.add(obj.texture)
        if obj.style == "outline":
            out.add("outlined")
    if any(o.index is None for o in found):
        out.add(f"scene: {scene.background}")
    return out


def summarize_regions(items: list[tuple[Scene, np.ndarray | None]]) -> str:
    """What the highlighted regions of several images have in common, and what varies."""
    if not items:
        return "No images to summarize."
    per_image = [concepts(scene, mask) for scene, mask in items]
    n = len(items)
    empty = sum(1 for scene, mask in items if mask is not None and not np.asarray(mask).any())
    counts = Counter(c for cs in per_image for c in cs)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    common = [(c, k) for c, k in ranked if k / n >= 0.5]
    varies = [(c, k) for c, k in ranked if k / n < 0.5]
    fmt = lambda pairs: ", ".join(f"{c} ({k}/{n})" for c, k in pairs)  # noqa: E731
    lines = [f"Across {n} highlighted regions:"]
    lines.append(f"in common: {fmt(common)}" if common else "nothing is present in at least half of them")
    if varies:
        lines.append(f"varies: {fmt(varies[:15])}" + (" ..." if len(varies) > 15 else ""))
    if empty:
        lines.append(f"{empty}/{n} regions are empty (the unit does not fire there)")
    return "\n".join(lines)
