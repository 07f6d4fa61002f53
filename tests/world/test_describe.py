"""The exact describer: what lies in a highlighted region, and what several regions share."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from PIL import Image

from aim_agent.images import current_store, image_id
from aim_agent.providers import ProviderError
from aim_world.describe import describe_region, summarize_regions
from aim_world.parse import parse
from aim_world.providers import WorldDescriber, WorldTextToImage
from aim_world.render import render
from aim_world.scene import Scene, SceneObject

SCENE = parse("a red dog next to a blue car on the beach", seed=0)


def test_region_on_an_object_names_it_and_nothing_else() -> None:
    r = render(SCENE)
    text = describe_region(SCENE, r.masks[0])
    assert "red dog" in text
    assert "car" not in text and "sand" not in text and "sky" not in text


def test_region_on_the_sky_names_the_background_part() -> None:
    mask = np.zeros((224, 224), dtype=bool)
    mask[:40] = True
    text = describe_region(SCENE, mask)
    assert "sky" in text and "beach" in text
    assert "dog" not in text and "car" not in text


def test_whole_image_lists_everything_by_overlap() -> None:
    text = describe_region(SCENE, None)
    assert "whole image" in text
    assert "red dog" in text and "blue car" in text and "sand" in text
    # order by share of the region: the background parts (large) before nothing smaller than them
    assert text.index("sand") < text.index("sea")


def test_part_of_an_object() -> None:
    r = render(SCENE)
    dog = r.masks[0]
    rows = np.nonzero(dog.any(1))[0]
    top = np.zeros_like(dog)
    top[: rows.min() + (rows.max() - rows.min()) // 3] = True
    text = describe_region(SCENE, dog & top)
    assert "upper" in text and "part of a red dog" in text


def test_counts_textures_and_styles() -> None:
    scene = Scene(background="plain", objects=[
        SceneObject(noun="cat", color="green", texture="stripes", x=0.25, y=0.5, size=0.35),
        SceneObject(noun="cat", color="green", texture="stripes", x=0.75, y=0.5, size=0.35),
        SceneObject(noun="car", color="pink", style="outline", x=0.5, y=0.85, size=0.25),
    ])
    mask = np.zeros((224, 224), dtype=bool)
    mask[:150] = True
    text = describe_region(scene, mask)
    assert "2 green striped cats" in text
    assert "outlined" not in text  # the car is outside the region
    assert "outlined car" in describe_region(scene, render(scene).masks[2])


def test_empty_region() -> None:
    assert "empty" in describe_region(SCENE, np.zeros((224, 224), dtype=bool))


def test_summary_counts_shared_concepts() -> None:
    items = []
    for seed, prompt in enumerate(["a red dog on grass", "a red dog in the snow", "a red dog on the beach",
                                   "a blue dog on grass", "a red car on grass", "a brown dog in a room"]):
        scene = parse(prompt, seed=seed)
        items.append((scene, render(scene).masks[0]))
    text = summarize_regions(items)
    assert "dog (5/6)" in text and "red (4/6)" in text
    assert "in common" in text and "varies" in text
    assert "car (1/6)" in text.split("varies")[1]


def test_describer_is_blind_to_hypotheses() -> None:
    for fn in (describe_region, summarize_regions, WorldDescriber.describe, WorldDescriber.summarize):
        params = set(inspect.signature(fn).parameters)
        assert not params & {"hypothesis", "hypotheses", "prompt", "question"}


def test_provider_reads_overlay_masks_through_the_store() -> None:
    gen = WorldTextToImage().generate(["a red dog next to a blue car on the beach"], seed=0)[0]
    assert current_store().scene_of(gen.image) is not None
    r = render(Scene.model_validate(current_store().scene_of(gen.image)))
    overlay = Image.fromarray(np.where(r.masks[1][..., None], np.asarray(gen.image), 0).astype(np.uint8))
    current_store().register(overlay, parent=image_id(gen.image), mask=r.masks[1])
    describer = WorldDescriber()
    on_car, whole = describer.describe([overlay, gen.image])
    assert "blue car" in on_car and "dog" not in on_car
    assert "whole image" in whole and "dog" in whole
    assert "car (2/2)" in describer.summarize([overlay, gen.image])


def test_provider_refuses_images_without_a_scene() -> None:
    foreign = Image.new("RGB", (32, 32), (9, 9, 9))
    with pytest.raises(ProviderError, match=r"not a world image.*--describer"):
        WorldDescriber().describe([foreign])


def test_generator_notes_unknown_words() -> None:
    gen = WorldTextToImage().generate(["a dog and a flurble"], size=64)[0]
    assert gen.image.size == (64, 64)
    assert any("could not draw" in n and "flurble" in n for n in gen.notes)
