"""Editor phrasing from issue 12: colour words that are nouns, quantified and selected references,
"make it night/snowy/day", and partial edits that say what was and was not done."""

from __future__ import annotations

import numpy as np
import pytest

from aim_world.edit import changed_region, edit_scene
from aim_world.parse import parse
from aim_world.providers import edit_change
from aim_world.render import render

BALLOONS = parse("three red balloons in the sky", seed=4)


def _edit(scene, instruction):
    new, result = edit_scene(scene, instruction)
    assert result.applied, result.notes
    before, after = render(scene, 96), render(new, 96)  # strictly local, as every other edit
    diff = (np.asarray(before.image) != np.asarray(after.image)).any(-1)
    assert not (diff & ~changed_region(before, after, result)).any()
    return new, result


@pytest.mark.parametrize("instruction", ["make the car orange", "change the color of the car to orange",
                                         "make the car pink", "turn the car orange"])
def test_colour_words_that_are_also_nouns_are_colours(instruction: str) -> None:
    scene = parse("a red car on a road", seed=1)
    new, result = _edit(scene, instruction)
    target = instruction.split()[-1]
    assert new.nouns() == ["car"] and new.objects[0].color == target
    assert edit_change(scene, new, result).attributes["color"] == target


def test_an_article_makes_the_colour_word_an_object() -> None:
    new, result = _edit(parse("a red car on a road", seed=1), "make the car an orange")
    assert result.kind == "replace" and new.nouns() == ["orange"]


def test_remove_one_balloon_removes_exactly_one_and_says_so() -> None:
    new, result = _edit(BALLOONS, "remove one balloon")
    assert len(new.objects) == 2 and result.changed_old == [min(range(3), key=lambda i: BALLOONS.objects[i].x)]
    assert any("1 of the 3" in n and "2 left" in n for n in result.notes)
    assert edit_change(BALLOONS, new, result).removed == ["balloon"]


@pytest.mark.parametrize(("instruction", "count"), [
    ("remove a balloon", 1), ("remove two of the balloons", 2), ("remove the balloons", 3),
    ("remove all the balloons", 3), ("remove 2 balloons", 2),
])
def test_quantified_removals(instruction: str, count: int) -> None:
    new, result = _edit(BALLOONS, instruction)
    assert len(result.changed_old) == count and len(new.objects) == 3 - count


def test_selectors_pick_the_object_they_name() -> None:
    xs = [o.x for o in BALLOONS.objects]
    sizes = [o.size for o in BALLOONS.objects]
    assert _edit(BALLOONS, "remove the left one")[1].changed_old == [int(np.argmin(xs))]
    assert _edit(BALLOONS, "remove the rightmost balloon")[1].changed_old == [int(np.argmax(xs))]
    new, result = _edit(BALLOONS, "make the biggest balloon blue")
    assert result.changed_new == [int(np.argmax(sizes))] and [o.color for o in new.objects].count("blue") == 1
    second = sorted(range(3), key=lambda i: xs[i])[1]
    assert _edit(BALLOONS, "remove the second balloon")[1].changed_old == [second]


def test_the_left_one_is_the_leftmost_object_of_any_kind() -> None:
    scene = parse("a dog and a cat", seed=0)
    left = min(range(2), key=lambda i: scene.objects[i].x)
    assert _edit(scene, "remove the left one")[1].changed_old == [left]
    _, refused = edit_scene(scene, "remove one")  # no noun and no selector: ambiguous, refused
    assert not refused.applied and "ambiguous" in refused.notes[0]


def test_asking_for_more_than_there_is_is_partial_and_says_so() -> None:
    new, result = _edit(BALLOONS, "remove five balloons")
    assert new.objects == [] and any("asked for 5" in n and "has 3" in n for n in result.notes)
    _, refused = edit_scene(BALLOONS, "remove the fourth balloon")
    assert not refused.applied


@pytest.mark.parametrize(("instruction", "background"), [
    ("make it night", "night"), ("make the scene night", "night"), ("make it snowy", "snow"),
    ("make everything wintry", "snow"), ("make the scene snowy", "snow"), ("turn it into a beach", "beach"),
])
def test_make_it_night_or_snowy(instruction: str, background: str) -> None:
    new, result = _edit(parse("a dog and a cat on the grass", seed=2), instruction)
    assert result.kind == "background" and new.background == background
    assert [o.model_dump() for o in new.objects] == [o.model_dump() for o in parse("a dog and a cat on the grass",
                                                                                    seed=2).objects]


def test_make_it_day() -> None:
    new, result = _edit(parse("a dog at night", seed=0), "make it day")
    assert new.background == "sky" and any("no daytime version" in n for n in result.notes)
    _, refused = edit_scene(parse("a dog on the grass"), "make it day")
    assert not refused.applied and "already day" in refused.notes[0]
    one = parse("a red dog")
    assert _edit(one, "make it blue")[0].objects[0].color == "blue"  # "it" is still the one object


def test_an_edit_that_undoes_a_negation_drops_it_and_says_so() -> None:
    scene = parse("a beach with no people")
    new, result = _edit(scene, "add a person")
    assert new.negations == [] and any("'no people' no longer holds" in n for n in result.notes)
    cats = parse("two cats that are not black", seed=0)
    assert cats.negations[0].objects == [0, 1]
    new, _ = _edit(cats, "remove the left one")
    assert new.negations[0].objects == [0] and new.broken_negations() == []
    new, result = _edit(cats, "make the cats black")
    assert new.negations == [] and any("no longer holds" in n for n in result.notes)


def test_edit_change_reports_every_changed_value() -> None:
    scene = parse("a red ball and a blue ball", seed=0)
    new, result = _edit(scene, "make the balls bigger")
    change = edit_change(scene, new, result)
    assert change.attributes["color"] == "red, blue"
    assert change.changed == ["ball", "ball"]


def test_the_red_one() -> None:
    scene = parse("a red ball and a blue box", seed=0)
    new, _ = _edit(scene, "remove the red one")
    assert new.nouns() == ["package"]  # the vocabulary draws a box as a package
    _, refused = edit_scene(scene, "remove the green one")
    assert not refused.applied and "no 'green one'" in refused.notes[0]
