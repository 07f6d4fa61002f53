"""``aim eval ...``: measure how true AIM's descriptions are.

Each evaluation is a module ``aim_agent.cli.eval_<name>`` with ``register(subparsers)``, which
adds ``aim eval <name>``; this group finds them, so evaluations are added without touching it.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil

import aim_agent.cli as cli_package

PREFIX = "eval_"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("eval", help="measure the agent: score its descriptions against known answers")
    eval_sub = parser.add_subparsers(dest="eval_command", metavar="EVALUATION")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
    for info in sorted(pkgutil.iter_modules(cli_package.__path__), key=lambda m: m.name):
        if info.name.startswith(PREFIX):
            importlib.import_module(f"aim_agent.cli.{info.name}").register(eval_sub)
