"""Scene graph -> pixels, with an exact mask per object.

Objects are Noto Emoji glyphs: the glyph's silhouette (its line art with the holes filled) is
painted in the object's colour, its lines in a darker shade, a texture pattern inside when
asked. Edges are hard (no anti-aliasing), so every pixel belongs to exactly one object or to
the background: the masks are exact, and an edit changes only the pixels of what it edits.

Variety (see ``variety.py``) stays exact: an object's weight picks the glyph style, and its
rotation, flip and shear move the mask and the paint together (one nearest-pixel map for both),
so the mask is exactly the pixels drawn; shading and grain only change colours inside it. A later
object covers an earlier one, so an occluded part is in no mask but the occluder's.

Everything that does not depend on a scene is cached: glyph masks per (noun, weight, pixel size),
background layouts per (background, size, variant), texture patterns per (texture, box). A scene's
own variety (transforms, shading, the backdrop's horizon and colours) is a few cheap numpy passes.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from functools import cache, lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from aim_world.raster_cache import cached
from aim_world.scene import Backdrop, Scene, SceneObject, backdrop
from aim_world.vocabulary import BACKGROUND_BY_NAME, NOUN_BY_NAME, TEXTURES, font_path, rgb

_MASTER = 256  # glyphs are analysed once at this resolution, then scaled down
_FONT_WEIGHT = 500  # the default style; layout extents are measured at it


@dataclass
class Rendered:
    """A rendered scene: the image, one boolean mask per object (visible pixels after occlusion),
    the background's visible pixels, and ``owner`` (H, W): index of the object drawn at each pixel, -1
    for background."""

    image: Image.Image
    masks: list[np.ndarray]
    background_mask: np.ndarray
    owner: np.ndarray
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # (x0, y0, x1, y1) per object

    @property
    def size(self) -> int:
        return self.image.width


# --------------------------------------------------------------------------- morphology helpers


def _window(a: np.ndarray, k: int, op: np.ufunc) -> np.ndarray:
    """``op`` (logical or/and) over a k x k window centred on each pixel, outside the array = False."""
    r = k // 2
    h, w = a.shape
    p = np.pad(a, r)
    rows = p[:, 0:w].copy()
    for d in range(1, k):
        op(rows, p[:, d : d + w], out=rows)
    out = rows[0:h].copy()
    for d in range(1, k):
        op(out, rows[d : d + h], out=out)
    return out


def _erode(a: np.ndarray, k: int) -> np.ndarray:
    return _window(a, k, np.logical_and)


def _dilate(a: np.ndarray, k: int) -> np.ndarray:
    return _window(a, k, np.logical_or)


def _run_ids(free: np.ndarray) -> np.ndarray:
    """Label (H, W) of the runs of free pixels along each row: 1, 2, ... (0 = not free)."""
    h, w = free.shape
    f = np.zeros((h, w + 1), dtype=bool)
    f[:, :w] = free
    flat = f.ravel()
    starts = flat.copy()
    starts[1:] &= ~flat[:-1]
    return (np.cumsum(starts) * flat).reshape(h, w + 1)[:, :w]


def _fill_holes(a: np.ndarray) -> np.ndarray:
    """``a`` plus every region not connected to the border (4-connectivity).

    Reachability spreads along whole runs of free pixels, alternating rows and columns, so it
    converges in a few passes."""
    free = ~a
    rows, cols = _run_ids(free), _run_ids(free.T).T
    outside = np.zeros_like(a)
    outside[0, :], outside[-1, :], outside[:, 0], outside[:, -1] = free[0, :], free[-1, :], free[:, 0], free[:, -1]
    count = int(outside.sum())
    while True:
        for ids in (rows, cols):
            hit = np.zeros(int(ids.max()) + 1, dtype=bool)
            hit[ids[outside]] = True
            hit[0] = False
            outside = hit[ids]
        new_count = int(outside.sum())
        if new_count == count:
            return ~outside
        count = new_count


# --------------------------------------------------------------------------- glyphs


@lru_cache(maxsize=8)
def _font(weight: int = _FONT_WEIGHT) -> ImageFont.FreeTypeFont:
    font = ImageFont.truetype(str(font_path()), _MASTER)
    with contextlib.suppress(OSError, ValueError):  # Pillow built without variation support: weight 400
        font.set_variation_by_axes([weight])
    return font


def glyph_ink(char: str, weight: int = _FONT_WEIGHT) -> np.ndarray:
    """Boolean ink of one character of the emoji font at master resolution, cropped (may be empty)."""
    font = _font(weight)
    x0, y0, x1, y1 = font.getbbox(char)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 0), dtype=bool)
    canvas = Image.new("L", (x1 - x0, y1 - y0), 0)
    ImageDraw.Draw(canvas).text((-x0, -y0), char, font=font, fill=255)
    ink = np.asarray(canvas) >= 128
    ys, xs = np.nonzero(ink)
    if len(ys) == 0:
        return np.zeros((0, 0), dtype=bool)
    return ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _master_masks(noun: str, weight: int) -> list[np.ndarray]:
    ink = np.pad(glyph_ink(NOUN_BY_NAME[noun].char, weight), 4)
    silhouette = _fill_holes(_erode(_dilate(ink, 5), 5)) | ink  # close pin-holes, then fill inside
    lines = ink & ~_erode(ink, 13)  # thin strokes, and the rim of solid parts
    return [silhouette, lines]


@cache
def _master(noun: str, weight: int = _FONT_WEIGHT) -> tuple[Image.Image, Image.Image]:
    """(silhouette, lines) of a noun's glyph at master resolution, as 'L' images (disk-cached)."""
    key = f"master|{NOUN_BY_NAME[noun].codepoint}|{_MASTER}|{weight}"
    silhouette, lines = cached(key, lambda: _master_masks(noun, weight))
    as_l = lambda a: Image.fromarray(a.astype(np.uint8) * 255)  # noqa: E731
    return as_l(silhouette), as_l(lines)


