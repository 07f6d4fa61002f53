"""OpenAI-compatible servers (vLLM, llama.cpp's server, LM Studio) reached by ``--base-url``.

They speak OpenAI's chat completions; AIM reaches them with langchain-openai, streamed or not. The
server of the user's choosing never gets the OpenAI key (only ``AIM_SERVER_API_KEY``, or a
placeholder), is always asked for chat completions (never OpenAI's Responses API), reports token use
in the last chunk of a stream when asked (AIM asks), and has no known price.
"""

from __future__ import annotations

import pytest
from conftest import KEYS, interpret
from lab import RedLab
from loopback import LoopbackServer

SERVERS = {  # how each is typically run, and the model name it serves
    "vllm": ("Qwen/Qwen2.5-VL-7B-Instruct", True),
    "llama.cpp": ("gemma-3-4b-it-Q4_K_M.gguf", False),
    "lm-studio": ("qwen2.5-vl-7b-instruct", True),
}


@pytest.mark.parametrize("mode", ["code", "tools"])
@pytest.mark.parametrize("server_name", sorted(SERVERS))
def test_openai_compatible_server_session(server_name, mode, keys, dataset, tmp_path, capsys, monkeypatch):
    model, stream = SERVERS[server_name]
    if server_name == "vllm":  # vllm serve --api-key ...: the key AIM sends comes from AIM_SERVER_API_KEY
        monkeypatch.setenv("AIM_SERVER_API_KEY", "wire-vllm-key-33aa")
    lab = RedLab()
    with LoopbackServer("openai", lab) as server:
        flags = ["--backend", f"openai:{model}", "--base-url", server.base_url, "--mode", mode,
                 "--describer", f"openai:{model}", "--critic-backend", f"openai:{model}"]
        session = interpret(tmp_path, dataset, capsys, *flags, *(["--stream"] if stream else []))
    assert session.code == 0, session.err
    assert server.violations == [] and len(server.requests) == len(lab.seen)
    expected_key = "wire-vllm-key-33aa" if server_name == "vllm" else "EMPTY"
    for req in server.requests:
        assert req.path == "/v1/chat/completions" and req.model == model
        assert req.headers["authorization"] == f"Bearer {expected_key}"  # never OPENAI_API_KEY
        assert req.stream is stream
        if stream:
            assert req.body["stream_options"] == {"include_usage": True}
    assert KEYS["OPENAI_API_KEY"] not in str([r.headers for r in server.requests])
    record = session.record
    assert record.status == "finished" and record.conclusion.labels == ["red objects"]
    assert lab.of("describer") and lab.of("critic")  # the describer and critic reached the same server
    # token use counted from the (last chunk of the) stream, or the reply; no price for a self-hosted model
    totals = record.usage.totals
    assert totals.total_tokens == sum(sum(r.usage) for r in lab.seen_replies()) > 0
    assert totals.cost_usd is None and f"self-hosted server {server.base_url}" in totals.cost_note
    assert record.backends.scientist == f"llm:openai:{model} at {server.base_url}"
    if mode == "tools":  # tool calls arrived in pieces in the stream and were put back together
        (round1,) = record.rounds
        assert len(round1.observation.activations) == 8


def test_a_streamed_refusal_is_still_a_clear_error(keys, dataset, tmp_path, capsys):
    from loopback import Reply

    lab = RedLab(overrides=[(lambda req: True, Reply(text="", finish="length", usage=(500, 4096)))])
    with LoopbackServer("openai", lab) as server:
        session = interpret(tmp_path, dataset, capsys, "--backend", "openai:qwen2.5-vl", "--base-url",
                            server.base_url, "--stream", "--describer", "fake")
    assert session.code == 2 and "output-token limit (finish reason length)" in session.err
