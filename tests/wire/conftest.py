"""Fixtures of the wire tests: dummy keys, short backoff, a dataset folder, and ``aim interpret`` in-process."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
for folder in (HERE, HERE.parent / "agent"):  # loopback, lab; aim_test_fakes (also a plugin module)
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from aim_test_fakes import EXEMPLAR_PROMPTS, draw  # noqa: E402
from loopback import LoopbackServer  # noqa: E402

from aim_agent.agent.record import RunRecord, read_run_record  # noqa: E402

#: dummy keys: each must reach its provider's header and nothing else (no file, no sandbox)
KEYS = {
    "GOOGLE_API_KEY": "wire-google-key-7f3a",
    "OPENAI_API_KEY": "wire-openai-key-91c2",
    "ANTHROPIC_API_KEY": "wire-anthropic-key-5d0e",
}
#: the model each provider is asked for (the scientist; describer and critic use the small one)
MODELS = {
    "google_genai": ("gemini-2.5-flash", "gemini-2.5-flash-lite"),
    "openai": ("gpt-4o", "gpt-4o-mini"),
    "anthropic": ("claude-sonnet-4-6", "claude-haiku-4-5"),
    "ollama": ("qwen2.5vl", "qwen2.5vl"),
}


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Dummy provider keys in the environment, short retry backoff, nothing else of the user's."""
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    for name in ("AIM_SERVER_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE", "ANTHROPIC_BASE_URL",
                 "GOOGLE_GENAI_USE_VERTEXAI", "GEMINI_API_KEY", "OLLAMA_HOST", "AIM_DESCRIBER", "AIM_TEXT2IMAGE",
                 "AIM_EDITOR", "AIM_PLUGINS", "AIM_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIM_RETRY_BASE_S", "0.05")
    monkeypatch.setenv("AIM_RETRY_MAX_S", "2")
    return dict(KEYS)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    for i, prompt in enumerate(EXEMPLAR_PROMPTS):
        draw(prompt).save(folder / f"{i}.png")
    return folder


@dataclass
class Session:
    code: int
    run_dir: Path
    out: str
    err: str

    @property
    def record(self) -> RunRecord:
        return read_run_record(self.run_dir)

    def result(self) -> dict[str, Any]:
        return dict(json.loads((self.run_dir / "result.json").read_text()))


def interpret(tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str], *flags: str,
              run_id: str = "wire", runs: str = "runs") -> Session:
    """``aim interpret`` on the redness unit with fake image providers, in this process."""
    from aim_agent.cli import main

    argv = ["--plugin", "aim_test_fakes", "interpret", "--system", "aim_test_fakes:redness_system",
            "--text2image", "fake", "--editor", "fake", "--runs-dir", str(tmp_path / runs), "--dataset",
            str(dataset), "--k", "4", "--max-rounds", "4", "--run-id", run_id, "--quiet", *flags]
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return Session(code, tmp_path / runs / run_id, out, err)


def backend_flags(server: LoopbackServer, mode: str, *, describer: bool = True, critic: bool = True,
                  stream: bool = False, model: str | None = None, monkeypatch: pytest.MonkeyPatch | None = None,
                  ) -> list[str]:
    """The flags that send the scientist (and a VLM describer and critic) to ``server``.

    With ``monkeypatch``, OpenAI is reached as the hosted API is (no ``--base-url``: the SDK's own
    ``OPENAI_BASE_URL`` points it at the server), so it is priced as OpenAI; otherwise ``--base-url``
    makes it a self-hosted OpenAI-compatible server.
    """
    big, small = MODELS[server.provider]
    flags = ["--backend", f"{server.provider}:{model or big}", "--mode", mode]
    if server.provider == "openai" and monkeypatch is not None:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    else:
        flags += ["--base-url", server.base_url]
    flags += ["--describer", f"{server.provider}:{small}"] if describer else ["--describer", "fake"]
    flags += ["--critic-backend", f"{server.provider}:{small}"] if critic else []
    return [*flags, "--stream"] if stream else flags


def files_text(*folders: Path) -> Iterator[tuple[Path, bytes]]:
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                yield path, path.read_bytes()
