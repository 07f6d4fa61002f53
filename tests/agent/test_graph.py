"""Whole sessions through the graph, offline: scripted scientists and a scripted chat model, both modes."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from aim_test_fakes import (
    CONTROL_PROMPTS,
    RED_PROMPTS,
    FakeDescriber,
    ScriptedScientist,
    draw,
    fake_chat,
    fake_config,
    fake_exemplars,
    tool_round,
    world_exemplars,
)
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from PIL import Image

from aim_agent.agent.backends import BackendSpec
from aim_agent.agent.config import RunConfig
from aim_agent.agent.critic import concept_present, context_of, critique
from aim_agent.agent.experiment import resolve_refs
from aim_agent.agent.record import read_run_record
from aim_agent.agent.runner import run_interpret
from aim_agent.agent.schema import Hypothesis
from aim_agent.agent.state import Measurement
from aim_agent.providers import EditChange
from aim_agent.tools.core import Text2ImageOutput

TASK_WORDS = ("Describe the visual concept", "layer pixels of redness")


def _text(messages: list[Any]) -> str:
    parts = []
    for m in messages:
        content = m.content if isinstance(m.content, list) else [m.content]
        parts += [b["text"] if isinstance(b, dict) and b.get("type") == "text" else b for b in content
                  if isinstance(b, str) or (isinstance(b, dict) and b.get("type") == "text")]
    return "\n".join(parts)


def _log(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


# --------------------------------------------------------------------------- scripted scientists


def test_tools_mode_session_with_critic_intervention(tmp_path):
    FakeDescriber.calls.clear()
    thin = tool_round(RED_PROMPTS[:2], ready=True)  # two red images, no control: too thin to conclude
    full = tool_round(RED_PROMPTS[2:] + CONTROL_PROMPTS, ready=True)
    scientist = ScriptedScientist([thin, full])
    result = run_interpret(fake_config(tmp_path, run_id="critic"), scientist=scientist, tools=[fake_exemplars])

    # the critic vetoed the first conclusion and its requests reached the next view
    first, second = scientist.views
    assert first.critic == [] and first.exemplar_descriptions[0] == "a red square"
    requests = second.critic[-1].requests
    assert not second.critic[-1].satisfied
    assert any("test 'red' on 3 more distinct images" in r for r in requests)
    assert any("more backgrounds/contexts" in r for r in requests)
    assert any(r.startswith("run a control without 'red'") for r in requests)
    # after round 2 the evidence passes and the run concludes
    assert result.rounds_run == 2 and result.conclusion.labels == ["red"] and not result.conclusion.forced
    record = read_run_record(result.result_path)
    assert record == result.record and record.conclusion.labels == ["red"]
    first_round, last_round = record.rounds
    assert first_round.critic[0].checks["vetoed_conclusion"] and first_round.proposal.ready_to_conclude
    assert last_round.critic[-1].satisfied and last_round.critic[-1].checks["evidence"][0]["controls"] == 3
    assert [m.prompt for m in first_round.measurements] == RED_PROMPTS[:2]
    # the observation chained text2image -> neuron through "$0.images" and paired prompts with activations
    obs = second.observations[0]
    assert obs.ok and obs.prompts == RED_PROMPTS[:2] and min(obs.activations) > 0.5
    kinds = [(e["kind"], e["round"]) for e in _log(result.run_dir)]
    assert kinds.count(("experiment", 1)) == 1 and kinds.count(("experiment", 2)) == 1
    assert kinds[-1] == ("conclusion", 2)
    assert (result.run_dir / "images").is_dir() and any((result.run_dir / "images").glob("img_*.png"))


def test_describer_is_blind(tmp_path):
    FakeDescriber.calls.clear()
    scientist = ScriptedScientist([tool_round(RED_PROMPTS + CONTROL_PROMPTS, ready=True)])
    run_interpret(fake_config(tmp_path, run_id="blind"), scientist=scientist, tools=[fake_exemplars])
    assert FakeDescriber.calls, "the describer was not used"
    for kind, images, args, kwargs in FakeDescriber.calls:
        assert kind == "describe" and args == () and kwargs == {}
        assert all(isinstance(im, Image.Image) for im in images)
    assert len(FakeDescriber.calls[0][1]) == len(scientist.views[0].exemplar_image_ids)


def test_round_cap_forces_a_conclusion(tmp_path):
    # never ready, never enough; each round a new image (the same experiment twice would be refused)
    scientist = ScriptedScientist([tool_round([p]) for p in RED_PROMPTS[:3]])
    result = run_interpret(fake_config(tmp_path, run_id="cap", max_rounds=3), scientist=scientist,
                           tools=[fake_exemplars])
    assert len(scientist.views) == 3 and [v.round for v in scientist.views] == [0, 1, 2]
    (final,) = scientist.conclude_views
    assert final.must_conclude
    assert result.rounds_run == 3 and result.conclusion.forced
    assert result.forced.startswith("round cap")
    record = read_run_record(result.run_dir)
    assert record.forced.startswith("round cap") and record.rounds_run == 3 and record.status == "finished"
    assert [rd.round for rd in record.rounds] == [1, 2, 3] and record.conclusion.forced


def test_tool_call_errors_are_observed_and_references_resolve(tmp_path):
    bad = tool_round(RED_PROMPTS[:1])
    bad.tool_calls[1].args = {"images": "$5.images"}  # no call 5
    scientist = ScriptedScientist([bad, tool_round(RED_PROMPTS + CONTROL_PROMPTS, ready=True)])
    result = run_interpret(fake_config(tmp_path, run_id="refs"), scientist=scientist, tools=[fake_exemplars])
    obs = scientist.views[1].observations[0]
    assert not obs.ok and "refers to call 5" in obs.error
    assert result.conclusion.labels == ["red"]
    out = Text2ImageOutput(images=[draw("a"), draw("b")], prompts=["a", "b"])
    assert resolve_refs({"images": ["$0.images", "$0.images.1"]}, [out])["images"][2] is out.images[1]


# --------------------------------------------------------------------------- a scripted chat model


SYNTAX_ERROR = """[THOUGHTS]: the exemplars are red.
[HYPOTHESIS h1] (concepts: red | kind: single | confidence: 0.6) the unit fires on red objects
[CODE]:
```python
def run_experiment(system, tools)
    return 1
```"""

RUNTIME_ERROR = """[THOUGHTS]: fix the colon.
[HYPOTHESIS h1] (concepts: red | kind: single | confidence: 0.6) the unit fires on red objects
```python
def run_experiment(system, tools):
    images = tools.text2image(["a red ball on grass"])
    acts, overlays = system.neuron(images)
    return acts[0] / 0
```"""

GOOD = f"""[THOUGHTS]: now a proper test with controls.
[HYPOTHESIS h1] (concepts: red | kind: single | confidence: 0.8) the unit fires on red objects
```python
def run_experiment(system, tools):
    prompts = {RED_PROMPTS + CONTROL_PROMPTS!r}
    images = tools.text2image(prompts)
    acts, overlays = system.neuron(images)
    tools.log_experiment(acts, overlays, prompts, note="red vs other colours")
    print("red mean", sum(acts[:5]) / 5)
    return dict(zip(prompts, acts))
```
[CONCLUDE]"""

CONCLUSION = """[DESCRIPTION]: red objects, whatever the background
[LABEL]: red objects
[EVIDENCE]:
- five red objects fire, three other colours do not
[CONFIDENCE]: 0.9"""

USAGE = {"input_tokens": 900, "output_tokens": 100, "total_tokens": 1000}


def test_code_mode_llm_session_recovers_from_syntax_and_runtime_errors(tmp_path, chats):
    replies = [SYNTAX_ERROR, RUNTIME_ERROR, GOOD, CONCLUSION]
    chats["gpt-4o"] = agent = fake_chat([AIMessage(content=r, usage_metadata=USAGE) for r in replies])
    chats["gpt-4o-mini"] = describer = fake_chat(["\n".join(f"{i}: a red square" for i in range(1, 9))])
    config = fake_config(tmp_path, run_id="code", mode="code", backend=BackendSpec.parse("openai:gpt-4o"),
                         describer="openai:gpt-4o-mini")
    result = run_interpret(config, tools=[fake_exemplars])

    second, third = _text(agent.received[1]), _text(agent.received[2])
    assert "unit 0 of layer pixels of redness" in _text(agent.received[0])
    assert "SyntaxError" in second and "def run_experiment(system, tools)" in second
    assert "ZeroDivisionError" in third and 'File "<experiment>", line 4' in third
    assert "[HYPOTHESIS h1]" in third  # the scientist sees its hypotheses each round
    record = read_run_record(result.run_dir)
    assert record.rounds_run == 3 and [rd.observation.ok for rd in record.rounds] == [False, False, True]
    assert [rd.proposal.hypotheses[0].confidence for rd in record.rounds] == [0.6, 0.6, 0.8]
    assert "SyntaxError" in record.rounds[0].observation.error and record.rounds[0].proposal.code
    assert record.conclusion.labels == ["red objects"] and record.conclusion.description.startswith("red objects")
    assert record.conclusion.evidence == ["five red objects fire, three other colours do not"]
    last = record.rounds[2]
    assert "red mean" in last.observation.text
    assert "logged experiment: red vs other colours" in last.observation.text
    assert [e.text for e in last.shown] == ["red vs other colours"] and last.shown[0].prompts[:5] == RED_PROMPTS
    # tokens per call and a cost estimate from the price table
    assert record.usage.totals.total_tokens == 4000 and record.usage.totals.calls == 5
    assert result.total_tokens == 4000 and len(record.usage.calls) == 5
    assert record.usage.totals.cost_usd is not None and record.usage.totals.cost_usd > 0
    # the VLM describer saw the exemplar overlays and a fixed prompt: no task, no hypotheses
    (call,) = describer.received
    words = _text(call)
    assert all(w not in words for w in (*TASK_WORDS, "HYPOTHESIS", "red objects", "unit"))
    assert sum(1 for b in call[-1].content if b.get("type") == "image_url") == 4
    assert record.exemplars.descriptions == ["a red square"] * 4


def _neuron_on_generated(messages: list[Any]) -> AIMessage:
    tool_results = [m for m in messages if isinstance(m, ToolMessage)]
    ids = json.loads(tool_results[-1].content)["images"]
    return AIMessage(content="", tool_calls=[{"name": "neuron", "args": {"images": ids}, "id": "n1"}])


def test_tools_mode_llm_session_runs_a_react_loop(tmp_path, chats):
    first = AIMessage(
        content="[THOUGHTS]: red?\n[HYPOTHESIS h1] (concepts: red | confidence: 0.6) red objects",
        tool_calls=[{"name": "text2image", "args": {"prompts": RED_PROMPTS + CONTROL_PROMPTS}, "id": "t1"}],
    )
    chats["gpt-4o"] = agent = fake_chat([
        first,
        _neuron_on_generated,
        "The five red images fire and the others do not.",
        "[HYPOTHESIS h1] (concepts: red | confidence: 0.9) red objects\n[CONCLUDE]",
        CONCLUSION,
    ])
    chats["gpt-4o-mini"] = critic = fake_chat(["Colour may be confounded with brightness: test dark red."] * 2)
    config = fake_config(tmp_path, run_id="react", mode="tools", backend=BackendSpec.parse("openai:gpt-4o"),
                         critic_backend=BackendSpec.parse("openai:gpt-4o-mini"))
    result = run_interpret(config, tools=[fake_exemplars])

    assert {t.name for t in agent.bound_tools} >= {"text2image", "neuron", "edit_images", "log_experiment"}
    followup = agent.received[1]
    assert isinstance(followup[-2], ToolMessage) and '"images": ["img_' in followup[-2].content
    assert isinstance(followup[-1], HumanMessage)
    assert sum(1 for b in followup[-1].content if b.get("type") == "image_url") > 0
    record = read_run_record(result.run_dir)
    (only,) = record.rounds
    obs = only.observation
    assert obs.ok and len(obs.activations) == 8 and obs.prompts[:5] == RED_PROMPTS
    assert "The five red images fire" in obs.text
    assert [c.tool for c in only.proposal.tool_calls] == ["text2image"]
    assert record.rounds_run == 1 and record.conclusion.labels == ["red objects"]
    # the second reply asked to conclude without an experiment: a request of round 1, answered by the critic
    (request,) = only.conclusion_requests
    assert request.ready_to_conclude and request.hypotheses[0].confidence == 0.9
    assert len(only.critic) == 2 and only.critic[-1].satisfied
    # the optional critic model commented on the rule-based checks, and the scientist read the comment
    assert only.critic[0].checks["comment"].startswith("Colour may be confounded")
    assert '"evidence"' in _text(critic.received[0]) and "Reviewer's comment: Colour" in _text(agent.received[3])
    assert record.usage.totals.by_role["critic"]["calls"] == 2
    assert record.backends.critic == "openai:gpt-4o-mini"


def test_token_budget_forces_a_conclusion_without_another_call(tmp_path, chats):
    chats["gpt-4o"] = agent = fake_chat([AIMessage(content=GOOD.replace("[CONCLUDE]", ""), usage_metadata=USAGE)])
    config = fake_config(tmp_path, run_id="tokens", mode="code", backend=BackendSpec.parse("openai:gpt-4o"),
                         max_tokens=500)
    result = run_interpret(config, tools=[fake_exemplars])
    assert len(agent.received) == 1
    assert result.forced.startswith("token budget") and result.conclusion.forced
    assert result.conclusion.labels == ["red"] and result.rounds_run == 1


# --------------------------------------------------------------------------- the critic's rules


def test_critic_reads_edits_contexts_and_margins():
    # edits are read from the editor's structured report, never from the instruction's words
    recolor = EditChange(kind="recolor", changed=["ball"], attributes={"color": "blue"})
    replace = EditChange(kind="replace", removed=["dog"], added=["cat"])
    snow = EditChange(kind="background", background="snow")
    assert concept_present("a red ball on grass", "red", [recolor]) is False
    assert concept_present("a dog on grass", "dog", [replace]) is False
    assert concept_present("a dog on grass", "cat", [replace]) is True
    assert concept_present("a dog on grass", "dog", [snow]) is True
    assert concept_present("a dog on grass", "grass", [snow]) is False
    assert concept_present("a dog on grass", "dog", [None]) is None  # an editor that could not say
    assert concept_present("two dogs on a beach", "dog") is True and concept_present("", "dog") is None
    assert context_of("a red ball on the grass", ["red"]) == "grass"
    assert context_of("a dog on grass", ["dog"], [snow]) == "snow"
    hyp = [Hypothesis(id="h1", statement="dogs", concepts=["dog"], confidence=0.9)]
    ms = [Measurement(round=1, image_id=f"i{k}", activation=1.0, source_prompt=f"a dog on {bg}")
          for k, bg in enumerate(["grass", "snow", "sand", "road", "water"])]
    ms += [Measurement(round=1, image_id=f"c{k}", activation=0.9, source_prompt=f"a cat on {bg}")
           for k, bg in enumerate(["grass", "snow", "sand"])]
    report = critique(1, hyp, ms)
    assert not report.satisfied and any("margin for 'dog' is thin" in r for r in report.requests)
    ms[-3:] = [m.model_copy(update={"activation": 0.1}) for m in ms[-3:]]
    assert critique(1, hyp, ms).satisfied


def test_a_conclusion_the_critic_keeps_sending_back_is_forced_when_its_vetoes_run_out(tmp_path):
    """Thin evidence, asked to conclude every round: after max_critic_vetoes the run concludes, marked forced."""
    from aim_agent.agent.nodes import VETO_CAP

    # a new red image each round (never the same experiment twice), never enough of them
    scientist = ScriptedScientist([tool_round([p], ready=True) for p in RED_PROMPTS])
    result = run_interpret(fake_config(tmp_path, run_id="vetoed", max_critic_vetoes=1), scientist=scientist,
                           tools=[fake_exemplars])
    assert result.forced and result.forced.startswith(VETO_CAP) and result.conclusion.forced
    assert "1 time(s)" in result.forced
    assert read_run_record(result.run_dir).forced == result.forced


def test_the_critic_counts_members_of_a_category_and_of_a_listed_group():
    """With the world's vocabulary an image of a frog shows 'animals'; 'owl, swan or duck' is shown by a swan."""
    from aim_agent.vocabulary import installed_vocabularies

    vocabulary = installed_vocabularies()
    assert concept_present("a green frog on grass", "animals", vocabulary=vocabulary) is True
    assert concept_present("a green frog on grass", "animal", vocabulary=vocabulary) is True
    assert concept_present("a red car on a road", "animals", vocabulary=vocabulary) is False
    assert concept_present("a green frog on grass", "animals") is False  # plain words: no category knowledge
    assert concept_present("a white swan on water", "owl, swan or duck") is True
    hyp = [Hypothesis(id="h", statement="animals", concepts=["animals"], confidence=0.9)]
    ms = [Measurement(round=1, image_id=f"a{k}", activation=1.0, source_prompt=f"a {noun} on {bg}")
          for k, (noun, bg) in enumerate([("frog", "grass"), ("dog", "snow"), ("owl", "sand"), ("horse", "road"),
                                           ("fish", "water")])]
    ms += [Measurement(round=1, image_id=f"c{k}", activation=0.1, source_prompt=f"a {noun} on grass")
           for k, noun in enumerate(["car", "cup", "chair"])]
    assert critique(1, hyp, ms, vocabulary=vocabulary).satisfied
    plain = critique(1, hyp, ms)
    assert not plain.satisfied and plain.checks["evidence"][0]["images"] == 0


