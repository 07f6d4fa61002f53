"""Scene-graph edits: each kind works, only the edited object's pixels change, refusals are explicit."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from aim_agent.images import current_store, image_id
from aim_agent.providers import ProviderError
from aim_world.edit import changed_region, edit_scene
from aim_world.parse import parse
from aim_world.providers import WorldEditor, WorldTextToImage
from aim_world.render import render

SCENES = [
    parse("a red dog with a leash next to a blue car on the beach", seed=1),
    parse("a striped cat on top of a yellow box and a tree in a room", seed=2),
    parse("two dogs and a ball on grass", seed=3),
]

INSTRUCTIONS = [
    ("replace the dog with a cat", "replace"),
    ("change the color of the car to green", "recolor"),
    ("make the car green", "attributes"),
    ("change the background to snow", "background"),
    ("add a tree", "add"),
    ("add a red ball to the left of the dog", "add"),
    ("remove the dog", "remove"),
    ("make the dog bigger", "attributes"),
    ("make the dog smaller", "attributes"),
    ("move the car to the left", "move"),
    ("move the dog right", "move"),
    ("move the dog up", "move"),
    ("make the car striped", "attributes"),
    ("add polka dots to the dog", "texture"),
    ("make the dog outlined", "attributes"),
    ("turn the car into a bus", "replace"),
    ("make the red dog a blue cat", "replace"),
    ("put the dog in the forest", "background"),
    ("enlarge the car", "resize"),
    ("put a hat on the dog", "add"),
]


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image)


@pytest.mark.parametrize(("instruction", "kind"), INSTRUCTIONS)
def test_each_edit_changes_only_the_edited_pixels(instruction: str, kind: str) -> None:
    scene = SCENES[0]
    new, result = edit_scene(scene, instruction)
    assert result.applied, result.notes
    assert result.kind == kind
    before, after = render(scene), render(new)
    diff = (_pixels(before.image) != _pixels(after.image)).any(-1)
    assert diff.any(), "an applied edit must change the image"
    region = changed_region(before, after, result)
    assert not (diff & ~region).any(), "pixels outside the edited object changed"


@pytest.mark.parametrize("scene_index", [1, 2])
@pytest.mark.parametrize(
    "instruction",
    ["make the dog red", "remove the ball", "move the cat down", "make the cat smaller", "replace the tree with a car",
     "change the background to night", "make the box checkered", "add a bird above the tree", "make the ball bigger"],
)
def test_locality_on_other_scenes(scene_index: int, instruction: str) -> None:
    scene = SCENES[scene_index]
    new, result = edit_scene(scene, instruction)
    before, after = render(scene), render(new)
    diff = (_pixels(before.image) != _pixels(after.image)).any(-1)
    if not result.applied:
        assert new == scene and not diff.any()
        assert result.notes and "no " in result.notes[0]  # the object named is not in that scene
        return
    assert not (diff & ~changed_region(before, after, result)).any()


def test_background_change_leaves_objects_identical() -> None:
    scene = SCENES[0]
    new, _ = edit_scene(scene, "change the background to snow")
    before, after = render(scene), render(new)
    objects = ~before.background_mask
    assert np.array_equal(_pixels(before.image)[objects], _pixels(after.image)[objects])
    assert (_pixels(before.image)[before.background_mask] != _pixels(after.image)[after.background_mask]).any()
    assert new.background == "snow" and new.objects == scene.objects


def test_edits_do_what_they_say() -> None:
    scene = SCENES[0]
    dog = scene.objects[0]
    assert edit_scene(scene, "replace the dog with a cat")[0].objects[0].noun == "cat"
    assert edit_scene(scene, "make the car green")[0].objects[2].color == "green"
    assert edit_scene(scene, "make the dog bigger")[0].objects[0].size > dog.size
    assert edit_scene(scene, "make the dog smaller")[0].objects[0].size < dog.size
    moved = edit_scene(scene, "move the dog up")[0]
    assert moved.objects[0].y < dog.y
    # the leash attached to the dog moves with it
    assert moved.objects[1].y - moved.objects[0].y == pytest.approx(scene.objects[1].y - dog.y, abs=1e-3)
    assert edit_scene(scene, "make the car striped")[0].objects[2].texture == "stripes"
    added, result = edit_scene(scene, "add a red ball to the left of the dog")
    ball = added.objects[-1]
    assert ball.noun == "ball" and ball.color == "red" and ball.x < dog.x and result.changed_new == [3]


def test_remove_reindexes_attachments_and_relations() -> None:
    scene = SCENES[0]  # dog(0) with leash(1), car(2)
    new, result = edit_scene(scene, "remove the dog")
    assert new.nouns() == ["leash", "car"]
    assert new.objects[0].attached_to is None
    assert all(r.subject < 2 and r.object < 2 for r in new.relations)
    assert result.notes  # says the leash was kept
    new, _ = edit_scene(scene, "remove the car")
    assert new.objects[1].attached_to == 0


@pytest.mark.parametrize(
    ("instruction", "reason"),
    [("remove the unicorn", "no unicorn"), ("make the dog run", "run"), ("make the car sparkly", "sparkly"),
     ("change the background to spaceship", "not a background"), ("replace the dog with a blorp", "blorp"),
     ("dance", "cannot read"), ("change the background to beach", "already"), ("make the car blue", "already")],
)
def test_refusals_are_explicit(instruction: str, reason: str) -> None:
    scene = SCENES[0]
    new, result = edit_scene(scene, instruction)
    assert not result.applied
    assert new == scene
    assert any(reason in note for note in result.notes), result.notes


def test_plural_reference_edits_every_match() -> None:
    scene = SCENES[2]
    new, result = edit_scene(scene, "make the dogs purple")
    assert [o.color for o in new.objects if o.noun == "dog"] == ["purple", "purple"]
    assert len(result.changed_new) == 2


def test_provider_registers_edits_and_refuses_foreign_images() -> None:
    gen = WorldTextToImage().generate(["a red dog next to a blue car on the beach"], seed=1)[0]
    editor = WorldEditor()
    done, refused = editor.edit([gen.image, gen.image], ["make the dog green", "make the dog fly"])
    assert done.applied and not refused.applied
    assert np.array_equal(_pixels(refused.edited), _pixels(refused.original)) and refused.notes
    record = current_store().record(done.edited)
    assert record is not None and record.parent == image_id(gen.image)
    assert record.meta["instruction"] == "make the dog green"
    assert record.scene["objects"][0]["color"] == "green"
    # an edit of an edit works from the stored scene graph
    again = editor.edit([done.edited], ["remove the car"])[0]
    assert again.applied and current_store().scene_of(again.edited)["objects"][0]["color"] == "green"
    foreign = Image.new("RGB", (64, 64), (1, 2, 3))
    with pytest.raises(ProviderError, match="not a world image"):
        editor.edit([foreign], ["make the dog green"])


@pytest.mark.parametrize("placement", ["behind", "partly hidden behind"])
def test_an_object_added_behind_another_is_drawn_first(placement: str) -> None:
    scene = parse("a blue car on grass", seed=4)
    new, result = edit_scene(scene, f"add a dog {placement} the car")
    assert result.applied and result.kind == "add", result.notes
    assert new.nouns() == ["dog", "car"] and result.changed_new == [0]  # painted before the car
    assert any(r.subject == 0 and r.relation == "behind" and r.object == 1 for r in new.relations)
    before, after = render(scene), render(new)
    assert np.array_equal(after.masks[1], before.masks[0])  # the car is whole: nothing drawn over it
    assert after.masks[0].sum() > 0 and new.objects[0].visible is not None and new.objects[0].visible < 1
    assert np.array_equal(after.owner, np.select([after.masks[0], after.masks[1]], [0, 1], -1))  # exact masks
    diff = (_pixels(before.image) != _pixels(after.image)).any(-1)
    assert diff.any() and not (diff & ~changed_region(before, after, result)).any()


def test_an_object_added_in_front_of_another_is_drawn_last() -> None:
    scene = parse("a blue car on grass", seed=4)
    new, result = edit_scene(scene, "add a dog in front of the car")
    assert result.applied and new.nouns() == ["car", "dog"] and result.changed_new == [1]
    before, after = render(scene), render(new)
    assert after.masks[0].sum() < before.masks[0].sum()  # the dog hides part of the car
    assert new.objects[0].visible is not None and new.objects[0].visible < 1


def test_adding_behind_remaps_attachments_and_relations() -> None:
    scene = SCENES[0]  # dog(0) with leash(1), car(2)
    new, result = edit_scene(scene, "add a cat behind the car")
    assert new.nouns() == ["dog", "leash", "cat", "car"] and result.changed_new == [2]
    assert new.objects[1].attached_to == 0
    new, result = edit_scene(scene, "add a cat behind the dog")
    assert new.nouns() == ["cat", "dog", "leash", "car"] and result.changed_new == [0]
    assert new.objects[2].attached_to == 1  # the leash still belongs to the dog
    assert {(new.objects[r.subject].noun, r.relation, new.objects[r.object].noun) for r in new.relations} == {
        (scene.objects[r.subject].noun, r.relation, scene.objects[r.object].noun) for r in scene.relations
    } | {("cat", "behind", "dog")}
    before, after = render(scene), render(new)
    assert np.array_equal(after.masks[1], before.masks[0])  # the dog is whole
    diff = (_pixels(before.image) != _pixels(after.image)).any(-1)
    assert not (diff & ~changed_region(before, after, result)).any()
    with pytest.raises(ValueError, match="not a permutation"):
        scene.reordered([0, 0, 1])
