"""Synthetic neurons: MAIA's mono / OR / conditional kinds over world scene graphs."""

from __future__ import annotations

import numpy as np
import pytest

from aim_agent.images import current_store
from aim_agent.models.base import load_probe
from aim_world.neurons import (
    COND_LEAK,
    DROPPED,
    MAP_SIZE,
    SyntheticProbe,
    check_table,
    find_neuron,
    list_synthetic,
    synthetic_system,
)
from aim_world.render import render
from aim_world.scene import Scene, SceneObject


def scene(*objects: tuple[str, str, float], background: str = "grass", seed: int = 1, size: float = 0.3) -> Scene:
    return Scene(
        background=background,
        seed=seed,
        objects=[SceneObject(noun=n, color=c, x=x, y=0.72, size=size) for n, c, x in objects],
    )


@pytest.fixture(scope="module")
def probe() -> SyntheticProbe:
    return SyntheticProbe()


def act(probe: SyntheticProbe, name: str, s: Scene) -> float:
    acts, _ = probe.responses(s)
    return float(acts[find_neuron(name).index])


def grid(probe: SyntheticProbe, name: str, s: Scene) -> np.ndarray:
    _, maps = probe.responses(s)
    return maps[find_neuron(name).index]


def test_monosemantic_fires_on_its_concept_only(probe: SyntheticProbe) -> None:
    dog = scene(("dog", "brown", 0.3))
    cat = scene(("cat", "brown", 0.3))
    assert act(probe, "mono_dog", dog) > 0.4
    assert act(probe, "mono_dog", cat) == 0.0
    assert act(probe, "mono_dog", scene()) == 0.0
    # colour and texture concepts read the object's attributes, not its noun
    assert act(probe, "mono_blue", scene(("cat", "blue", 0.3))) > 0.4
    assert act(probe, "mono_blue", cat) == 0.0
    striped = Scene(background="plain", objects=[SceneObject(noun="cup", color="red", texture="stripes",
                                                             x=0.5, y=0.5, size=0.4)])
    assert act(probe, "mono_stripes", striped) > 0.4
    assert act(probe, "mono_stripes", scene(("cup", "red", 0.5))) == 0.0
    # background regions: the sky part of outdoor backgrounds, none indoors
    assert act(probe, "mono_sky", scene(background="beach")) > 0.8
    assert act(probe, "mono_sky", scene(background="room")) == 0.0


def test_response_grows_with_visible_area_and_is_reproducible(probe: SyntheticProbe) -> None:
    small = act(probe, "mono_dog", scene(("dog", "brown", 0.5), size=0.12))
    big = act(probe, "mono_dog", scene(("dog", "brown", 0.5), size=0.45))
    assert 0 < small < big
    # fixed noise: the same scene always gives the same number, another placement a slightly different one
    a = act(probe, "mono_dog", scene(("dog", "brown", 0.3)))
    assert a == act(SyntheticProbe(), "mono_dog", scene(("dog", "brown", 0.3)))
    b = act(probe, "mono_dog", scene(("dog", "brown", 0.3), seed=2))
    assert a != b and abs(a - b) < 0.3


def test_map_is_the_concept_mask(probe: SyntheticProbe) -> None:
    s = scene(("dog", "brown", 0.25), ("car", "red", 0.75))
    m = grid(probe, "mono_dog", s)
    assert m.shape == (MAP_SIZE, MAP_SIZE)
    cols = np.nonzero(m.any(axis=0))[0]
    assert cols.max() < MAP_SIZE // 2  # only the dog's (left) half lights up
    dog_mask = render(s, 224).masks[0]
    pooled = dog_mask.reshape(MAP_SIZE, 4, MAP_SIZE, 4).any(axis=(1, 3))
    np.testing.assert_array_equal(m > 0, pooled)
    assert m.max() == pytest.approx(act(probe, "mono_dog", s))


