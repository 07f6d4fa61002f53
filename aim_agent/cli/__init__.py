"""The ``aim`` command line. Each command group lives in its own module of this package.

A module listed in :data:`COMMANDS` exposes ``register(subparsers)``, which adds its
sub-command(s) and sets ``func`` on each parser to a function ``func(args) -> int``. Plugins
add commands the same way (hook ``aim_cli_commands``: objects with ``name`` and ``register``, and
optionally ``help``, the one-line help ``aim --help`` shows without calling ``register``);
a well-known plugin command whose plugin is absent (``aim world`` without the world plugin)
answers with an error naming that plugin.

``aim NAME ...`` builds NAME's parser only (importing one command module, not all of them);
``aim`` and ``aim --help`` list every command from :data:`COMMANDS` and the plugins' names.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import Any

#: the core commands, in ``--help`` order, with their one-line help: ``aim --help`` lists them from here
#: without importing their modules (``aim_agent/cli/NAME.py``, which import torch, mcp, rich, ...)
COMMANDS: dict[str, str] = {
    "layers": "list a model's probe-able layers (kind, output shape, units); without MODEL, the named models",
    "exemplars": "top-activating dataset images and thresholds for every unit of a layer (cached, resumable)",
    "sae": "sparse autoencoders over a layer (their latents are units)",
    "interpret": "explain what a unit detects: a VLM (or the offline scientist) runs experiments on it",
    "circuit": "find the upstream units that drive a unit, interpret each, verify each edge by ablation",
    "dissect": "label every unit of a layer by the concept whose exact masks best match where it fires",
    "eval": "evaluate the agent: synthetic, units, predictive, spurious, bias",
    "sweep": "interpret many units (a whole layer) as Ray jobs: resumable, with a sortable index.html",
    "demo": "run the offline scientist on one unit of the world CNN and write an HTML report (no network)",
    "mcp": "serve AIM's experiment tools to MCP clients (stdio, or --http)",
    "plugins": "list installed plugins, their providers and tools, and which providers are active",
    "bench": "measure speed: prints numbers and ratios measured in one run",
}


def _root_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction[argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="aim", description="AIM: a VLM agent that runs interpretability experiments on vision models."
    )
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="load an extra plugin module (repeatable)")
    return parser, parser.add_subparsers(dest="command", metavar="COMMAND")


def _register_plugin_command(sub: argparse._SubParsersAction[argparse.ArgumentParser], command: Any) -> None:
    if command.name in sub.choices:
        print(f"aim: warning: a plugin's command {command.name!r} clashes with an existing one; skipped",
              file=sys.stderr)
        return
    try:
        command.register(sub)
    except Exception as exc:  # a broken plugin must not take the other commands down
        print(f"aim: warning: the plugin command {command.name!r} could not be added: {exc}", file=sys.stderr)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole ``aim`` parser; with ``only`` (a command's name), that command's parser alone.

    Each command module imports what it needs (torch, rich, mcp, ...), so building them all costs
    seconds; :func:`main` builds only the command it runs (a plugin's command: only that one of
    the plugins' commands), and ``aim --help`` uses :func:`summary_parser`. An ``only`` that no
    core or plugin command has gives the whole parser.
    """
    from aim_agent.plugins import plugin_manager

    parser, sub = _root_parser()
    if only in COMMANDS:
        importlib.import_module(f"aim_agent.cli.{only}").register(sub)
        return parser
    commands = plugin_manager().cli_commands()
    if only is not None and any(c.name == only for c in commands):
        _register_plugin_command(sub, next(c for c in commands if c.name == only))
        return parser
    for name in COMMANDS:
        importlib.import_module(f"aim_agent.cli.{name}").register(sub)
    for command in commands:
        _register_plugin_command(sub, command)
    add_missing_placeholders(sub, "command", "aim {}")
    return parser


def summary_parser() -> argparse.ArgumentParser:
    """The ``aim`` parser with every command's name and one-line help, and none of their arguments.

    For ``aim``, ``aim --help`` and an unknown command (argparse lists the valid ones): no command
    module is imported. A plugin command gives its one-line help as a ``help`` attribute; one
    without it is registered into a scratch parser to read the help back (its module is imported).
    """
    from aim_agent.plugins import plugin_manager

    parser, sub = _root_parser()
    for name, help_text in COMMANDS.items():
        sub.add_parser(name, help=help_text)
    for command in plugin_manager().cli_commands():
        if command.name in sub.choices:
            print(f"aim: warning: a plugin's command {command.name!r} clashes with an existing one; skipped",
                  file=sys.stderr)
            continue
        plugin_help: str | None = getattr(command, "help", None)
        if plugin_help is None:
            _, scratch = _root_parser()
            _register_plugin_command(scratch, command)
            if command.name not in scratch.choices:
                continue
            plugin_help = next((a.help for a in scratch._choices_actions if a.dest == command.name), None)
        sub.add_parser(command.name, help=plugin_help)
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


def _is_plugin_command(name: str) -> bool:
    from aim_agent.plugins import plugin_manager

    return any(c.name == name for c in plugin_manager().cli_commands())


#: the words of the command line :func:`main` is parsing (a command may build less from them: ``aim bench
#: NAME`` imports only the benchmark NAME)
ARGV: list[str] = []


def main(argv: list[str] | None = None) -> int:
    try:
        _preload_plugins(argv)
    except ImportError as exc:
        print(f"aim: error: {exc}", file=sys.stderr)
        return 2
    words = sys.argv[1:] if argv is None else argv
    ARGV[:] = words
    # the command word, when nothing before it takes a value (only --plugin MODULE does)
    at = next((i for i, (w, before) in enumerate(zip(words, [None, *words], strict=False))
               if not w.startswith("-") and before != "--plugin"), None)
    first = None if at is None else words[at]
    # `aim --help interpret` is the list of commands, like `aim --help`
    asks_help = at is not None and any(w in ("-h", "--help") for w in words[:at])
    known = first is not None and not asks_help and (first in COMMANDS or _is_plugin_command(first))
    parser = build_parser(only=first) if known else summary_parser()
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
