"""``aim bench NAME [--json]``: run a benchmark module from ``aim_agent.benchmarks``."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil

import aim_agent.benchmarks as benchmarks


def _names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if not m.name.startswith("_"))


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="measure speed: prints numbers and ratios measured in one run")
    bench_sub = parser.add_subparsers(dest="bench", metavar="BENCHMARK")
    for name in _names():
        module = importlib.import_module(f"aim_agent.benchmarks.{name}")
        p = bench_sub.add_parser(name, help=(module.__doc__ or name).strip().splitlines()[0])
        p.add_argument("--json", action="store_true", help="print one JSON object")
        module.add_arguments(p)
        p.set_defaults(func=lambda args, m=module: _run(m, args))


def _run(module: object, args: argparse.Namespace) -> int:
    result = module.run(args)  # type: ignore[attr-defined]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>32}: {value}")
    return 0
