"""A chat model answers MAIA's spurious and bias tasks (``aim eval spurious|bias --backend PROVIDER``): one
interpretation run per question, its final reply read in the task's own form. Scripted fake VLMs, no network."""

from __future__ import annotations

import gc
import json
import re
from pathlib import Path
from typing import Any

import pytest
from aim_test_fakes import RednessProbe, draw, fake_chat
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from PIL import Image

from aim_agent.agent import backends
from aim_agent.agent.backends import BackendSpec
from aim_agent.agent.record import read_run_record
from aim_agent.eval import bias
from aim_agent.eval.task_scientist import (
    AnswerError,
    ChatTaskScientist,
    canonical,
    parse_bias,
    parse_spurious,
)
from aim_agent.eval.tasks import TaskQuestion, task_scientist
from aim_agent.system import System
from aim_agent.vocabulary import installed_vocabularies

USAGE = {"input_tokens": 900, "output_tokens": 100, "total_tokens": 1000}
CLASSES = ("ball", "car", "apple")
DOMAIN = ("grass", "snow")
# the fake describer, editor and plugin; the critic may not send a conclusion back (a fixed number of calls)
SETTINGS = {"describer": "fake", "editor": "fake", "plugins": ["aim_test_fakes"], "max_critic_vetoes": 0}


def _text(messages: list[BaseMessage]) -> str:
    parts = []
    for m in messages:
        content = m.content if isinstance(m.content, list) else [m.content]
        parts += [b["text"] if isinstance(b, dict) else b for b in content
                  if isinstance(b, str) or (isinstance(b, dict) and b.get("type") == "text")]
    return "\n".join(parts)


def generate(prompts: list[str], seed: int) -> list[Any]:
    return [draw(p) for p in prompts]


def spurious_question() -> TaskQuestion:
    system = System(RednessProbe(), 0)
    shown = [draw(p) for p in ("a red ball on grass", "a red ball on snow", "a blue car on grass")]
    acts, overlays = system.neuron(shown)
    return TaskQuestion(task="spurious", system=system, generate=generate, classes=CLASSES, domain=DOMAIN,
                        exemplars=overlays, exemplar_activations=acts)


def scientist(tmp_path: Path, **options: Any) -> ChatTaskScientist:
    return ChatTaskScientist(BackendSpec.parse("openai:gpt-4o"), runs_dir=tmp_path / "runs",
                             settings={**SETTINGS, **options.pop("settings", {})}, **options)


def _neuron_on_generated(messages: list[BaseMessage]) -> AIMessage:
    tool_results = [m for m in messages if isinstance(m, ToolMessage)]
    ids = json.loads(str(tool_results[-1].content))["images"]
    return AIMessage(content="", tool_calls=[{"name": "neuron", "args": {"images": ids}, "id": "n1"}])


PROMPTS = ["a red ball on grass", "a red ball on snow", "a blue car on grass", "a green apple on snow"]


def one_experiment(final: str) -> list[Any]:
    """Generate four images, measure them, end the round, ask to conclude, answer ``final``."""
    return [
        AIMessage(content="[THOUGHTS]: balls on both backgrounds, other classes as controls\n"
                          "[HYPOTHESIS h1] (concepts: ball | confidence: 0.6) the unit fires for balls",
                  tool_calls=[{"name": "text2image", "args": {"prompts": PROMPTS}, "id": "t1"}],
                  usage_metadata=USAGE),  # type: ignore[arg-type]
        _neuron_on_generated,
        "The red balls fire on grass and on snow; the car and the apple do not.",
        "[HYPOTHESIS h1] (concepts: ball | confidence: 0.8) the unit fires for balls\n[CONCLUDE]",
        final,
    ]


