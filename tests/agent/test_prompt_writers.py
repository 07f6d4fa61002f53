"""MAIA's Prompt Generator and Prompt Selector on a chat model (``aim eval predictive --prompt-backend``), with
scripted fake chat models: reading replies, asking once more, fresh conversations, and the whole evaluation."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aim_test_fakes import fake_chat
from langchain_core.messages import BaseMessage

from aim_agent.agent.backends import UsageMeter
from aim_agent.cli import main
from aim_agent.eval.prompt_writers import (
    ChatPromptWriter,
    PromptReplyError,
    parse_generated,
    parse_selected,
)

GENERATED = """Here you go.
[POSITIVE]
1. a red ball on grass
2. "a red apple on a beach"
3. a red ball on grass
[NEUTRAL]
1) a blue car on a road
- a green tree in a forest
"""


def _text(messages: list[BaseMessage]) -> str:
    return "\n".join(str(m.content) for m in messages)


def test_a_generator_reply_is_read_as_two_lists_each_prompt_once() -> None:
    prompts = parse_generated(GENERATED, 7)
    assert prompts.positive == ["a red ball on grass", "a red apple on a beach"]
    assert prompts.neutral == ["a blue car on a road", "a green tree in a forest"]
    assert parse_generated(GENERATED, 1).positive == ["a red ball on grass"]
    with pytest.raises(PromptReplyError, match="no NEUTRAL prompts"):
        parse_generated("[POSITIVE]\n1. a red ball", 7)


def test_a_selector_reply_is_read_as_pool_prompts() -> None:
    pool = ["p1", "p2", "p3", "p4", "p5"]
    picked = parse_selected("[MOST]: 2, 2, 9, 4\n[LEAST]: 4, 1, 0, 5", pool, 7)
    # out of range and repeated numbers are dropped; a number on both lines counts as MOST
    assert picked.positive == ["p2", "p4"] and picked.neutral == ["p1", "p5"]
    assert parse_selected("[MOST]: 1, 2, 3\n[LEAST]: 4, 5", pool, 2).positive == ["p1", "p2"]
    with pytest.raises(PromptReplyError, match=r"no \[LEAST\] prompt numbers between 1 and 5"):
        parse_selected("[MOST]: 1, 2", pool, 7)


def test_an_unreadable_reply_is_asked_for_once_more_then_fails_with_the_reply(chats: dict[str, Any]) -> None:
    chats["gpt-4o"] = vlm = fake_chat(["I would rather not.", GENERATED, "still no lists", "nor now"])
    meter = UsageMeter()
    writer = ChatPromptWriter.from_backend("openai:gpt-4o", meter)
    assert writer.generate("red things").positive == ["a red ball on grass", "a red apple on a beach"]
    retry = vlm.received[1]
    assert "could not be read: no POSITIVE and no NEUTRAL prompts" in _text(retry[-1:])
    assert "I would rather not." in _text(retry)  # the retry shows the model its own reply
    with pytest.raises(PromptReplyError, match=r"openai:gpt-4o: .*its reply began 'nor now'"):
        writer.generate("round things")
    # every request is a fresh conversation: the second label's request holds nothing of the first
    assert "red things" not in _text(vlm.received[2]) and "round things" in _text(vlm.received[2])
    assert len(meter.calls) == 4 and {c.role for c in meter.calls} == {"prompt-writer"}


def _world_generator(messages: list[BaseMessage]) -> str:
    label = re.search(r'described as: "([^"]+)"', _text(messages))
    assert label is not None
    return (f"[POSITIVE]\n1. a {label.group(1).split()[0]} on grass\n2. a red ball on a beach\n"
            "[NEUTRAL]\n1. a blue car on a road\n2. a green tree in a forest")


def _world_selector(messages: list[BaseMessage]) -> str:
    n = len(re.findall(r"^\d+\. ", _text(messages[-1:]), re.M))
    return f"[MOST]: 1, 2\n[LEAST]: {n}, {n - 1}"


def test_eval_predictive_with_a_chat_model_as_generator_and_selector(
        chats: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The offline scientist labels the unit; the generator and selector are a (fake) chat model: each method's
    label gets its prompts and picks from it, the pool holds them all, and its usage is reported."""
    from aim_world.datasets import write_dataset

    def reply(messages: list[BaseMessage]) -> str:
        return (_world_selector if "[MOST]" in _text(messages) else _world_generator)(messages)

    chats["gpt-4o"] = vlm = fake_chat([reply] * 8)
    world = write_dataset(tmp_path / "world-40", 40, seed=5, size=64)
    assert main(["eval", "predictive", "--layer", "conv5", "--units", "3", "--max-rounds", "1", "--dataset",
                 str(world), "--prompt-backend", "openai:gpt-4o", "--out", str(tmp_path / "pred")]) == 0
    out = capsys.readouterr().out
    assert "prompt generator and selector `openai:gpt-4o`" in out and "Prompt generator and selector: " in out
    data = json.loads((tmp_path / "pred" / "result.json").read_text())
    assert data["prompt_writer"] == "openai:gpt-4o" and data["prompt_writer_usage"]["calls"] == len(vlm.received)
    (unit,) = data["units"]
    assert "aim" in unit["methods"] and not unit["errors"]
    assert len(vlm.received) == 2 * len(unit["methods"])  # one generator and one selector request per label
    for m in unit["methods"].values():
        assert m["positive"] == list(unit["pool"])[:2]  # the selector's [MOST]: 1, 2 of the pool
        assert m["neutral"] == list(unit["pool"])[::-1][:2]
    assert "a red ball on a beach" in unit["pool"] and "a blue car on a road" in unit["pool"]
