"""The world reads a sentence's structure (issue 24): the scope of quantifiers and negations, compounds as one
noun, attributes bound to the right noun; what it does not understand is an error or a note, never drawn as
something else."""

from __future__ import annotations

import pytest

from aim_agent.providers import ProviderError
from aim_world.describe import describe_region
from aim_world.edit import edit_scene
from aim_world.parse import parse
from aim_world.render import render

# --------------------------------------------------------------------------- quantified edits

QUANTIFIED = [  # (instruction on three balloons, how many balloons are left)
    ("remove just one balloon", 2), ("remove any one balloon", 2), ("remove a single balloon", 2),
    ("remove exactly two balloons", 1), ("remove all but one balloon", 1), ("remove all the balloons but one", 1),
    ("remove every balloon except two", 2), ("remove all balloons", 0), ("remove the left balloon", 2),
    ("remove the biggest one", 2),
]


@pytest.mark.parametrize(("instruction", "left"), QUANTIFIED, ids=[q[0] for q in QUANTIFIED])
def test_a_quantified_edit_changes_as_many_objects_as_it_says(instruction: str, left: int) -> None:
    scene = parse("three balloons", seed=1)
    new, result = edit_scene(scene, instruction)
    assert result.applied, result.notes
    assert new.nouns().count("balloon") == left


@pytest.mark.parametrize("instruction", ["make just one cat blue", "replace just one cat with a dog"])
def test_just_one_changes_one(instruction: str) -> None:
    scene = parse("three cats", seed=0)
    new, result = edit_scene(scene, instruction)
    assert result.applied and len(result.changed_new) == 1
    assert sum(a != b for a, b in zip(scene.objects, new.objects, strict=True)) == 1
    assert any("took 1 of the 3" in n for n in result.notes)


@pytest.mark.parametrize("instruction", ["remove a few of the cats", "make several cats blue"])
def test_a_vague_count_is_refused_not_applied_to_all(instruction: str) -> None:
    scene = parse("three cats", seed=0)
    new, result = edit_scene(scene, instruction)
    assert not result.applied and new == scene
    assert "how many" in result.notes[0]


def test_two_colours_for_one_object_are_refused() -> None:
    scene = parse("a car", seed=0)
    for instruction in ("make the car red and orange", "change the color of the car to red and orange"):
        new, result = edit_scene(scene, instruction)
        assert not result.applied and new == scene
        assert "two colors" in result.notes[0]


# --------------------------------------------------------------------------- compounds and idioms


@pytest.mark.parametrize("prompt", ["a corn dog", "a fire hydrant", "a guinea pig", "two guinea pigs",
                                    "a tree frog", "it's raining cats and dogs"])
def test_a_compound_or_idiom_is_not_drawn_as_one_of_its_words(prompt: str) -> None:
    with pytest.raises(ProviderError, match="cannot draw"):
        parse(prompt)


def test_a_known_compound_or_a_modifier_noun_is_drawn_whole() -> None:
    assert parse("a hot dog").nouns() == ["hot dog"]
    assert parse("a fire truck").nouns() == ["fire truck"]
    assert parse("an orange fuel pump on a beach").nouns() == ["fuel pump"]
    baby = parse("a baby elephant next to an elephant", seed=0)
    assert baby.nouns() == ["elephant", "elephant"] and baby.objects[0].size < baby.objects[1].size
    glass = parse("a glass bottle")
    assert glass.nouns() == ["bottle"] and "glass" in glass.unknown_words


def test_an_unknown_compound_beside_a_drawable_thing_is_reported() -> None:
    scene = parse("a fire hydrant next to a dog")
    assert scene.nouns() == ["dog"] and "fire hydrant" in scene.unknown_words
    assert any("one noun" in n for n in scene.notes)


# --------------------------------------------------------------------------- negation, counts, plurals

NEGATED = [("a room devoid of people", "person"), ("a man not wearing a hat", "hat"),
           ("anything but a dog", "dog"), ("0 dogs on the grass", "dog"), ("a dog not next to a cat", "cat"),
           ("a street with not a single car", "car"), ("a park missing its trees", "tree")]


@pytest.mark.parametrize(("prompt", "noun"), NEGATED, ids=[n[0] for n in NEGATED])
def test_a_negated_thing_is_not_drawn_and_is_recorded(prompt: str, noun: str) -> None:
    for seed in range(3):
        scene = parse(prompt, seed=seed)
        assert noun not in scene.nouns()
        assert any(n.noun == noun for n in scene.negations)