@cache
def glyph_extent(noun: str) -> tuple[float, float]:
    """(width, height) of a noun's glyph as fractions of its box side (the longer one is 1)."""
    w, h = _master(noun)[0].size
    m = max(w, h)
    return w / m, h / m


@dataclass(frozen=True)
class Glyph:
    silhouette: np.ndarray  # bool (h, w): inside the object
    lines: np.ndarray  # bool (h, w): the glyph's line art, a subset of the silhouette


@lru_cache(maxsize=8192)
def glyph(noun: str, px: int, weight: int = _FONT_WEIGHT) -> Glyph:
    """A noun's glyph in one style (font weight), scaled so its longer side is ``px`` pixels (cached in
    memory and on disk)."""
    key = f"glyph|{NOUN_BY_NAME[noun].codepoint}|{px}|{_MASTER}|{weight}"
    sil, lines = cached(key, lambda: _scaled_glyph(noun, px, weight))
    return Glyph(sil, lines)


def _scaled_glyph(noun: str, px: int, weight: int) -> list[np.ndarray]:
    sil_img, line_img = _master(noun, weight)
    w, h = sil_img.size
    scale = px / max(w, h)
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    sil = np.asarray(sil_img.resize((tw, th), Image.BOX)) >= 128
    lines = np.asarray(line_img.resize((tw, th), Image.BOX)) >= 100
    sil = sil | lines
    sil.setflags(write=False)
    lines.setflags(write=False)
    return [sil, lines]


# --------------------------------------------------------------------------- colours and textures


def _lum(c: tuple[int, int, int]) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _mix(c: tuple[int, int, int], target: int, t: float) -> tuple[int, int, int]:
    return tuple(round(v + (target - v) * t) for v in c)  # type: ignore[return-value]


def line_color(c: tuple[int, int, int]) -> tuple[int, int, int]:
    """The shade of an object's lines: darker, or lighter for very dark colours."""
    return _mix(c, 0, 0.55) if _lum(c) > 60 else _mix(c, 255, 0.5)


def texture_color(c: tuple[int, int, int]) -> tuple[int, int, int]:
    """The contrasting shade a texture is drawn with."""
    return _mix(c, 0, 0.5) if _lum(c) > 150 else _mix(c, 255, 0.6)


@lru_cache(maxsize=2048)
def texture_pattern(texture: str, h: int, w: int) -> np.ndarray:
    """Boolean pattern (h, w) of a texture in an object's box; True = contrasting shade (disk-cached)."""
    if texture not in TEXTURES:
        raise KeyError(f"unknown texture {texture!r}")
    return cached(f"texture|{texture}|{h}|{w}", lambda: [_texture_pattern(texture, h, w)])[0]


