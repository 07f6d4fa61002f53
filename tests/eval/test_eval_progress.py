"""The `aim eval` commands share one progress function: lines on stderr prefixed `aim eval COMMAND`, off with
--json (units, predictive, spurious, bias) or --quiet (synthetic, whose --json keeps progress on stderr);
stdout keeps only what each command prints."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from aim_agent.cli import main
from aim_agent.cli.evaluations import progress


def test_progress_lines_go_to_stderr_with_the_command_and_stop_when_quiet(
        capsys: pytest.CaptureFixture[str]) -> None:
    say = progress(argparse.Namespace(json=False), "units")
    assert say is not None
    say("3/30 units done")
    captured = capsys.readouterr()
    assert captured.out == "" and "aim eval units 3/30 units done" in captured.err
    assert progress(argparse.Namespace(json=True), "units") is None
    assert progress(argparse.Namespace(json=True), "synthetic", quiet=False) is not None
    assert progress(argparse.Namespace(json=False), "synthetic", quiet=True) is None


@pytest.mark.parametrize("quiet", [False, True])
def test_eval_synthetic_progress_is_on_stderr_and_its_json_alone_on_stdout(
        quiet: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from aim_agent.eval import synthetic

    def run_eval(**kw: Any) -> synthetic.EvalSummary:
        assert (kw["progress"] is None) == quiet and kw["live"] == (not quiet)
        if kw["progress"]:
            kw["progress"]("neuron 1/1")
        return synthetic.EvalSummary(judge=None, judge_note=None, methods=[], method_names={}, table=[],
                                     head_to_head=[], neurons=[], failed=0, n=1)

    monkeypatch.setattr(synthetic, "run_eval", run_eval)
    assert main(["eval", "synthetic", "--n", "1", "--json", *(["--quiet"] if quiet else [])]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert printed["n"] == 1 and printed["unevaluated"] == []
    assert ("aim eval synthetic neuron 1/1" in captured.err) != quiet


@pytest.mark.parametrize("as_json", [False, True])
def test_eval_units_progress_is_off_with_json(as_json: bool, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from aim_agent.eval import units

    def evaluate_units(*args: Any, **kw: Any) -> units.UnitsEvaluation:
        assert (kw["progress"] is None) == as_json
        if kw["progress"]:
            kw["progress"]("unit 1/1")
        return units.UnitsEvaluation(model="m", layer="l", dataset="world", seed=0, units=[])

    monkeypatch.setattr(units, "evaluate_units", evaluate_units)
    assert main(["eval", "units", "--n", "1", *(["--json"] if as_json else [])]) == 0
    captured = capsys.readouterr()
    assert ("aim eval units unit 1/1" in captured.err) != as_json
    assert "aim eval" not in captured.out
    if as_json:
        assert json.loads(captured.out)["model"] == "m"
