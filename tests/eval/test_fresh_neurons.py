"""Fresh synthetic neurons: drawn by seed from the whole vocabulary, deterministic, neutral names, and
each one fires on its concept (and, for OR, on either half; for conditional, only with its condition)
and not on a control scene."""

from __future__ import annotations

import re

import pytest

from aim_agent.plugins import plugin_manager, split_unit_ref
from aim_world import fresh
from aim_world.neurons import COND_LEAK, Concept, NeuronSpec, SyntheticProbe, list_synthetic
from aim_world.scene import Scene, SceneObject
from aim_world.truth import region_backgrounds
from aim_world.vocabulary import BACKGROUNDS, COLORS, NOUN_BY_NAME

SEED = 3
N = 18


def regenerate(seed: int, n: int) -> tuple[NeuronSpec, ...]:
    fresh._GENERATED.pop(seed, None)  # draw again, as a new process would
    return fresh.fresh_neurons(seed, n)


def test_the_same_seed_draws_the_same_neurons_and_a_prefix_does_not_depend_on_n() -> None:
    first = [s.model_dump() for s in regenerate(SEED, N)]
    again = [s.model_dump() for s in regenerate(SEED, N)]
    assert first == again
    short = [s.model_dump() for s in regenerate(SEED, 5)]
    assert short == first[:5]
    other = [s.model_dump() for s in regenerate(SEED + 1, N)]
    assert [s["label"] for s in other] != [s["label"] for s in first]


def test_kinds_are_balanced_names_neutral_and_no_neuron_repeats_a_shipped_one() -> None:
    specs = fresh.fresh_neurons(SEED, N)
    for start in range(0, N, 3):
        assert sorted(s.kind for s in specs[start:start + 3]) == ["cond", "mono", "or"]
    assert [s.name for s in specs] == [f"s{SEED}_{k}" for k in range(N)]
    assert all(re.fullmatch(r"s\d+_\d+", s.name) for s in specs)
    shipped = fresh.shipped_signatures()
    signatures = [fresh._signature(s.kind, s.concepts) for s in specs]
    assert not set(signatures) & shipped
    assert len(set(signatures)) == len(signatures)
    # drawn from the whole vocabulary: several concept types appear, not just nouns
    types = {c.key.partition(":")[0] for s in specs for c in s.concepts}
    assert len(types) >= 4, types


def test_every_neuron_fires_on_enough_exemplar_scenes() -> None:
    specs = fresh.fresh_neurons(SEED, N)
    table = fresh.atom_table()
    for spec in specs:
        areas = table.concept_areas(spec.concepts)
        fa = areas[:, 0] >= fresh.FIRE_AREA
        if spec.kind == "mono":
            fires = fa
        elif spec.kind == "or":
            fires = fa | (areas[:, 1] >= fresh.FIRE_AREA)
            assert (fa & (areas[:, 1] == 0)).sum() >= fresh.MIN_CONTRAST, spec.label
        else:
            fires = fa & (areas[:, 1] > 0)
            assert (fa & (areas[:, 1] == 0)).sum() >= fresh.MIN_CONTRAST, spec.label
        assert fires.sum() >= fresh.MIN_FIRING, spec.label


# ------------------------------------------------------------------------- scenes that show a concept

NEUTRAL = ("cup", "chair", "book", "clock", "key", "bucket", "lamp", "anchor", "bell", "trophy")


def _atoms(concepts: list[Concept]) -> set[str]:
    return {a for c in concepts for a in fresh._atoms(c)}


def _neutral_noun(avoid: set[str]) -> str:
    return next(n for n in NEUTRAL if f"noun:{n}" not in avoid)


def _neutral_color(avoid: set[str]) -> str:
    return next(c for c in COLORS if f"color:{c}" not in avoid)


def _objects(concept: Concept, avoid: set[str]) -> list[SceneObject]:
    """One large object showing ``concept`` (a noun, a colour or a texture), avoiding the atoms in ``avoid``."""
    if concept.nouns:
        noun = next(n for n in concept.nouns if f"noun:{n}" not in avoid)
        return [SceneObject(noun=noun, color=_neutral_color(avoid), x=0.35, y=0.6, size=0.4)]
    if concept.colors:
        return [SceneObject(noun=_neutral_noun(avoid), color=concept.colors[0], x=0.35, y=0.6, size=0.4)]
    if concept.textures:
        return [SceneObject(noun=_neutral_noun(avoid), color=_neutral_color(avoid), texture=concept.textures[0],
                            x=0.35, y=0.6, size=0.4)]
    return []


