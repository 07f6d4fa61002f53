"""``aim eval predictive``: MAIA's predictive evaluation of unit labels (AIM, exemplar-only, dissection, random)."""

from __future__ import annotations

import argparse
from pathlib import Path

from aim_agent.cli.evaluations import finish, progress


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "predictive",
        help="MAIA's predictive evaluation: do images written from each method's label make the unit fire?",
        description="For each unit, every method labels it (AIM's interpret run, the exemplar-only baseline, the "
        "dissection reference, a random label); each label gives 7 positive and 7 neutral prompts; all prompts are "
        "pooled; for each label a selector picks the 7 it predicts most and least activating; the unit is measured "
        "on their images. Prints mean positive and neutral activation per layer and method (MAIA's Table A3) and "
        "writes result.json, table.md and page.html under --out. See docs/evaluation-maia.md.",
    )
    parser.add_argument("--model", default="world-cnn", help="model spec (default world-cnn)")
    parser.add_argument("--layer", dest="layers", action="append", metavar="LAYER",
                        help="a layer; repeat for several (default conv4 and conv5)")
    parser.add_argument("--units", type=int, nargs="+", metavar="U", help="units to evaluate on every layer "
                        "(default: --n random units that fire on the dataset)")
    parser.add_argument("--n", type=int, default=4, help="random units per layer when --units is not given (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the unit draw, random labels and images")
    parser.add_argument("--backend", default="offline", help="the scientist of the AIM runs (default offline)")
    parser.add_argument("--prompt-backend", default=None, metavar="BACKEND",
                        help="MAIA's prompt generator and selector: offline (the concept vocabularies) or a chat "
                        "model provider[:model] (default: the same as --backend, each request a fresh conversation)")
    parser.add_argument("--mode", choices=("code", "tools"), default="tools", help="experiment mode (default tools)")
    parser.add_argument("--max-rounds", type=int, default=None, help="rounds per AIM run (default the agent's)")
    parser.add_argument("--dataset", default=None, help="exemplar and dissection dataset (default world)")
    parser.add_argument("--out", type=Path, default=Path("runs/eval/predictive"), help="output folder")
    parser.add_argument("--json", action="store_true", help="print result.json instead of the table")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from aim_agent.eval import predictive

    if not 1 <= args.n <= 200:
        raise ValueError(f"--n must be between 1 and 200 units per layer, not {args.n}")
    from aim_agent.agent.backends import UsageMeter, summarize_usage

    layers = args.layers or ["conv4", "conv5"]
    writer = args.prompt_backend or args.backend
    meter = UsageMeter()
    units = predictive.evaluate_predictive(
        args.model, layers, units=args.units, n=args.n, seed=args.seed, backend=args.backend, mode=args.mode,
        max_rounds=args.max_rounds, dataset=args.dataset, runs_dir=args.out / "runs", prompt_backend=writer,
        meter=meter, progress=progress(args, "predictive"))
    usage = summarize_usage(meter.calls).model_dump() if meter.calls else None
    data = predictive.result_json(args.model, layers, args.seed, args.backend, units, writer, usage)
    return finish(args, data, predictive.markdown(data), predictive.page(data, units), table_ends="## Units")
