"""A run killed mid-way (os._exit in a subprocess) resumes from its checkpoint without redoing rounds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aim_agent.agent.record import read_run_record

HERE = Path(__file__).parent
ROOT = HERE.parent.parent

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from aim_test_fakes import (CONTROL_PROMPTS, RED_PROMPTS, ScriptedScientist, code_round, fake_config,
                                fake_exemplars, tool_round)
    from aim_agent.agent.runner import run_interpret

    tmp, mode, action = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    make = tool_round if mode == "tools" else code_round
    rounds = [RED_PROMPTS[:2], RED_PROMPTS[2:3], RED_PROMPTS[3:4], RED_PROMPTS[4:] + CONTROL_PROMPTS]
    script = [make(p) for p in rounds[:-1]] + [make(rounds[-1], ready=True)]
    scientist = ScriptedScientist(script, crash_at=3 if action == "crash" else None,
                                  marker=tmp / "proposals.txt")
    if action == "crash":
        run_interpret(fake_config(tmp, run_id="killed", mode=mode), scientist=scientist, tools=[fake_exemplars])
    else:
        result = run_interpret(None, resume="killed", runs_dir=tmp, scientist=scientist, tools=[fake_exemplars])
        print("RESULT", result.rounds_run, result.conclusion.labels)
    """
)


def _run(tmp: Path, mode: str, action: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", SCRIPT, str(tmp), mode, action], env=env, capture_output=True,
                          text=True, timeout=120, cwd=tmp)


@pytest.mark.parametrize("mode", ["code", "tools"])
def test_resume_after_the_process_is_killed(tmp_path: Path, mode: str) -> None:
    crashed = _run(tmp_path, mode, "crash")
    assert crashed.returncode == 17, crashed.stderr[-3000:]
    run_dir = tmp_path / "killed"
    assert (run_dir / "checkpoint.sqlite").exists() and (run_dir / "run.json").exists()
    first_pid = {line.split()[0] for line in (tmp_path / "proposals.txt").read_text().splitlines()}

    resumed = _run(tmp_path, mode, "resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "RESULT 4 ['red']" in resumed.stdout

    lines = [line.split() for line in (tmp_path / "proposals.txt").read_text().splitlines()]
    before = [int(n) for pid, _, n in lines if pid in first_pid]
    after = [int(n) for pid, _, n in lines if pid not in first_pid]
    assert before == [1, 2, 3]  # the third proposal killed the process
    assert after == [3, 4]  # rounds 1 and 2 were not proposed again

    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    experiments = [e["round"] for e in log if e["kind"] == "experiment"]
    assert experiments == [1, 2, 3, 4]
    assert sum(e["kind"] == "exemplars" for e in log) == 1  # the exemplars were not recomputed either
    record = read_run_record(run_dir)
    assert record.status == "finished" and record.rounds_run == 4 and record.resumed
    assert [rd.round for rd in record.rounds] == [1, 2, 3, 4] and all(rd.observation for rd in record.rounds)
    assert [rd.measurements[0].prompt for rd in record.rounds] == ["a red ball on grass", "a red apple on sand",
                                                                    "a red cube on a road", "a red flower on water"]
    assert any(n.startswith("resumed after round 2") for n in record.notes)
    # every image a round showed is on disk, so the resumed scientist (and the report) can see it
    saved = {p.stem for p in (run_dir / "images").glob("img_*.png")}
    assert all(i in saved for rd in record.rounds for i in rd.observation.image_ids)
    assert "round-4" in (run_dir / "report.html").read_text()


def test_resume_of_an_unknown_run_says_what_to_do(tmp_path: Path) -> None:
    from aim_agent.agent.runner import run_interpret

    with pytest.raises(FileNotFoundError, match=r"run\.json is missing"):
        run_interpret(None, resume="nope", runs_dir=tmp_path)
