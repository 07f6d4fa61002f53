"""Backends: which model is built, retries with backoff, token and cost accounting, reply parsing."""

from __future__ import annotations

from typing import Any

import pytest
from aim_test_fakes import draw, fake_chat
from langchain_core.messages import AIMessage

from aim_agent.agent import backends
from aim_agent.agent.backends import (
    BackendError,
    BackendSpec,
    ChatClient,
    ModelCallError,
    RetryPolicy,
    UsageMeter,
    call_with_retries,
    estimate_cost,
    is_transient,
    make_chat_model,
    summarize_usage,
)
from aim_agent.agent.llm_scientist import LLMScientist, ViewRenderer, parse_conclusion, parse_proposal
from aim_agent.agent.schema import Hypothesis, Observation, ScientistView
from aim_agent.agent.vlm_describer import VLMDescriber
from aim_agent.images import image_id


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def fake_init(model: str, **kwargs: Any) -> str:
        calls.append({"model": model, **kwargs})
        return "chat-model"

    monkeypatch.setattr(backends, "init_chat_model", fake_init)
    return calls


def test_google_genai_is_the_default_when_its_key_is_set(captured):
    spec = BackendSpec.parse(None, env={"GOOGLE_API_KEY": "k"})
    assert spec.provider == "google_genai" and spec.model_name == "gemini-2.5-flash"
    assert make_chat_model(spec, env={"GOOGLE_API_KEY": "k"}) == "chat-model"
    assert captured[-1]["model_provider"] == "google_genai"
    assert captured[-1]["model"] == "gemini-2.5-flash"
    assert captured[-1]["max_retries"] == 1  # one try: google-genai reads 0 as "5 retries"; ChatClient retries


def test_no_key_and_no_backend_means_offline(captured):
    assert BackendSpec.parse(None, env={}).offline
    assert BackendSpec.parse("", env={"OPENAI_API_KEY": "x"}).offline
    with pytest.raises(BackendError, match="offline"):
        make_chat_model(BackendSpec(provider="offline"))
    assert captured == []


def test_named_backends_and_openai_compatible_servers(captured):
    make_chat_model(BackendSpec.parse("anthropic:claude-sonnet-4-5"), env={"ANTHROPIC_API_KEY": "a"})
    assert captured[-1]["model_provider"] == "anthropic" and captured[-1]["model"] == "claude-sonnet-4-5"
    make_chat_model(BackendSpec.parse("ollama:llava"), env={})
    assert captured[-1]["model_provider"] == "ollama" and "max_retries" not in captured[-1]
    vllm = BackendSpec.parse("vllm:Qwen/Qwen2.5-VL-7B-Instruct", base_url="http://gpu:8000/v1")
    make_chat_model(vllm, env={})
    assert captured[-1]["model_provider"] == "openai"
    assert captured[-1]["base_url"] == "http://gpu:8000/v1" and captured[-1]["api_key"] == "EMPTY"
    with pytest.raises(BackendError, match="OPENAI_API_KEY"):
        make_chat_model(BackendSpec.parse("openai:gpt-4o"), env={})
    with pytest.raises(BackendError, match="unknown backend"):
        make_chat_model(BackendSpec(provider="nonesuch"), env={})


class StatusError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status_code = status


class RateLimitError(Exception):
    """Named like the SDKs' class; no status attribute."""


def test_transient_errors_are_classified_by_status_and_type():
    assert is_transient(StatusError(429)) and is_transient(StatusError(503))
    assert not is_transient(StatusError(401)) and not is_transient(StatusError(400))
    assert is_transient(RateLimitError("slow down")) and is_transient(TimeoutError())
    assert not is_transient(ValueError("bad"))
    wrapped = RuntimeError("wrapper")
    wrapped.__cause__ = StatusError(500)
    assert is_transient(wrapped)


class Flaky:
    """A chat model that fails twice with a rate limit, then answers."""

    def __init__(self, error: Exception) -> None:
        self.calls = 0
        self.error = error

    def invoke(self, messages: Any) -> AIMessage:
        self.calls += 1
        if self.calls <= 2:
            raise self.error
        return AIMessage(content="ok", usage_metadata={"input_tokens": 1000, "output_tokens": 200,
                                                       "total_tokens": 1200})


def test_retries_with_exponential_backoff_then_counts_tokens_and_cost():
    sleeps: list[float] = []
    meter = UsageMeter()
    model = Flaky(StatusError(429))
    client = ChatClient(model, BackendSpec(provider="openai", model="gpt-4o-mini"), meter=meter,
                        retry=RetryPolicy(attempts=4, base_delay_s=1.0), sleep=sleeps.append)
    reply = client.invoke([])
    assert reply.content == "ok" and model.calls == 3
    assert len(sleeps) == 2 and 1.0 <= sleeps[0] <= 1.25 and 2.0 <= sleeps[1] <= 2.5
    (usage,) = meter.calls
    assert usage.attempts == 3 and usage.input_tokens == 1000 and usage.output_tokens == 200
    assert usage.cost_usd == pytest.approx((1000 * 0.15 + 200 * 0.60) / 1e6)


def test_fatal_errors_are_not_retried_and_attempts_are_bounded():
    sleeps: list[float] = []
    model = Flaky(StatusError(401))
    with pytest.raises(ModelCallError, match="check OPENAI_API_KEY") as failed:  # what to do, the SDK error as cause
        ChatClient(model, BackendSpec(provider="openai"), sleep=sleeps.append).invoke([])
    assert isinstance(failed.value.__cause__, StatusError)
    assert model.calls == 1 and sleeps == []
    always = Flaky(StatusError(503))
    always.calls = -100
    with pytest.raises(StatusError):
        call_with_retries(lambda: always.invoke([]), RetryPolicy(attempts=3, base_delay_s=0), sleep=sleeps.append)
    assert always.calls == -97


