"""Whole ``aim interpret`` sessions through the real LangChain clients, over HTTP, to a scripted VLM.

Each provider's client (langchain-google-genai, -openai, -anthropic, -ollama) is pointed at a loopback
server by ``--base-url`` and drives a session on the redness unit to its conclusion, in code mode and in
tool-calling mode, with a VLM describer and a VLM critic on the same server. The server decodes every
request as the provider documents it (a request it would reject fails the run), so the assertions are on
what really went over the wire and on what AIM made of the replies.
"""

from __future__ import annotations

import json
import re

import pytest
from conftest import KEYS, MODELS, backend_flags, files_text, interpret
from lab import RedLab
from loopback import LoopbackServer, Request

from aim_agent.agent.backends import PRICES_PER_MTOK
from aim_agent.images import image_id

PROVIDERS = ["google_genai", "openai", "anthropic", "ollama"]
KEY_HEADER = {"google_genai": "x-goog-api-key", "openai": "authorization", "anthropic": "authorization"}


def price(model: str) -> tuple[float, float]:
    return PRICES_PER_MTOK[max((k for k in PRICES_PER_MTOK if model.startswith(k)), key=len)]


def check_images_are_labelled(req: Request) -> None:
    """Every image on the wire is a PNG whose pixels hash to the id written just before it."""
    for turn in req.turns:
        for before, part in zip(turn.parts, turn.parts[1:], strict=False):
            if part.kind == "image" and before.kind == "text" and "img_" in before.text:
                assert image_id(part.image) in before.text


def check_common(server: LoopbackServer, lab: RedLab, provider: str, mode: str) -> None:
    assert server.violations == [] and server.unrouted == []
    scientist, describer, critic = lab.of("scientist"), lab.of("describer"), lab.of("critic")
    big, small = MODELS[provider]
    assert {r.model for r in scientist} == {big} and {r.model for r in describer + critic} == {small}
    # the key of each hosted provider went in its header, and only there
    for req in server.requests:
        if provider in KEY_HEADER:
            assert KEYS[{"google_genai": "GOOGLE_API_KEY", "openai": "OPENAI_API_KEY",
                         "anthropic": "ANTHROPIC_API_KEY"}[provider]] in req.headers[KEY_HEADER[provider]]
            assert all(k not in json.dumps(req.body) for k in KEYS.values())
    # the system prompt: MAIA's task, the API generated from the tools, the final answer format, the critic
    system = scientist[0].system
    assert "describe the visual concept(s) that make one unit" in system
    assert "# The critic" in system and "controlled images" in system
    assert "[DESCRIPTION]:" in system and "[LABEL]:" in system
    if mode == "code":
        assert "def run_experiment(system, tools)" in system and "text2image(" in system and "neuron(" in system
        assert scientist[0].tools == []
    else:  # tool schemas, generated from the registry, sent in the provider's format
        names = scientist[0].tool_names()
        assert {"text2image", "neuron", "edit_images", "log_experiment"} <= set(names)
        t2i = next(t for t in scientist[0].tools if t["name"] == "text2image")
        assert "prompts" in t2i["parameters"]["properties"]
        assert "Generate one image per text prompt" in t2i["description"]
    # images: real PNGs, in each request of the scientist, labelled with their true ids
    first = scientist[0]
    assert len(first.images) == 4 and first.last_user_text().count("exemplar img_") == 4
    for req in scientist:
        check_images_are_labelled(req)
        assert len(req.images) <= 12  # the image budget of a request
    # the blind describer: the exemplar overlays and fixed words only
    (describe,) = describer
    assert len(describe.images) == 4
    words = describe.text()
    for secret in ("HYPOTHESIS", "hypothes", "red objects", "redness", "unit", "Describe the visual concept"):
        assert secret not in words
    # the critic model got the evidence, not the images
    assert critic and all(not r.images and "leading_hypothesis" in r.last_user_text() for r in critic)


