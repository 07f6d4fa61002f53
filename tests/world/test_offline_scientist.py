"""The offline scientist: reads world descriptions, designs controls, updates statuses, concludes.

Views are built by hand, as the graph would: exemplar descriptions in the world describer's
words, observations with the prompts and activations the experiment recorder produces
("<prompt> | edit: <instruction>" for edited images). The unit is simulated by a predicate on
what each prompt shows, so these tests need no rendering and run in well under a second.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

import pytest
from aim_testing import prompt_exemplars

from aim_agent.agent.schema import (
    CriticReport,
    Objection,
    Observation,
    Proposal,
    Scientist,
    ScientistView,
    SuggestedExperiment,
)
from aim_world.scientist import OfflineScientist
from aim_world.scientist.concepts import Concept
from aim_world.scientist.parsing import parse_text
from aim_world.scientist.plan import MAX_CRITIC_ROUNDS, critic_concepts, derive
from aim_world.scientist.reading import read_exemplars
from aim_world.scientist.scene_edits import apply_edit

EDIT = " | edit: "


def region(text: str, scene: str) -> str:
    """A description in the world describer's format."""
    return (f"The highlighted region (21% of the image, around the centre) contains {text} (64% of the region); "
            f"background of the {scene} scene: sky (12%), ground (20%).")


MONO_DOG = [region("a brown dog", "grass"), region("a black dog", "snow"), region("a white dog", "room"),
            region("a brown dog", "beach"), region("an orange dog", "road")]
OR_DOG_CAR = [region("a brown dog", "grass"), region("a red car", "road"), region("a black dog", "snow"),
              region("a blue car", "beach"), region("a white dog", "room"), region("a yellow car", "night")]
COND_DOG_LEASH = [region("a brown dog; the lower part of a red leash", "grass"),
                  region("a black dog; a gray leash", "snow"),
                  region("a white dog; the upper part of a black leash", "room"),
                  region("a brown dog; a red leash", "beach")]

Predicate = Callable[[frozenset[str]], bool]


def scene_features(prompt: str) -> frozenset[str]:
    base, _, instruction = prompt.partition(EDIT)
    scene = parse_text(base)
    if instruction:
        scene = apply_edit(scene, instruction)
        assert scene is not None, f"the scientist wrote an edit it cannot read back: {instruction!r}"
    return scene.features()


def prompts_of(proposal: Proposal) -> list[str]:
    """What the recorder would log for the proposal's images (edits as 'prompt | edit: ...')."""
    out = []
    for call in proposal.tool_calls:
        if call.tool == "text2image":
            out += call.args["prompts"]
        elif call.tool == "edit_images":
            for original, edit in zip(call.args["prompts"], call.args["edits"], strict=True):
                out += [original, f"{original}{EDIT}{edit}"]
    return out


def observe(view: ScientistView, proposal: Proposal, fires: Predicate) -> Observation:
    prompts = prompts_of(proposal)
    acts = [round(0.9 if fires(scene_features(p)) else 0.03 + 0.01 * (i % 3), 4) for i, p in enumerate(prompts)]
    return Observation(round=view.round + 1, ok=True, prompts=prompts, activations=acts)


def new_view(descriptions: list[str], mode: str = "tools") -> ScientistView:
    return ScientistView(task="describe the unit", unit="unit 0", mode=mode, exemplar_descriptions=descriptions,
                         exemplar_activations=[1.0 - 0.03 * i for i in range(len(descriptions))])


def run(descriptions: list[str], fires: Predicate, *, critic: Callable[[ScientistView], CriticReport] | None = None,
        max_rounds: int = 12) -> tuple[ScientistView, list[Proposal]]:
    """Drive the scientist as the graph does: propose, run, (critic), until it is ready to conclude."""
    scientist = OfflineScientist()
    view = new_view(descriptions)
    proposals = []
    for _ in range(max_rounds):
        proposal = scientist.propose(view)
        proposals.append(proposal)
        view.hypotheses = proposal.hypotheses
        if proposal.ready_to_conclude:
            break
        view.observations.append(observe(view, proposal, fires))
        view.round += 1
        if critic is not None:
            view.critic.append(critic(view))
    return view, proposals


