"""The world as providers: text-to-image, image editor and describer (``--text2image world`` ...).

Every image they make is registered in the image store (:func:`aim_agent.images.current_store`) with its scene graph, so
edits and descriptions of world images (and of activation overlays made from them) are exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from aim_agent.images import current_store, image_id, load_image
from aim_agent.providers import EditChange, Edited, Generated, ProviderError
from aim_world.describe import describe_region, summarize_regions
from aim_world.edit import EditResult, edit_scene
from aim_world.parse import parse
from aim_world.render import render
from aim_world.scene import Scene

EDIT_KINDS = ("add", "remove", "replace", "recolor", "retexture", "restyle", "resize", "move", "background")
NOT_A_WORLD_IMAGE = (
    "image {iid} is not a world image (no scene graph is known for it); {what} it needs a VLM "
    "{role} (--{role} gemini/openai/...)"
)


def generate_scene_image(
    scene: Scene, size: int = 224, parent: str | None = None, change: EditChange | None = None, **meta: Any
) -> Image.Image:
    """Render a scene and register the image (scene graph, parent id, edit provenance) in the store."""
    image = render(scene, size).image
    current_store().register(image, scene=scene.model_dump(), parent=parent,
                             edit=change.model_dump() if change is not None else None,
                             meta={"source": "world", **meta})
    return image


def scene_of(image: Image.Image | str, what: str, role: str) -> tuple[Image.Image, Scene]:
    """The pixels and scene graph behind an image (or image id); ProviderError when it has none."""
    pixels = load_image(image)
    data = current_store().scene_of(pixels)
    if data is None:
        raise ProviderError(NOT_A_WORLD_IMAGE.format(iid=image_id(pixels), what=what, role=role))
    return pixels, Scene.model_validate(data)


def _notes(scene: Scene) -> list[str]:
    notes = [f"could not draw: {', '.join(repr(w) for w in scene.unknown_words)}"] if scene.unknown_words else []
    return notes + list(scene.notes)


class WorldTextToImage:
    """Prompt -> scene graph -> image. Unknown words are reported in ``Generated.notes``; a prompt with
    nothing drawable gets its own error (``Generated.error``) and the rest of the batch is still drawn."""

    name = "world"

    def generate(self, prompts: list[str], *, size: int = 224, seed: int = 0) -> list[Generated]:
        out = []
        for prompt in prompts:
            try:
                scene = parse(prompt, seed=seed)
            except ProviderError as exc:
                out.append(Generated(image=None, prompt=prompt, error=str(exc)))
                continue
            image = generate_scene_image(scene, size, prompt=prompt)
            out.append(Generated(image=image, prompt=prompt, notes=_notes(scene)))
        return out


class WorldEditor:
    """Edits applied to the scene graph and re-rendered: pixels outside the edit stay identical."""

    name = "world"

    def edit(self, images: list[Image.Image], instructions: list[str], *, seed: int = 0) -> list[Edited]:
        if len(images) != len(instructions):
            raise ProviderError(f"{len(images)} images but {len(instructions)} instructions: give one per image")
        out = []
        for image, instruction in zip(images, instructions, strict=True):
            pixels, scene = scene_of(image, "editing", "editor")
            new_scene, result = edit_scene(scene, instruction)
            if not result.applied:
                out.append(Edited(pixels, pixels, instruction, applied=False, notes=result.notes))
                continue
            change = edit_change(scene, new_scene, result)
            edited = generate_scene_image(new_scene, pixels.width, parent=image_id(pixels),
                                          instruction=instruction, edit=result.kind, change=change)
            out.append(Edited(pixels, edited, instruction, applied=True, notes=result.notes, change=change))
        return out


def edit_change(old: Scene, new: Scene, result: EditResult) -> EditChange:
    """The structured provenance of an applied edit, read from the scene graphs before and after."""
    before = [old.objects[i] for i in result.changed_old]
    after = [new.objects[i] for i in result.changed_new]
    kind = result.kind if result.kind in EDIT_KINDS else "other"
    if kind in ("add", "remove", "replace"):
        return EditChange(kind=kind, removed=[o.noun for o in before], added=[o.noun for o in after],
                          background=new.background if result.background_changed else None)
    values: dict[str, list[str]] = {"color": [], "texture": [], "style": [], "size": []}
    for obj in after:  # several changed objects with different values: all of them, in order
        for key, value in (("color", obj.color), ("texture", obj.texture or "none"), ("style", obj.style),
                           ("size", f"{obj.size:.2f}")):
            if value not in values[key]:
                values[key].append(value)
    attributes = {key: ", ".join(vals) for key, vals in values.items() if vals}
    return EditChange(kind=kind, changed=[o.noun for o in after], attributes=attributes,
                      background=new.background if result.background_changed else None)


class WorldDescriber:
    """Exact descriptions of highlighted regions of world images, read from their scene graphs."""

    name = "world"

    def _region(self, image: Image.Image | str) -> tuple[Scene, np.ndarray | None]:
        pixels, scene = scene_of(image, "describing", "describer")
        record = current_store().record(pixels)
        mask = record.mask if record is not None else None
        if mask is None:
            mask = np.ones((pixels.height, pixels.width), dtype=bool)
        return scene, np.asarray(mask, dtype=bool)

    def describe(self, images: list[Image.Image]) -> list[str]:
        return [describe_region(*self._region(image)) for image in images]

    def summarize(self, images: list[Image.Image]) -> str:
        return summarize_regions([self._region(image) for image in images])