def _texture_pattern(texture: str, h: int, w: int) -> np.ndarray:
    period = max(5, round(max(h, w) / 5))
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    if texture == "stripes":
        pat = ((x + y) % period) < period * 0.5
    elif texture == "dots":
        row = np.floor(y / period)
        xx = (x + (row % 2) * period / 2) % period - period / 2
        yy = y % period - period / 2
        pat = xx**2 + yy**2 <= (period * 0.3) ** 2
    elif texture == "checkers":
        cell = max(3, round(period * 0.6))
        pat = ((x // cell) + (y // cell)) % 2 == 0
    elif texture == "spiral":
        dx, dy = x - w / 2, y - h / 2
        r = np.sqrt(dx**2 + dy**2)
        theta = np.arctan2(dy, dx) / (2 * math.pi)
        pat = ((r / period - theta) % 1.0) < 0.45
    elif texture == "waves":
        amp = period * 0.3
        pat = ((y + amp * np.sin(2 * math.pi * x / (period * 1.5))) % period) < period * 0.45
    else:
        raise KeyError(f"unknown texture {texture!r}")
    pat.setflags(write=False)
    return pat


@lru_cache(maxsize=8192)
def object_paint(
    noun: str, px: int, color: str, texture: str | None, style: str, weight: int = _FONT_WEIGHT
) -> np.ndarray:
    """RGBA (h, w, 4) of one object in its own box, upright: its colours, and alpha 255 on exactly the pixels
    it covers (0 elsewhere)."""
    g = glyph(noun, px, weight)
    h, w = g.silhouette.shape
    base = rgb(color)
    # each pixel indexes a palette: 0 outside, 1 the colour, 2 the texture shade, 3 the lines
    palette = np.array([(0, 0, 0, 0), (*base, 255), (*texture_color(base), 255), (*line_color(base), 255)],
                       dtype=np.uint8)
    if style == "outline":
        index = g.lines.astype(np.uint8)  # lines and texture dots in the object's colour
        if texture:
            index[g.silhouette & texture_pattern(texture, h, w)] = 1
    else:
        index = g.silhouette.astype(np.uint8)
        if texture:
            index[g.silhouette & texture_pattern(texture, h, w)] = 2
        index[g.lines] = 3
    rgba = palette[index]
    rgba.setflags(write=False)
    return rgba


def _affine(rgba: np.ndarray, rotation: float, flip: bool, shear: float) -> np.ndarray:
    """Flip, shear, then rotate (degrees, counter-clockwise) an object's RGBA about its centre.

    Mask (alpha) and paint travel together through one nearest-pixel transform, so every pixel of the
    new mask carries a pixel of the paint, and alpha stays 0 or 255: the mask stays exactly what is drawn."""
    if rotation == 0.0 and shear == 0.0:
        return rgba[:, ::-1] if flip else rgba
    h, w = rgba.shape[:2]
    t = math.radians(rotation)
    c, s = math.cos(t), math.sin(t)
    # forward map of a point (x, y) relative to the centre, image y pointing down
    f = -1.0 if flip else 1.0
    fwd = np.array([[c, s], [-s, c]]) @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.array([[f, 0.0], [0.0, 1.0]])
    corners = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [-w / 2, h / 2], [w / 2, h / 2]]) @ fwd.T
    nw = max(1, math.ceil(float(np.ptp(corners[:, 0]))))
    nh = max(1, math.ceil(float(np.ptp(corners[:, 1]))))
    # PIL maps each output pixel (x, y) to the input pixel (a x + b y + c, d x + e y + f): the inverse of the
    # 2x2 forward map, written out (np.linalg.inv costs more than the transform on small boxes)
    (p, q), (r, t2) = fwd.tolist()
    det = p * t2 - q * r
    a, b, d, e = t2 / det, -q / det, -r / det, p / det
    coeffs = (a, b, w / 2 - a * nw / 2 - b * nh / 2, d, e, h / 2 - d * nw / 2 - e * nh / 2)
    return np.asarray(Image.fromarray(rgba, "RGBA").transform((nw, nh), Image.Transform.AFFINE, coeffs,
                                                              resample=Image.Resampling.NEAREST))


@lru_cache(maxsize=512)
def _light(h: int, w: int) -> np.ndarray:
    """The light gradient over a box, lit from the top-left: +0.5 at that corner to -0.5 at the opposite one."""
    xs = np.arange(w, dtype=np.float32) / max(1, w - 1)
    ys = np.arange(h, dtype=np.float32) / max(1, h - 1)
    out = 0.5 - (xs[None, :] + ys[:, None]) / 2
    out.setflags(write=False)
    return out


@cache
def _grain_tile() -> np.ndarray:
    """One fixed noise field in [-1, 1] (blotches of 2 px, so it survives downsampling); objects take its corner."""
    coarse = np.random.default_rng(11).uniform(-1.0, 1.0, size=(256, 256)).astype(np.float32)
    out = np.repeat(np.repeat(coarse, 2, axis=0), 2, axis=1)
    out.setflags(write=False)
    return out