def test_the_run_shows_as_many_exemplars_as_the_config_or_the_scientist_asks_for():
    from types import SimpleNamespace

    from aim_agent.agent.nodes import exemplar_count

    def runtime(k, scientist):
        return SimpleNamespace(config=RunConfig(model="m", layer="l", unit=0, exemplars_k=k), scientist=scientist)

    reader = SimpleNamespace(exemplars_k=50)
    assert exemplar_count(runtime(None, reader)) == 50  # the offline scientist reads a larger pool
    assert exemplar_count(runtime(8, reader)) == 8  # the user's number wins
    assert exemplar_count(runtime(None, SimpleNamespace())) == 15  # a VLM: MAIA's default


def test_the_conclusion_says_when_most_exemplars_do_not_show_it():
    from aim_agent.agent.nodes import exemplar_coverage
    from aim_agent.agent.schema import Conclusion
    from aim_agent.vocabulary import installed_vocabularies

    vocabulary = installed_vocabularies()
    state = {"exemplar_descriptions": ["The highlighted region contains a brown dog (60% of the region)."] * 2
             + ["The highlighted region contains a red car (70% of the region)."] * 5}
    note = exemplar_coverage(state, Conclusion(description="dogs", labels=["dog"]), vocabulary)
    assert note and note.startswith("Caution: only 2 of 7 dataset exemplars") and "car (5)" in note
    assert "made or found" in note
    assert exemplar_coverage(state, Conclusion(description="cars", labels=["car"]), vocabulary) is None
    assert exemplar_coverage(state, Conclusion(description="vehicles", labels=["vehicles"]), vocabulary) is None


