"""Units per minute of `aim sweep` with 1 and with 2 workers (and the ratio), measured in one run.

The same units of one layer are interpreted (offline scientist unless ``--backend``) once per
worker count, each time into a fresh temporary sweep folder, on one local Ray. The layer's
exemplars are computed before anything is timed (a sweep computes them once per layer anyway).
Units per minute count the engine's loop only: from the first unit handed to a started worker to
the last result; worker start-up (importing torch, the world, the agent) is reported apart.
The machine's load average is reported with the numbers: on a shared machine the ratio is
whatever the other processes leave.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="world-cnn", help="model spec (default world-cnn)")
    parser.add_argument("--layer", default="conv5", help="layer (default conv5)")
    parser.add_argument("--units", type=int, default=8, help="units per measurement (default 8)")
    parser.add_argument("--workers", default="1,2", help="worker counts to measure, comma-separated (default 1,2)")
    parser.add_argument("--max-rounds", type=int, default=2, help="experiment rounds per unit (default 2)")
    parser.add_argument("--backend", default="offline", help="scientist (default offline)")
    parser.add_argument("--dataset", default=None, help="exemplar dataset (default: the world dataset)")
    parser.add_argument("--k", type=int, default=None, help="exemplars per unit (default 15)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from aim_agent.agent.backends import BackendSpec
    from aim_agent.agent.config import RunConfig
    from aim_agent.sweep.engine import ray_session
    from aim_agent.sweep.run import SweepPlan, run_sweep, unit_config, warm_exemplars

    counts = [int(w) for w in str(args.workers).split(",") if w.strip()]
    if not counts or min(counts) < 1 or args.units < 1:
        raise ValueError("--workers takes counts of 1 or more (e.g. 1,2) and --units 1 or more")
    values: dict[str, Any] = {"model": args.model, "layer": args.layer, "unit": 0, "max_rounds": args.max_rounds,
                              "backend": BackendSpec.parse(args.backend)}
    if args.dataset:
        values["exemplar_dataset"] = args.dataset
    if args.k:
        values["exemplars_k"] = args.k
    template = RunConfig(**values)
    units = f"0-{args.units - 1}"
    load_before = os.getloadavg()
    result: dict[str, Any] = {"model": args.model, "layer": args.layer, "units": args.units,
                              "max_rounds": args.max_rounds, "backend": args.backend, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="aim-bench-sweep-") as tmp:
        plan0 = SweepPlan(out_dir=Path(tmp) / "warm", template=template, units=units)
        warm_exemplars([unit_config(plan0, "0")], lambda _line: None)
        with ray_session(max(counts)):
            for n in counts:
                plan = SweepPlan(out_dir=Path(tmp) / f"w{n}", template=template, units=units, workers=n)
                summary = run_sweep(plan)
                if summary["failed"]:
                    raise RuntimeError(f"{summary['failed']} units failed with {n} workers; see {plan.out_dir}")
                from aim_agent.sweep.store import SweepStore

                rows = SweepStore(plan.out_dir).rows()
                result[f"workers_{n}"] = {
                    "units_per_min": summary["units_per_min"], "run_s": summary["run_s"],
                    "worker_startup_s": summary["worker_startup_s"],
                    "mean_unit_seconds": round(sum(r.seconds for r in rows) / len(rows), 2),
                    "tokens_per_unit": round(sum(r.tokens for r in rows) / len(rows), 1),
                }
    per_min = {n: result[f"workers_{n}"]["units_per_min"] for n in counts}
    if 1 in per_min and 2 in per_min and per_min[1]:
        result["ratio_2_over_1"] = round(per_min[2] / per_min[1], 2)
    result["load_average_before"] = [round(x, 2) for x in load_before]
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return result
