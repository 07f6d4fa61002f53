"""``aim interpret``: let the agent explain one unit (or resume a run that was stopped)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aim_agent.cli import COMMANDS
from aim_agent.config import PROVIDER_FIELDS, Settings

if TYPE_CHECKING:
    from aim_agent.agent.config import RunConfig

BACKENDS_HELP = "offline | google_genai[:MODEL] | openai[:MODEL] | anthropic[:MODEL] | ollama[:MODEL]"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from aim_agent.config import add_provider_arguments, add_trust_argument

    parser = sub.add_parser(
        "interpret",
        help=COMMANDS["interpret"],
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
    unit.add_argument("--synthetic", metavar="NAME",
                      help="a synthetic neuron (ground truth known): a shipped one by name or index, or "
                      "SOURCE:UNIT of another unit source, e.g. fresh:s7_3 (fresh neuron 3 of seed 7)")
    unit.add_argument("--system", metavar="MODULE:FACTORY", help="a function returning an aim_agent System")
    unit.add_argument("--task", help="the question to answer (default: describe what the unit detects)")
    agent = parser.add_argument_group("the agent")
    agent.add_argument("--backend", metavar="BACKEND",
                       help=f"scientist: {BACKENDS_HELP} (default: google_genai if GOOGLE_API_KEY is set, "
                       "else offline)")
    agent.add_argument("--base-url", metavar="URL",
                       help="the model server: an OpenAI-compatible server (vLLM, llama.cpp, LM Studio; its key from "
                       "AIM_SERVER_API_KEY), an ollama host, or a Gemini/Claude proxy; a describer or critic of the "
                       "same provider uses it too")
    agent.add_argument("--stream", action="store_true", help="stream the model's replies (token use is still counted)")
    agent.add_argument("--critic-backend", metavar="BACKEND", help="a VLM that comments on the critic's checks")
    agent.add_argument("--mode", choices=("code", "tools"), default=None,
                       help="code: the agent writes Python run in a sandbox; tools: tool calls (default code)")
    agent.add_argument("--unsafe-sandbox", action="store_true",
                       help="run the agent's code even where the sandbox finds no isolation layer (no namespaces, "
                       "no seccomp: macOS, some containers); see docs/security.md")
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
    run.add_argument("--record", metavar="DIR", help="save every model exchange (messages, images, replies, usage) "
                     "in DIR, a new folder")
    run.add_argument("--replay", metavar="DIR", help="rerun a recorded session without any model: the run's settings "
                     "and every reply come from DIR; a request that differs from the recording stops the run")
    run.add_argument("--json", action="store_true", help="print result.json instead of a summary")
    run.add_argument("--quiet", action="store_true", help="no progress lines")
    add_provider_arguments(parser)
    add_trust_argument(parser)  # --model is trusted; --resume trusts only what --trust-model names
    parser.set_defaults(func=main)


def _budgets(args: argparse.Namespace) -> dict[str, Any]:
    values = {"max_rounds": args.max_rounds, "max_tokens": args.max_tokens, "max_cost": args.max_cost,
              "max_seconds": args.max_seconds}
    return {k: v for k, v in values.items() if v is not None}


def build_config(args: argparse.Namespace, settings: Settings) -> RunConfig:
    """The RunConfig of a new run: the resolved settings (aim.toml, environment) under the run's flags."""
    from aim_agent.agent.backends import BackendSpec
    from aim_agent.agent.config import RunConfig

    backend = BackendSpec.parse(args.backend, base_url=args.base_url, streaming=args.stream)
    values: dict[str, Any] = {
        "model": args.model,
        "layer": args.layer,
        "unit": args.unit,
        "sae": args.sae,
        "synthetic": args.synthetic,
        "system_factory": args.system,
        "task": args.task,
        "backend": backend,
        "critic_backend": BackendSpec.parse(args.critic_backend, like=backend) if args.critic_backend else None,
        **{name: getattr(settings, name) for name in Settings.model_fields},  # aim.toml, environment
        "run_id": args.run_id,
        **_budgets(args),
    }
    if args.runs_dir:
        values["runs_dir"] = args.runs_dir
    if args.dataset:
        values["exemplar_dataset"] = args.dataset
    if args.seed is not None:
        values["seed"] = args.seed
    if args.mode:
        values["mode"] = args.mode
    if args.unsafe_sandbox:
        values["unsafe_sandbox"] = True
    if args.k is not None:
        values["exemplars_k"] = args.k
    try:
        return RunConfig(**{k: v for k, v in values.items() if v is not None or k in PROVIDER_FIELDS})
    except ValueError as exc:  # pydantic's message, without its URL noise
        raise ValueError(_clean(exc)) from None


def _clean(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        return "; ".join(str(e.get("msg", "")).removeprefix("Value error, ") for e in errors())
    return str(exc)


def _taped_run(args: argparse.Namespace, settings: Any, say: Any) -> Any:
    """A new run whose model exchanges are recorded to ``--record DIR`` or answered from ``--replay DIR``."""
    from aim_agent.agent.runner import new_run_id, run_interpret
    from aim_agent.agent.tape import Tape, use_tape

    if args.resume:
        raise ValueError("--record and --replay start a new run; they do not combine with --resume")
    if args.record and args.replay:
        raise ValueError("choose one of --record DIR and --replay DIR")
    if args.replay:
        tape = Tape.replay(args.replay)
        config = tape.config(run_id=args.run_id, runs_dir=args.runs_dir)
        if say:
            say(f"replaying {len(tape.exchanges)} model exchanges from {args.replay} (no model is called)")
    else:
        config = build_config(args, settings)
        config = config.model_copy(update={"run_id": config.run_id or new_run_id(config)})
        tape = Tape.record(args.record, config)
    with use_tape(tape):
        result = run_interpret(config, progress=say)
    tape.finish()  # a replay that ended early or diverged (even where the run carried on) fails here
    if say and tape.recording:
        say(f"recorded {len(tape.exchanges)} model exchanges in {args.record}")
    return result


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from aim_agent.agent.config import RunConfig
    from aim_agent.agent.runner import run_interpret
    from aim_agent.config import apply_plugins, cli_trust, config_from_args

    settings = config_from_args(args)
    apply_plugins(settings)
    console = Console(stderr=True, highlight=False)
    say = None if args.quiet or args.json else (lambda line: console.print(f"[dim]aim[/dim] {line}"))
    if args.record or args.replay:
        result = _taped_run(args, settings, say)
    elif args.resume:
        runs_dir = Path(args.runs_dir or settings.runs_dir)
        stored_path = runs_dir / args.resume / "run.json"
        if not stored_path.exists():
            known = ", ".join(sorted(p.parent.name for p in runs_dir.glob("*/run.json"))) or "none"
            raise FileNotFoundError(f"no run {args.resume!r} in {runs_dir} (run.json missing); runs there: {known}")
        stored = RunConfig.model_validate(json.loads(stored_path.read_text())["config"])
        update = {**_budgets(args), **({"unsafe_sandbox": True} if args.unsafe_sandbox else {})}
        with cli_trust(args):  # run.json is a file on disk, not the person's choice: --trust-model only
            result = run_interpret(stored.model_copy(update=update), resume=args.resume, runs_dir=runs_dir,
                                   progress=say)
    else:
        with cli_trust(args, args.model):  # the model named with --model
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