def test_it_is_a_scientist() -> None:
    assert isinstance(OfflineScientist(), Scientist)
    assert OfflineScientist.name == "offline"


def test_reading_the_describer_text() -> None:
    parsed = parse_text(region("a red striped dog; the lower part of a polka-dot blue leash", "forest"))
    keys = [c.key for c in parsed.concepts()]
    assert keys == ["object:dog", "color:red", "texture:stripes", "object:leash", "color:blue", "texture:dots",
                    "background:forest"]  # scene parts (sky, trees) are not objects
    assert [c.key for c in parse_text("a dog without a leash in the mountains").concepts()] == [
        "object:dog", "background:mountains"]
    assert [c.key for c in parse_text("an orange cat next to an orange").concepts()] == [
        "object:cat", "color:orange", "object:orange"]


def test_ranks_concepts_by_weighted_frequency_and_forms_hypotheses() -> None:
    mono = read_exemplars(MONO_DOG, [1.0, 0.9, 0.8, 0.7, 0.6])
    assert mono.candidates[0] == Concept("object", "dog")
    assert all(h.kind == "single" for h in mono.hypotheses)  # brown and black are attributes of the dog

    either = read_exemplars(OR_DOG_CAR, [1.0] * 6)
    assert {c.name for c in either.candidates[:2]} == {"dog", "car"}
    assert any(h.kind == "or" and {h.a.name, h.b.name} == {"dog", "car"} for h in either.hypotheses)

    cond = read_exemplars(COND_DOG_LEASH, [1.0] * 4)
    assert any(h.kind == "conditional" and (h.a.name, h.b.name) == ("dog", "leash") for h in cond.hypotheses)


def test_first_experiment_is_a_controlled_screen() -> None:
    proposal = OfflineScientist().propose(new_view(MONO_DOG))
    assert not proposal.ready_to_conclude
    tools = [c.tool for c in proposal.tool_calls]
    assert tools == ["text2image", "neuron", "log_experiment"]
    assert proposal.tool_calls[1].args == {"images": "$0.images"}
    prompts = proposal.tool_calls[0].args["prompts"]
    with_dog = [p for p in prompts if "object:dog" in scene_features(p)]
    without = [p for p in prompts if "object:dog" not in scene_features(p)]
    assert len(with_dog) >= 3 and len(without) >= 3
    backgrounds = {next(f for f in scene_features(p) if f.startswith("background:")) for p in with_dog}
    assert len(backgrounds) >= 3, "the concept must be tested in several contexts"
    assert all(h.status == "open" for h in proposal.hypotheses)


def test_code_mode_writes_the_same_experiment() -> None:
    tools_prompts = OfflineScientist().propose(new_view(MONO_DOG)).tool_calls[0].args["prompts"]
    proposal = OfflineScientist().propose(new_view(MONO_DOG, mode="code"))
    assert proposal.code and not proposal.tool_calls
    tree = ast.parse(proposal.code)
    assert [n.name for n in tree.body if isinstance(n, ast.FunctionDef)] == ["run_experiment"]

    calls = []

    class FakeTools:
        def text2image(self, prompts):
            calls.append(("text2image", list(prompts)))
            return [f"img_{i:04d}" for i in range(len(prompts))]

        def log_experiment(self, activations, images, prompts, note=""):
            calls.append(("log", note))

    class FakeSystem:
        def neuron(self, images):
            return [0.5] * len(images), list(images)

    namespace: dict = {}
    exec(compile(proposal.code, "<experiment>", "exec"), namespace)
    out = namespace["run_experiment"](FakeSystem(), FakeTools())
    assert calls[0] == ("text2image", tools_prompts)
    assert calls[-1][0] == "log"
    assert out["prompts"] == tools_prompts and out["activations"] == [0.5] * len(tools_prompts)


