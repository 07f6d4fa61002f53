"""``aim interpret --record DIR`` and ``--replay DIR`` over the wire.

A session recorded against a scripted provider is replayed with the server gone and no key in the
environment: the replay sends every request again (checked against the recording, images by hash) and
writes the same result.json (timestamps and durations aside). A replay whose requests differ from the
recording stops with an error that names the exchange and the first difference.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import KEYS, backend_flags, files_text, interpret
from lab import RedLab
from loopback import LoopbackServer

from aim_agent.agent.tape import transcript
from aim_agent.cli import main

VOLATILE = {"finished_at", "wall_time_s", "node_seconds", "seconds"}  # when the run ended, how long things took


def stable(data: Any) -> Any:
    """result.json without what depends on the clock."""
    if isinstance(data, dict):
        return {k: stable(v) for k, v in data.items() if k not in VOLATILE}
    if isinstance(data, list):
        return [stable(v) for v in data]
    return data


def replay(tape: Path, runs: Path, capsys: pytest.CaptureFixture[str], *more: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["--plugin", "aim_test_fakes", "interpret", "--replay", str(tape), "--runs-dir", str(runs),
                 "--quiet", *more])
    return code, capsys.readouterr().err


def record_session(provider: str, mode: str, tmp_path: Path, dataset: Path, capsys: Any, monkeypatch: Any,
                   ) -> tuple[Any, Path]:
    tape = tmp_path / "tape"
    lab = RedLab()
    with LoopbackServer(provider, lab) as server:
        session = interpret(tmp_path, dataset, capsys, *backend_flags(server, mode, monkeypatch=monkeypatch),
                            "--record", str(tape))
    assert session.code == 0, session.err
    for name in (*KEYS, "OPENAI_BASE_URL"):  # the replay needs no key and no server
        monkeypatch.delenv(name, raising=False)
    return session, tape


@pytest.mark.parametrize(("provider", "mode"), [("google_genai", "tools"), ("anthropic", "code"),
                                                ("openai", "tools"), ("ollama", "code")])
def test_a_replayed_session_writes_the_recorded_result(provider, mode, keys, dataset, tmp_path, capsys,
                                                        monkeypatch):
    session, tape = record_session(provider, mode, tmp_path, dataset, capsys, monkeypatch)
    code, err = replay(tape, tmp_path / "replayed", capsys)
    assert code == 0, err
    recorded = session.result()
    replayed = json.loads((tmp_path / "replayed" / "wire" / "result.json").read_text())
    recorded["config"]["runs_dir"] = replayed["config"]["runs_dir"]  # the one setting the replay changed
    assert stable(replayed) == stable(recorded)
    assert replayed["conclusion"]["labels"] == ["red objects"] and replayed["usage"]["totals"]["total_tokens"] > 0


def test_the_recording_holds_messages_images_replies_and_usage_but_no_key(keys, dataset, tmp_path, capsys,
                                                                           monkeypatch):
    session, tape = record_session("openai", "tools", tmp_path, dataset, capsys, monkeypatch)
    meta = json.loads((tape / "tape.json").read_text())
    assert meta["format"] == "aim-tape/1" and meta["config"]["run_id"] == "wire"
    exchanges = [json.loads(line) for line in (tape / "exchanges.jsonl").read_text().splitlines()]
    usage = session.record.usage.calls
    assert [e["role"] for e in exchanges] == [c.role for c in usage]
    assert [e["usage"]["input_tokens"] for e in exchanges] == [c.input_tokens for c in usage]
    assert [e["seq"] for e in exchanges] == list(range(len(exchanges)))
    first = next(e for e in exchanges if e["role"] == "agent")
    assert first["backend"] == "openai:gpt-4o" and "text2image" in first["tools"] and first["tools_sha256"]
    system, human = first["request"]
    assert system["type"] == "system" and "# The critic" in system["content"]
    images = [b for b in human["content"] if b["type"] == "image"]
    assert len(images) == 4
    for block in images:  # each image once, as a PNG file named by its hash
        data = (tape / block["file"]).read_bytes()
        assert data.startswith(b"\x89PNG") and hashlib.sha256(data).hexdigest() == block["sha256"]
    assert "base64" not in (tape / "exchanges.jsonl").read_text()
    calls = [e for e in exchanges if e["reply"] and e["reply"]["tool_calls"]]
    assert calls[0]["reply"]["tool_calls"][0]["name"] == "text2image"
    assert calls[0]["reply"]["usage_metadata"]["input_tokens"] == 1200
    for path, data in files_text(tape):
        assert all(k.encode() not in data for k in KEYS.values()), path
    # a person reads it as Markdown: every exchange, its images as links to the files
    text = transcript(tape)
    assert all(f"## {e['seq']}. {e['role']} ({e['backend']})" in text for e in exchanges)
    links = re.findall(r"!\[image\]\((images/[0-9a-f]{64}\.png)\)", text)
    assert links and all((tape / link).exists() for link in links)
    assert "- call `text2image(" in text and "[DESCRIPTION]: red objects" in text


def test_a_replay_that_asks_something_else_stops_and_names_the_difference(keys, dataset, tmp_path, capsys,
                                                                           monkeypatch):
    _, tape = record_session("anthropic", "code", tmp_path, dataset, capsys, monkeypatch)
    path = tape / "exchanges.jsonl"
    exchanges = [json.loads(line) for line in path.read_text().splitlines()]
    # the model's first experiment, as recorded, now measures one red image fewer: what the replay
    # sends next (the experiment's printed output) is no longer what was recorded
    first = next(e for e in exchanges if e["role"] == "agent")
    first["reply"]["content"] = first["reply"]["content"].replace("'a red ball on grass', ", "")
    path.write_text("".join(json.dumps(e) + "\n" for e in exchanges))
    code, err = replay(tape, tmp_path / "replayed", capsys)
    after = exchanges[first["seq"] + 1]  # the critic's reviewer reads the counts of the first experiment
    assert code == 2 and f"replay diverged at exchange {after['seq']} ({after['role']})" in err
    assert "request[1].content" in err and "recorded" in err and "now" in err
    record = json.loads((tmp_path / "replayed" / "wire" / "result.json").read_text())
    assert record["status"] == "failed" and "ReplayDivergence" in record["error"]


def test_record_and_replay_refuse_what_they_cannot_do(keys, dataset, tmp_path, capsys, monkeypatch):
    code, err = replay(tmp_path / "nothing", tmp_path / "runs", capsys)
    assert code == 2 and "no recording at" in err and "--record DIR" in err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    session = interpret(tmp_path, dataset, capsys, "--describer", "fake", "--record", str(tmp_path / "full"))
    assert session.code == 2 and "is not empty" in session.err
