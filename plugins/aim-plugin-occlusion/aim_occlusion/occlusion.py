"""``occlusion_map``: slide a grey patch over an image and measure how much the unit's activation drops.

Where hiding a region makes the unit go quiet is the region the unit needs. This is the
classic occlusion-sensitivity method (Zeiler & Fergus, 2014), applied to one unit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from pydantic import Field

from aim_agent.images import current_store, image_id
from aim_agent.tools.base import AimImage, ToolContext, ToolError, ToolInput, ToolOutput, tool

MAX_POSITIONS = 400  # occluded copies per call: keeps one call under a few seconds on a CPU


class OcclusionInput(ToolInput):
    """Arguments: validated before the tool runs; ``Field`` limits become the MCP schema's limits."""

    image: AimImage = Field(description="the image to explain (an id from another tool, or base64 PNG)")
    patch: float = Field(
        default=0.25, gt=0.02, le=0.75, description="side of the grey patch, as a fraction of the image side"
    )
    stride: float = Field(default=0.125, gt=0.01, le=0.5, description="step between patch positions, as a fraction")
    fill: int = Field(default=128, ge=0, le=255, description="grey level of the patch")


class OcclusionOutput(ToolOutput):
    overlay: AimImage = Field(description="the image with the activation drop as a red heatmap; the box outlined")
    base_activation: float = Field(description="the unit's activation on the unoccluded image")
    box: list[int] = Field(description="[x0, y0, x1, y1]: the patch whose occlusion lowers the activation most")
    max_drop: float = Field(description="activation drop when that box is occluded (base - occluded)")
    relative_drop: float = Field(description="max_drop / |base_activation| (0 when the unit is silent)")
    drops: list[list[float]] = Field(description="drop at each patch position, rows top to bottom")

    def python(self) -> dict[str, Any]:
        """What model-written code receives: a plain dict (images stay images)."""
        return {
            "overlay": self.overlay,
            "base_activation": self.base_activation,
            "box": self.box,
            "max_drop": self.max_drop,
            "relative_drop": self.relative_drop,
            "drops": self.drops,
        }


def _positions(length: int, patch: int, stride: int) -> list[int]:
    starts = list(range(0, max(length - patch, 0) + 1, stride))
    if starts[-1] != max(length - patch, 0):
        starts.append(max(length - patch, 0))  # the last patch touches the border
    return starts


def _overlay(image: Image.Image, heat: np.ndarray, box: tuple[int, int, int, int]) -> Image.Image:
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    alpha = (0.65 * heat)[..., None]
    red = np.array([230.0, 30.0, 30.0])
    out = Image.fromarray((rgb * (1 - alpha) + red * alpha).clip(0, 255).astype(np.uint8))
    ImageDraw.Draw(out).rectangle(box, outline=(255, 220, 0), width=max(1, image.width // 112))
    return out


@tool(positional=("image",))
def occlusion_map(ctx: ToolContext, args: OcclusionInput) -> OcclusionOutput:
    """Which part of an image does the unit need? Hide each region with a grey patch and measure the drop.

    Returns an overlay (red where hiding the region lowers the unit's activation), the box
    whose occlusion lowers it most, the unoccluded activation and the drop at every patch
    position. A large ``relative_drop`` inside the box means the unit depends on what is
    there; a flat map means no single region matters (the unit may respond to the whole
    scene, or to several regions at once).
    Python: ``result = tools.occlusion_map(image)``; ``result["box"]``, ``result["overlay"]``.
    """
    system = ctx.require_system()
    image = args.image.convert("RGB")
    width, height = image.size
    side = min(width, height)
    patch = max(2, round(args.patch * side))
    stride = max(1, round(args.stride * side))
    xs, ys = _positions(width, patch, stride), _positions(height, patch, stride)
    if len(xs) * len(ys) > MAX_POSITIONS:
        raise ToolError(
            f"{len(xs) * len(ys)} patch positions is more than {MAX_POSITIONS}; raise stride "
            f"(now {args.stride}) or patch"
        )
    base = float(system.activations([image]).activations[0])

    boxes = [(x, y, x + patch, y + patch) for y in ys for x in xs]
    acts: list[float] = []
    batch = 32
    for start in range(0, len(boxes), batch):
        copies = []
        for box in boxes[start : start + batch]:
            copy = image.copy()
            copy.paste((args.fill,) * 3, box)
            copies.append(copy)
        acts += [float(a) for a in system.activations(copies).activations]
        ctx.progress(len(acts), len(boxes), f"occlusion_map: {len(acts)}/{len(boxes)} patches")

    drops = np.array([base - a for a in acts]).reshape(len(ys), len(xs))
    heat = np.zeros((height, width))
    cover = np.zeros((height, width))
    for (x0, y0, x1, y1), drop in zip(boxes, drops.ravel(), strict=True):
        heat[y0:y1, x0:x1] += max(drop, 0.0)
        cover[y0:y1, x0:x1] += 1
    heat = heat / np.maximum(cover, 1)
    if heat.max() > 0:
        heat = heat / heat.max()
    best = int(np.argmax(drops))
    box = boxes[best]
    max_drop = float(drops.ravel()[best])
    overlay = _overlay(image, heat, box)
    current_store().register(overlay, parent=image_id(image), meta={"tool": "occlusion_map", "box": list(box)})
    return OcclusionOutput(
        overlay=overlay,
        base_activation=round(base, 4),
        box=[int(v) for v in box],
        max_drop=round(max_drop, 4),
        relative_drop=round(max_drop / abs(base), 4) if abs(base) > 1e-9 else 0.0,
        drops=[[round(float(d), 4) for d in row] for row in drops],
    )