def check_result(session, lab: RedLab, provider: str) -> None:
    assert session.code == 0, session.err
    record = session.record
    assert record.status == "finished" and record.conclusion is not None
    assert record.conclusion.labels == ["red objects"]
    # the describer named the colours it saw in the decoded PNGs: the exemplars of the redness unit are red
    assert record.exemplars.descriptions[:3] == ["a red square"] * 3
    # the scientist's evidence quotes numbers that only the experiment's results carried back
    red, control = lab.numbers["red"], lab.numbers["control"]
    assert red > 3 * control > 0
    # tokens and cost from each provider's usage fields
    usage = record.usage.totals
    calls = record.usage.calls
    assert usage.calls == len(lab.seen) and usage.total_tokens == sum(sum(r.usage) for r in lab.seen_replies())
    assert record.usage.totals.by_role["describer"]["calls"] == 1
    if provider == "ollama":
        assert usage.cost_usd == 0.0
    else:
        expected = sum((c.input_tokens * price(m)[0] + c.output_tokens * price(m)[1]) / 1e6
                       for c in calls for m in [MODELS[provider][0] if c.role == "agent" else MODELS[provider][1]])
        assert usage.cost_usd == pytest.approx(expected, rel=1e-6) and usage.cost_usd > 0
    assert "[DESCRIPTION]: red objects" in session.out and "[LABEL]: red objects" in session.out


@pytest.mark.parametrize("provider", PROVIDERS)
def test_code_mode_session(provider, keys, dataset, tmp_path, capsys, monkeypatch):
    lab = RedLab()
    with LoopbackServer(provider, lab) as server:
        session = interpret(tmp_path, dataset, capsys, *backend_flags(server, "code", monkeypatch=monkeypatch))
    check_result(session, lab, provider)
    check_common(server, lab, provider, "code")
    scientist = lab.of("scientist")
    # round 1's printed output came back in round 2's request: the sandbox had no key in its environment
    printed = re.search(r"sandbox env: \[(.*?)\]", scientist[1].last_user_text())
    assert printed is not None and all(k not in printed.group(1) for k in KEYS)
    assert "red activations" in scientist[1].last_user_text()
    record = session.record
    assert [r.observation.ok for r in record.rounds] == [True, True] and record.rounds_run == 2
    # no file AIM wrote holds a key
    for path, data in files_text(session.run_dir):
        assert all(k.encode() not in data for k in KEYS.values()), path


@pytest.mark.parametrize("provider", PROVIDERS)
def test_tools_mode_session(provider, keys, dataset, tmp_path, capsys, monkeypatch):
    lab = RedLab()
    with LoopbackServer(provider, lab) as server:
        session = interpret(tmp_path, dataset, capsys, *backend_flags(server, "tools", monkeypatch=monkeypatch))
    check_result(session, lab, provider)
    check_common(server, lab, provider, "tools")
    record = session.record
    (round1,) = record.rounds
    assert round1.observation.ok and len(round1.observation.activations) == 8
    assert [c.tool for c in round1.proposal.tool_calls] == ["text2image"]
    # the follow-up turns carried the calls and their results back, paired the way the provider wants
    scientist = lab.of("scientist")
    followups = [r for r in scientist if r.calls]
    assert [c.name for c in followups[-1].calls] == ["text2image", "neuron"]
    assert len(followups[-1].results) == 2 and '"activations"' in followups[-1].results[-1].text
    if provider == "google_genai":  # Gemini's thought signatures went back with the calls they came with
        assert all(c.extra.get("signature") for c in followups[-1].calls)
    # the eight generated images reached the model after the text2image results, within the image budget
    generated = set(re.findall(r"img_[0-9a-f]{20}", followups[0].results[0].text))
    sent = {image_id(im) for im in followups[0].images}
    assert len(generated) == 8 and generated <= sent and len(followups[0].images) == 12


@pytest.mark.parametrize("provider", ["google_genai", "anthropic"])
def test_streamed_tools_session(provider, keys, dataset, tmp_path, capsys):
    """--stream: Gemini's streamGenerateContent (SSE) and Claude's message events, tool calls included."""
    lab = RedLab()
    with LoopbackServer(provider, lab) as server:
        session = interpret(tmp_path, dataset, capsys, *backend_flags(server, "tools", stream=True))
    assert session.code == 0, session.err
    assert server.violations == [] and all(r.stream for r in server.requests)
    record = session.record
    assert record.conclusion.labels == ["red objects"] and len(record.rounds[0].observation.activations) == 8
    assert record.usage.totals.total_tokens == sum(sum(r.usage) for r in lab.seen_replies())
    assert record.usage.totals.cost_usd is not None and record.usage.totals.cost_usd > 0