def test_mono_neuron_statuses_edits_and_label() -> None:
    view, proposals = run(MONO_DOG, lambda f: "object:dog" in f)
    after_screen = {h.id: h for h in proposals[1].hypotheses}
    assert after_screen["H:object:dog"].status == "supported"
    assert after_screen["H:color:brown"].status == "refuted"
    edit = next(p for p in proposals if p.tool_calls and p.tool_calls[0].tool == "edit_images")
    assert any(e.startswith("replace the dog with") for e in edit.tool_calls[0].args["edits"])
    assert proposals[-1].ready_to_conclude
    conclusion = OfflineScientist().conclude(view)
    assert conclusion.labels == ["dog"]
    assert conclusion.confidence >= 0.8
    assert "dog" in conclusion.description and conclusion.evidence


def test_or_neuron_names_both_concepts() -> None:
    view, _ = run(OR_DOG_CAR, lambda f: "object:dog" in f or "object:car" in f)
    conclusion = OfflineScientist().conclude(view)
    assert sorted(conclusion.labels) == ["car", "dog"]
    assert " OR " in conclusion.description


def test_conditional_neuron_runs_the_2x2_design_and_names_the_condition() -> None:
    fires = lambda f: "object:dog" in f and "object:leash" in f  # noqa: E731
    view, proposals = run(COND_DOG_LEASH, fires)
    pairs = prompts_of(proposals[1])
    cells = {("object:dog" in scene_features(p), "object:leash" in scene_features(p)) for p in pairs}
    assert cells == {(True, True), (True, False), (False, True), (False, False)}
    conclusion = OfflineScientist().conclude(view)
    assert conclusion.labels == ["dog, only when a leash is present"]
    final = {h.id: h for h in proposals[-1].hypotheses}
    assert final["H:object:dog | object:leash"].status == "supported"
    assert final["H:object:dog | object:leash"].condition == "leash"


def test_hidden_condition_is_found_by_a_context_search() -> None:
    """The describer saw only the dog; the unit also needs a leash."""
    view, proposals = run(MONO_DOG, lambda f: "object:dog" in f and "object:leash" in f)
    assert any("context sweep" in p.thoughts for p in proposals)
    assert OfflineScientist().conclude(view).labels == ["dog, only when a leash is present"]


@pytest.mark.parametrize(("fires", "label"), [
    (lambda f: "object:dog" in f and "object:skull" in f, "dog, only when a skull is present"),
    (lambda f: "object:dog" in f and "background:desert" in f, "dog, only on a desert background"),
    (lambda f: "object:dog|color:purple" in f, "dog, only when it is purple"),
])
def test_any_condition_the_world_offers_is_found(fires, label) -> None:
    """Conditions come from a sweep over everything the world can put next to the concept, not from a list."""
    view, _ = run(MONO_DOG, fires)
    assert OfflineScientist().conclude(view).labels == [label]


def test_objects_a_background_is_drawn_with_are_tested_on_their_own() -> None:
    """Forest exemplars whose highlighted region is the trees: the tree is tested alone, and a unit that fires on
    trees wherever they are is a tree unit, not a forest-background unit."""
    forest = [f"The highlighted region (50% of the image, around the top) contains background of the forest scene: "
              f"trees ({p}%), sky (10%)." for p in (80, 85, 75, 90, 70)]
    view, proposals = run(forest, lambda f: "object:tree" in f)
    screen = prompts_of(proposals[0])
    assert any("forest" not in p and "object:tree" in scene_features(p) for p in screen)
    assert OfflineScientist().conclude(view).labels == ["tree"]
    whole = [f"The highlighted region ({p}% of the image, around the centre) contains background of the forest "
             f"scene: trees ({t}%), forest floor ({100 - t}%)." for p, t in ((90, 64), (95, 66), (88, 70), (92, 62))]
    view, _ = run(whole, lambda f: "background:forest" in f)
    assert OfflineScientist().conclude(view).labels == ["forest background"]