def _grain(h: int, w: int) -> np.ndarray:
    tile = _grain_tile()
    return np.tile(tile, (h // 512 + 1, w // 512 + 1))[:h, :w] if max(h, w) > 512 else tile[:h, :w]


@lru_cache(maxsize=4096)
def _object_pixels(noun: str, px: int, color: str, texture: str | None, style: str, weight: int,
                   rotation: float, flip: bool, shear: float, shade: float, grain: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    rgba = _affine(object_paint(noun, px, color, texture, style, weight), rotation, flip, shear)
    mask, paint = rgba[..., 3] > 0, rgba[..., :3]
    if shade or grain:  # gains in 1/128ths (at most ~1.4, so 255 x gain fits 16 bits): cheaper than floats
        h, w = mask.shape
        light = shade * _light(h, w)
        light += 1.0
        if grain:
            light *= 1.0 + grain * _grain(h, w)
        light *= 128.0
        light += 0.5
        lit = paint.astype(np.uint16)
        lit *= light.astype(np.uint16)[..., None]
        lit >>= 7
        np.minimum(lit, 255, out=lit)
        paint = lit.astype(np.uint8)
    mask.setflags(write=False)
    paint.setflags(write=False)
    return mask, paint


def object_pixels(obj: SceneObject, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(mask, rgb) of one object in its own box after its look (weight, transforms, shading, grain)."""
    px = max(4, round(obj.size * size))
    return _object_pixels(obj.noun, px, obj.color, obj.texture, obj.style, obj.weight,
                          obj.rotation, obj.flip, obj.shear, obj.shade, obj.grain)


def object_box(obj: SceneObject, size: int) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1) of an object as drawn, possibly reaching outside the image."""
    h, w = object_pixels(obj, size)[0].shape
    x0 = round(obj.x * size - w / 2)
    y0 = round(obj.y * size - h / 2)
    return x0, y0, x0 + w, y0 + h


# --------------------------------------------------------------------------- backgrounds


def _vgradient(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], top, bottom) -> None:
    x0, y0, x1, y1 = box
    n = max(1, y1 - y0)
    for i in range(n):
        t = i / n
        c = tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        draw.line([(x0, y0 + i), (x1, y0 + i)], fill=c)


def _clouds(draw: ImageDraw.ImageDraw, rng: np.random.Generator, s: int, y_max: float, n: int) -> None:
    for _ in range(n):
        cx, cy = rng.uniform(0.05, 0.95) * s, rng.uniform(0.06, y_max) * s
        r = rng.uniform(0.035, 0.06) * s
        for _ in range(5):
            ox, oy = rng.uniform(-2.2, 2.2) * r, rng.uniform(-0.5, 0.4) * r
            rr = r * rng.uniform(0.7, 1.2)
            draw.ellipse([cx + ox - rr * 1.3, cy + oy - rr, cx + ox + rr * 1.3, cy + oy + rr], fill=(250, 252, 255))


def _sky(draw, labels, rng, s, y1, top=(80, 140, 220), bottom=(185, 215, 242), clouds=2, omit=()):
    """A sky down to ``y1``; with ``clouds`` > 0, 0 to 2 x ``clouds`` clouds (by layout variant), none when
    "clouds" is in ``omit``."""
    _vgradient(draw, (0, 0, s, y1), top, bottom)
    labels.rectangle([0, 0, s, y1], fill=0)
    if clouds and "clouds" not in omit:
        _clouds(draw, rng, s, max(0.05, y1 / s - 0.1), int(rng.integers(0, 2 * clouds + 1)))


def _draw_plain(draw, labels, rng, s, omit=()):
    _vgradient(draw, (0, 0, s, s), (242, 242, 240), (222, 222, 218))
    return ["plain backdrop"]


def _draw_sky(draw, labels, rng, s, omit=()):
    _vgradient(draw, (0, 0, s, s), (60, 125, 215), (175, 210, 245))
    if "clouds" not in omit:
        _clouds(draw, rng, s, 0.9, int(rng.integers(2, 8)))
    return ["sky"]


def _draw_grass(draw, labels, rng, s, omit=()):
    hz = int(0.38 * s)
    _sky(draw, labels, rng, s, hz, omit=omit)
    _vgradient(draw, (0, hz, s, s), (125, 190, 75), (50, 135, 40))
    labels.rectangle([0, hz, s, s], fill=1)
    for _ in range(int(2.2 * s)):
        y = rng.uniform(hz + 2, s)
        depth = (y - hz) / (s - hz)
        x = rng.uniform(0, s)
        length = (0.012 + 0.04 * depth) * s
        lean = rng.uniform(-0.35, 0.35) * length
        g = rng.integers(0, 3)
        col = [(70, 150, 45), (35, 110, 30), (150, 205, 90)][g]
        draw.line([(x, y), (x + lean, y - length)], fill=col, width=max(1, round(s * 0.004 * (1 + depth))))
    return ["sky", "grass"]


def _waves(draw, rng, s, y0, y1, n, color, dark=False):
    for _ in range(n):
        y = rng.uniform(y0, y1)
        depth = (y - y0) / max(1, (y1 - y0))
        x = rng.uniform(-0.05, 1.0) * s
        wl = (0.03 + 0.07 * depth) * s
        amp = wl * 0.18
        pts = [(x + t * wl / 8, y - amp * math.sin(math.pi * t / 8)) for t in range(0, 17)]
        draw.line(pts, fill=color, width=max(1, round(s * (0.003 + 0.004 * depth))))


def _draw_water(draw, labels, rng, s, omit=()):
    hz = int(0.25 * s)
    _sky(draw, labels, rng, s, hz, clouds=1, omit=omit)
    _vgradient(draw, (0, hz, s, s), (55, 130, 200), (15, 65, 145))
    labels.rectangle([0, hz, s, s], fill=1)
    _waves(draw, rng, s, hz + 3, s, int(0.5 * s / 4), (135, 190, 235))
    _waves(draw, rng, s, hz + 3, s, int(0.3 * s / 4), (20, 55, 120))
    return ["sky", "water"]


def _draw_snow(draw, labels, rng, s, omit=()):
    hz = int(0.4 * s)
    _sky(draw, labels, rng, s, hz, top=(165, 185, 210), bottom=(215, 225, 238), clouds=0, omit=omit)
    # distant snowy hills
    pts = [(0, hz)] + [(x, hz - (0.05 + 0.04 * math.sin(x / s * 7 + rng.uniform(0, 6))) * s)
                       for x in np.linspace(0, s, 12)] + [(s, hz)]
    draw.polygon(pts, fill=(232, 238, 246))
    labels.polygon(pts, fill=1)
    _vgradient(draw, (0, hz, s, s), (240, 244, 250), (250, 252, 255))
    labels.rectangle([0, hz, s, s], fill=1)
    for _ in range(7):  # soft blue shadows of drifts
        cx, cy = rng.uniform(0, s), rng.uniform(hz + 0.08 * s, s)
        rx, ry = rng.uniform(0.15, 0.35) * s, rng.uniform(0.015, 0.035) * s
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=(212, 224, 240))
    for _ in range(int(0.9 * s) if "snowfall" not in omit else 0):  # falling snow
        x, y = rng.uniform(0, s), rng.uniform(0, s)
        r = rng.uniform(0.003, 0.007) * s
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 255))
    return ["sky", "snow"]