@pytest.mark.parametrize(("final", "verdict", "cls"), [
    ("[REASONING]: balls fire on grass (0.5) and snow (0.5); car and apple stay at 0\n[LABEL]: SELECTIVE\n"
     "[CLASS]: balls", "SELECTIVE", "ball"),
    ("[REASONING]: the unit fires for anything red\n[LABEL]: SPURIOUS", "SPURIOUS", None),
])
def test_a_vlm_runs_the_spurious_task_through_one_interpret_run(tmp_path, chats, final, verdict, cls):
    chats["gpt-4o"] = vlm = fake_chat(one_experiment(final))
    answer = scientist(tmp_path).answer(spurious_question())

    assert (answer.verdict, answer.selective_for) == (verdict, cls)
    first, last = _text(vlm.received[0]), _text(vlm.received[-1])
    # MAIA's task with the classes and the training environments, its answer form, not the describe form
    assert "1. ball\n2. car\n3. apple" in first and "environments: grass, snow" in first
    assert "[LABEL]: SELECTIVE or SPURIOUS" in first and "[DESCRIPTION]" not in first
    assert "Give your final answer now" in last and "[CLASS]" in last
    assert "E1 img_" in first and sum(1 for b in vlm.received[0][-1].content if b.get("type") == "image_url") == 3
    # a normal run directory: the transcript behind the verdict
    run = Path(answer.run_dir or "")
    assert run.parent == tmp_path / "runs" and (run / "report.html").exists()
    record = read_run_record(run)
    assert record.config.answer == "spurious" and record.conclusion is not None
    assert record.unit_label.startswith("unit 0 of layer pixels of redness")
    assert record.conclusion.labels == [verdict] and record.conclusion.answer_text == final
    assert record.rounds_run == 1 and record.usage.totals.total_tokens == 1000
    # the evidence the page shows: what the run measured, with images
    measured = {o.prompt: o.activation for o in answer.evidence}
    assert set(measured) == set(PROMPTS) and all(o.image is not None for o in answer.evidence)
    assert min(measured[p] for p in PROMPTS[:2]) > max(measured[p] for p in PROMPTS[2:])


def test_two_bias_lines_are_parsed_canonicalised_and_scored(tmp_path, chats):
    final = ("[REASONING]: P(boat) is 0.9 on water and 0.1 elsewhere; red boats drop to 0.2\n"
             "[BIAS]: boats are recognised with Background = water and under-recognised without it "
             "(with: 0.9, without: 0.1)\n"
             "[BIAS]: boat is under-recognised with colour = a red paint (with: 0.2, typical: 0.8)")
    chats["gpt-4o"] = vlm = fake_chat(["[HYPOTHESIS h1] (concepts: water | confidence: 0.9) needs water\n"
                                       "[CONCLUDE]", final])
    question = TaskQuestion(task="bias", system=System(RednessProbe(), 0), generate=generate,
                            classes=("boat", "car"), target="boat")
    answer = scientist(tmp_path).answer(question)

    assert 'the class "boat"' in _text(vlm.received[0]) and "[BIAS]: <class>" in _text(vlm.received[0])
    assert answer.verdict == "BIASED"
    water, red = answer.findings
    assert (water.cls, water.feature, water.value, water.kind) == ("boat", "background", "water", "preference")
    assert (water.with_value, water.without_value) == (0.9, 0.1)
    assert (red.feature, red.value, red.kind, red.with_value, red.without_value) == (
        "color", "red", "suppressor", 0.2, 0.8)
    planted = [{"cls": "boat", "feature": "background", "value": "water", "accuracy_with_feature": 1.0,
                "accuracy_without_feature": 0.1},
               {"cls": "car", "feature": "color", "value": "red", "accuracy_with_feature": 1.0,
                "accuracy_without_feature": 0.1}]
    score = bias.score(answer.findings, planted)
    assert (score.recall_learned, score.precision, score.preferences) == (0.5, 1.0, 1)
    assert score.suppressors == [red] and score.found_learned == ["boat: background=water"]


def test_an_unreadable_answer_is_an_error_for_that_unit(tmp_path, chats):
    chats["gpt-4o"] = fake_chat(["[CONCLUDE]", "I think this unit is probably fine."])
    answer = scientist(tmp_path).answer(spurious_question())
    assert answer.verdict == "ERROR" and "no [LABEL]: SELECTIVE or SPURIOUS line" in answer.reasoning
    assert answer.run_dir and str(Path(answer.run_dir) / "report.html") in answer.reasoning
    assert read_run_record(Path(answer.run_dir)).status == "finished"  # the run itself is kept, readable


def test_the_round_cap_forces_an_answer_and_a_spent_token_budget_is_a_clear_error(tmp_path, chats):
    chats["gpt-4o"] = vlm = fake_chat([*one_experiment("unused")[:3], "[REASONING]: out of rounds\n[LABEL]: SPURIOUS"])
    answer = scientist(tmp_path / "rounds", max_rounds=1).answer(spurious_question())
    assert answer.verdict == "SPURIOUS" and "budget is spent" in _text(vlm.received[-1])
    assert read_run_record(Path(answer.run_dir or "")).forced.startswith("round cap")

    chats["gpt-4o"] = vlm = fake_chat(one_experiment("unused")[:3])
    answer = scientist(tmp_path / "tokens", max_tokens=500).answer(spurious_question())
    assert len(vlm.received) == 3  # no call once the tokens are spent, so no answer either
    assert answer.verdict == "ERROR" and "no final answer was given (token budget: 1000 of 500" in answer.reasoning