def test_a_part_of_a_scene_the_highlight_singles_out_is_the_concept() -> None:
    """Every forest image shows trees, so experiments on whole images cannot tell the forest from its trees; the
    describer can: a highlight made of the trees alone, which fill only part of a forest scene, is a trees unit.
    The sand of a beach is told from the beach the same way."""
    trees = [f"The highlighted region ({p}% of the image, around the top) contains background of the forest scene: "
             "trees (99%)." for p in (61, 64, 63, 60, 62)]
    view, _ = run(trees, lambda f: "region:trees" in f)
    assert OfflineScientist().conclude(view).labels == ["trees regions"]
    sand = [f"The highlighted region ({p}% of the image, around the bottom) contains background of the beach scene: "
            "sand (100%)." for p in (45, 41, 48, 44)]
    view, _ = run(sand, lambda f: "region:sand" in f)
    assert OfflineScientist().conclude(view).labels == ["sand regions"]
    assert [c.key for c in parse_text(sand[0]).concepts()] == ["region:sand"]
    beach = ("The highlighted region (90% of the image, around the centre) contains background of the beach scene: "
             "sky (36%), sea (14%), sand (50%).")
    assert "background:beach" in [c.key for c in parse_text(beach).concepts()]


@pytest.mark.parametrize(("descriptions", "fires", "label"), [
    ([region("a red cup", "grass"), region("a red car", "road"), region("a red apple", "room"),
      region("a red umbrella", "beach")], lambda f: "color:red" in f, "red"),
    ([region("a brown dog", "snow"), region("a red car", "snow"), region("a white snowman", "snow"),
      region("a blue cup", "snow")], lambda f: "background:snow" in f, "snow background"),
    ([region("a red striped cup", "grass"), region("a blue striped car", "road"),
      region("a gray striped cat", "room")], lambda f: "texture:stripes" in f, "striped texture"),
])
def test_colour_background_and_texture_units(descriptions, fires, label) -> None:
    view, _ = run(descriptions, fires)
    assert OfflineScientist().conclude(view).labels == [label]


BIRDS = {"bird", "eagle", "owl", "parrot", "duck", "chicken", "penguin", "flamingo", "peacock", "swan"}


@pytest.mark.parametrize(("descriptions", "fires", "label"), [
    # a region shared by many backgrounds: the describer lists the scene's parts with their shares
    ([f"The highlighted region (40% of the image, around the top) contains background of the {bg} scene: "
      f"sky (93%)." for bg in ("grass", "snow", "beach", "road", "desert")],
     lambda f: "region:sky" in f, "sky regions"),
])
def test_regions_and_groups_of_nouns(descriptions, fires, label) -> None:
    view, _ = run(descriptions, fires)
    assert OfflineScientist().conclude(view).labels == [label]


def test_a_group_of_nouns_is_measured_not_assumed() -> None:
    """The exemplars show five birds; the survey of every object finds the others the unit fires on (and no
    animal that is not one of them): the label names exactly the measured set, the exemplars' nouns first."""
    seen = ["owl", "swan", "eagle", "duck", "parrot"]
    descriptions = [region(f"a {c} {n}", bg) for c, n, bg in zip(["gray", "white", "brown", "yellow", "red"], seen,
                                                                   ["grass", "water", "sky", "room", "forest"],
                                                                   strict=True)]
    view, proposals = run(descriptions, lambda f: any(f"object:{b}" in f for b in BIRDS))
    assert any(p.thoughts.splitlines()[-1].startswith("Next (survey)") for p in proposals)
    [label] = OfflineScientist().conclude(view).labels
    named = [w.strip() for w in label.replace(" or ", ", ").split(",")]
    assert set(named) == BIRDS and named[:5] == seen