def _draw_beach(draw, labels, rng, s, omit=()):
    hz, shore = int(0.36 * s), int(0.5 * s)
    _sky(draw, labels, rng, s, hz, clouds=2, omit=omit)
    _vgradient(draw, (0, hz, s, shore), (60, 140, 205), (40, 150, 195))
    labels.rectangle([0, hz, s, shore], fill=1)
    _waves(draw, rng, s, hz + 2, shore - 2, int(0.2 * s / 4), (180, 220, 240))
    _vgradient(draw, (0, shore, s, s), (238, 214, 160), (220, 190, 130))
    labels.rectangle([0, shore, s, s], fill=2)
    foam = [(x, shore + 0.012 * s * math.sin(x / s * 25)) for x in np.linspace(0, s, 60)]
    draw.line(foam, fill=(250, 250, 245), width=max(2, round(0.012 * s)))
    for _ in range(int(1.5 * s)):  # sand grains
        x, y = rng.uniform(0, s), rng.uniform(shore + 0.02 * s, s)
        r = rng.uniform(0.002, 0.004) * s
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(195, 165, 110))
    return ["sky", "sea", "sand"]


def _draw_desert(draw, labels, rng, s, omit=()):
    hz = int(0.45 * s)
    _sky(draw, labels, rng, s, hz, top=(110, 165, 225), bottom=(235, 220, 190), clouds=0, omit=omit)
    shades = [(222, 170, 105), (235, 185, 115), (215, 150, 85), (240, 195, 130)]
    for k, base in enumerate(np.linspace(hz - 0.05 * s, 0.85 * s, 4)):
        ph, f = rng.uniform(0, 6.28), rng.uniform(4, 7)
        top = [(x, base + 0.05 * s * math.sin(x / s * f + ph)) for x in np.linspace(0, s, 40)]
        poly = [*top, (s, s), (0, s)]
        draw.polygon(poly, fill=shades[k])
        labels.polygon(poly, fill=1)
        draw.line(top, fill=(185, 125, 70), width=max(1, round(0.006 * s)))
    return ["sky", "sand dunes"]


def _draw_road(draw, labels, rng, s, omit=()):
    hz, r0, r1 = int(0.25 * s), int(0.35 * s), int(0.94 * s)
    _sky(draw, labels, rng, s, hz, clouds=1, omit=omit)
    _vgradient(draw, (0, hz, s, r0), (110, 170, 70), (80, 150, 55))
    labels.rectangle([0, hz, s, r0], fill=1)
    draw.rectangle([0, r1, s, s], fill=(80, 150, 55))
    labels.rectangle([0, r1, s, s], fill=1)
    draw.rectangle([0, r0, s, r1], fill=(88, 88, 92))
    labels.rectangle([0, r0, s, r1], fill=2)
    for _ in range(int(1.2 * s)):  # asphalt grain
        x, y = rng.uniform(0, s), rng.uniform(r0, r1)
        r = rng.uniform(0.002, 0.004) * s
        g = int(rng.integers(70, 110))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(g, g, g + 3))
    lw = max(2, round(0.014 * s))
    draw.rectangle([0, r0 + lw, s, r0 + 2 * lw], fill=(240, 240, 240))
    draw.rectangle([0, r1 - 2 * lw, s, r1 - lw], fill=(240, 240, 240))
    mid = (r0 + r1) / 2
    dash, off = 0.12 * s, rng.uniform(0, 0.2) * s
    x = -off
    while x < s:
        draw.rectangle([x, mid - lw / 2 - 1, x + dash, mid + lw / 2 + 1], fill=(245, 205, 40))
        x += dash * 1.8
    return ["sky", "grass verge", "road"]


def _draw_brick_wall(draw, labels, rng, s, omit=()):
    draw.rectangle([0, 0, s, s], fill=(205, 198, 185))
    bh = s / 9
    bw = bh * 2.1
    gap = max(1, round(0.012 * s))
    off = rng.uniform(0, bw)
    for row in range(10):
        y0 = row * bh
        shift = off + (bw / 2 if row % 2 else 0)
        x = -shift
        while x < s:
            c = (int(rng.integers(145, 185)), int(rng.integers(55, 80)), int(rng.integers(35, 55)))
            draw.rectangle([x + gap, y0 + gap, x + bw - gap, y0 + bh - gap], fill=c)
            x += bw
    return ["brick wall"]


