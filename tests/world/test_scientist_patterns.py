"""Issue 23: patterns as concepts, the conclusion rule, and a confidence that says what it rests on.

Driven as in ``test_offline_scientist.py``: the unit is a predicate on what each prompt shows, so no image is
rendered. The simulated units are written here; nothing of them is known to the scientist."""

from __future__ import annotations

from test_offline_scientist import region, run

from aim_agent.agent.schema import CriticReport, Objection, SuggestedExperiment
from aim_world.scientist import OfflineScientist
from aim_world.scientist.concepts import Concept
from aim_world.scientist.evidence import Record
from aim_world.scientist.hypotheses import Hyp
from aim_world.scientist.reading import read_exemplars
from aim_world.scientist.scenes import Palette, realize
from aim_world.scientist.scientist import FEW_EXEMPLARS_CAP, FORCED_CAP, OPEN_OBJECTION_CAP
from aim_world.scientist.scoring import best, score

PATTERNED = [region("a black striped peacock", "mountains"), region("a white wavy dog", "grass"),
             region("a green checkered pear", "room"), region("a red striped rose", "sky"),
             region("a gray checkered koala", "snow"), region("a beige spiral broom", "room"),
             region("a blue striped person", "beach"), region("a yellow wavy person", "grass")]
PATTERN = Concept("pattern", "any")


def textured(features: frozenset[str]) -> bool:
    return any(k.startswith("texture:") for k in features)


def test_several_textures_among_the_exemplars_make_the_pattern_a_concept() -> None:
    reading = read_exemplars(PATTERNED, [1.0] * len(PATTERNED))
    assert PATTERN in reading.candidates
    one = read_exemplars([region("a black striped dog", "grass"), region("a red striped cat", "snow")], [1.0, 1.0])
    assert PATTERN not in one.candidates  # one texture is that texture, not any pattern


def test_a_pattern_is_drawn_as_every_texture_in_turn() -> None:
    palette = Palette.avoiding([PATTERN])
    prompts = [spec.prompt() for i in range(5) if (spec := realize([PATTERN], i, palette)) is not None]
    assert {w for p in prompts for w in ("striped", "polka-dot", "checkered", "spiral", "wavy") if w in p} == {
        "striped", "polka-dot", "checkered", "spiral", "wavy"}


def test_a_pattern_unit_is_told_from_an_object_unit() -> None:
    view, proposals = run(PATTERNED, textured)
    phases = [p.thoughts for p in proposals]
    assert any("Next (patterns)" in t for t in phases)  # the pattern is varied across nouns
    conclusion = OfflineScientist().conclude(view)
    assert conclusion.labels == ["patterned surfaces, on any object"]

    dogs = [region("a white wavy dog", "grass"), region("a black striped dog", "snow"),
            region("a brown checkered dog", "room"), region("a white dog", "beach"), region("a brown dog", "road")]
    view, _ = run(dogs, lambda f: "object:dog" in f)
    assert OfflineScientist().conclude(view).labels == ["dog"]  # the dog, whatever its pattern


def records(rows: list[tuple[list[str], float]]) -> list[Record]:
    return [Record(frozenset(keys), act, 1, "plain") for keys, act in rows]


def test_a_list_names_only_members_that_fired_alone() -> None:
    group = Concept("group", "dog+cat+cow")
    evidence = records([(["object:dog"], 0.9)] * 3 + [(["object:cat"], 0.8)] * 3 + [(["object:cow"], 0.05)] * 3
                       + [(["object:spoon"], 0.04)] * 4)
    s = score(Hyp("single", group), evidence, 1.0)
    assert s.status == "refuted" and "cow" in s.flaw
    both = score(Hyp("or", Concept("object", "dog"), Concept("object", "cat")), evidence, 1.0)
    assert not both.flaw


def test_the_conclusion_rule_prefers_coverage_unless_the_broad_concept_fails_its_controls() -> None:
    dog, cup = Concept("object", "dog"), Concept("object", "cup")
    # the dog explains most exemplars and separates; the cup separates better (AUC 1) but explains few
    evidence = records([(["object:dog"], 0.8)] * 6 + [(["object:dog"], 0.3)] + [(["object:cup"], 0.9)] * 3
                       + [(["object:spoon"], 0.05)] * 6)
    scored = [score(Hyp("single", c), evidence, 1.0) for c in (dog, cup)]
    assert scored[1].auc > scored[0].auc and scored[0].status != "refuted"
    coverage = {"H:object:dog": 0.6, "H:object:cup": 0.1}
    assert best(scored, evidence, coverage).hyp.a == dog
    # when the broad concept fails its controls (its images stay as low as the rest), the narrow one wins
    failing = records([(["object:dog"], 0.05)] * 6 + [(["object:cup"], 0.9)] * 5 + [(["object:spoon"], 0.05)] * 6)
    scored = [score(Hyp("single", c), failing, 1.0) for c in (dog, cup)]
    assert best(scored, failing, coverage).hyp.a == cup
    # an untested hypothesis is never the conclusion, however many exemplars it would explain
    untested = score(Hyp("single", Concept("object", "lamp")), evidence, 1.0)
    assert best([*scored, untested], failing, {**coverage, "H:object:lamp": 0.9}).hyp.a == cup


def test_confidence_says_when_the_conclusion_is_forced_open_or_explains_few_exemplars() -> None:
    mono = [region("a brown dog", "grass"), region("a black dog", "snow"), region("a white dog", "room"),
            region("a brown dog", "beach"), region("an orange dog", "road")]
    view, _ = run(mono, lambda f: "object:dog" in f)
    free = OfflineScientist().conclude(view)
    assert free.confidence > FORCED_CAP and "Forced" not in free.description

    forced = OfflineScientist().conclude(view.model_copy(update={"must_conclude": True}))
    assert forced.confidence <= FORCED_CAP and "Forced" in forced.description

    objection = Objection(kind="more_contexts", text="test 'dog' on 2 more backgrounds", concept="dog",
                          experiment=SuggestedExperiment(action="more_contexts", concept="dog", count=2))
    report = CriticReport(round=view.round, satisfied=False, escalated=[objection])
    opened = OfflineScientist().conclude(view.model_copy(update={"critic": [*view.critic, report]}))
    assert opened.confidence <= OPEN_OBJECTION_CAP and "still open" in opened.description

    # most exemplars show cats the unit does not follow on controlled images: the dog explains few of them
    few = [*mono[:2], *(region("a gray cat", bg) for bg in ("grass", "snow", "room", "beach", "road", "sky"))]
    view, _ = run(few, lambda f: "object:dog" in f)
    conclusion = OfflineScientist().conclude(view)
    assert conclusion.labels == ["dog"]
    assert conclusion.confidence <= FEW_EXEMPLARS_CAP + FEW_EXEMPLARS_CAP * 0.5
    assert "explains only" in conclusion.description




def test_the_critic_counts_a_background_part_as_shown_by_the_backgrounds_that_hold_it() -> None:
    from aim_agent.agent.critic import concept_present
    from aim_agent.vocabulary import installed_vocabularies

    vocabulary = installed_vocabularies()
    assert concept_present("a red cup on a beach", "sand", vocabulary=vocabulary)
    assert concept_present("a red cup in the desert", "sky", vocabulary=vocabulary)
    assert not concept_present("a red cup in a room", "sand", vocabulary=vocabulary)
    assert not concept_present("a red cup on a beach", "dog", vocabulary=vocabulary)