def test_exemplars_the_leader_leaves_out_are_tested() -> None:
    """Most exemplars are dogs, one is a car (too rare to be a candidate): the coverage phase tests cars
    alone and finds the OR."""
    descriptions = [*MONO_DOG, region("a red car", "road")]
    view, proposals = run(descriptions, lambda f: "object:dog" in f or "object:car" in f)
    assert any(p.thoughts.splitlines()[-1].startswith("Next (coverage)") for p in proposals)
    assert sorted(OfflineScientist().conclude(view).labels) == ["car", "dog"]


def test_answers_the_critic() -> None:
    def critic(view: ScientistView) -> CriticReport:
        """Wants to see cats tested before it is satisfied."""
        tested = sum("object:horse" in scene_features(p) for o in view.observations for p in o.prompts) >= 3
        return CriticReport(round=view.round, satisfied=tested, requests=[] if tested else [
            "test whether 'horse' drives the unit too (so far: grass, snow)"])

    view, proposals = run(MONO_DOG, lambda f: "object:dog" in f, critic=critic)
    answer = next(p for p in proposals if p.tool_calls and sum(
        "object:horse" in scene_features(q) for q in p.tool_calls[0].args["prompts"]) >= 3)
    assert "Critic requests: test whether 'horse'" in answer.thoughts
    assert answer.thoughts.splitlines()[-1].startswith("Next (critic)")
    assert "H:background:grass" not in {h.id for h in proposals[-1].hypotheses}, "asides are not concepts"
    assert proposals[-1].ready_to_conclude and view.critic[-1].satisfied
    assert {h.id: h.status for h in proposals[-1].hypotheses}["H:object:horse"] == "refuted"
    assert OfflineScientist().conclude(view).labels == ["dog"]


def test_gives_up_on_the_critic_after_a_few_rounds() -> None:
    never = lambda v: CriticReport(round=v.round, satisfied=False, requests=["test 'dog' on 2 more images"])  # noqa: E731
    view, proposals = run(MONO_DOG, lambda f: "object:dog" in f, critic=never)
    assert proposals[-1].ready_to_conclude
    planned = derive(view).plan.steps
    assert len(view.observations) == len(planned) + MAX_CRITIC_ROUNDS


def test_a_thin_margin_it_cannot_narrow_ends_the_critic_rounds_and_objections_are_read_by_concept() -> None:
    """The critic's objection carries its concept: the scientist tests that (not words of the request's text), and
    when the only objection is a thin margin on concepts it has measured, it runs nothing more for it."""
    thin = Objection(kind="thin_margin", concept="dog", hypothesis="H:object:dog", basis=9,
                     text="the margin for 'dog' is thin: ...; test a more specific or a different concept (lamp)",
                     experiment=SuggestedExperiment(action="more_specific", concept="dog"))
    never = lambda v: CriticReport(round=v.round, satisfied=False, requests=[thin.text], objections=[thin])  # noqa: E731
    view, proposals = run(MONO_DOG, lambda f: "object:dog" in f, critic=never)
    assert [c.key for c in critic_concepts(view)] == ["object:dog"]  # not the 'lamp' of its text
    assert proposals[-1].ready_to_conclude
    assert len(view.observations) == len(derive(view).plan.steps), "no critic round for a margin it cannot narrow"


def test_must_conclude_stops_at_once() -> None:
    view = new_view(MONO_DOG)
    view.must_conclude = True
    assert OfflineScientist().propose(view).ready_to_conclude
    assert OfflineScientist().conclude(view).labels == ["dog"]  # an untested guess, said as such
    assert "no experiment ran" in OfflineScientist().conclude(view).description


def test_non_world_descriptions_go_to_the_concept_scientist() -> None:
    view = new_view(["A close-up photograph of intricate lace embroidery.", "Fine woven textile threads."])
    proposal = OfflineScientist().propose(view)
    # no world words: the core's concept scientist searches the dataset by the describer's words instead
    assert "concept scientist" in proposal.thoughts and not proposal.ready_to_conclude
    assert proposal.tool_calls and proposal.tool_calls[0].tool == "dataset_search"
    conclusion = OfflineScientist().conclude(view)
    assert conclusion.labels and conclusion.confidence <= 0.2  # nothing measured yet: an untested guess