# --------------------------------------------------------------------------- end to end on the world


def test_offline_scientist_on_a_synthetic_neuron(tmp_path):
    neurons = importlib.import_module("aim_world.neurons")
    name = neurons.list_synthetic()[0].name
    config = RunConfig(synthetic=name, backend=BackendSpec(provider="offline"), mode="tools", runs_dir=str(tmp_path),
                       run_id="world", max_rounds=8, exemplars_k=6, image_size=112)
    result = run_interpret(config, tools=[world_exemplars])
    record = read_run_record(result.run_dir)
    assert record.status == "finished" and record.conclusion.labels and record.ground_truth
    assert record.rounds_run >= 1 and record.backends.scientist == "offline"
    assert name not in record.task and record.ground_truth not in record.task  # the answer is not given away


# --------------------------------------------------------------------------- the command line


def test_cli_interpret_writes_the_run_files_and_prints_their_paths(tmp_path, monkeypatch, capsys):
    from aim_test_fakes import EXEMPLAR_PROMPTS

    from aim_agent.cli import main

    monkeypatch.setenv("AIM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    folder = tmp_path / "data"
    folder.mkdir()
    for i, prompt in enumerate(EXEMPLAR_PROMPTS):
        draw(prompt).save(folder / f"{i}.png")
    code = main(["--plugin", "aim_test_fakes", "interpret", "--system", "aim_test_fakes:redness_system",
                 "--text2image", "fake", "--editor", "fake", "--describer", "fake", "--runs-dir",
                 str(tmp_path / "runs"), "--max-rounds", "2", "--dataset", str(folder), "--k", "4",
                 "--run-id", "cli", "--mode", "tools", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    run = tmp_path / "runs" / "cli"
    assert "[DESCRIPTION]:" in out and "[LABEL]:" in out
    assert str(run / "result.json") in out and str(run / "log.jsonl") in out
    record = read_run_record(run)
    assert record.backends.scientist == "offline" and record.status == "finished"
    assert len(record.exemplars.image_ids) == 4 and record.rounds_run <= 2
    assert json.loads((run / "run.json").read_text())["config"]["mode"] == "tools"