def _draw_forest(draw, labels, rng, s, omit=()):
    floor = int(0.62 * s)
    if "trees" in omit:  # a clearing: sky down to the forest floor
        _sky(draw, labels, rng, s, floor, top=(150, 190, 225), bottom=(205, 225, 235), clouds=0)
        _vgradient(draw, (0, floor, s, s), (80, 105, 45), (60, 80, 35))
        labels.rectangle([0, floor, s, s], fill=2)
        return ["sky", "trees", "forest floor"]
    _sky(draw, labels, rng, s, int(0.5 * s), top=(150, 190, 225), bottom=(205, 225, 235), clouds=0, omit=omit)
    # far canopy band
    for _ in range(int(rng.integers(12, 24))):
        cx, cy, r = rng.uniform(0, s), rng.uniform(0.12, 0.42) * s, rng.uniform(0.08, 0.14) * s
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(60, 110, 60))
        labels.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
    draw.rectangle([0, int(0.35 * s), s, floor], fill=(55, 95, 50))
    labels.rectangle([0, int(0.35 * s), s, floor], fill=1)
    _vgradient(draw, (0, floor, s, s), (80, 105, 45), (60, 80, 35))
    labels.rectangle([0, floor, s, s], fill=2)
    n_trunks = int(rng.integers(7, 14))
    trunks = (np.arange(n_trunks) + rng.uniform(0.15, 0.85, size=n_trunks)) / n_trunks * s  # spread over the width
    for i, tx in enumerate(trunks):
        near = i % 2
        tw = (0.03 + 0.025 * near) * s
        base = floor + (0.04 + 0.12 * near) * s * rng.uniform(0.6, 1.0)
        col = (95, 65, 40) if near else (75, 55, 38)
        draw.rectangle([tx - tw / 2, 0, tx + tw / 2, base], fill=col)
        labels.rectangle([tx - tw / 2, 0, tx + tw / 2, base], fill=1)
    for _ in range(34):  # near canopy
        cx, cy, r = rng.uniform(-0.05, 1.05) * s, rng.uniform(-0.06, 0.24) * s, rng.uniform(0.07, 0.13) * s
        g = [(40, 120, 45), (70, 145, 55), (30, 95, 40)][int(rng.integers(0, 3))]
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=g)
        labels.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
    for _ in range(int(0.8 * s)):  # fallen leaves
        x, y = rng.uniform(0, s), rng.uniform(floor, s)
        r = rng.uniform(0.003, 0.006) * s
        draw.ellipse([x - r, y - r * 0.6, x + r, y + r * 0.6], fill=(130, 110, 50))
    return ["sky", "trees", "forest floor"]


def _draw_room(draw, labels, rng, s, omit=()):
    floor = int(0.62 * s)
    wall = [(228, 212, 182), (205, 220, 210), (230, 205, 200), (215, 210, 230)][int(rng.integers(0, 4))]
    draw.rectangle([0, 0, s, floor], fill=wall)
    labels.rectangle([0, 0, s, floor], fill=0)
    wx0 = rng.uniform(0.55, 0.66) * s
    wx1, wy0, wy1 = wx0 + 0.28 * s, 0.1 * s, 0.42 * s
    fr = max(2, round(0.018 * s))
    draw.rectangle([wx0, wy0, wx1, wy1], fill=(250, 250, 250))
    labels.rectangle([wx0, wy0, wx1, wy1], fill=1)
    draw.rectangle([wx0 + fr, wy0 + fr, wx1 - fr, wy1 - fr], fill=(150, 200, 240))
    draw.rectangle([(wx0 + wx1) / 2 - fr / 2, wy0, (wx0 + wx1) / 2 + fr / 2, wy1], fill=(250, 250, 250))
    draw.rectangle([wx0, (wy0 + wy1) / 2 - fr / 2, wx1, (wy0 + wy1) / 2 + fr / 2], fill=(250, 250, 250))
    # a picture frame on the wall
    px0 = rng.uniform(0.08, 0.2) * s
    draw.rectangle([px0, 0.14 * s, px0 + 0.18 * s, 0.3 * s], fill=(120, 80, 45))
    draw.rectangle([px0 + fr, 0.14 * s + fr, px0 + 0.18 * s - fr, 0.3 * s - fr], fill=(240, 235, 220))
    draw.rectangle([0, floor, s, s], fill=(170, 118, 72))
    labels.rectangle([0, floor, s, s], fill=2)
    plank = 0.075 * s
    y = floor
    k = 0
    while y < s:
        draw.line([(0, y), (s, y)], fill=(130, 85, 50), width=max(1, round(0.006 * s)))
        seam = (k * 0.37 % 1.0) * s
        for x in (seam, (seam + 0.5 * s) % s):
            draw.line([(x, y), (x, y + plank)], fill=(130, 85, 50), width=max(1, round(0.005 * s)))
        y += plank
        plank *= 1.15
        k += 1
    draw.rectangle([0, floor - 0.025 * s, s, floor], fill=(245, 242, 235))
    return ["wall", "window", "floor"]


def _draw_night(draw, labels, rng, s, omit=()):
    _vgradient(draw, (0, 0, s, s), (8, 12, 38), (35, 45, 90))
    for _ in range(int(0.6 * s) if "stars" not in omit else 0):
        x, y = rng.uniform(0, s), rng.uniform(0, 0.85 * s)
        r = rng.uniform(0.002, 0.006) * s
        b = int(rng.integers(170, 255))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(b, b, int(b * 0.9)))
    pts = [(0, s)] + [(x, (0.8 - 0.05 * math.sin(x / s * 5 + rng.uniform(0, 1))) * s)
                      for x in np.linspace(0, s, 20)] + [(s, s)]
    draw.polygon(pts, fill=(14, 22, 30))
    labels.polygon(pts, fill=1)
    return ["night sky", "dark ground"]


