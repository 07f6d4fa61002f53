"""``aim sweep``: interpret every unit of a layer (or of a unit source), as Ray jobs, resumably."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from aim_agent.cli import COMMANDS


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from aim_agent.cli.interpret import BACKENDS_HELP
    from aim_agent.config import add_provider_arguments, add_trust_argument
    from aim_agent.sweep.export import FORMATS

    parser = sub.add_parser(
        "sweep",
        help=COMMANDS["sweep"],
        description="One `aim interpret` run per unit, run by Ray workers (a local Ray with --workers, or a "
        "cluster with --ray-address). The layer's exemplars are computed once before the workers start; each "
        "worker loads the world and the model once. Results land in DIR/sweep.sqlite as units finish; the same "
        "command again skips finished units (and resumes a unit a kill cut short). A unit that fails or times "
        "out is recorded with its error. DIR/index.html lists every unit; --export writes csv or parquet. "
        "Needs the `sweep` extra (pip install 'aim-agent[sweep]'). See docs/scale.md.",
    )
    what = parser.add_argument_group("the units (--model/--layer, or --synthetic)")
    what.add_argument("--model", help="model spec, as for `aim layers` (e.g. world-cnn)")
    what.add_argument("--layer", help="layer name, as listed by `aim layers MODEL`")
    what.add_argument("--units", default="all", metavar="UNITS",
                      help="all, a range (0-63), or a list (0,5,9-12); with --synthetic also unit names (default all)")
    what.add_argument("--sae", metavar="PATH", help="SAE folder trained on LAYER: the units are its latents")
    what.add_argument("--synthetic", metavar="SOURCE",
                      help="a unit source instead of a layer: synthetic (the shipped neurons) or fresh")
    what.add_argument("--task", help="the question for every unit (default: describe what the unit detects)")
    agent = parser.add_argument_group("the agent (per unit, as for `aim interpret`)")
    agent.add_argument("--backend", metavar="BACKEND", help=f"scientist: {BACKENDS_HELP}")
    agent.add_argument("--base-url", metavar="URL", help="an OpenAI-compatible server (vLLM) or an ollama host")
    agent.add_argument("--mode", choices=("code", "tools"), default=None, help="code (default) or tools")
    agent.add_argument("--unsafe-sandbox", action="store_true",
                       help="run model-written code even where the sandbox finds no isolation layer")
    agent.add_argument("--max-rounds", type=int, default=None, help="experiment rounds per unit (default 15)")
    agent.add_argument("--max-tokens", type=int, default=None, help="tokens per unit")
    agent.add_argument("--max-cost", type=float, default=None, help="estimated USD per unit")
    agent.add_argument("--max-seconds", type=float, default=None, help="wall-clock seconds per unit")
    agent.add_argument("--dataset", metavar="PATH", help="exemplar dataset: image folder or dataset name")
    agent.add_argument("--k", type=int, default=None, help="dataset exemplars per unit (default 15)")
    agent.add_argument("--seed", type=int, default=None, help="seed of image generation (default 0)")
    sweep = parser.add_argument_group("the sweep")
    sweep.add_argument("--out", metavar="DIR", type=Path, required=True,
                       help="the sweep folder: sweep.sqlite, index.html, runs/<unit>/")
    add_engine_arguments(sweep)
    sweep.add_argument("--max-total-tokens", type=int, default=None, help="tokens over the whole sweep")
    sweep.add_argument("--max-total-cost", type=float, default=None, help="estimated USD over the whole sweep")
    sweep.add_argument("--export", choices=FORMATS, metavar="FORMAT",
                       help=f"only write the table of the sweep in DIR as {'|'.join(FORMATS)} (parquet needs pyarrow)")
    sweep.add_argument("--json", action="store_true", help="print the summary as JSON")
    sweep.add_argument("--quiet", action="store_true", help="no progress")
    add_provider_arguments(parser)
    add_trust_argument(parser)
    parser.set_defaults(func=main)


def add_engine_arguments(group: Any, *, one_in_process: bool = False) -> None:
    """How units run, for `aim sweep` and the evaluations that are sweeps: --workers, --ray-address,
    --gpus-per-worker, --unit-timeout. ``one_in_process``: one worker and no cluster run in this process."""
    single = "; 1 runs them one after another in this process, without Ray" if one_in_process else ""
    group.add_argument("--workers", type=int, default=1,
                       help=f"units at once, each Ray worker one process (default 1{single})")
    group.add_argument("--ray-address", metavar="ADDRESS",
                       help="an existing Ray cluster (e.g. ray://head:10001 or auto); default: start Ray here")
    group.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G",
                       help="GPUs each worker reserves on a cluster (e.g. 0.25: four workers share a GPU; default 0)")
    group.add_argument("--unit-timeout", type=float, default=3600.0, metavar="SECONDS",
                       help="stop a unit after this long (its worker is replaced) and record it as timed out "
                       "(default 3600; 0: no limit; Ray workers only)")


def engine_options(args: argparse.Namespace, *, one_in_process: bool = False) -> dict[str, Any]:
    """The :class:`~aim_agent.sweep.run.SweepPlan` fields of :func:`add_engine_arguments`' options, checked;
    where the units will run on Ray, Ray must import (else an error line naming the extra, before any work)."""
    from aim_agent.sweep.engine import Executor, import_ray
    from aim_agent.sweep.run import executor_for

    if args.workers < 1:
        raise ValueError(f"--workers must be 1 or more, got {args.workers}")
    if args.unit_timeout < 0:
        raise ValueError(f"--unit-timeout must be 0 (no limit) or more, got {args.unit_timeout}")
    executor: Executor = executor_for(args.workers, args.ray_address) if one_in_process else "ray"
    if executor == "ray":
        import_ray()
    return {"workers": args.workers, "executor": executor, "address": args.ray_address,
            "gpus_per_worker": args.gpus_per_worker, "unit_timeout_s": args.unit_timeout or None}


def template_config(args: argparse.Namespace, settings: Any) -> Any:
    """The run config every unit gets: `aim interpret`'s, with a placeholder unit (set per unit)."""
    from aim_agent.cli.interpret import build_config

    if args.synthetic and (args.model or args.layer or args.sae):
        raise ValueError("give --model/--layer (with --sae) or --synthetic SOURCE, not both")
    if not args.synthetic and not (args.model and args.layer):
        raise ValueError("name the units: --model M --layer L (see `aim layers M`), or --synthetic SOURCE")
    one = argparse.Namespace(**vars(args))
    one.unit = None if args.synthetic else 0
    one.synthetic = f"{args.synthetic}:placeholder" if args.synthetic else None
    one.system = one.run_id = one.runs_dir = one.critic_backend = None
    one.stream = False
    return build_config(one, settings)


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from aim_agent.config import apply_plugins, cli_trust, config_from_args

    if args.export:
        from aim_agent.sweep.export import export

        print(export(args.out, args.export))
        return 0
    engine = engine_options(args)  # without the extra: an error line naming it, before any work
    from aim_agent.sweep.run import SweepPlan, run_sweep

    settings = config_from_args(args)
    plugins = apply_plugins(settings)
    console = Console(stderr=True, highlight=False)
    quiet = args.quiet or args.json
    say = None if quiet else (lambda line: console.print(f"[dim]aim sweep[/dim] {line}", markup=True))
    with cli_trust(args, args.model):
        plan = SweepPlan(
            out_dir=args.out, template=template_config(args, settings), units=args.units, source=args.synthetic,
            **engine, max_total_tokens=args.max_total_tokens, max_total_cost=args.max_total_cost,
            plugins=[*plugins, *getattr(args, "plugin", [])], trust=[s for s in [args.model, *args.trust_model] if s],
        )
        summary = run_sweep(plan, progress=say, live=not quiet)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    out = Console(highlight=False, soft_wrap=True)
    out.print(f"{summary['finished']} of {summary['units']} units finished, {summary['failed']} failed; "
              f"ran {summary['ran']} now ({summary['units_per_min'] or 0} units/min, {summary['workers']} workers), "
              f"{summary['tokens']} tokens, ${summary['cost_usd']:.4f}", markup=False)
    if summary["budget"]:
        out.print(f"stopped early: {summary['budget']}", markup=False)
    out.print(f"table   {summary['store']}", markup=False)
    out.print(f"index   {summary['index']}", markup=False)
    return 0 if summary["failed"] == 0 and not summary["not_started"] else 1
