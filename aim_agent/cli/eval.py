"""``aim eval ...``: evaluations of the agent against references.

Each evaluation is a module ``aim_agent/cli/eval_<name>.py`` with ``register(subparsers)``, which adds
``aim eval <name>``; this module only gathers them, so evaluations are added without editing it.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil

import aim_agent.cli


def evaluation_modules() -> list[str]:
    """The ``eval_*`` modules of this package, in name order."""
    return sorted(m.name for m in pkgutil.iter_modules(aim_agent.cli.__path__) if m.name.startswith("eval_"))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("eval", help=aim_agent.cli.COMMANDS["eval"])
    evals = parser.add_subparsers(dest="eval_command", metavar="EVALUATION")
    def usage(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=usage)
    for name in evaluation_modules():
        importlib.import_module(f"aim_agent.cli.{name}").register(evals)
