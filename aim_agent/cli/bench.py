"""``aim bench NAME [--json]``: run a benchmark: a module of ``aim_agent.benchmarks``, or one a plugin
registers (hook ``aim_benchmarks``: objects with ``name``, ``add_arguments`` and ``run``).

Only the benchmark named on the command line is imported (its one-line help, for ``aim bench --help``,
is read from each module's docstring without importing it): ``aim bench sweep`` does not import the
MCP or SAE benchmarks.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import pkgutil
import sys
from pathlib import Path
from typing import Any

import aim_agent.benchmarks as benchmarks
from aim_agent.cli import ARGV, COMMANDS, add_missing_placeholders
from aim_agent.plugins import plugin_manager


def _names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if not m.name.startswith("_"))


def _first_doc_line(name: str) -> str:
    """The first line of a core benchmark module's docstring, read from its file without importing it."""
    path = Path(benchmarks.__path__[0]) / f"{name}.py"
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    except (OSError, SyntaxError, ValueError):
        doc = None
    return (doc or name).strip().splitlines()[0]


def _wanted(argv: list[str]) -> str | None:
    """The benchmark an ``aim ... bench NAME ...`` command line names (None: none, or only options)."""
    if "bench" not in argv:
        return None
    after = argv[argv.index("bench") + 1 :]
    return next((a for a in after if not a.startswith("-")), None)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("bench", help=COMMANDS["bench"])
    bench_sub = parser.add_subparsers(dest="bench", metavar="BENCHMARK")
    wanted = _wanted(ARGV or sys.argv[1:])
    found: dict[str, Any] = {name: None for name in _names()}  # a core module: imported only when it runs
    for bench in plugin_manager().benchmarks():
        found.setdefault(bench.name, bench)
    for name, module in sorted(found.items()):
        if module is None and name == wanted:
            module = importlib.import_module(f"aim_agent.benchmarks.{name}")
        text = _first_doc_line(name) if module is None else (module.__doc__ or name).strip().splitlines()[0]
        p = bench_sub.add_parser(name, help=text)
        if module is None:  # not the one asked for: listed with its help, never parsed
            continue
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
