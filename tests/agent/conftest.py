"""Fixtures shared by the agent tests."""

from __future__ import annotations

from typing import Any

import pytest

from aim_agent.agent import backends


@pytest.fixture
def chats(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """init_chat_model returns the fake registered for the model name (no network, no keys used): a test sets
    ``chats["gpt-4o"] = fake_chat([...])`` and any ``openai:gpt-4o`` client gets it."""
    fakes: dict[str, Any] = {}
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")

    def fake_init(model: str, **kwargs: Any) -> Any:
        return fakes[model]

    monkeypatch.setattr(backends, "init_chat_model", fake_init)
    return fakes
