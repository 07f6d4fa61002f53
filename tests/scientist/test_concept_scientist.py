"""The concept scientist: reading describer terms, searching a described pool, the conclusion rule, whole runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aim_photo_fakes import PixelTagger, write_photos

from aim_agent.agent.config import RunConfig
from aim_agent.agent.record import read_run_record
from aim_agent.agent.runner import run_interpret
from aim_agent.exemplars import ImageFolder
from aim_agent.exemplars.pool import described_pool, pool_cache_path
from aim_agent.scientist.evidence import Record, fit
from aim_agent.scientist.experiments import Experiment
from aim_agent.scientist.reading import Reading, read_exemplars
from aim_agent.scientist.rule import choose
from aim_agent.scientist.scientist import SURVEY, _survey
from aim_agent.terms import named, normal, terms_of
from aim_agent.tools.core import SearchInput


def test_the_survey_is_paged_within_one_search_s_limit() -> None:
    survey = _survey()
    assert sum(s.n for s in survey) == SURVEY
    assert len({s.skip for s in survey}) == len(survey)  # pages, not the same images again
    for call in Experiment("survey", "", survey).tool_calls():
        if call.tool == "dataset_search":
            SearchInput.model_validate(call.args)  # raises where the tool would refuse the call


def test_terms_read_tagger_lists_percentages_and_plain_words() -> None:
    assert terms_of("tabby (0.62), tiger cat (0.21); kinds: domestic cat (0.93), feline (0.95)") == {
        "tabby": 0.62, "tiger cat": 0.21, "domestic cat": 0.93, "feline": 0.95}
    assert terms_of("trees (63%), sky (20%)") == {"tree": 0.63, "sky": 0.2}
    assert terms_of("a red dog, sand and the sea") == {"red dog": 1.0, "sand": 1.0, "sea": 1.0}
    assert normal("Boxes") == normal("box") == "box"
    assert named("tabby (0.62), tiger cat (0.21); kinds: domestic cat (0.93)") == ["tabby", "tiger cat", "domestic cat"]


@pytest.fixture
def photo_folder(tmp_path: Path) -> tuple[ImageFolder, list[str]]:
    colors = write_photos(tmp_path / "photos", per_color=6)
    return ImageFolder(tmp_path / "photos"), colors


def test_pool_search_finds_by_description_and_leaves_out(photo_folder, tmp_path: Path) -> None:
    folder, colors = photo_folder
    pool = described_pool(folder, PixelTagger(), cache_dir=tmp_path / "cache")
    assert pool_cache_path("pixel-tagger", tmp_path / "cache").is_file()
    red = pool.search(["red"], [], 50)
    assert red and all(colors[item.index] == "red" for item in red)
    assert len(red) == colors.count("red")
    warm = pool.search(["warm colour"], ["red"], 50)
    assert {colors[i.index] for i in warm} == {"orange", "yellow"}
    left = pool.search(["red"], [], 50, leave_out={red[0].file})
    assert red[0].file not in {i.file for i in left} and len(left) == len(red) - 1
    controls = pool.search([], ["red", "orange"], 10)
    assert controls == pool.search([], ["red", "orange"], 10)  # a fixed order
    assert not {colors[i.index] for i in controls} & {"red", "orange"}
    assert pool.search([], [], 5, skip=5) == pool.search([], [], 10)[5:]
    # the cache is reused: a describer that would fail is never called
    class Broken(PixelTagger):
        def describe(self, images):  # type: ignore[no-untyped-def]
            raise AssertionError("the cached descriptions should have been used")
    assert len(described_pool(folder, Broken(), cache_dir=tmp_path / "cache")) == len(colors)


def _records(rows: list[tuple[str, float]]) -> list[Record]:
    return [Record(terms=terms_of(text), activation=act) for text, act in rows]


def test_rule_prefers_the_narrower_concept_when_what_it_gives_up_stays_low() -> None:
    rows = [("red (0.9); kinds: warm (0.9)", 1.0)] * 5 + [("orange (0.9); kinds: warm (0.9)", 0.1)] * 5 \
        + [("blue (0.9); kinds: cool (0.9)", 0.0)] * 8
    records = _records(rows)
    reading = read_exemplars(["red (0.9); kinds: warm (0.9)"] * 4 + ["orange (0.8); kinds: warm (0.8)"],
                             [1.0, 0.9, 0.9, 0.8, 0.3])
    fits = [fit(c, records) for c in ("red", "warm", "orange")]
    choice = choose(fits, records, reading)
    assert choice is not None and choice.supported
    assert choice.concepts == ["red"]


def test_rule_prefers_the_broader_concept_when_the_others_fire_too() -> None:
    rows = [("red (0.9); kinds: warm (0.9)", 1.0)] * 5 + [("orange (0.9); kinds: warm (0.9)", 0.9)] * 5 \
        + [("blue (0.9); kinds: cool (0.9)", 0.0)] * 8
    records = _records(rows)
    reading = read_exemplars(["red (0.9); kinds: warm (0.9)"] * 3 + ["orange (0.9); kinds: warm (0.9)"] * 2,
                             [1.0, 1.0, 0.9, 0.9, 0.9])
    choice = choose([fit(c, records) for c in ("red", "warm", "orange")], records, reading)
    assert choice is not None and choice.concepts == ["warm"]


def test_rule_names_a_second_concept_only_when_it_fires_alone() -> None:
    alone = [("dog (0.9)", 1.0)] * 5 + [("car (0.9)", 0.95)] * 5 + [("tree (0.9)", 0.0)] * 8
    reading = read_exemplars(["dog (0.9)"] * 3 + ["car (0.9)"] * 3, [1.0] * 6)
    records = _records(alone)
    choice = choose([fit(c, records) for c in ("dog", "car")], records, reading)
    assert choice is not None and choice.concepts[0] in {"dog", "car"} and len(choice.concepts) == 2
    # 'car' appears only beside a dog: it never fired alone, so it is no second concept
    together = [("dog (0.9)", 1.0)] * 5 + [("dog (0.9), car (0.9)", 1.0)] * 5 + [("car (0.9)", 0.0)] * 4 \
        + [("tree (0.9)", 0.0)] * 8
    records = _records(together)
    choice = choose([fit(c, records) for c in ("dog", "car")], records, reading)
    assert choice is not None and choice.concepts == ["dog"]


def test_rule_prefers_the_concept_that_lifts_the_unit_far_over_one_that_lifts_it_a_little() -> None:
    # both rank their images perfectly; 'broad' covers more exemplars but lifts the unit to a tenth of its peak
    records = _records([("broad (0.9)", 0.5)] * 20 + [("narrow (0.9)", 4.0)] * 5 + [("tree (0.9)", 0.0)] * 40)
    reading = Reading(shares={"broad": 0.6, "narrow": 0.2}, peak=5.0)
    choice = choose([fit(c, records) for c in ("broad", "narrow")], records, reading)
    assert choice is not None and choice.concepts[0] == "narrow"
    # without a known peak, strength does not count: coverage decides
    reading = Reading(shares={"broad": 0.6, "narrow": 0.2})
    choice = choose([fit(c, records) for c in ("broad", "narrow")], records, reading)
    assert choice is not None and choice.concepts[0] == "broad"


def test_rule_supports_nothing_the_exemplars_hardly_show() -> None:
    records = _records([("red (0.9)", 1.0)] * 5 + [("blue (0.9)", 0.0)] * 5)
    reading = read_exemplars(["blue (0.9)"] * 10 + ["red (0.3)"], [1.0] * 11)
    choice = choose([fit("red", records)], records, reading)
    assert choice is not None and not choice.supported


def test_strongest_exemplar_replaces_the_broader_concept_only_from_inside_it() -> None:
    records = _records([("purse (0.9); kinds: bag (0.9)", 0.3)] * 6 + [("tree (0.9)", 0.0)] * 10)
    others = [("purse (0.8); kinds: bag (0.9)", 1.0)] * 4
    inside = _records([("backpack (0.9); kinds: bag (0.9)", 5.0), *others])
    reading = read_exemplars([t for t, _ in [("backpack (0.9); kinds: bag (0.9)", 5.0), *others]], [5.0] + [1.0] * 4)
    choice = choose([fit(c, records) for c in ("bag", "purse")], records, reading, inside, ["backpack"])
    assert choice is not None and choice.concepts == ["backpack"] and choice.on_exemplars
    # beside: the strongest exemplar is the maximum by construction; a concept it alone shows does not replace bag
    beside = _records([("snowplow (0.9)", 5.0), *others])
    choice = choose([fit(c, records) for c in ("bag", "purse")], records, reading, beside, ["snowplow"])
    assert choice is not None and choice.concepts in (["bag"], ["purse"]) and choice.supported


def test_strongest_exemplar_nesting_is_read_where_the_describer_is_sure() -> None:
    # the second exemplar shows 'backpack' as a faint second guess, and its capped kinds list lost 'bag': it says
    # nothing about whether a backpack is a bag, so it does not keep backpack from narrowing bag
    records = _records([("purse (0.9); kinds: bag (0.9)", 0.3)] * 6 + [("tree (0.9)", 0.0)] * 10)
    faint = ("suitcase (0.5), backpack (0.2); kinds: luggage (0.5)", 1.0)
    exemplars = [("backpack (0.9); kinds: bag (0.9)", 5.0), faint, *[("purse (0.8); kinds: bag (0.9)", 0.8)] * 3]
    reading = read_exemplars([t for t, _ in exemplars], [a for _, a in exemplars])
    choice = choose([fit(c, records) for c in ("bag", "purse")], records, reading, _records(exemplars),
                    ["backpack"])
    assert choice is not None and choice.concepts == ["backpack"]


def test_strongest_exemplar_narrows_on_the_describer_s_best_guess_when_the_test_says_so() -> None:
    # the describer is unsure which class the strongest exemplar is (0.3), but it fires far above every other
    # piece of furniture: the test decides, not the describer's certainty
    records = _records([("table (0.9); kinds: furniture (0.9)", 0.5)] * 6 + [("tree (0.9)", 0.0)] * 10)
    exemplars = [("desk (0.3), table (0.2); kinds: furniture (0.6)", 6.0),
                 *[("table (0.8); kinds: furniture (0.9)", 0.6)] * 4]
    reading = read_exemplars([t for t, _ in exemplars], [a for _, a in exemplars])
    choice = choose([fit(c, records) for c in ("furniture", "table")], records, reading, _records(exemplars),
                    ["desk"])
    assert choice is not None and choice.concepts == ["desk"] and choice.on_exemplars


def test_unsupported_rule_skips_an_effect_the_exemplars_show_less_than_the_dataset() -> None:
    # 'tool' lifts the unit a little over many images, but the exemplars show it less than ordinary images do
    rows = [("tool (0.9)", 1.0 + 0.1 * (i % 3)) for i in range(12)] + [("tool (0.9)", 0.0)] * 4 \
        + [("dog (0.9)", 0.0 + 0.1 * (i % 2)) for i in range(20)] + [("dog (0.9)", 1.05)] * 4
    records = _records(rows)
    reading = read_exemplars(["dog (0.9)"] * 9 + ["tool (0.5)"], [1.0] * 10)
    reading.base = {"tool": 0.3, "dog": 0.1}
    choice = choose([fit(c, records) for c in ("tool", "dog")], records, reading, leading=["saint bernard"])
    assert choice is not None and choice.basis == "exemplars" and choice.concepts == ["saint bernard"]


def test_unsupported_rule_takes_a_measured_effect_before_the_exemplars() -> None:
    # 'warm' fires a little above the rest on many images: short of support (AUC < 0.75), but above chance
    rows = [("warm (0.9)", 1.0 + 0.1 * (i % 3)) for i in range(12)] + [("warm (0.9)", 0.0)] * 4 \
        + [("cool (0.9)", 0.0 + 0.1 * (i % 2)) for i in range(20)] + [("cool (0.9)", 1.05)] * 4 \
        + [("cricket (0.9)", 3.0)] * 2  # the highest AUC, on two images: no measured effect
    records = _records(rows)
    reading = read_exemplars(["warm (0.9)"] * 5 + ["scorpion (0.8)"], [1.0] * 5 + [0.5])
    choice = choose([fit(c, records) for c in ("warm", "cool", "cricket", "scorpion")], records, reading,
                    leading=["scorpion"])
    assert choice is not None and not choice.supported and choice.basis == "effect"
    assert choice.concepts == ["warm"] and fit("warm", records).auc < 0.75


def test_unsupported_rule_without_any_effect_names_what_the_strongest_exemplar_shows() -> None:
    # two images of 'cricket' fire high by chance: too few to count, so the strongest exemplar's concept stands
    records = _records([("cricket (0.9)", 2.0)] * 2 + [("tree (0.9)", float(i % 5)) for i in range(20)])
    exemplars = _records([("scorpion (0.9); kinds: arachnid (0.9)", 9.0), ("crab (0.6)", 3.0)])
    reading = read_exemplars(["scorpion (0.9); kinds: arachnid (0.9)", "crab (0.6)"], [9.0, 3.0])
    choice = choose([fit(c, records) for c in ("cricket", "tree")], records, reading, exemplars, reading.leading)
    assert choice is not None and choice.basis == "exemplars" and choice.concepts == ["scorpion"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["tools", "code"])
def test_a_whole_run_finds_the_red_unit_on_photos(tmp_path: Path, mode: str, monkeypatch) -> None:
    monkeypatch.setenv("AIM_CACHE", str(tmp_path / "cache"))
    write_photos(tmp_path / "photos", per_color=10)
    config = RunConfig(system_factory="aim_photo_fakes:red_system", plugins=["aim_photo_fakes"],
                       describer="pixel-tagger", exemplar_dataset=str(tmp_path / "photos"), runs_dir=str(tmp_path),
                       backend={"provider": "concepts"}, mode=mode, max_rounds=4, exemplars_k=4)
    result = run_interpret(config)
    assert result.conclusion is not None
    assert result.conclusion.labels == ["red"]
    record = read_run_record(result.run_dir)
    tested = {h.concepts[0] for h in record.hypotheses}
    assert "red" in tested  # the conclusion is one of the hypotheses the run tested
    # the scientist leads with what it concludes, and the critic judged that hypothesis
    log = [json.loads(line) for line in (Path(result.run_dir) / "log.jsonl").read_text().splitlines()]
    last = [e["data"]["proposal"] for e in log if e["kind"] == "hypothesis" and (e.get("data") or {}).get("proposal")]
    assert last and last[-1]["lead"] == "red"
    judged = [e["data"]["checks"].get("leading") for e in log if e["kind"] == "critic"]
    assert judged and judged[-1] == "red"
    assert not record.forced
    assert 0.5 < result.conclusion.confidence <= 0.97
    # every planned search was valid: a refused one leaves its round without images (an empty search, on this
    # small dataset, makes the next neuron call fail in tool mode: that is not a refusal)
    refused = [line for e in log if e["kind"] == "experiment" for line in e["text"].splitlines()
               if "dataset_search(" in line and "-> ERROR" in line]
    assert not refused, refused
