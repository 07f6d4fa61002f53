"""``aim eval synthetic``: the agent and three baselines on synthetic neurons with known answers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from aim_agent.config import PROVIDER_FIELDS


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from aim_agent.cli.interpret import BACKENDS_HELP
    from aim_agent.cli.sweep import add_engine_arguments
    from aim_agent.config import add_provider_arguments

    parser = sub.add_parser(
        "synthetic",
        help="interpret synthetic neurons (shipped, or fresh ones drawn from a seed) and score the labels",
        description="Runs the agent on every neuron of a set, makes baseline labels from the exemplars alone "
        "(one-shot summary, most frequent concept, random), then scores every label against the ground truth: "
        "strict concept match, a 2AFC judge (an offline sentence embedder) and retrieval among the set's ground "
        "truths, by kind (mono / OR / conditional). The neurons run as a sweep (as `aim sweep`: --workers N on "
        "Ray, or a cluster with --ray-address). Writes runs/eval/<id>/ (summary.json, summary.md, results.jsonl, "
        "sweep.sqlite, index.html, one run folder per neuron); the same command again continues a stopped "
        "evaluation. See docs/evaluation.md.",
    )
    parser.add_argument("--set", dest="set_name", default="fresh", metavar="SET",
                        help="shipped (the 88 neurons after MAIA's Table A6) or fresh (drawn by --seed); "
                        "default fresh")
    parser.add_argument("--seed", type=int, default=0,
                        help="fresh: which neurons are drawn; shipped with --n: which sample (default 0)")
    parser.add_argument("--n", type=int, default=None,
                        help="number of neurons (default: all 88 shipped, 60 fresh)")
    parser.add_argument("--backend", default="offline", metavar="BACKEND",
                        help=f"the scientist: {BACKENDS_HELP} (default offline)")
    parser.add_argument("--base-url", metavar="URL", help="an OpenAI-compatible server (vLLM) or ollama host")
    parser.add_argument("--mode", choices=("code", "tools"), default=None, help="the agent's mode (default code)")
    parser.add_argument("--max-rounds", type=int, default=None, help="experiment rounds per neuron (default 15)")
    parser.add_argument("--max-seconds", type=float, default=None, help="wall-clock seconds per neuron")
    parser.add_argument("--max-tokens", type=int, default=None, help="tokens per neuron")
    parser.add_argument("--dataset", metavar="PATH", help="exemplar dataset (default: the world dataset)")
    parser.add_argument("--k", type=int, default=None,
                        help="dataset exemplars per neuron (default: the scientist's number, 50 offline; "
                        "the one-shot baseline reads 15)")
    add_engine_arguments(parser.add_argument_group("how the neurons run (a sweep, docs/scale.md)"),
                         one_in_process=True)
    parser.add_argument("--out", metavar="DIR", type=Path,
                        help="evaluation folder (default runs/eval/<set>-s<seed>-n<n>-<backend>)")
    parser.add_argument("--runs-dir", metavar="DIR", help="root of runs/ (default ./runs or AIM_RUNS_DIR)")
    parser.add_argument("--json", action="store_true", help="print summary.json instead of the tables")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    add_provider_arguments(parser)
    parser.set_defaults(func=main)


def template_config(args: argparse.Namespace, settings: Any) -> Any:
    """The run config every neuron gets (its unit and run id are set per neuron)."""
    from aim_agent.agent.backends import BackendSpec
    from aim_agent.agent.config import RunConfig
    from aim_agent.config import Settings

    values: dict[str, Any] = {
        **{name: getattr(settings, name) for name in Settings.model_fields},  # aim.toml, environment
        "synthetic": "placeholder",
        "backend": BackendSpec.parse(args.backend, base_url=args.base_url),
        "max_rounds": args.max_rounds,
        "max_seconds": args.max_seconds,
        "max_tokens": args.max_tokens,
        "mode": args.mode,
        "exemplars_k": args.k,
    }
    if args.dataset:
        values["exemplar_dataset"] = args.dataset
    return RunConfig(**{k: v for k, v in values.items() if v is not None or k in PROVIDER_FIELDS})


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from aim_agent.cli.evaluations import progress
    from aim_agent.cli.sweep import engine_options
    from aim_agent.config import apply_plugins, config_from_args
    from aim_agent.eval.synthetic import markdown, run_eval

    if args.n is not None and args.n < 1:
        raise ValueError(f"--n must be 1 or more, got {args.n}")
    if args.seed < 0:
        raise ValueError(f"--seed must be 0 or more, got {args.seed}")
    engine = engine_options(args, one_in_process=True)
    settings = config_from_args(args)
    plugins = apply_plugins(settings)
    template = template_config(args, settings)
    backend = template.backend
    label = "offline" if backend.offline else f"{backend.provider}-{backend.model_name}"
    say = progress(args, "synthetic", quiet=args.quiet)  # on stderr, so with --json too (its JSON is on stdout)
    summary = run_eval(set_name=args.set_name, seed=args.seed, n=args.n, template=template, out_dir=args.out,
                       runs_root=Path(args.runs_dir or settings.runs_dir), backend_label=label,
                       workers=engine["workers"], address=engine["address"],
                       unit_timeout_s=engine["unit_timeout_s"], gpus_per_worker=engine["gpus_per_worker"],
                       plugins=plugins, progress=say, live=not args.quiet)
    failed = 1 if summary.unevaluated else 0  # a partial evaluation: the same command again completes it
    if args.json:
        print(json.dumps(summary.model_dump(mode="json"), indent=2))
        return failed
    out = Console(highlight=False, soft_wrap=True)
    text = markdown(summary)
    out.print(text.split("\n## Units")[0], markup=False)
    out.print(f"summary {Path(summary.eval_dir or '.') / 'summary.md'}", markup=False)
    out.print(f"index   {summary.index}", markup=False)
    return failed
