"""The ``aim`` command line. Each command group lives in its own module of this package.

A module listed in :data:`COMMANDS` exposes ``register(subparsers)``, which adds its
sub-command(s) and sets ``func`` on each parser to a function ``func(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ["layers", "exemplars", "sae", "world", "interpret", "demo", "mcp", "plugins", "bench"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aim", description="AIM: a VLM agent that runs interpretability experiments on vision models."
    )
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="load an extra plugin module (repeatable)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"aim_agent.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"aim_agent.cli.{name}":
                continue  # command not built in this checkout
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.plugin:
        from aim_agent.plugins import plugin_manager

        for module in args.plugin:
            plugin_manager().add_module(module)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, LookupError, FileNotFoundError, PermissionError) as exc:
        # Errors a user can act on: show the message, not a traceback.
        print(f"aim: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
