"""``aim photos eval classifier|hidden``: AIM on EfficientNet-Lite0 and the sample photos (see :mod:`.evaluation`)."""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any


def add_eval_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "eval", help="how right AIM is on EfficientNet-Lite0 units over the sample photos (classifier, hidden)",
        description="classifier: seeded random output units (each means its ImageNet class), scored strict/near/"
        "judge against three baselines. hidden: seeded random units of a block, interpreted on the discovery half "
        "and scored by MAIA's predictive evaluation on the held-out half (photos of classes under the label vs "
        "the rest), paired against the exemplar-only and most-correlated-tag labels with the sign test. Runs are "
        "kept in --runs-dir: the same command again reuses finished units.")
    parser.add_argument("what", choices=("classifier", "hidden"))
    parser.add_argument("--n", type=int, default=None, help="units (default 50 classifier, 30 hidden)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the unit draw")
    parser.add_argument("--layer", default="_blocks.14", help="hidden: the block (default _blocks.14)")
    parser.add_argument("--mode", choices=("code", "tools"), default="tools", help="experiment mode (default tools)")
    parser.add_argument("--max-rounds", type=int, default=6, help="rounds per unit (default 6)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/eval-photos"), help="where the runs go")
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from aim_agent.exemplars.dataset import default_cache_dir
    from aim_imagenet.evaluation import evaluate_classifier, evaluate_hidden

    say = (lambda _line: None) if args.quiet else (lambda line: print(f"aim photos eval: {line}", flush=True))
    cache = default_cache_dir() / "photo-eval"
    start = time.perf_counter()
    if args.what == "classifier":
        n = args.n or 50
        runs = args.runs_dir / f"classifier-s{args.seed}"
        result: Any = evaluate_classifier(n, args.seed, runs, cache, mode=args.mode, max_rounds=args.max_rounds,
                                          say=say)
        data = {"what": "classifier", "seed": args.seed, "n": n, "summary": result.summary(),
                "rows": [asdict(r) for r in result.rows]}
        print(classifier_table(data))
    else:
        n = args.n or 30
        runs = args.runs_dir / f"hidden-{args.layer.replace('.', '-')}-s{args.seed}"
        result = evaluate_hidden(args.layer, n, args.seed, runs, cache, mode=args.mode, max_rounds=args.max_rounds,
                                 say=say)
        data = {"what": "hidden", "layer": args.layer, "seed": args.seed, "n": n, "summary": result.summary(),
                "rows": [asdict(r) for r in result.rows]}
        print(hidden_table(data))
    data["seconds"] = round(time.perf_counter() - start, 1)
    print(f"{data['seconds']:.0f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(data, indent=1) + "\n")
        print(f"written {args.out}")
    return 0


def _fmt(value: float) -> str:
    return "n/a" if isinstance(value, float) and math.isnan(value) else f"{value:.2f}"


def classifier_table(data: dict[str, Any]) -> str:
    rows = data["rows"]
    lines = [f"classifier units of efficientnet-lite0, seed {data['seed']}, n={len(rows)}", "",
             "| method | strict | near | judge (similarity to the class name) | words per label |",
             "|---|---|---|---|---|"]
    for method, s in data["summary"].items():
        lines.append(f"| {method} | {_fmt(s['strict'])} | {_fmt(s['near'])} | {_fmt(s['judge'])} | {s['words']:.1f} |")
    forced = sum(r["forced"] for r in rows)
    lines.append(f"\nAIM runs forced by a budget: {forced} of {len(rows)}")
    return "\n".join(lines)


def hidden_table(data: dict[str, Any]) -> str:
    s = data["summary"]
    lines = [f"hidden units of efficientnet-lite0 {data['layer']}, seed {data['seed']}, n={len(data['rows'])}: "
             "held-out predictive AUC (photos of classes under the label vs the rest)", "",
             "| method | mean held-out AUC | median words per label |", "|---|---|---|"]
    for method in ("aim", "exemplar_only", "most_correlated"):
        lines.append(f"| {method} | {s[method]['mean_auc']:.3f} | {s[method]['median_words']:.0f} |")
    lines.append("")
    for other in ("exemplar_only", "most_correlated"):
        c = s[f"aim_vs_{other}"]
        p = c["sign_test_p"]
        lines.append(f"AIM vs {other}: {c['wins']} wins, {c['losses']} losses, {c['ties']} ties; sign test p = "
                     f"{'n/a' if p is None else f'{p:.4f}'}")
    lines.append(f"AIM runs forced by a budget: {s['forced']} of {len(data['rows'])}")
    return "\n".join(lines)
