"""What the models read, as it went over the wire: the scientist's prompts within the image budget
(older rounds summarised), and a describer that never sees a hypothesis, even when the scientist
calls it as a tool."""

from __future__ import annotations

import json
import re

from conftest import backend_flags, interpret
from lab import FINAL_MARK, RedLab
from loopback import LoopbackServer

from aim_agent.images import image_id

SECRETS = ("HYPOTHESIS", "hypothes", "red objects", "the unit fires", "redness", "unit", "[THOUGHTS]",
           "Describe the visual concept")


def test_a_long_session_keeps_each_request_within_the_image_budget(keys, dataset, tmp_path, capsys, monkeypatch):
    lab = RedLab(patient=True)
    with LoopbackServer("google_genai", lab) as server:
        session = interpret(tmp_path, dataset, capsys, *backend_flags(server, "code", critic=False),
                            "--max-rounds", "5")
    assert session.code == 0, session.err
    record = session.record
    assert record.rounds_run == 5 and record.forced.startswith("round cap")
    scientist = lab.of("scientist")
    assert len(scientist) == 6  # five experiments, then the forced final answer
    for req in scientist:
        assert len(req.images) <= 12  # RunConfig.max_prompt_images
        for turn in req.turns:  # each image sent is named by its true id just before it
            for before, part in zip(turn.parts, turn.parts[1:], strict=False):
                if part.kind == "image":
                    assert image_id(part.image) in before.text
    last = scientist[4].last_user_text()  # round 5's request: four rounds done, the oldest summarised
    assert "# Earlier rounds (summary; details were shown at the time)" in last
    summary = re.search(r"^round 1: ok; 8 activations, max [\d.]+ \('[^']*'\), min .*; 8 images \(no longer shown\)",
                        last, re.M)
    assert summary is not None
    assert "# Round 1 results" not in last and all(f"# Round {n} results" in last for n in (2, 3, 4))
    assert "not shown, to keep the request within the image budget" in last
    final = scientist[5].last_user_text()
    assert FINAL_MARK in final and "the budget is spent: no more experiments" in final
    assert record.conclusion.forced and record.conclusion.labels == ["red objects"]


def test_the_describer_never_reads_a_hypothesis_even_as_a_tool(keys, dataset, tmp_path, capsys, monkeypatch):
    lab = RedLab(ask_describer=True)
    with LoopbackServer("anthropic", lab) as server:
        session = interpret(tmp_path, dataset, capsys, *backend_flags(server, "tools", critic=False))
    assert session.code == 0, session.err
    exemplars, overlays = lab.of("describer")  # the exemplars, then the scientist's describe_images call
    assert len(exemplars.images) == 4 and len(overlays.images) == 3
    assert "[HYPOTHESIS h1]" in lab.of("scientist")[1].text()  # the hypotheses existed when it was called
    for req in (exemplars, overlays):
        words = req.text()
        assert not req.tools and all(secret not in words for secret in SECRETS)
        assert "bright" in words and "outlined in yellow" in words
    # the descriptions came back to the scientist as the tool's result
    followup = next(r for r in lab.of("scientist") if any(p.name == "describe_images" for p in r.results))
    result = next(p for p in followup.results if p.name == "describe_images")
    assert [d.endswith(" square") for d in json.loads(result.text)["descriptions"]] == [True] * 3
