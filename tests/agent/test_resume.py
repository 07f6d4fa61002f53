"""A run killed mid-way (os._exit in a subprocess) resumes from its checkpoint without redoing rounds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from aim_testing import HANG_S

from aim_agent.agent.record import read_run_record

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
PYTHONPATH = os.pathsep.join([str(HERE), str(ROOT), str(ROOT / "tests" / "support"), os.environ.get("PYTHONPATH", "")])

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from aim_test_fakes import (CONTROL_PROMPTS, RED_PROMPTS, ScriptedScientist, code_round, fake_config,
                                fake_exemplars, tool_round)
    from aim_agent.agent.runner import run_interpret
    from aim_agent.models import trusting

    tmp, mode, action = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    make = tool_round if mode == "tools" else code_round
    rounds = [RED_PROMPTS[:2], RED_PROMPTS[2:3], RED_PROMPTS[3:4], RED_PROMPTS[4:] + CONTROL_PROMPTS]
    script = [make(p) for p in rounds[:-1]] + [make(rounds[-1], ready=True)]
    scientist = ScriptedScientist(script, crash_at=3 if action == "crash" else None,
                                  marker=tmp / "proposals.txt")
    if action == "crash":
        run_interpret(fake_config(tmp, run_id="killed", mode=mode), scientist=scientist, tools=[fake_exemplars])
    else:
        # run.json is a file on disk: what it names that runs code must be trusted by the person resuming
        with trusting("aim_test_fakes:redness_system", "aim_test_fakes"):
            result = run_interpret(None, resume="killed", runs_dir=tmp, scientist=scientist, tools=[fake_exemplars])
        print("RESULT", result.rounds_run, result.conclusion.labels)
    """
)


def _run(tmp: Path, mode: str, action: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": PYTHONPATH}
    return subprocess.run([sys.executable, "-c", SCRIPT, str(tmp), mode, action], env=env, capture_output=True,
                          text=True, timeout=HANG_S, cwd=tmp)


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


WORLD_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from aim_test_fakes import ScriptedScientist, red_hypothesis, world_exemplars
    from aim_agent.agent.config import RunConfig
    from aim_agent.agent.runner import run_interpret
    from aim_agent.agent.schema import Proposal, ToolCall

    tmp, action = Path(sys.argv[1]), sys.argv[2]
    first = Proposal(thoughts="make world images", hypotheses=[red_hypothesis()], tool_calls=[
        ToolCall(tool="text2image", args={"prompts": ["a brown dog on grass", "a red car on a road"]}),
        ToolCall(tool="edit_images", args={"images": ["$0.images.0"], "edits": ["replace the dog with a cat"]}),
        ToolCall(tool="neuron", args={"images": ["$0.images", "$1.images"]}),
    ])

    def second(view):
        # only ids from round 1: after the kill they live on disk, not in this process's memory
        ids = view.observations[0].image_ids
        (tmp / "round1_ids.json").write_text(json.dumps(ids))
        return Proposal(thoughts="reuse round 1", hypotheses=[red_hypothesis()], ready_to_conclude=True, tool_calls=[
            ToolCall(tool="describe_images", args={"images": ids}),
            ToolCall(tool="edit_images", args={"images": ids, "edits": ["change the background to snow"]}),
            ToolCall(tool="neuron", args={"images": "$1.images"}),
        ])

    scientist = ScriptedScientist([first, second], crash_at=2 if action == "crash" else None)
    if action == "crash":
        config = RunConfig(synthetic="mono_dog", mode="tools", runs_dir=str(tmp), run_id="world", max_rounds=3,
                           exemplars_k=4, image_size=96)
        run_interpret(config, scientist=scientist, tools=[world_exemplars])
    else:
        run_interpret(None, resume="world", runs_dir=tmp, scientist=scientist, tools=[world_exemplars])
    """
)


def test_resumed_rounds_describe_and_edit_world_images_of_earlier_rounds(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": PYTHONPATH}

    def run(action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", WORLD_SCRIPT, str(tmp_path), action], env=env,
                              capture_output=True, text=True, timeout=HANG_S, cwd=tmp_path)

    crashed = run("crash")
    assert crashed.returncode == 17, crashed.stderr[-3000:]
    resumed = run("resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    record = read_run_record(tmp_path / "world")
    second = record.rounds[1]
    assert second.observation is not None and second.observation.ok, second.observation
    ids = json.loads((tmp_path / "round1_ids.json").read_text())
    assert ids, "round 1 showed images"
    text = second.observation.text
    # the describer found each earlier image's scene (and each overlay's mask) after the restart
    assert "not a world image" not in text and "dog" in text
    assert "of the region" in text  # overlays kept their masks: the describer reads the highlighted region
    # the editor found their scenes too: every edit applied (an edit that fails records no change)
    assert len(second.measurements) == 2 * len(ids)
    snowed = [m for m in second.measurements if m.edits and m.edits[-1] is not None and m.edits[-1].background]
    assert len(snowed) == len(ids) and all(m.edits[-1].background == "snow" for m in snowed)
    # the edits of round 1 kept their structured provenance across the restart
    edited = [m for rd in record.rounds for m in rd.measurements if m.edits]
    assert any(c is not None and c.removed == ["dog"] and c.added == ["cat"] for m in edited for c in m.edits)


def test_a_run_killed_before_its_first_checkpoint_resumes(tmp_path: Path) -> None:
    from aim_test_fakes import CONTROL_PROMPTS, RED_PROMPTS, ScriptedScientist, fake_config, fake_exemplars, tool_round

    from aim_agent.agent.runner import run_interpret
    from aim_agent.models import trusting

    config = fake_config(tmp_path, run_id="early", max_rounds=2)
    run_dir = tmp_path / "early"
    run_dir.mkdir()
    # what a process killed right after writing run.json leaves: no checkpoint yet
    (run_dir / "run.json").write_text(json.dumps({"run_id": "early", "config": config.public()}))
    scientist = ScriptedScientist([tool_round(RED_PROMPTS + CONTROL_PROMPTS, ready=True)])
    with trusting("aim_test_fakes:redness_system", "aim_test_fakes"):
        result = run_interpret(None, resume="early", runs_dir=tmp_path, scientist=scientist, tools=[fake_exemplars])
    assert result.record.status == "finished" and result.rounds_run >= 1
    assert any("before its first checkpoint" in n for n in result.record.notes)
