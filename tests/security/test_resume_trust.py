"""``--resume`` trusts nothing in run.json or the checkpoint that a command line would have to trust (issue 25).

Main imported ``config.system_factory`` and ``config.plugins`` from a tampered run.json (their
top-level code ran as the agent), and tampered checkpoint rows ended in raw tracebacks.
"""

from __future__ import annotations

import json
import pickle
import sqlite3
import sys
from pathlib import Path

import pytest
from attacks import Payload, write_factory_module

from aim_agent.agent.runner import RunFilesError, run_interpret
from aim_agent.models import UntrustedModel, trusting

AGENT_TESTS = Path(__file__).resolve().parent.parent / "agent"
if str(AGENT_TESTS) not in sys.path:
    sys.path.insert(0, str(AGENT_TESTS))


def _write_run(runs: Path, run_id: str, config: dict) -> Path:
    run_dir = runs / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"run_id": run_id, "config": {**config, "runs_dir": str(runs),
                                                                              "run_id": run_id}}))
    return run_dir


@pytest.fixture()
def evil_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An importable module whose import creates ``marker``; yields (module name, marker)."""
    folder = tmp_path / "site"
    folder.mkdir()
    marker = tmp_path / "imported"
    name = f"aim_evil_{tmp_path.name.replace('-', '_')}"
    write_factory_module(folder, name, marker)
    monkeypatch.syspath_prepend(str(folder))
    yield name, marker
    sys.modules.pop(name, None)


def test_resume_refuses_an_untrusted_system_factory_from_run_json(tmp_path: Path, evil_module) -> None:
    name, marker = evil_module
    _write_run(tmp_path / "runs", "tampered", {"system_factory": f"{name}:build"})
    with pytest.raises(UntrustedModel, match=rf"{name}:build.*--trust-model.*resuming"):
        run_interpret(None, resume="tampered", runs_dir=tmp_path / "runs")
    assert not marker.exists(), "the factory module named in run.json was imported"
    # the person who resumes may trust it, as for any model spec
    with trusting(f"{name}:build"), pytest.raises(TypeError, match="not a System"):
        run_interpret(None, resume="tampered", runs_dir=tmp_path / "runs")
    assert marker.exists()


def test_resume_refuses_a_plugin_module_from_run_json_nobody_loaded(tmp_path: Path, evil_module) -> None:
    name, marker = evil_module
    _write_run(tmp_path / "runs", "plugged", {"synthetic": "red", "plugins": [name]})
    with pytest.raises(UntrustedModel, match=rf"plugin module '{name}'.*--plugin {name}"):
        run_interpret(None, resume="plugged", runs_dir=tmp_path / "runs")
    assert not marker.exists(), "the plugin module named in run.json was imported"


def test_resume_loads_a_model_spec_from_run_json_only_when_trusted(tmp_path: Path, evil_module) -> None:
    name, marker = evil_module
    _write_run(tmp_path / "runs", "model", {"model": f"{name}:build", "layer": "0", "unit": 0})
    with pytest.raises(UntrustedModel):
        run_interpret(None, resume="model", runs_dir=tmp_path / "runs")
    assert not marker.exists()


def test_resume_does_not_send_requests_to_a_server_named_only_in_run_json(tmp_path: Path) -> None:
    """A tampered backend base_url would carry the provider's API key to the attacker's server."""
    evil = "http://203.0.113.9:8000/v1"
    backend = {"provider": "google_genai", "model": "gemini-2.5-flash", "base_url": evil}
    _write_run(tmp_path / "runs", "leak", {"synthetic": "red", "backend": backend})
    with pytest.raises(UntrustedModel, match=rf"google_genai requests.*{evil}.*--trust-model {evil}"):
        run_interpret(None, resume="leak", runs_dir=tmp_path / "runs")


# ---------------------------------------------------------------- tampered files: one clear error


@pytest.fixture()
def finished_run(tmp_path: Path) -> Path:
    """A short finished run of the test fakes (one round), whose files the tests then tamper with."""
    from aim_test_fakes import CONTROL_PROMPTS, RED_PROMPTS, ScriptedScientist, fake_config, fake_exemplars, tool_round

    config = fake_config(tmp_path, run_id="done", max_rounds=1)
    scientist = ScriptedScientist([tool_round(RED_PROMPTS + CONTROL_PROMPTS, ready=True)])
    result = run_interpret(config, scientist=scientist, tools=[fake_exemplars])
    assert result.record.status == "finished"
    return tmp_path / "done"


def _resume(run_dir: Path) -> None:
    with trusting("aim_test_fakes:redness_system", "aim_test_fakes"):
        run_interpret(None, resume=run_dir.name, runs_dir=run_dir.parent)


def test_garbage_checkpoint_rows_give_one_clear_error(finished_run: Path) -> None:
    with sqlite3.connect(finished_run / "checkpoint.sqlite") as db:
        db.execute("UPDATE checkpoints SET checkpoint = X'c1c1c1c1'")
    before = (finished_run / "result.json").read_bytes()
    with pytest.raises(RunFilesError, match=r"checkpoint\.sqlite.*cannot be read.*changed or damaged.*new run"):
        _resume(finished_run)
    assert (finished_run / "result.json").read_bytes() == before  # nothing was rewritten from it


def test_a_pickle_smuggled_into_a_checkpoint_row_is_not_run(finished_run: Path, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    with sqlite3.connect(finished_run / "checkpoint.sqlite") as db:
        db.execute("UPDATE checkpoints SET type = 'pickle', checkpoint = ?", (pickle.dumps(Payload(marker)),))
    with pytest.raises(RunFilesError):
        _resume(finished_run)
    assert not marker.exists()


@pytest.mark.parametrize(
    "text, why",
    [("{not json", "not JSON"), ('{"config": 3}', "no 'config'"), ('{"config": {"synthetic": "red", "unit": -4}}',
                                                                    "config is not valid")],
)
def test_tampered_run_json_gives_one_clear_error(finished_run: Path, text: str, why: str) -> None:
    (finished_run / "run.json").write_text(text)
    with pytest.raises(RunFilesError, match=why):
        _resume(finished_run)
