"""``aim plugins``: installed plugins, where each came from, their providers (which is active), tools."""

from __future__ import annotations

import argparse
import json
from typing import Any

from aim_agent.cli import COMMANDS
from aim_agent.config import PROVIDER_FIELDS, AimConfig, add_provider_arguments, apply_plugins, config_from_args
from aim_agent.plugins import DISABLE_ENV

CORE = "aim_agent"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "plugins",
        help=COMMANDS["plugins"],
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_provider_arguments(parser)
    parser.set_defaults(func=run)


def _call(impl: Any) -> list[Any]:
    try:
        return list(impl.function() or [])
    except Exception as exc:  # a broken plugin is reported, not fatal
        return [_Broken(exc)]


class _Broken:
    def __init__(self, exc: Exception) -> None:
        self.name = f"<error: {type(exc).__name__}: {exc}>"


def _entry(name: str, module: str, source: str) -> dict[str, Any]:
    """One plugin's row of the inventory, before its providers, tools and loaders are filled in."""
    return {"name": name, "module": module, "source": source, "providers": {}, "tools": [], "model_loaders": [],
            "commands": [], "benchmarks": []}


def inventory(config: AimConfig, manager: Any | None = None) -> dict[str, Any]:
    """Everything ``aim plugins`` shows, as plain data."""
    from aim_agent.plugins import PROVIDER_KINDS, _name_of, plugin_manager
    from aim_agent.tools.registry import builtin_tools

    manager = manager or plugin_manager()
    pm = manager.pm
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    plugins: dict[str, dict[str, Any]] = {}
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        dist = dists.get(id(plugin))
        if dist is not None:
            source = f"entry point aim_agent:{name} ({dist.project_name} {dist.version})"
        elif name in manager.module_sources:
            source = manager.module_sources[name]
        elif getattr(plugin, "__name__", "").startswith("aim_agent."):
            source = "built into aim-agent"
        else:
            source = "registered in code"
        plugins[name] = _entry(name, getattr(plugin, "__name__", type(plugin).__name__), source)

    def plugin_entry(impl: Any) -> dict[str, Any]:
        return plugins.setdefault(impl.plugin_name, _entry(impl.plugin_name, "", "registered in code"))

    providers: dict[str, dict[str, Any]] = {}
    for kind, hook in PROVIDER_KINDS.items():
        names: list[dict[str, str]] = []
        for impl in reversed(getattr(pm.hook, hook).get_hookimpls()):  # registration order
            found = [_name_of(p) for p in _call(impl)]
            plugin_entry(impl)["providers"].setdefault(kind, []).extend(found)
            names += [{"name": n, "plugin": impl.plugin_name} for n in found]
        active = config.provider(kind) if kind in PROVIDER_FIELDS else None
        providers[kind] = {
            "installed": names,
            "active": active,
            "active_from": config.describe_source(kind) if kind in PROVIDER_FIELDS else None,
            "active_installed": active is None or any(n["name"] == active for n in names),
        }
    for impl in reversed(pm.hook.aim_tools.get_hookimpls()):
        plugin_entry(impl)["tools"].extend(getattr(t, "name", str(t)) for t in _call(impl))
    for impl in reversed(pm.hook.aim_model_loaders.get_hookimpls()):
        plugin_entry(impl)["model_loaders"].extend(_name_of(lo) for lo in _call(impl))
    for impl in reversed(pm.hook.aim_cli_commands.get_hookimpls()):
        plugin_entry(impl)["commands"].extend(_name_of(c) for c in _call(impl))
    for impl in reversed(pm.hook.aim_benchmarks.get_hookimpls()):
        plugin_entry(impl)["benchmarks"].extend(_name_of(b) for b in _call(impl))
    return {
        "config_file": str(config.file) if config.file else None,
        "disabled": list(manager.disabled),
        "plugins": list(plugins.values()),
        "providers": providers,
        "core_tools": [spec.name for spec in builtin_tools()],
    }


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    apply_plugins(config)
    data = inventory(config)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"configuration file: {data['config_file'] or 'none (see docs/plugins.md)'}")
    print("\nplugins:")
    for plugin in data["plugins"]:
        print(f"  {plugin['name']:<16} {plugin['source']}")
        if plugin["module"]:
            print(f"  {'':<16} module {plugin['module']}")
        for kind, names in plugin["providers"].items():
            print(f"  {'':<16} {kind}: {', '.join(names)}")
        if plugin["model_loaders"]:
            print(f"  {'':<16} model loaders: {', '.join(plugin['model_loaders'])}")
        if plugin["tools"]:
            print(f"  {'':<16} tools: {', '.join(plugin['tools'])}")
        if plugin["commands"] or plugin["benchmarks"]:
            commands = [f"aim {c}" for c in plugin["commands"]] + [f"aim bench {b}" for b in plugin["benchmarks"]]
            print(f"  {'':<16} commands: {', '.join(commands)}")
    for name in data["disabled"]:
        print(f"  {name:<16} disabled by {DISABLE_ENV}")
    print("\nproviders (* = active):")
    for kind, info in data["providers"].items():
        names = [
            ("*" if n["name"] == info["active"] else " ") + f"{n['name']} ({n['plugin']})" for n in info["installed"]
        ]
        line = f"  {kind:<11} {'  '.join(names) or '(none installed)'}"
        if kind in PROVIDER_FIELDS:
            active = info["active"] or "off"
            line += f"\n  {'':<11} active: {active}, from {info['active_from']}"
            if not info["active_installed"]:
                line += "  -- NOT INSTALLED: install its plugin or choose another"
        print(line)
    print(f"\ncore tools ({CORE}): {', '.join(data['core_tools'])}")
    return 0