def test_deterministic() -> None:
    a, pa = run(OR_DOG_CAR, lambda f: "object:dog" in f or "object:car" in f)
    b, pb = run(OR_DOG_CAR, lambda f: "object:dog" in f or "object:car" in f)
    assert [p.model_dump() for p in pa] == [p.model_dump() for p in pb]
    assert OfflineScientist().conclude(a) == OfflineScientist().conclude(b)


def test_failed_experiment_does_not_stall_the_plan() -> None:
    scientist = OfflineScientist()
    view = new_view(MONO_DOG)
    first = scientist.propose(view)
    view.observations.append(Observation(round=1, ok=False, error="boom", traceback="Traceback ..."))
    view.round = 1
    second = scientist.propose(view)
    assert second.tool_calls and second.tool_calls != first.tool_calls


@pytest.mark.parametrize("descriptions", [["Nothing is highlighted: the region is empty."] * 3, []])
def test_silent_or_missing_exemplars_start_a_survey(descriptions) -> None:
    """Exemplars with nothing to read: a survey of every object and texture stands in for them."""
    view, proposals = run(descriptions, lambda f: "object:rainbow" in f)
    first = proposals[0]
    assert first.thoughts.splitlines()[-1].startswith("Next (survey)")
    survey = prompts_of(first)
    assert len(survey) > 250 and all(len(c.args["prompts"]) <= 64 for c in first.tool_calls if "prompts" in c.args)
    assert any("object:rainbow" in scene_features(p) for p in survey)
    assert OfflineScientist().conclude(view).labels == ["rainbow"]

    dead, proposals = run(descriptions, lambda f: False)
    assert proposals[-1].ready_to_conclude and len(dead.observations) == 1
    assert "survey" in OfflineScientist().conclude(dead).description


# --------------------------------------------------------------------------- end to end, real world and graph


EXEMPLAR_PROMPTS = [
    "a brown dog on grass", "a black dog on snow", "a white dog in a room", "a red car on a road",
    "a blue car on a beach", "a yellow cat on a beach", "a blue cup on grass", "a green tree in a forest",
    "a brown dog with a red leash on grass", "a black dog with a gray leash on snow",
    "an orange dog with a black leash on a beach", "a person with a red leash on a road", "a gray car at night",
    "a brown horse in the desert", "a white dog with a blue leash in a room",
]


world_exemplars = prompt_exemplars(EXEMPLAR_PROMPTS)


@pytest.mark.slow  # whole agent runs
@pytest.mark.parametrize(("neuron", "mode", "labels"), [
    ("mono_dog", "tools", ["dog"]),
    ("or_dog_car", "code", ["car", "dog"]),
    ("cond_dog_leash", "tools", ["dog, only when a leash is present"]),
])
def test_synthetic_neurons_end_to_end(tmp_path, neuron, mode, labels) -> None:
    """The world's synthetic neurons (ground truth known) through the real graph, tools and sandbox."""
    from aim_agent.agent.backends import BackendSpec
    from aim_agent.agent.config import RunConfig
    from aim_agent.agent.runner import run_interpret

    config = RunConfig(synthetic=neuron, backend=BackendSpec(provider="offline"), mode=mode, runs_dir=str(tmp_path),
                       run_id=neuron, max_rounds=10, exemplars_k=8, image_size=112)
    result = run_interpret(config, tools=[world_exemplars])
    assert result.conclusion is not None
    assert sorted(result.conclusion.labels) == labels
    assert result.conclusion.confidence >= 0.8 and not result.conclusion.forced
    assert 3 <= result.rounds <= 7
    assert result.report_path is not None and result.report_path.is_file()