def _draw_mountains(draw, labels, rng, s, omit=()):
    base = int(0.6 * s)
    _sky(draw, labels, rng, s, base, clouds=1, omit=omit)
    ranges = [((150, 160, 180), 0.18, 0.42), ((110, 118, 130), 0.3, 0.5)] if "mountains" not in omit else []
    for layer, (col, hmin, hmax) in enumerate(ranges):
        x = -rng.uniform(0, 0.2) * s
        while x < s:
            w = rng.uniform(0.3, 0.5) * s
            peak_y = rng.uniform(hmin, hmax) * s
            peak_x = x + w / 2
            tri = [(x, base + 2), (peak_x, peak_y), (x + w, base + 2)]
            draw.polygon(tri, fill=col)
            labels.polygon(tri, fill=1)
            cap = 0.28 if layer == 0 else 0.2
            cy = peak_y + (base - peak_y) * cap
            draw.polygon([(peak_x - w / 2 * cap, cy), (peak_x, peak_y), (peak_x + w / 2 * cap, cy)],
                         fill=(248, 250, 252))
            x += w * rng.uniform(0.55, 0.8)
    _vgradient(draw, (0, base, s, s), (110, 170, 80), (65, 130, 50))
    labels.rectangle([0, base, s, s], fill=2)
    return ["sky", "mountains", "meadow"]


_DRAWERS = {
    "plain": _draw_plain, "sky": _draw_sky, "grass": _draw_grass, "water": _draw_water,
    "snow": _draw_snow, "beach": _draw_beach, "desert": _draw_desert, "road": _draw_road,
    "brick wall": _draw_brick_wall, "forest": _draw_forest, "room": _draw_room, "night": _draw_night,
    "mountains": _draw_mountains,
}
assert set(_DRAWERS) == set(BACKGROUND_BY_NAME), "every background needs a drawer"


@lru_cache(maxsize=1024)
def _layout_image(name: str, size: int, variant: int, omit: tuple[str, ...] = ()) -> Image.Image:
    return Image.fromarray(_layout(name, size, variant, omit)[0])


@lru_cache(maxsize=1024)
def _layout(name: str, size: int, variant: int, omit: tuple[str, ...] = ()) -> tuple[np.ndarray, np.ndarray,
                                                                                        tuple[str, ...]]:
    """One layout of a background at its vocabulary horizon and colours (cached in memory and on disk), without
    the details named in ``omit`` (see :meth:`~aim_world.scene.Scene.omitted_details`)."""
    if name not in _DRAWERS:
        raise KeyError(f"unknown background {name!r}; valid: {', '.join(_DRAWERS)}")
    key = f"background|{name}|{size}|{variant}" + (f"|without {','.join(omit)}" if omit else "")
    pixels, labels, names = cached(key, lambda: _draw_background(name, size, variant, omit))
    return pixels, labels, tuple(bytes(names).decode().split("\n"))


def _horizon_rows(size: int, base: float, horizon: float) -> np.ndarray:
    """Source row of each output row, moving the ground line from ``base`` to ``horizon`` (piecewise linear)."""
    y = np.arange(size, dtype=np.float64) + 0.5
    b, h = base * size, horizon * size
    src = np.where(y < h, y * b / h, b + (y - h) * (size - b) / (size - h))
    return np.clip(np.floor(src), 0, size - 1).astype(np.intp)


@lru_cache(maxsize=256)
def _grade_luts(brightness: float, warmth: float, contrast: float) -> list[int]:
    """The colour curves of a backdrop, red, green and blue ones end to end (768 entries, for ``Image.point``):
    contrast about mid-grey, brightness, warmth (red up, blue down)."""
    v = np.arange(256, dtype=np.float32)
    curve = ((v - 128.0) * contrast + 128.0) * brightness
    return np.concatenate([np.clip(curve * gain + 0.5, 0, 255).astype(np.uint8)
                           for gain in (1 + warmth, 1.0, 1 - warmth)]).tolist()


@lru_cache(maxsize=256)
def _background(name: str, size: int, seed: int, omit: tuple[str, ...] = ()) -> tuple[np.ndarray, np.ndarray,
                                                                                        tuple[str, ...]]:
    """A scene's background: its backdrop's layout, ground line moved to its horizon, colours graded (per-channel
    lookup tables: cheap enough for every scene)."""
    look: Backdrop = backdrop(name, seed)
    labels, parts = _layout(name, size, look.variant, omit)[1:]
    base = BACKGROUND_BY_NAME[name].horizon
    rows = None
    if base is not None and look.horizon is not None and look.horizon != base:
        rows = _horizon_rows(size, base, look.horizon)
        labels = labels[rows]
    # ``Image.point`` would first round the 768 entries in Python; they are ints already
    image = _layout_image(name, size, look.variant, omit)
    graded = np.asarray(image._new(image.im.point(_grade_luts(look.brightness, look.warmth, look.contrast), None)))
    if rows is not None:
        graded = graded[rows]
    labels = np.ascontiguousarray(labels)
    graded.setflags(write=False)
    labels.setflags(write=False)
    return graded, labels, parts


