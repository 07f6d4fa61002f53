"""``aim eval spurious``: MAIA's spurious-feature removal (Table 2) on a model with a spurious correlation."""

from __future__ import annotations

import argparse
from pathlib import Path

from aim_agent.cli.evaluations import LIMIT, add_task_backend, finish, progress, task_scientist


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "spurious",
        help="MAIA's spurious-feature removal: keep the units a scientist finds SELECTIVE, refit, test under shift",
        description="ℓ1 picks the 50 most informative final-layer units on an unbalanced validation set; the "
        "scientist classifies each SELECTIVE or SPURIOUS using training-domain images only; logistic regression "
        "on the kept units is tested on the shifted test set, next to the original model, ℓ1 top-50, random "
        "subsets, ℓ1 at matched sparsity, the exemplar-only baseline and ℓ1 on a small balanced set. Writes "
        "result.json, table.md and page.html under --out. See docs/evaluation-maia.md.",
    )
    parser.add_argument("--model", default=None, help="model of an installed spurious task (default the world's)")
    parser.add_argument("--n-validation", type=int, default=1200, help="unbalanced validation images (default 1200)")
    parser.add_argument("--n-test", type=int, default=800, help="shifted test images (default 800)")
    parser.add_argument("--n-balanced", type=int, default=160, help="balanced-set images (default 160)")
    parser.add_argument("--top", type=int, default=50, help="units ℓ1 selects for the scientist (default 50)")
    parser.add_argument("--draws", type=int, default=100, help="random subsets drawn (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the images, fits and draws")
    parser.add_argument("--out", type=Path, default=Path("runs/eval/spurious"), help="output folder")
    parser.add_argument("--json", action="store_true", help="print result.json instead of the table")
    add_task_backend(parser)
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from aim_agent.eval import spurious

    for name in ("n_validation", "n_test", "n_balanced", "top", "draws"):
        if not 1 <= getattr(args, name) <= LIMIT:
            raise ValueError(f"--{name.replace('_', '-')} must be between 1 and {LIMIT}, not {getattr(args, name)}")
    say = progress(args, "spurious")
    data = spurious.evaluate_spurious(model=args.model, n_validation=args.n_validation, n_test=args.n_test,
                                      n_balanced=args.n_balanced, top=args.top, seed=args.seed,
                                      backend=args.backend, draws=args.draws, progress=say,
                                      scientist=task_scientist(args, say))
    page = spurious.page(data)
    data.pop("_verdicts")
    return finish(args, data, spurious.markdown(data), page, table_ends="## Units")
