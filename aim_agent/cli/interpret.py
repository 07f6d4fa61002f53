"""``aim interpret``: let the agent explain one unit (or resume a run that was stopped)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

BACKENDS_HELP = "offline | google_genai[:MODEL] | openai[:MODEL] | anthropic[:MODEL] | ollama[:MODEL]"


def register(sub: argparse._SubParsersAction) -> None:
    from aim_agent.config import add_provider_arguments

    parser = sub.add_parser(
        "interpret",
        help="explain what a unit detects: a VLM (or the offline scientist) runs experiments on it",
        description="The agent looks at the unit's dataset exemplars, forms hypotheses, runs experiments "
        "(code in a sandbox, or tool calls), answers a critic, and concludes with a description and labels. "
        "Each run writes runs/<id>/result.json, log.jsonl, images/ and report.html; a stopped run "
        "continues with --resume RUN_ID. --describer takes a provider name (world) or a VLM backend "
        "(provider:model), which sees only the exemplar images.",
    )
    unit = parser.add_argument_group("the unit (one of: --model/--layer/--unit, --synthetic, --system)")
    unit.add_argument("--model", help="model spec, as for `aim layers` (e.g. world-cnn)")
    unit.add_argument("--layer", help="layer name, as listed by `aim layers MODEL`")
    unit.add_argument("--unit", type=int, help="unit index in the layer (a latent index with --sae)")
    unit.add_argument("--sae", metavar="PATH", help="SAE folder trained on LAYER: --unit is one of its latents")
    unit.add_argument("--synthetic", metavar="NAME", help="a synthetic neuron of the world (ground truth known)")
    unit.add_argument("--system", metavar="MODULE:FACTORY", help="a function returning an aim_agent System")
    unit.add_argument("--task", help="the question to answer (default: describe what the unit detects)")
    agent = parser.add_argument_group("the agent")
    agent.add_argument("--backend", metavar="BACKEND",
                       help=f"scientist: {BACKENDS_HELP} (default: google_genai if GOOGLE_API_KEY is set, "
                       "else offline)")
    agent.add_argument("--base-url", metavar="URL", help="an OpenAI-compatible server (vLLM) or ollama host")
    agent.add_argument("--critic-backend", metavar="BACKEND", help="a VLM that comments on the critic's checks")
    agent.add_argument("--mode", choices=("code", "tools"), default=None,
                       help="code: the agent writes Python run in a sandbox; tools: tool calls (default code)")
    budget = parser.add_argument_group("budgets (the run concludes when one is reached)")
    budget.add_argument("--max-rounds", type=int, default=None, help="experiment rounds (default 15)")
    budget.add_argument("--max-tokens", type=int, default=None, help="tokens over all model calls")
    budget.add_argument("--max-cost", type=float, default=None, help="estimated USD over all model calls")
    budget.add_argument("--max-seconds", type=float, default=None, help="wall-clock seconds")
    run = parser.add_argument_group("run")
    run.add_argument("--resume", metavar="RUN_ID", help="continue this stopped run (budget flags may raise caps)")
    run.add_argument("--run-id", help="name of a new run (default: time + unit)")
    run.add_argument("--runs-dir", metavar="DIR", help="where runs are written (default ./runs or AIM_RUNS_DIR)")
    run.add_argument("--dataset", metavar="PATH", help="exemplar dataset: image folder or dataset name")
    run.add_argument("--k", type=int, default=None,
                     help="dataset exemplars shown to the agent (default: the scientist's number: 15 for a VLM, "
                     "50 for the offline scientist)")
    run.add_argument("--seed", type=int, default=None, help="seed of image generation (default 0)")
    run.add_argument("--json", action="store_true", help="print result.json instead of a summary")
    run.add_argument("--quiet", action="store_true", help="no progress lines")
    add_provider_arguments(parser)
    parser.set_defaults(func=main)


def _budgets(args: argparse.Namespace) -> dict[str, Any]:
    values = {"max_rounds": args.max_rounds, "max_tokens": args.max_tokens, "max_cost": args.max_cost,
              "max_seconds": args.max_seconds}
    return {k: v for k, v in values.items() if v is not None}


def build_config(args: argparse.Namespace, settings: Any) -> Any:
    """The RunConfig of a new run from the flags (and aim.toml / environment for the providers)."""
    from aim_agent.agent.backends import BackendSpec
    from aim_agent.agent.config import RunConfig

    values: dict[str, Any] = {
        "model": args.model,
        "layer": args.layer,
        "unit": args.unit,
        "sae": args.sae,
        "synthetic": args.synthetic,
        "system_factory": args.system,
        "task": args.task,
        "backend": BackendSpec.parse(args.backend, base_url=args.base_url),
        "critic_backend": BackendSpec.parse(args.critic_backend) if args.critic_backend else None,
        "describer": settings.describer or "world",
        "text2image": settings.text2image,
        "editor": settings.editor,
        "plugins": list(settings.plugins),
        "runs_dir": args.runs_dir or settings.runs_dir,
        "run_id": args.run_id,
        "dataset": args.dataset or settings.exemplar_dataset,
        "seed": args.seed if args.seed is not None else settings.seed,
        "image_size": settings.image_size,
        **_budgets(args),
    }
    if args.mode:
        values["mode"] = args.mode
    if args.k is not None:
        values["exemplars_k"] = args.k
    try:
        return RunConfig(**{k: v for k, v in values.items() if v is not None or k in ("text2image", "editor")})
    except ValueError as exc:  # pydantic's message, without its URL noise
        raise ValueError(_clean(exc)) from None


def _clean(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        return "; ".join(str(e.get("msg", "")).removeprefix("Value error, ") for e in errors())
    return str(exc)


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from aim_agent.agent.config import RunConfig
    from aim_agent.agent.runner import run_interpret
    from aim_agent.config import apply_plugins, config_from_args

    settings = config_from_args(args)
    apply_plugins(settings)
    console = Console(stderr=True, highlight=False)
    say = None if args.quiet or args.json else (lambda line: console.print(f"[dim]aim[/dim] {line}"))
    if args.resume:
        runs_dir = Path(args.runs_dir or settings.runs_dir)
        stored_path = runs_dir / args.resume / "run.json"
        if not stored_path.exists():
            known = ", ".join(sorted(p.parent.name for p in runs_dir.glob("*/run.json"))) or "none"
            raise FileNotFoundError(f"no run {args.resume!r} in {runs_dir} (run.json missing); runs there: {known}")
        stored = RunConfig.model_validate(json.loads(stored_path.read_text())["config"])
        result = run_interpret(stored.model_copy(update=_budgets(args)), resume=args.resume, runs_dir=runs_dir,
                               progress=say)
    else:
        result = run_interpret(build_config(args, settings), progress=say)
    out = Console(highlight=False, soft_wrap=True)  # paths and labels stay on one line, copyable
    if args.json:
        out.print_json(result.result_path.read_text())
        return 0
    if result.conclusion is not None:
        out.print(result.conclusion.maia_text())
    if result.ground_truth:
        out.print(f"[dim]ground truth:[/dim] {result.ground_truth}")
    cost = "unknown" if result.cost_usd is None else f"${result.cost_usd:.4f}"
    out.print(f"[dim]rounds {result.rounds_run}, tokens {result.total_tokens}, cost {cost}"
              + (f", forced by {result.forced}" if result.forced else "") + "[/dim]")
    out.print(f"result  {result.result_path}")
    out.print(f"log     {result.log_path}")
    if result.report_path is not None:
        out.print(f"report  {result.report_path}")
    return 0
