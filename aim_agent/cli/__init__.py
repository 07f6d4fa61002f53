"""The ``aim`` command line. Each command group lives in its own module of this package.

A module listed in :data:`COMMANDS` exposes ``register(subparsers)``, which adds its
sub-command(s) and sets ``func`` on each parser to a function ``func(args) -> int``. Plugins
add commands the same way (hook ``aim_cli_commands``: objects with ``name`` and ``register``);
a well-known plugin command whose plugin is absent (``aim world`` without the world plugin)
answers with an error naming that plugin.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import Any

COMMANDS = ["layers", "exemplars", "sae", "interpret", "circuit", "dissect", "eval", "sweep", "demo", "mcp", "plugins",
            "bench"]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole ``aim`` parser; with ``only`` (a core command), that command's parser alone.

    Each command module imports what it needs (torch, rich, ...), so building them all costs
    seconds; ``aim mcp`` is started by clients for every session and builds only its own.
    """
    from aim_agent.plugins import plugin_manager

    parser = argparse.ArgumentParser(
        prog="aim", description="AIM: a VLM agent that runs interpretability experiments on vision models."
    )
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="load an extra plugin module (repeatable)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in [only] if only in COMMANDS else COMMANDS:
        importlib.import_module(f"aim_agent.cli.{name}").register(sub)
    if only in COMMANDS:
        return parser
    for command in plugin_manager().cli_commands():
        if command.name in sub.choices:
            print(f"aim: warning: a plugin's command {command.name!r} clashes with an existing one; skipped",
                  file=sys.stderr)
            continue
        try:
            command.register(sub)
        except Exception as exc:  # a broken plugin must not take the other commands down
            print(f"aim: warning: the plugin command {command.name!r} could not be added: {exc}", file=sys.stderr)
    add_missing_placeholders(sub, "command", "aim {}")
    return parser


def add_missing_placeholders(sub: argparse._SubParsersAction[argparse.ArgumentParser], kind: str, label: str) -> None:
    """Parsers for well-known plugin commands (``kind``) that no loaded plugin registered.

    They are not listed in ``--help``, accept any arguments, and fail with an error that names
    the plugin and says why it is absent (:class:`aim_agent.plugins.MissingPlugin`).
    """
    from aim_agent.plugins import PROVIDED_BY

    for (provided, name), plugin in PROVIDED_BY.items():
        if provided != kind or name in sub.choices:
            continue
        # no help=: hidden from the command list; prefix_chars that never occur: "--help" is an argument too
        parser = sub.add_parser(name, add_help=False, prefix_chars="\x00")
        parser.add_argument("arguments", nargs=argparse.REMAINDER)
        parser.set_defaults(func=_needs_plugin(plugin, f"`{label.format(name)}`"))


def _needs_plugin(plugin: str, what: str) -> Callable[[Any], int]:
    def fail(args: Any) -> int:
        from aim_agent.plugins import MissingPlugin, plugin_manager

        plugin_manager().require(plugin, what)
        raise MissingPlugin(f"{what}: the {plugin} plugin is loaded but offers no such command (see `aim plugins`)")

    return fail


def _preload_plugins(argv: list[str] | None) -> list[str]:
    """``--plugin`` modules, registered before the parser is built so that their commands exist."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--plugin", action="append", default=[])
    known, _ = pre.parse_known_args(argv)
    if known.plugin:
        from aim_agent.plugins import plugin_manager

        for module in known.plugin:
            plugin_manager().add_module(module)
    return list(known.plugin)


def main(argv: list[str] | None = None) -> int:
    try:
        _preload_plugins(argv)
    except ImportError as exc:
        print(f"aim: error: {exc}", file=sys.stderr)
        return 2
    words = sys.argv[1:] if argv is None else argv
    # the command word, when nothing before it takes a value (only --plugin MODULE does)
    first = next((w for w, before in zip(words, [None, *words], strict=False)
                  if not w.startswith("-") and before != "--plugin"), None)
    parser = build_parser(only="mcp" if first == "mcp" else None)
    args = parser.parse_args(argv)
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