def test_a_bare_plural_draws_more_than_one() -> None:
    for prompt, noun in [("people", "person"), ("people on a street", "person"), ("dogs", "dog"),
                         ("leaves", "leaf")]:
        assert all(parse(prompt, seed=s).nouns().count(noun) >= 2 for s in range(4)), prompt
    assert parse("grapes").nouns() == ["grapes"]  # a canonical name is one glyph


def test_an_article_with_an_unknown_noun_is_a_thing_not_a_colour() -> None:
    scene = parse("two oranges and a lime", seed=0)
    assert scene.nouns() == ["orange", "orange"]
    assert all(o.color == "orange" for o in scene.objects)
    assert "lime" in scene.unknown_words


def test_colour_lists_and_elided_nouns() -> None:
    assert sorted(o.color for o in parse("a red and a blue car").objects) == ["blue", "red"]
    one = parse("a red and orange car")
    assert [(o.noun, o.color) for o in one.objects] == [("car", "red")]
    assert any("one color per object" in n for n in one.notes)
    told = parse("a car that is red and orange")
    assert told.nouns() == ["car"] and any("one color per object" in n for n in told.notes)


def test_size_words_outweigh_real_world_scale() -> None:
    for seed in range(4):
        scene = parse("a huge ant next to a tiny elephant", seed=seed)
        ant, elephant = scene.objects
        assert ant.noun == "ant" and ant.size > elephant.size
        masks = render(scene, 224).masks
        assert masks[0].sum() > masks[1].sum()
    assert parse("a giant mouse", seed=0).objects[0].size > parse("a mouse", seed=0).objects[0].size


# --------------------------------------------------------------------------- the graph is the picture's truth

BACKDROP_NEGATIONS = [("a forest with no trees", "trees"), ("a night sky with no stars", "stars"),
                      ("a sky without clouds", "clouds"), ("a forest without any trees", "trees")]


@pytest.mark.parametrize(("prompt", "detail"), BACKDROP_NEGATIONS, ids=[b[0] for b in BACKDROP_NEGATIONS])
def test_a_backdrop_honours_a_negated_detail(prompt: str, detail: str) -> None:
    for seed in range(3):
        scene = parse(prompt, seed=seed)
        assert scene.omitted_details() == (detail,)
        assert detail not in describe_region(scene, None)
        plain = scene.model_copy(update={"negations": []})
        assert render(scene, 96).image.tobytes() != render(plain, 96).image.tobytes()


def test_an_edit_that_undoes_a_backdrop_negation_says_so() -> None:
    scene = parse("a forest with no trees", seed=0)
    new, result = edit_scene(scene, "add a tree")
    assert result.applied and result.background_changed
    assert new.omitted_details() == () and any("no longer holds" in n for n in result.notes)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("prompt", "script"), [("一只狗在海滩上", "CJK"), ("собака на пляже", "Cyrillic"),
                                                ("ένας σκύλος", "Greek")])
def test_a_prompt_in_another_script_says_the_language_is_not_supported(prompt: str, script: str) -> None:
    with pytest.raises(ProviderError, match=f"English prompts only.*{script} script"):
        parse(prompt)


def test_accented_latin_letters_are_read() -> None:
    assert parse("a café with a cat").nouns() == ["cat"]


def test_a_long_prompt_is_quoted_shortened() -> None:
    for prompt in ("blorp " * 2000, "a dog with a zzzz " * 600):
        try:
            scene = parse(prompt)
        except ProviderError as exc:
            assert len(str(exc)) < 1500 and "characters)" in str(exc)
        else:
            assert scene.nouns()


def test_one_stands_for_the_noun_and_counts_split_among_members() -> None:
    assert sorted(o.color for o in parse("a black dog and a white one").objects) == ["black", "white"]
    assert parse("a red car next to the blue one").nouns() == ["car", "car"]
    cats = parse("three cats, two black and one white", seed=0)
    assert cats.nouns() == ["cat"] * 3 and sorted(o.color for o in cats.objects) == ["black", "black", "white"]
    hedged = parse("no more than two dogs", seed=0)
    assert hedged.nouns() == ["dog", "dog"] and hedged.negations == [] and hedged.unknown_words == []
