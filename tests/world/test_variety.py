"""The world's variety stays exact: every look and backdrop is in the scene graph, masks are exactly the
pixels drawn after rotation, flip, shear and occlusion, sizes keep real-world proportions, things stand
on the ground, close-ups fill the frame, occlusion is drawn on request, backgrounds vary by seed."""

from __future__ import annotations

import numpy as np
import pytest

from aim_world import datasets as ds
from aim_world.parse import parse
from aim_world.render import (
    background_parts,
    background_pixels,
    object_box,
    object_pixels,
    render,
)
from aim_world.scene import Scene, SceneObject, backdrop
from aim_world.vocabulary import BACKGROUND_BY_NAME, NOUN_BY_NAME, real_scale


def _obj(noun: str, **kw: object) -> SceneObject:
    return SceneObject(**{"noun": noun, "color": "red", "x": 0.5, "y": 0.5, "size": 0.5, **kw})  # type: ignore[arg-type]


def _pasted(obj: SceneObject, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(mask, rgb) of one object placed in the full frame, from its own box: what the renderer must draw."""
    mask_box, paint_box = object_pixels(obj, size)
    x0, y0, x1, y1 = object_box(obj, size)
    mask = np.zeros((size, size), dtype=bool)
    paint = np.zeros((size, size, 3), dtype=np.uint8)
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)
    sub = mask_box[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    mask[cy0:cy1, cx0:cx1] = sub
    paint[cy0:cy1, cx0:cx1] = paint_box[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    return mask, paint


LOOKS = [
    {"rotation": 25.0},
    {"rotation": -40.0, "flip": True},
    {"shear": 0.3},
    {"rotation": 12.5, "shear": -0.2, "flip": True, "weight": 700, "shade": 0.4, "grain": 0.15},
    {"weight": 300, "style": "outline", "texture": "stripes", "rotation": -8.0},
]


@pytest.mark.parametrize("look", LOOKS, ids=[str(sorted(k)) for k in LOOKS])
def test_mask_is_exactly_the_drawn_pixels_under_every_transform(look: dict) -> None:
    size = 160
    obj = _obj("dog", x=0.45, y=0.55, **look)
    r = render(Scene(background="grass", objects=[obj], seed=3), size)
    expected_mask, expected_paint = _pasted(obj, size)
    assert np.array_equal(r.masks[0], expected_mask)
    pixels = np.asarray(r.image)
    background = background_pixels("grass", size, 3)
    assert np.array_equal(pixels[~r.masks[0]], background[~r.masks[0]])  # nothing drawn outside the mask
    assert np.array_equal(pixels[r.masks[0]], expected_paint[r.masks[0]])  # the object's paint inside it
    # the look really changed the drawing, and a rotation or shear keeps the area (nearest pixels: roughly)
    plain = render(Scene(background="grass", objects=[_obj("dog", x=0.45, y=0.55)], seed=3), size).masks[0]
    assert not np.array_equal(r.masks[0], plain)
    if "style" not in look and "weight" not in look:
        assert 0.85 < r.masks[0].sum() / plain.sum() < 1.15


def test_rotation_and_flip_move_the_mask_as_asked() -> None:
    size = 128
    base = render(Scene(background="plain", objects=[_obj("car")]), size).masks[0]
    flipped = render(Scene(background="plain", objects=[_obj("car", flip=True)]), size).masks[0]
    assert np.array_equal(flipped, base[:, ::-1])
    # a counter-clockwise turn lifts the right end of a wide object: its right half's top row rises
    turned = render(Scene(background="plain", objects=[_obj("car", rotation=30.0)]), size).masks[0]

    def top_row(mask: np.ndarray) -> int:
        return int(np.nonzero(mask.any(axis=1))[0].min())

    assert top_row(turned[:, size // 2 + 20 :]) < top_row(base[:, size // 2 + 20 :])


def test_occluded_parts_are_in_no_mask_but_the_occluders() -> None:
    size = 200
    back, front = _obj("dog", x=0.4, rotation=10.0), _obj("car", x=0.55, y=0.6, shear=0.2)
    r = render(Scene(background="road", objects=[back, front], seed=1), size)
    alone_back, _ = _pasted(back, size)
    alone_front, _ = _pasted(front, size)
    assert np.array_equal(r.masks[1], alone_front)
    assert np.array_equal(r.masks[0], alone_back & ~alone_front)
    assert (alone_back & alone_front).sum() > 100  # the test really has an occlusion


def test_every_look_and_backdrop_is_recorded_in_the_scene_graph() -> None:
    objects = [o for seed in range(12) for o in parse("a dog next to a car on the road", seed=seed).objects]
    objects += [o for s in ds.samples("classify", 40, 0) for o in s.scene.objects]
    assert len({o.weight for o in objects}) >= 4
    assert {o.flip for o in objects} == {True, False}
    assert len({o.rotation for o in objects}) > 30 and len({o.shear for o in objects}) > 30
    assert all(0 < o.shade <= 0.5 for o in objects) and len({o.grain for o in objects}) > 30
    # a scene round-trips through JSON with its looks, and its backdrop is written out with it
    scene = parse("a dog next to a car on the road", seed=4)
    data = scene.model_dump()
    assert data["backdrop"] == backdrop("road", 4).model_dump()
    again = Scene.model_validate_json(scene.model_dump_json())
    assert again == scene
    assert np.array_equal(np.asarray(render(again, 96).image), np.asarray(render(scene, 96).image))


def test_same_prompt_and_seed_give_the_same_pixels_other_seeds_differ() -> None:
    prompt = "a striped cat next to a tree on the grass"
    a, b = render(parse(prompt, seed=5), 128), render(parse(prompt, seed=5), 128)
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert all(np.array_equal(x, y) for x, y in zip(a.masks, b.masks, strict=True))
    c = render(parse(prompt, seed=6), 128)
    assert not np.array_equal(np.asarray(a.image), np.asarray(c.image))


@pytest.mark.parametrize("small,large", [("key", "car"), ("tulip", "tree"), ("ant", "elephant"),
                                         ("cat", "house"), ("apple", "horse"), ("airplane", "mountain")])
def test_relative_scale_follows_the_real_world(small: str, large: str) -> None:
    assert real_scale(small) < real_scale(large)
    for seed in range(4):
        for prompt in (f"a {small} next to a {large}", f"a {large} and a {small} on the grass"):
            sizes = {o.noun: o.size for o in parse(prompt, seed=seed).objects}
            assert sizes[small] < 0.85 * sizes[large], (prompt, sizes)


def test_things_that_stand_touch_the_ground_and_sky_things_stay_in_the_sky() -> None:
    size = 224
    standing = ["dog", "car", "house", "tree", "person", "cow", "bicycle", "tent"]
    checked = 0
    for seed in range(6):
        for background in ("grass", "road", "beach", "desert", "snow", "mountains", "forest", "room"):
            for noun in standing:
                scene = parse(f"a {noun} in the {background}" if background != "room" else f"a {noun} in a room",
                              seed=seed)
                horizon = scene.backdrop.horizon
                assert horizon is not None and scene.background == background
                mask = render(scene, size).masks[0]
                base = int(np.nonzero(mask.any(axis=1))[0].max())
                assert base >= horizon * size, (noun, background, seed, base, horizon)
                checked += 1
    assert checked == 6 * 8 * len(standing)
    for seed in range(8):
        scene = parse("an airplane and a cloud over the grass", seed=seed)
        horizon = scene.backdrop.horizon
        assert horizon is not None
        assert all(o.y < horizon for o in scene.objects), [(o.noun, o.y, horizon) for o in scene.objects]
    # datasets place standing things on the ground too
    for sample in ds.samples("classify", 60, 3):
        scene, obj = sample.scene, sample.scene.objects[0]
        horizon = scene.backdrop.horizon
        if horizon is None or NOUN_BY_NAME[obj.noun].zone != "ground":
            continue
        base = int(np.nonzero(render(scene, size).masks[0].any(axis=1))[0].max())
        assert base >= horizon * size, (obj.noun, scene.background, base, horizon)


def test_a_close_up_fills_most_of_the_frame_and_may_be_cropped() -> None:
    cropped = 0
    for seed in range(6):
        scene = parse("a close-up of a dog on the grass", seed=seed)
        (dog,) = scene.objects
        assert dog.size >= 1.0
        r = render(scene, 128)
        assert r.masks[0].mean() > 0.4
        rows, cols = np.nonzero(r.masks[0])
        cropped += int(rows.min() == 0 or cols.min() == 0 or rows.max() == 127 or cols.max() == 127)
    assert cropped >= 3


@pytest.mark.parametrize("prompt,hidden,occluder", [
    ("a dog partly hidden behind a car on the road", "dog", "car"),
    ("a cat partly hidden behind a bush", "cat", "bush"),
    ("a dog partly hidden behind a fence", "dog", "fence"),
    ("a person behind a tree in the forest", "person", "tree"),
    ("a car in front of a house", "house", "car"),
])
def test_occlusion_on_request_is_drawn_and_recorded(prompt: str, hidden: str, occluder: str) -> None:
    for seed in range(3):
        scene = parse(prompt, seed=seed)
        nouns = scene.nouns()
        i, j = nouns.index(hidden), nouns.index(occluder)
        assert i < j  # the hidden one is drawn first
        assert any(r.relation in ("behind", "in front of") for r in scene.relations)
        target = scene.objects[i]
        assert target.visible is not None and 0.05 < target.visible < 0.97, (prompt, seed, target.visible)
        r = render(scene, 224)
        alone, _ = _pasted(target, 224)
        assert abs(r.masks[i].sum() / alone.sum() - target.visible) < 1e-3
        assert not (r.masks[i] & r.masks[j]).any()


def test_an_edit_keeps_the_visible_share_true() -> None:
    from aim_world.edit import edit_scene

    scene = parse("a dog partly hidden behind a car on the road", seed=1)
    assert scene.objects[0].visible is not None and scene.objects[0].visible < 0.97
    new, result = edit_scene(scene, "remove the car")
    assert result.applied and new.objects[0].visible == 1.0


def test_backgrounds_vary_continuously_with_the_seed() -> None:
    looks = [backdrop("grass", seed) for seed in range(40)]
    assert len({b.horizon for b in looks}) > 30 and len({b.brightness for b in looks}) > 30
    assert len({b.variant for b in looks}) > 10
    base = BACKGROUND_BY_NAME["grass"].horizon
    assert base is not None and all(abs(b.horizon - base) <= 0.07 for b in looks if b.horizon is not None)
    assert all(b.horizon is None for b in (backdrop("sky", s) for s in range(5)))
    images = [background_pixels("grass", 96, seed) for seed in range(6)]
    assert all(not np.array_equal(images[0], im) for im in images[1:])
    # the part labels move with the horizon: sky above it, grass below it
    for seed in range(10):
        labels, parts = background_parts("grass", 200, seed)
        h = looks[seed].horizon
        assert h is not None
        row = int(h * 200)
        assert parts[labels[max(0, row - 3), 5]] == "sky" and parts[labels[min(199, row + 3), 5]] == "grass"