def test_the_task_and_its_answers_stay_out_of_the_run(tmp_path, chats, monkeypatch):
    """evaluate_bias with a task whose truth holds a sentinel: the VLM, the run's files and its tool context never
    get it, and truth() is read once, after the last answer."""
    from aim_agent.agent import runner
    from aim_agent.eval import tasks
    from aim_agent.models import probe as probes

    events: list[str] = []

    class SentinelTask:
        name, model, classes, domain = "bias", "sentinel-model", ("boat", "car"), ()
        feature_layer, logits_layer = "pixels", "pixels"

        def images(self, split: str, n: int, seed: int) -> Any:
            assert split == "test"  # the exemplars come from the unbiased split
            colours = [(200, 30, 30), (30, 30, 200)]
            return tasks.LabelledImages([Image.new("RGB", (32, 32), colours[i % 2]) for i in range(n)],
                                        ["boat", "car"] * (n // 2) + ["boat"] * (n % 2))

        def truth(self) -> dict[str, Any]:
            events.append("truth")
            return {"planted": [{"cls": "boat", "feature": "companion", "value": "unicorn-sentinel",
                                 "accuracy_with_feature": 1.0, "accuracy_without_feature": 0.0}]}

    task = SentinelTask()
    monkeypatch.setattr(tasks, "eval_task", lambda name, model=None: task)
    monkeypatch.setattr(probes, "open_probe", lambda *a, **k: RednessProbe())
    runtimes: list[Any] = []
    build = runner.build_runtime
    monkeypatch.setattr(runner, "build_runtime", lambda *a, **k: runtimes.append(build(*a, **k)) or runtimes[-1])

    def final(messages: list[BaseMessage]) -> str:
        events.append("answer")
        return "[REASONING]: nothing changed P(boat)\n[BIAS]: none"

    chats["gpt-4o"] = vlm = fake_chat(["[CONCLUDE]", final])
    data = bias.evaluate_bias(model="sentinel-model", classes=["boat"], backend="openai:gpt-4o", exemplar_pool=6,
                              scientist=scientist(tmp_path))

    assert events == ["answer", "truth"] and data["answers"]["boat"]["verdict"] == "UNIFORM"
    assert data["planted"][0]["found"] is False
    assert not any("sentinel" in _text(call) for call in vlm.received)
    run_files = [p for p in (tmp_path / "runs").rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl", ".html")]
    assert run_files and not any("sentinel" in p.read_text() for p in run_files)
    (rt,) = runtimes
    assert _reaches(rt, rt.ctx.system.probe)  # the walk does find what the run holds
    assert not _reaches(rt, task), "the run's runtime holds a reference to the evaluation task"


def _reaches(root: Any, target: Any, limit: int = 200_000) -> bool:
    """Whether ``target`` is reachable from ``root`` through instance data (modules, classes and code skipped)."""
    import types

    seen, stack = set(), [root]
    while stack and len(seen) < limit:
        obj = stack.pop()
        if obj is target:
            return True
        if id(obj) in seen or isinstance(obj, types.ModuleType | type | types.FunctionType | types.CodeType):
            continue
        seen.add(id(obj))
        stack += gc.get_referents(obj)
    return False


def test_the_sandbox_hides_the_plugin_that_holds_the_world_tasks_answers():
    import aim_world.tasks
    from aim_agent.agent.sandbox.runner import default_hidden_paths

    hidden = [Path(p).resolve() for p in default_hidden_paths()]
    assert any(Path(aim_world.tasks.__file__).resolve().is_relative_to(h) for h in hidden)


def test_backend_names_pick_a_scientist_and_unknown_ones_list_the_valid(chats, monkeypatch):
    chats["gpt-4o"] = chats["qwen"] = fake_chat([])
    chat = task_scientist("openai:gpt-4o", runs_dir=Path("somewhere"), max_rounds=3)
    assert isinstance(chat, ChatTaskScientist) and chat.name == "openai:gpt-4o"
    assert task_scientist("vllm:qwen", base_url="http://localhost:8000/v1").name == "openai:qwen at http://localhost:8000/v1"
    assert task_scientist("offline").name == "offline"
    with pytest.raises(LookupError, match=r"valid: offline \(installed\), or a chat model: google_genai\[:MODEL\]"):
        task_scientist("gpt5-please")
    monkeypatch.delenv("OPENAI_API_KEY")  # before any unit is asked, not after the evaluation's first steps
    with pytest.raises(backends.BackendError, match="needs an API key: set OPENAI_API_KEY"):
        task_scientist("openai:gpt-4o")
    with pytest.raises(ValueError, match="max_tokens"):
        task_scientist("vllm:qwen", base_url="http://localhost:8000/v1", max_tokens=-3)


def test_answer_parsers_reject_what_they_cannot_read():
    vocabulary = installed_vocabularies()
    assert parse_spurious("[LABEL]: SELECTIVE (car)", CLASSES).selective_for == "car"
    assert parse_spurious("[LABEL]: selective\n[REASONING]: cars", CLASSES).selective_for is None
    for text, why in [("[LABEL]: SELECTIVE or SPURIOUS", "must say SELECTIVE or SPURIOUS"),
                      ("[LABEL]: SELECTIVE\n[CLASS]: zebra", "not one of the classes"),
                      ("no label", "no [LABEL]")]:
        with pytest.raises(AnswerError, match=re.escape(why)):
            parse_spurious(text, CLASSES)
    assert parse_bias("[BIAS]: none", "boat", vocabulary).verdict == "UNIFORM"
    for text, why in [("nothing", "no [BIAS] line"), ("[BIAS]: boats like water", "has neither form"),
                      ("[BIAS]: car is under-recognised with background = snow", "probability of 'boat'")]:
        with pytest.raises(AnswerError, match=re.escape(why)):
            parse_bias(text, "boat", vocabulary)
    assert canonical("Setting", "snowy ground", vocabulary)[1] == "snow"
    assert canonical("thing", "gizmo", vocabulary) == ("thing", "gizmo")


def test_cli_eval_bias_with_a_chat_backend_writes_each_units_run_under_the_out_dir(tmp_path, chats, capsys):
    from aim_agent.cli import main

    final = ("[REASONING]: P(boat) high on water only\n"
             "[BIAS]: boat is recognised with background = water and under-recognised without it (with: 0.9, "
             "without: 0.1)")

    def conclude(messages: list[BaseMessage]) -> str:  # the critic may send [CONCLUDE] back: ask again
        return final if "Give your final answer now" in _text(messages[-1:]) else "[CONCLUDE]"

    first = AIMessage(content="[THOUGHTS]: water or not\n[HYPOTHESIS h1] (concepts: water | confidence: 0.5) needs "
                      "water", tool_calls=[{"name": "text2image", "id": "t1", "args": {
                          "prompts": ["a boat on water", "a boat on grass", "a boat on snow", "a boat on sand"]}}])
    chats["gpt-4o"] = vlm = fake_chat([first, _neuron_on_generated, "P(boat) is high on water only.",
                                       *[conclude] * 4])
    out = tmp_path / "bias"
    assert main(["eval", "bias", "--classes", "boat", "--backend", "openai:gpt-4o", "--max-rounds", "2",
                 "--n-exemplar-pool", "40", "--out", str(out)]) == 0
    assert "planted bias" in capsys.readouterr().out
    data = json.loads((out / "result.json").read_text())
    assert data["backend"] == "openai:gpt-4o" and data["answers"]["boat"]["verdict"] == "BIASED"
    (finding,) = data["answers"]["boat"]["findings"]
    assert (finding["feature"], finding["value"], finding["kind"]) == ("background", "water", "preference")
    assert data["planted"][0]["found"] is True  # scored against the world's planted boat-on-water bias
    assert data["answers"]["boat"]["run_dir"] == str(out / "runs" / "bias-boat")
    record = read_run_record(out / "runs" / "bias-boat")
    assert record.rounds[0].measurements  # the world's model measured on its images
    assert "fc:softmax of world-cnn-bias" in _text(vlm.received[0])  # the unit: the class probability


def test_cli_names_the_valid_backends_for_an_unknown_one(tmp_path, capsys):
    from aim_agent.cli import main

    assert main(["eval", "spurious", "--backend", "gpt5-please", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "no task scientist 'gpt5-please'" in err and "offline" in err and "openai[:MODEL]" in err
    assert not (tmp_path / "s").exists()


def test_code_mode_reaches_the_questions_exemplars_and_generator_through_the_sandbox(tmp_path, chats):
    code = ("[THOUGHTS]: exemplars first, then balls against cars\n[CODE]:\n```python\n"
            "def run_experiment(system, tools):\n"
            "    acts, overlays = tools.dataset_exemplars(2)\n"
            "    print('exemplars', len(overlays), [round(a, 3) for a in acts])\n"
            f"    prompts = {PROMPTS!r}\n"
            "    images = tools.text2image(prompts)\n"
            "    measured, _ = system.neuron(images)\n"
            "    return dict(zip(prompts, measured))\n```")
    final = "[REASONING]: balls only\n[LABEL]: SELECTIVE\n[CLASS]: ball"
    chats["gpt-4o"] = vlm = fake_chat([code, "[CONCLUDE]", final])
    question = spurious_question()
    answer = scientist(tmp_path, mode="code").answer(question)

    assert (answer.verdict, answer.selective_for) == ("SELECTIVE", "ball")
    shown = _text(vlm.received[1])
    assert f"exemplars 2 {[round(a, 3) for a in question.exemplar_activations[:2]]}" in shown
    assert {o.prompt for o in answer.evidence} == set(PROMPTS)
