"""``aim bench NAME [--json]``: run a benchmark: a module of ``aim_agent.benchmarks``, or one a plugin
registers (hook ``aim_benchmarks``: objects with ``name``, ``add_arguments`` and ``run``)."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
from typing import Any

import aim_agent.benchmarks as benchmarks
from aim_agent.cli import COMMANDS, add_missing_placeholders
from aim_agent.plugins import plugin_manager


def _names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if not m.name.startswith("_"))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("bench", help=COMMANDS["bench"])
    bench_sub = parser.add_subparsers(dest="bench", metavar="BENCHMARK")
    found: dict[str, Any] = {name: importlib.import_module(f"aim_agent.benchmarks.{name}") for name in _names()}
    for bench in plugin_manager().benchmarks():
        found.setdefault(bench.name, bench)
    for name, module in sorted(found.items()):
        p = bench_sub.add_parser(name, help=(module.__doc__ or name).strip().splitlines()[0])
        p.add_argument("--json", action="store_true", help="print one JSON object")
        module.add_arguments(p)
        p.set_defaults(func=lambda args, m=module: _run(m, args))
    add_missing_placeholders(bench_sub, "benchmark", "aim bench {}")


def _run(module: object, args: argparse.Namespace) -> int:
    result = module.run(args)  # type: ignore[attr-defined]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>32}: {value}")
    return 0