def test_cost_of_unknown_models_is_null_with_a_note():
    assert estimate_cost("openai", "my-finetune", 10, 10) == (None, "no price known for model 'my-finetune'")
    assert estimate_cost("ollama", "llava", 10, 10)[0] == 0.0
    cost, note = estimate_cost("openai", "qwen", 10, 10, base_url="http://x")
    assert cost is None and "self-hosted" in note
    meter = UsageMeter()
    ChatClient(Flaky(StatusError(429)), BackendSpec(provider="openai", model="mystery"), meter=meter,
               sleep=lambda s: None).invoke([])
    ChatClient(Flaky(StatusError(429)), BackendSpec(provider="openai", model="gpt-4o"), meter=meter,
               sleep=lambda s: None).invoke([])
    total = summarize_usage(meter.calls)
    assert total.total_tokens == 2400 and total.cost_usd is None and "mystery" in total.cost_note
    assert total.cost_known_usd == pytest.approx((1000 * 2.5 + 200 * 10) / 1e6)


# --------------------------------------------------------------------------- parsing replies


REPLY = """[THOUGHTS]: The exemplars are all red objects; test colour against shape.
[HYPOTHESIS h1] (concepts: red | kind: single | confidence: 0.7 | status: open) red objects
[HYPOTHESIS h2] (concepts: ball, car | kind: or | confidence: 30%) balls or cars
[CODE]:
```python
def run_experiment(system, tools):
    images = tools.text2image(["a red ball"])
    return system.neuron(images)[0]
```
"""


def test_proposal_parsing_reads_hypotheses_and_code():
    proposal = parse_proposal(AIMessage(content=REPLY), "code")
    assert proposal.thoughts.startswith("The exemplars are all red")
    h1, h2 = proposal.hypotheses
    assert (h1.id, h1.concepts, h1.kind, h1.confidence) == ("h1", ["red"], "single", 0.7)
    assert (h2.concepts, h2.kind, h2.confidence) == (["ball", "car"], "or", 0.3)
    assert proposal.code.startswith("def run_experiment(system, tools):")
    assert not proposal.ready_to_conclude
    assert parse_proposal(REPLY + "\n[CONCLUDE]\n", "code").ready_to_conclude


def test_conclusion_parsing_reads_maia_format():
    text = ("[DESCRIPTION]: Red objects on any background.\n[LABEL 1]: red objects\n[LABEL 2]: red balls\n"
            "[EVIDENCE]:\n- red 0.74 vs control 0.14\n- 5 backgrounds\n[CONFIDENCE]: 0.85")
    c = parse_conclusion(text)
    assert c.description == "Red objects on any background."
    assert c.labels == ["red objects", "red balls"]
    assert c.evidence == ["red 0.74 vs control 0.14", "5 backgrounds"]
    assert c.confidence == 0.85
    assert c.maia_text().startswith("[DESCRIPTION]: Red objects")


def _view(n_obs: int) -> ScientistView:
    ex = [image_id(draw(f"a red ball on grass {i}")) for i in range(6)]
    observations = [
        Observation(round=r, ok=True, text=f"experiment {r} text", activations=[0.1 * r],
                    prompts=[f"prompt {r}"], image_ids=[image_id(draw(f"a red car {r} {j}")) for j in range(4)])
        for r in range(1, n_obs + 1)
    ]
    return ScientistView(task="TASK-TEXT", unit="unit 0", exemplar_image_ids=ex, exemplar_activations=[1.0] * 6,
                         exemplar_descriptions=["red"] * 6, observations=observations, round=n_obs + 1,
                         hypotheses=[Hypothesis(id="h1", statement="red", concepts=["red"])], api_text="API")


def test_context_is_bounded_images_capped_and_old_rounds_summarised():
    renderer = ViewRenderer(lambda iid: draw("x"), max_images=7, recent=2)
    blocks = renderer.render(_view(6))
    images = [b for b in blocks if b["type"] == "image_url"]
    text = "\n".join(b["text"] for b in blocks if b["type"] == "text")
    assert len(images) == 7
    assert "# Earlier rounds (summary" in text and "round 1: ok" in text and "round 4: ok" in text
    assert "experiment 6 text" in text and "experiment 5 text" in text
    assert "# Round 4 results" not in text  # older rounds only as one-line summaries
    assert "round 6 image" in text  # the newest round's images come first


def test_llm_scientist_sends_images_and_the_generated_api():
    chat = fake_chat([REPLY])
    scientist = LLMScientist(ChatClient(chat, BackendSpec(provider="openai", model="gpt-4o")),
                             resolver=lambda iid: draw("y"), max_images=3)
    proposal = scientist.propose(_view(1))
    assert proposal.code and proposal.hypotheses
    system, human = chat.received[0]
    assert "API" in system.content and "[HYPOTHESIS h1]" in system.content
    assert sum(1 for b in human.content if b["type"] == "image_url") == 3


def test_vlm_describer_is_blind_and_parses_numbered_lines():
    chat = fake_chat(["1: a red ball\n2: a red car", "1: a red apple"])
    describer = VLMDescriber(ChatClient(chat, BackendSpec(provider="openai", model="gpt-4o")), batch_size=2)
    images = [draw(f"a red thing {i}") for i in range(3)]
    assert describer.describe(images) == ["a red ball", "a red car", "a red apple"]
    for messages in chat.received:
        text = " ".join(b["text"] if isinstance(b, dict) and b.get("type") == "text" else
                        (b if isinstance(b, str) else "") for m in messages
                        for b in (m.content if isinstance(m.content, list) else [m.content]))
        assert "bright" in text and "hypothes" not in text.lower() and "unit" not in text.lower()
