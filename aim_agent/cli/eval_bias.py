"""``aim eval bias``: MAIA's bias discovery on a classifier with planted biases, scored by recall and precision."""

from __future__ import annotations

import argparse
from pathlib import Path

from aim_agent.cli.evaluations import LIMIT, add_task_backend, finish, progress, task_scientist


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "bias",
        help="MAIA's bias discovery: find contexts where each class is under-recognised; score against planted biases",
        description="Each class probability of the planted-bias classifier is a unit; the scientist varies "
        "contexts (backgrounds, colours, companion objects) and reports where the class is under-recognised. "
        "Only then are the planted biases read: recall of those the model learned, precision of the found ones, "
        "and the unplanted ones listed separately. Writes result.json, table.md and page.html under --out. "
        "See docs/evaluation-maia.md.",
    )
    parser.add_argument("--model", default=None, help="model of an installed bias task (default the world's)")
    parser.add_argument("--classes", nargs="+", metavar="CLASS", help="classes to search (default all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the images")
    parser.add_argument("--n-exemplar-pool", type=int, default=1000, dest="exemplar_pool", metavar="N",
                        help="unbiased test images each class's exemplars are the top of (default 1000)")
    parser.add_argument("--out", type=Path, default=Path("runs/eval/bias"), help="output folder")
    parser.add_argument("--json", action="store_true", help="print result.json instead of the tables")
    add_task_backend(parser)
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from aim_agent.eval import bias

    if not 1 <= args.exemplar_pool <= LIMIT:
        raise ValueError(f"--n-exemplar-pool must be between 1 and {LIMIT}, not {args.exemplar_pool}")
    say = progress(args, "bias")
    data = bias.evaluate_bias(model=args.model, classes=args.classes, seed=args.seed, backend=args.backend,
                              exemplar_pool=args.exemplar_pool, progress=say, scientist=task_scientist(args, say))
    page = bias.page(data)
    data.pop("_answers")
    data.pop("_exemplars")
    return finish(args, data, bias.markdown(data), page, table_ends="## Suppressing")