def _draw_background(name: str, size: int, variant: int, omit: tuple[str, ...] = ()) -> list[np.ndarray]:
    s = size * 2  # draw at twice the size, then downsample: smooth edges
    img = Image.new("RGB", (s, s))
    lab = Image.new("L", (s, s), 0)
    seed = [variant, size, *name.encode()]
    rng = np.random.default_rng(seed)
    parts = _DRAWERS[name](ImageDraw.Draw(img), ImageDraw.Draw(lab), rng, s, omit)
    pixels = np.asarray(img.resize((size, size), Image.BOX)).copy()
    labels = np.asarray(lab.resize((size, size), Image.NEAREST)).copy()
    pixels.setflags(write=False)
    labels.setflags(write=False)
    return [pixels, labels, np.frombuffer("\n".join(parts).encode(), dtype=np.uint8)]


def background_pixels(name: str, size: int, seed: int = 0, omit: tuple[str, ...] = ()) -> np.ndarray:
    """The (read-only) RGB array of a background as a scene with this seed draws it (see :func:`backdrop`),
    without the details in ``omit`` (:meth:`~aim_world.scene.Scene.omitted_details`)."""
    return _background(name, size, seed, tuple(omit))[0]


def background_parts(
    name: str, size: int, seed: int = 0, omit: tuple[str, ...] = ()
) -> tuple[np.ndarray, tuple[str, ...]]:
    """(label map (H, W) of part indices, part names), e.g. ('sky', 'sand') for the beach, for a scene seed; a
    part in ``omit`` keeps its name and has no pixels."""
    _, labels, parts = _background(name, size, seed, tuple(omit))
    return labels, parts


# --------------------------------------------------------------------------- scenes


def render(scene: Scene, size: int = 224) -> Rendered:
    """Draw a scene: the background, then each object in order (later ones on top)."""
    canvas = background_pixels(scene.background, size, scene.seed, scene.omitted_details()).copy()
    owner = np.full((size, size), -1, dtype=np.int16)
    boxes = []
    for i, obj in enumerate(scene.objects):
        mask, paint = object_pixels(obj, size)
        h, w = mask.shape
        x0, y0 = round(obj.x * size - w / 2), round(obj.y * size - h / 2)
        boxes.append((x0, y0, x0 + w, y0 + h))
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + w, size), min(y0 + h, size)
        if cx0 >= cx1 or cy0 >= cy1:
            continue
        m = mask[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
        np.copyto(canvas[cy0:cy1, cx0:cx1], paint[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0], where=m[..., None])
        np.copyto(owner[cy0:cy1, cx0:cx1], i, where=m)
    masks = [owner == i for i in range(len(scene.objects))]
    return Rendered(Image.fromarray(canvas), masks, owner == -1, owner, boxes)


VISIBILITY_SIZE = 224  # the resolution at which ``SceneObject.visible`` is measured


def occluded_on_request(scene: Scene) -> list[int]:
    """Objects a relation puts behind another ("a dog partly hidden behind a car"), or that already record
    how much of them is visible."""
    found = {r.subject if r.relation == "behind" else r.object
             for r in scene.relations if r.relation in ("behind", "in front of")}
    found |= {i for i, o in enumerate(scene.objects) if o.visible is not None}
    return sorted(found)


def record_visibility(scene: Scene) -> Scene:
    """``scene`` with ``visible`` set on the objects occluded on request: the share of an object's in-frame
    pixels that no later object covers, measured at :data:`VISIBILITY_SIZE` px."""
    targets = occluded_on_request(scene)
    if not targets:
        return scene
    size = VISIBILITY_SIZE
    owner = render(scene, size).owner
    objects = list(scene.objects)
    for i in targets:
        mask = np.zeros((size, size), dtype=bool)
        _paste(mask, object_pixels(scene.objects[i], size)[0], object_box(scene.objects[i], size))
        drawn = int(mask.sum())
        visible = float((owner == i).sum()) / drawn if drawn else 0.0
        objects[i] = objects[i].model_copy(update={"visible": round(visible, 4)})
    return scene.model_copy(update={"objects": objects})


def _paste(canvas: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int]) -> None:
    """OR ``mask`` into ``canvas`` at ``box`` (x0, y0, x1, y1), clipped to the canvas."""
    size_y, size_x = canvas.shape
    x0, y0, x1, y1 = box
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, size_x), min(y1, size_y)
    if cx0 < cx1 and cy0 < cy1:
        canvas[cy0:cy1, cx0:cx1] |= mask[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]


def clear_caches() -> None:
    """Forget every cached glyph, background and pattern (for cold-start timing)."""
    _grain_tile.cache_clear()
    for fn in (_master, glyph_extent, glyph, texture_pattern, object_paint, _object_pixels, _light,
               _layout, _layout_image, _grade_luts, _background, _font):
        fn.cache_clear()
