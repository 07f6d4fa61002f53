"""Calibration of the agent's confidence where the truth is known: accuracy by confidence bin.

Reads a finished ``aim eval synthetic`` folder (``results.jsonl`` and each unit's ``runs/<run id>/result.json``),
scores every agent label by strict concept match (:func:`aim_agent.eval.score.strict_score`) and groups the
units by the conclusion's confidence. A confidence that means something has accuracy rising with it, and
forced conclusions (a budget or the critic's veto limit) carry less confidence than unforced ones.

``python -m aim_agent.eval.calibration runs/eval/fresh-s73-n6-offline`` prints the table as Markdown.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

#: bin edges: [0, 0.5), [0.5, 0.7), [0.7, 0.9), [0.9, 1]
EDGES: tuple[float, ...] = (0.0, 0.5, 0.7, 0.9, 1.0)


@dataclass(frozen=True)
class Scored:
    """One unit: the agent's confidence, whether its label is strictly right, whether the run was forced."""

    unit: str
    confidence: float
    correct: bool
    forced: bool


@dataclass(frozen=True)
class Bin:
    low: float
    high: float
    n: int
    accuracy: float | None
    mean_confidence: float | None


def read_scored(eval_dir: str | Path) -> list[Scored]:
    """Every finished unit of the evaluation in ``eval_dir`` with its confidence (from its run record)."""
    from aim_agent.agent.record import RunRecordError, read_run_record
    from aim_agent.eval.score import strict_score
    from aim_agent.eval.synthetic import AGENT, RESULTS_FILE, read_results

    root = Path(eval_dir)
    out = []
    for result in read_results(root / RESULTS_FILE).values():
        try:
            record = read_run_record(root / "runs" / result.run_id)
        except RunRecordError:
            continue
        confidence = record.conclusion.confidence if record.conclusion else 0.0
        correct = strict_score(result.labels[AGENT].label, result.truth).correct
        out.append(Scored(result.unit, confidence, correct, bool(result.forced or record.forced)))
    return out


def bins(scored: Sequence[Scored], edges: Sequence[float] = EDGES) -> list[Bin]:
    """Accuracy and mean confidence per confidence bin (the last bin includes its upper edge)."""
    out = []
    for k, (low, high) in enumerate(pairwise(edges)):
        last = k == len(edges) - 2
        inside = [s for s in scored if low <= s.confidence < high or (last and s.confidence == high)]
        out.append(Bin(low, high, len(inside),
                       round(sum(s.correct for s in inside) / len(inside), 4) if inside else None,
                       round(statistics.fmean(s.confidence for s in inside), 4) if inside else None))
    return out


def markdown(scored: Sequence[Scored]) -> str:
    """The calibration table, then forced against unforced runs."""
    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    lines = ["| confidence | n | accuracy (strict) | mean confidence |", "|---|---:|---:|---:|"]
    for b in bins(scored):
        lines.append(f"| {b.low:.1f}–{b.high:.1f} | {b.n} | {fmt(b.accuracy)} | {fmt(b.mean_confidence)} |")
    lines += ["", "| runs | n | accuracy (strict) | mean confidence |", "|---|---:|---:|---:|"]
    forced = [s for s in scored if s.forced]
    for name, group in (("forced", forced), ("not forced", [s for s in scored if not s.forced])):
        acc = sum(s.correct for s in group) / len(group) if group else None
        conf = statistics.fmean(s.confidence for s in group) if group else None
        lines.append(f"| {name} | {len(group)} | {fmt(acc)} | {fmt(conf)} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m aim_agent.eval.calibration EVAL_DIR (a folder of `aim eval synthetic`)",
              file=sys.stderr)
        return 2
    scored = read_scored(args[0])
    if not scored:
        print(f"no finished unit with a run record in {args[0]}: run `aim eval synthetic` there first",
              file=sys.stderr)
        return 1
    print(markdown(scored))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
