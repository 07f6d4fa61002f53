"""``aim eval units``: the agent's labels of random real units against a Network Dissection reference."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from aim_agent.cli.sweep import add_engine_arguments

    parser = sub.add_parser(
        "units",
        help="run the agent on random units of a layer and compare its labels with a dissection reference",
        description="For N random units that fire on the dataset, run the agent and compare its label with the "
        "unit's Network Dissection label (`aim dissect`): a match when the label names the reference concept or "
        "its category. Where they differ, controlled renders (each concept alone on several backgrounds vs "
        "random controls, measured on the unit) say which one the unit follows. The runs are a sweep of the units (as "
        "`aim sweep`: --workers N on Ray, or a cluster with --ray-address) in RUNS_DIR/<model>-<layer>-s<seed>-n<n>-"
        "<backend>-<mode>/ (sweep.sqlite, index.html, runs/<unit>/); the same command again skips finished units.",
    )
    parser.add_argument("--model", default="world-cnn", help="model spec (default world-cnn)")
    parser.add_argument("--layer", default="conv5", help="layer (default conv5)")
    parser.add_argument("--n", type=int, default=30, help="random units to evaluate (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the unit draw and of image generation")
    parser.add_argument("--dataset", default=None, help="dataset with exact masks (default world)")
    parser.add_argument("--backend", default="offline", help="the scientist (default offline)")
    parser.add_argument("--mode", choices=("code", "tools"), default="tools", help="experiment mode (default tools)")
    parser.add_argument("--max-rounds", type=int, default=None, help="rounds per run (default the agent's)")
    parser.add_argument("--runs-dir", default="runs/eval-units", metavar="DIR",
                        help="where the evaluation's sweep folder is made (default runs/eval-units)")
    parser.add_argument("--out", metavar="PATH", help="write the evaluation as JSON to PATH (after every unit)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--score-only", action="store_true",
                        help="run nothing: score the units whose runs finished (the others are listed as not "
                             "evaluated), e.g. an evaluation stopped by a deadline")
    add_engine_arguments(parser.add_argument_group("how the units run (a sweep, docs/scale.md)"), one_in_process=True)
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from aim_agent.cli.evaluations import progress
    from aim_agent.cli.sweep import engine_options
    from aim_agent.eval.units import UnitsEvaluation, evaluate_units, units_table
    from aim_agent.files import atomic_write

    if args.n < 1:
        raise ValueError(f"--n must be at least 1, not {args.n}")
    engine = engine_options(args, one_in_process=True)
    say = progress(args, "units")
    def write(evaluation: UnitsEvaluation) -> None:  # after every unit: a stopped evaluation keeps its units
        atomic_write(Path(args.out), (json.dumps(evaluation.to_json(), indent=1) + "\n").encode(), fsync=False)

    result = evaluate_units(args.model, args.layer, n=args.n, seed=args.seed, dataset=args.dataset,
                            backend=args.backend, mode=args.mode, runs_dir=args.runs_dir,
                            max_rounds=args.max_rounds, workers=engine["workers"], address=engine["address"],
                            unit_timeout_s=engine["unit_timeout_s"], gpus_per_worker=engine["gpus_per_worker"],
                            progress=say, live=not args.json, on_unit=write if args.out else None,
                            score_only=args.score_only)
    data = result.to_json()
    if args.out:
        write(result)
    failed = 1 if result.unevaluated else 0  # a partial evaluation: the same command again completes it
    if args.json:
        print(json.dumps(data, indent=1))
        return failed
    Console(highlight=False).print(units_table(result))
    print(f"index {Path(result.sweep_dir or '.') / 'index.html'}")
    print(json.dumps(data["summary"]))
    return failed