def _backgrounds(concept: Concept) -> set[str] | None:
    """Backgrounds that show ``concept`` (None: any)."""
    if concept.backgrounds:
        return set(concept.backgrounds)
    if concept.regions:
        return {b for r in concept.regions for b in region_backgrounds().get(r, ())}
    return None


def scene_of(show: list[Concept], hide: list[Concept]) -> Scene:
    """A scene where every concept of ``show`` is visible and no atom of ``hide`` is."""
    avoid = _atoms(hide)
    allowed = {b.name for b in BACKGROUNDS} - {"plain"} - {b for c in hide for b in (_backgrounds(c) or ())}
    needs_background = False
    for concept in show:
        if _backgrounds(concept) is not None:
            needs_background = True
            allowed &= _backgrounds(concept) or set()
    assert allowed or not needs_background, f"no background shows {show} without {hide}"
    objects: list[SceneObject] = []
    for i, concept in enumerate(show):
        for obj in _objects(concept, avoid | {f"noun:{o.noun}" for o in objects}):
            objects.append(obj.model_copy(update={"x": 0.3 + 0.4 * i, "size": 0.35}))
    return Scene(background=sorted(allowed)[0] if needs_background else "plain", objects=objects, seed=4)


@pytest.mark.parametrize("k", range(N))
def test_each_fresh_neuron_fires_on_its_concept_and_not_on_a_control(k: int) -> None:
    spec = fresh.fresh_neurons(SEED, N)[k]
    probe = SyntheticProbe([spec.model_copy(update={"index": 0})])

    def act(scene: Scene) -> float:
        return float(probe.responses(scene)[0][0])

    a = spec.concepts[0]
    control_avoid = _atoms(spec.concepts)
    control = Scene(background="plain", seed=4, objects=[
        SceneObject(noun=_neutral_noun(control_avoid), color=_neutral_color(control_avoid), x=0.5, y=0.6, size=0.4)])
    assert act(control) == 0.0, spec.label
    if spec.kind == "mono":
        assert act(scene_of([a], [])) > 0.3, spec.label
        return
    b = spec.concepts[1]
    if spec.kind == "or":
        assert act(scene_of([a], [b])) > 0.3, spec.label
        assert act(scene_of([b], [a])) > 0.3, spec.label
        return
    with_condition = act(scene_of([a, b], []))
    assert with_condition > 0.3, spec.label
    assert act(scene_of([a], [b])) <= COND_LEAK * 1.2 < 0.1, spec.label  # A alone: the near-zero leak
    assert act(scene_of([b], [a])) == 0.0, spec.label


# ------------------------------------------------------------------------- the unit source


def test_fresh_units_open_through_the_unit_source_with_their_truth_kept_in_the_probe() -> None:
    assert split_unit_ref("fresh:s3_1") == ("fresh", "s3_1")
    assert split_unit_ref("mono_dog") == ("synthetic", "mono_dog")
    system = plugin_manager().unit_system("synthetic", f"fresh:s{SEED}_1")
    spec = fresh.fresh_neurons(SEED, 2)[1]
    assert system.ground_truth == spec.label
    assert system.model_name == "synthetic-fresh" and system.layer == f"s{SEED}-b0" and system.unit == 1
    # the names a scientist could see say nothing about the answer
    for word in spec.label.replace(",", " ").split():
        if len(word) > 3:
            assert word not in f"{system.model_name} {system.layer}"
    source = plugin_manager().provider("units", "fresh")
    assert source.eval_units(SEED, 3) == [f"s{SEED}_0", f"s{SEED}_1", f"s{SEED}_2"]
    assert source.ground_truth(f"s{SEED}_1").label == spec.label
    with pytest.raises(LookupError, match="s<SEED>_<K>"):
        plugin_manager().unit_system("fresh", "dog")


def test_the_shipped_set_is_unchanged_and_offers_its_answers_for_evaluation() -> None:
    source = plugin_manager().provider("units", "synthetic")
    names = [s.name for s in list_synthetic()]
    assert source.eval_units(0, None) == names
    sample = source.eval_units(5, 10)
    assert len(sample) == 10 and sample == sorted(sample, key=names.index)
    assert source.eval_units(5, 10) == sample
    truth = source.ground_truth("cond_dog_leash")
    assert truth.kind == "cond" and [c.label for c in truth.concepts] == ["dogs", "leashes (chains)"]
    assert NOUN_BY_NAME["dog"]  # the vocabulary the terms come from
