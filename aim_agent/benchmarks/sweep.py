"""Units per minute of `aim sweep` on today's path and on the path before issue 27, in one run.

The same units of one layer are interpreted (offline scientist unless ``--backend``) twice, each time
into a fresh temporary sweep folder on one local Ray with ``--workers`` workers:

- ``old``: ``AIM_FAST_PATH=0``: every image hashed at each use and sent over the sandbox wire as PNG,
  every activation a forward pass (what a sweep did before issue 27);
- ``new``: the default: images as raw pixels with their ids remembered, and the layer's activations
  served from the sweep's activation cache (a fresh, empty one in the benchmark's folder, so the numbers
  are those of a first sweep of the layer, not of a rerun).

The layer's exemplars are computed before anything is timed (a sweep computes them once per layer anyway).
Units per minute count the engine's loop only: from the first unit handed to a started worker to the
last result; worker start-up is reported apart. The benchmark then checks that both paths gave every
unit the same label, description and confidence, and reports the activation cache's hits, the files one
unit's run wrote, the CPU seconds of a unit (its worker's and its sandboxes': on a shared machine the
units per minute are whatever the other processes leave, the CPU seconds are not) and the machine's
load average.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

#: the paths measured, in order: name -> AIM_FAST_PATH
PATHS = {"old": "0", "new": "1"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="world-cnn", help="model spec (default world-cnn)")
    parser.add_argument("--layer", default="conv5", help="layer (default conv5)")
    parser.add_argument("--units", type=int, default=8, help="units per measurement (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="sweep workers (default 2)")
    parser.add_argument("--paths", default="old,new", help="paths to measure, comma-separated (default old,new)")
    parser.add_argument("--max-rounds", type=int, default=2, help="experiment rounds per unit (default 2)")
    parser.add_argument("--backend", default="offline", help="scientist (default offline)")
    parser.add_argument("--dataset", default=None, help="exemplar dataset (default: the world dataset)")
    parser.add_argument("--k", type=int, default=None, help="exemplars per unit (default 15)")
    parser.add_argument("--code-timeout", type=float, default=1800.0,
                        help="wall-clock limit of one experiment's code, seconds (default 1800: far above what a "
                             "round needs, so that a loaded machine cannot stop one path's experiment and not "
                             "the other's, and change its label)")
    parser.add_argument("--keep", metavar="DIR", default=None,
                        help="write the sweeps under DIR and keep them (default: a temporary folder)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from aim_agent.agent.backends import BackendSpec
    from aim_agent.agent.config import RunConfig
    from aim_agent.sweep.engine import ray_session
    from aim_agent.sweep.run import SweepPlan, run_sweep, unit_config, warm_exemplars
    from aim_agent.sweep.store import SweepStore

    paths = [p.strip() for p in str(args.paths).split(",") if p.strip()]
    if not paths or any(p not in PATHS for p in paths):
        raise ValueError(f"--paths takes names from {', '.join(PATHS)} (e.g. old,new)")
    if args.workers < 1 or args.units < 1:
        raise ValueError("--workers and --units take 1 or more")
    values: dict[str, Any] = {"model": args.model, "layer": args.layer, "unit": 0, "max_rounds": args.max_rounds,
                              "backend": BackendSpec.parse(args.backend), "code_timeout_s": args.code_timeout}
    if args.dataset:
        values["exemplar_dataset"] = args.dataset
    if args.k:
        values["exemplars_k"] = args.k
    template = RunConfig(**values)
    units = f"0-{args.units - 1}"
    load_before = os.getloadavg()
    result: dict[str, Any] = {"model": args.model, "layer": args.layer, "units": args.units,
                              "workers": args.workers, "max_rounds": args.max_rounds, "backend": args.backend,
                              "cpus": os.cpu_count()}
    labels: dict[str, dict[str, tuple[str, str, float | None]]] = {}
    with tempfile.TemporaryDirectory(prefix="aim-bench-sweep-") as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        plan0 = SweepPlan(out_dir=root / "warm", template=template, units=units)
        warm_exemplars([unit_config(plan0, "0")], lambda _line: None)
        with ray_session(args.workers):
            for name in paths:
                cache: dict[str, int] = {}

                cpu: list[float] = []

                def count(_row: Any, data: dict[str, Any] | None, cache: dict[str, int] = cache,
                          cpu: list[float] = cpu) -> None:
                    for key, value in ((data or {}).get("activation_cache") or {}).items():
                        cache[key] = cache.get(key, 0) + int(value)
                    if data and isinstance(data.get("cpu_s"), int | float):
                        cpu.append(float(data["cpu_s"]))

                plan = SweepPlan(out_dir=root / name, template=template, units=units, workers=args.workers)
                env = {"AIM_FAST_PATH": PATHS[name], "AIM_ACTIVATION_CACHE": str(root / f"activations-{name}")}
                saved = {k: os.environ.get(k) for k in env}
                os.environ.update(env)  # the driver forwards AIM_* to the workers it starts
                try:
                    summary = run_sweep(plan, on_result=count)
                finally:
                    for key, value in saved.items():
                        if value is None:
                            os.environ.pop(key, None)
                        else:
                            os.environ[key] = value
                if summary["failed"]:
                    raise RuntimeError(f"{summary['failed']} units failed on the {name} path; see {plan.out_dir}")
                rows = SweepStore(plan.out_dir).rows()
                labels[name] = {r.unit: (r.label, r.description, r.confidence) for r in rows}
                files = [sum(1 for f in (plan.out_dir / "runs").glob(f"{r.run_id}/**/*") if f.is_file())
                         for r in rows if r.run_id]
                asked = cache.get("memory_hits", 0) + cache.get("disk_hits", 0) + cache.get("misses", 0)
                result[name] = {
                    "units_per_min": summary["units_per_min"], "run_s": summary["run_s"],
                    "worker_startup_s": summary["worker_startup_s"],
                    "mean_unit_seconds": round(sum(r.seconds for r in rows) / len(rows), 2),
                    "mean_unit_cpu_s": round(sum(cpu) / len(cpu), 2) if cpu else None,
                    "files_per_unit": round(sum(files) / len(files), 1) if files else None,
                    "activation_cache": {**cache, "hit_rate": round(
                        (cache.get("memory_hits", 0) + cache.get("disk_hits", 0)) / asked, 3) if asked else None},
                }
    if "old" in result and "new" in result and result["old"]["units_per_min"]:
        result["speedup_new_over_old"] = round(result["new"]["units_per_min"] / result["old"]["units_per_min"], 2)
    if "old" in result and "new" in result and result["old"]["mean_unit_cpu_s"] and result["new"]["mean_unit_cpu_s"]:
        # CPU seconds a unit costs (worker and its sandboxes): what a shared machine's load does not inflate
        result["cpu_ratio_old_over_new"] = round(result["old"]["mean_unit_cpu_s"] / result["new"]["mean_unit_cpu_s"], 2)
    if len(labels) == 2:
        first, second = labels.values()
        differ = sorted(u for u in first.keys() | second.keys() if first.get(u) != second.get(u))
        result["identical_labels"] = not differ
        result["units_compared"] = len(first.keys() | second.keys())
        result["units_differing"] = differ
    result["load_average_before"] = [round(x, 2) for x in load_before]
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return result
