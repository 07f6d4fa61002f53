"""What AIM does with the replies real providers send when things go wrong, over the wire.

Rate limits and server errors are retried with backoff (and the server's ``retry-after``), by AIM
alone (the SDKs' own retries are off, so each try is one request); a rejected key stops at once with
a message naming the variable to check; a malformed tool call goes back to the model as an error it
can correct; a refusal or an empty reply stops the run with a clear error (result.json says why).
"""

from __future__ import annotations

import json
import re
import socket

import pytest
from conftest import backend_flags, interpret
from lab import RedLab
from loopback import LoopbackServer, Reply

PROVIDERS = ["google_genai", "openai", "anthropic", "ollama"]
#: the status each provider uses for "busy, try later", besides 429
BUSY = {"google_genai": 503, "openai": 500, "anthropic": 529, "ollama": 500}
KEY_ENV = {"google_genai": "GOOGLE_API_KEY", "openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


def flags(server: LoopbackServer, mode: str = "code", monkeypatch: pytest.MonkeyPatch | None = None) -> list[str]:
    return backend_flags(server, mode, describer=False, critic=False, monkeypatch=monkeypatch)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_rate_limits_and_server_errors_are_retried_with_backoff(provider, keys, dataset, tmp_path, capsys,
                                                                  monkeypatch):
    lab = RedLab()
    with LoopbackServer(provider, lab) as server:
        server.fail_next(429, "slow down", **{"retry-after": "0.4"})
        server.fail_next(BUSY[provider], "overloaded")
        session = interpret(tmp_path, dataset, capsys, *flags(server, monkeypatch=monkeypatch))
    assert session.code == 0, session.err
    first, second, third = server.requests[:3]
    assert [r.status for r in server.requests[:3]] == [429, BUSY[provider], 200]
    assert first.body == second.body == third.body  # the same request, tried again; no SDK retried on its own
    assert second.at - first.at >= 0.4  # the server's retry-after was honoured
    assert third.at - second.at >= 0.05 * 2  # then exponential backoff (AIM_RETRY_BASE_S=0.05, second try)
    record = session.record
    assert record.status == "finished"
    calls = record.usage.calls
    assert calls[0].attempts == 3 and calls[0].role == "agent"
    assert all(c.attempts == 1 for c in calls[1:])
    assert len(server.requests) == len(calls) + 2  # every other call went through at once


@pytest.mark.parametrize("provider", ["google_genai", "openai", "anthropic"])
def test_a_rejected_key_stops_at_once_and_says_which_variable(provider, keys, dataset, tmp_path, capsys,
                                                              monkeypatch):
    with LoopbackServer(provider, RedLab()) as server:
        server.fail_next(401, "invalid api key")
        session = interpret(tmp_path, dataset, capsys, *flags(server, monkeypatch=monkeypatch))
    assert len(server.requests) == 1  # not retried
    assert session.code == 2 and f"check {KEY_ENV[provider]}" in session.err and "HTTP 401" in session.err
    record = session.record
    assert record.status == "failed" and "ModelCallError" in record.error and KEY_ENV[provider] in record.error
    assert keys[KEY_ENV[provider]] not in session.err + record.error  # the message names the variable, not the key


def test_retries_are_bounded_and_then_say_so(keys, dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AIM_RETRY_ATTEMPTS", "3")
    with LoopbackServer("anthropic", RedLab()) as server:
        for _ in range(5):
            server.fail_next(529, "overloaded")
        session = interpret(tmp_path, dataset, capsys, *flags(server))
    assert len(server.requests) == 3
    assert session.code == 2 and "still failing after 3 tries" in session.err and "HTTP 529" in session.err
    assert session.record.status == "failed"


def test_an_unreachable_server_is_named(keys, dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AIM_RETRY_ATTEMPTS", "2")
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    session = interpret(tmp_path, dataset, capsys, "--backend", "openai:qwen2.5-vl", "--base-url", url,
                        "--describer", "fake")
    assert session.code == 2 and f"cannot reach {url} after 2 tries" in session.err


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_malformed_tool_call_goes_back_to_the_model_as_an_error(provider, keys, dataset, tmp_path, capsys,
                                                                   monkeypatch):
    # OpenAI sends arguments as JSON text, which can be broken; the others send objects, which can miss fields
    lab = RedLab(malformed="json" if provider == "openai" else "schema")
    with LoopbackServer(provider, lab) as server:
        session = interpret(tmp_path, dataset, capsys, *flags(server, "tools", monkeypatch=monkeypatch))
    assert session.code == 0, session.err
    followup = next(r for r in lab.of("scientist") if r.results)
    (error,) = followup.results  # the broken call, answered under its own id with what was wrong
    assert error.name == "text2image" and error.text.startswith("ERROR:")
    if provider == "openai":
        assert "could not be read" in error.text and '{"prompts": ["a red ball on grass", ' in error.text
    else:
        assert "prompts" in error.text and "required" in error.text.lower()
    # the model called again, correctly, and the round went on to measure the unit
    record = session.record
    (round1,) = record.rounds
    steps = re.findall(r"^\[(\d+)\] (\w+)\(.*?\) -> (ERROR|\{)", round1.observation.text, re.M)
    assert steps == [("0", "text2image", "ERROR"), ("1", "text2image", "{"), ("2", "neuron", "{")]
    assert len(round1.observation.activations) == 8 and record.status == "finished"


REFUSALS = {
    "openai": Reply(refusal="I can't help with that request."),
    "anthropic": Reply(text="I won't", finish="refusal"),
    "google_genai": Reply(finish="safety"),
    "ollama": Reply(text=""),
}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_refusal_or_an_empty_reply_stops_the_run_with_a_clear_error(provider, keys, dataset, tmp_path, capsys,
                                                                      monkeypatch):
    lab = RedLab(overrides=[(lambda req: True, REFUSALS[provider])])
    with LoopbackServer(provider, lab) as server:
        session = interpret(tmp_path, dataset, capsys, *flags(server, monkeypatch=monkeypatch))
    assert len(server.requests) == 1  # a refusal is not retried
    expected = "returned an empty reply" if provider == "ollama" else "refused to answer"
    assert session.code == 2 and f"the agent model ({provider}:" in session.err and expected in session.err
    if provider == "openai":
        assert "I can't help with that request." in session.err
    if provider == "google_genai":
        assert "SAFETY" in session.err
    record = session.record
    assert record.status == "failed" and "ModelReplyError" in record.error and record.conclusion is None


def test_a_reply_cut_by_the_token_limit_says_to_raise_it(keys, dataset, tmp_path, capsys):
    # a thinking model that spent its whole output budget on reasoning: no text, finish reason MAX_TOKENS
    lab = RedLab(overrides=[(lambda req: True, Reply(finish="length", thoughts=8192, usage=(900, 0)))])
    with LoopbackServer("google_genai", lab) as server:
        session = interpret(tmp_path, dataset, capsys, *flags(server))
    assert session.code == 2 and "output-token limit (finish reason MAX_TOKENS)" in session.err


def test_describer_and_critic_failures_become_notes(keys, dataset, tmp_path, capsys,
                                                                         monkeypatch):
    """The describer and the critic's reviewer are optional: their refusals become notes, the run goes on."""
    lab = RedLab(overrides=[(lambda req: "in the bright outlined region" in req.text(), Reply(refusal="no")),
                            (lambda req: "leading_hypothesis" in req.text(), Reply(finish="safety"))])
    with LoopbackServer("openai", lab) as server:
        session = interpret(tmp_path, dataset, capsys,
                            *backend_flags(server, "code", monkeypatch=monkeypatch))
    assert session.code == 0, session.err
    record = session.record
    assert record.status == "finished" and record.exemplars.descriptions == []
    assert any("describer failed: ModelReplyError" in n and "refused to answer (no)" in n for n in record.notes)
    comments = [c.checks.get("comment", "") for r in record.rounds for c in r.critic]
    assert "(critic model unavailable: ModelReplyError)" in comments
    assert json.loads((session.run_dir / "result.json").read_text())["conclusion"]["labels"] == ["red objects"]