def test_or_fires_for_either_and_merges_masks(probe: SyntheticProbe) -> None:
    dog = scene(("dog", "brown", 0.25))
    car = scene(("car", "red", 0.75))
    both = scene(("dog", "brown", 0.25), ("car", "red", 0.75))
    assert act(probe, "or_dog_car", dog) > 0.4
    assert act(probe, "or_dog_car", car) > 0.4
    assert act(probe, "or_dog_car", scene(("cat", "brown", 0.3))) == 0.0
    assert act(probe, "or_dog_car", both) == pytest.approx(
        max(act(probe, "mono_dog", both), act(probe, "mono_car", both)), abs=0.1)
    merged = grid(probe, "or_dog_car", both) > 0
    union = (grid(probe, "mono_dog", both) > 0) | (grid(probe, "mono_car", both) > 0)
    np.testing.assert_array_equal(merged, union)
    assert merged[:, : MAP_SIZE // 2].any() and merged[:, MAP_SIZE // 2 :].any()


def test_conditional_needs_both(probe: SyntheticProbe) -> None:
    both = scene(("dog", "brown", 0.3), ("leash", "gray", 0.7))
    dog_only = scene(("dog", "brown", 0.3))
    leash_only = scene(("leash", "gray", 0.7))
    full = act(probe, "cond_dog_leash", both)
    alone = act(probe, "cond_dog_leash", dog_only)
    assert full > 0.4
    assert 0 < alone <= COND_LEAK * 1.5 and alone < full / 10  # near zero for A alone
    assert act(probe, "cond_dog_leash", leash_only) == 0.0  # zero for B alone
    # the map shows A (the dog), not the condition
    m = grid(probe, "cond_dog_leash", both)
    assert m[:, : MAP_SIZE // 2].any() and not m[:, MAP_SIZE * 3 // 5 :].any()
    # conditions can be backgrounds: fish only on water
    assert act(probe, "cond_fish_water", scene(("fish", "orange", 0.5), background="water")) > 0.4
    assert act(probe, "cond_fish_water", scene(("fish", "orange", 0.5), background="desert")) < 0.1


def test_every_neuron_has_ground_truth_and_a_maia_account() -> None:
    check_table()
    specs = list_synthetic()
    kinds = {k: sum(s.kind == k for s in specs) for k in ("mono", "or", "cond")}
    assert all(v >= 15 for v in kinds.values()), kinds
    assert len({s.name for s in specs}) == len(specs)
    probe = SyntheticProbe()
    for s in specs:
        assert s.name.startswith(s.kind + "_")
        assert len(s.concepts) == (1 if s.kind == "mono" else 2)
        label = probe.unit_label(s.index)
        assert label and label == s.label
        for concept in s.concepts:
            assert concept.label in label
        assert s.maia or s.note is None  # a world extra carries no MAIA mapping note
    # MAIA's Table A6 (88 entries as printed) is either kept (possibly substituted) or dropped with a reason
    kept = sum(1 for s in specs if s.maia)
    assert kept + len(DROPPED) == 88
    assert all(DROPPED.values())


def test_probe_reads_scenes_from_the_store_and_refuses_other_images() -> None:
    s = scene(("dog", "brown", 0.3), ("leash", "gray", 0.7))
    image = render(s, 224).image
    current_store().register(image, scene=s.model_dump(mode="json"))
    probe = load_probe("synthetic", "neurons")  # through the world plugin's loader
    assert isinstance(probe, SyntheticProbe)
    out = probe.forward([image])
    assert out.shape == (1, probe.num_units, MAP_SIZE, MAP_SIZE) and str(out.dtype) == "torch.float32"
    from PIL import Image

    stranger = Image.new("RGB", (224, 224), (1, 2, 3))
    with pytest.raises(ValueError, match="no world scene"):
        probe.forward([stranger])
    system = synthetic_system("cond_dog_leash")
    acts, overlays = system.neuron([image])
    assert acts[0] > 0.4 and len(overlays) == 1
    assert system.ground_truth == find_neuron("cond_dog_leash").label
    assert synthetic_system(find_neuron("mono_dog").index).unit == find_neuron("mono_dog").index


def test_unknown_neuron_lists_close_names() -> None:
    with pytest.raises(LookupError, match="mono_dog"):
        find_neuron("mono_dgo")
    with pytest.raises(LookupError, match="out of range"):
        find_neuron(10_000)
    with pytest.raises(LookupError):
        SyntheticProbe.for_layer("conv5")


def test_activation_ignores_what_does_not_change_pixels(probe: SyntheticProbe) -> None:
    s = scene(("dog", "brown", 0.3))
    labelled = s.model_copy(update={"prompt": "a brown dog on grass"})
    assert act(probe, "mono_dog", s) == act(probe, "mono_dog", labelled)
    assert probe.responses(s.model_dump(mode="json"))[0].tolist() == probe.responses(s)[0].tolist()


def test_dataset_files_carry_their_scene_for_the_exemplar_pass(tmp_path) -> None:
    from aim_agent.exemplars.dataset import ImageFolder
    from aim_world.datasets import read_dataset, write_dataset

    folder = write_dataset(tmp_path / "ds", 4, seed=9, size=64)
    rows = read_dataset(folder)
    # the exemplar engine streams files without registering them in the store
    batch = next(ImageFolder(folder).batches(4))
    probe = SyntheticProbe()
    maps = probe.forward(batch.images).numpy()
    for i, row in zip(batch.indices, rows, strict=True):
        acts, expected = probe.responses(row["scene"], 64)
        np.testing.assert_array_equal(maps[i], expected)
        assert maps[i].reshape(len(acts), -1).max(1).tolist() == pytest.approx(acts.tolist())
