"""``aim plugins``: plugins with their source, providers per kind with the active one, tools per plugin."""

from __future__ import annotations

import sys
import textwrap

import pytest

from aim_agent.cli.plugins import inventory
from aim_agent.config import load_config
from aim_agent.plugins import AimPlugins

PLUGIN = '''
from aim_agent.hookspecs import hookimpl
from aim_agent.tools.base import ToolContext, ToolInput, ToolOutput, tool


class NoInput(ToolInput):
    pass


class Answer(ToolOutput):
    value: int


@tool()
def forty_two(ctx: ToolContext, args: NoInput) -> Answer:
    """Answers 42."""
    return Answer(value=42)


class Painter:
    name = "painter"

    def generate(self, prompts, *, size=224, seed=0):
        return []


@hookimpl
def aim_tools():
    return [forty_two]


@hookimpl
def aim_text2image():
    return [Painter]


class Hello:
    name = "hello"

    def register(self, subparsers):
        parser = subparsers.add_parser("hello", help="say hello")
        parser.add_argument("--to", default="world")
        parser.set_defaults(func=lambda args: print(f"hello {args.to}") or 0)


class Count:
    """Counts to three."""

    name = "count"

    def add_arguments(self, parser):
        parser.add_argument("--to", type=int, default=3)

    def run(self, args):
        return {"counted": list(range(1, args.to + 1))}


@hookimpl
def aim_cli_commands():
    return [Hello()]


@hookimpl
def aim_benchmarks():
    return [Count()]
'''


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    (tmp_path / "aim_cli_test_plugin.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "aim_cli_test_plugin"
    sys.modules.pop("aim_cli_test_plugin", None)


def test_inventory_shows_sources_providers_and_tools(plugin_module, tmp_path):
    manager = AimPlugins()
    manager.add_module(plugin_module)  # as --plugin does
    config = load_config({"text2image": "painter"}, env={"AIM_EDITOR": "missing-editor"}, cwd=tmp_path)
    data = inventory(config, manager)
    plugins = {p["name"]: p for p in data["plugins"]}
    assert plugins[plugin_module]["source"] == "--plugin"
    assert plugins[plugin_module]["tools"] == ["forty_two"]
    assert plugins[plugin_module]["providers"] == {"text2image": ["painter"]}
    assert plugins["world"]["source"].startswith("entry point aim_agent:world (aim-agent ")
    assert plugins["world"]["providers"]["text2image"] == ["world"]
    assert plugins["aim_agent.models.builtin_plugin"]["source"] == "built into aim-agent"

    t2i = data["providers"]["text2image"]
    assert {"name": "painter", "plugin": plugin_module} in t2i["installed"]
    assert t2i["active"] == "painter" and t2i["active_from"] == "command line" and t2i["active_installed"]
    editor = data["providers"]["editor"]
    assert editor["active"] == "missing-editor" and editor["active_from"] == "environment AIM_EDITOR"
    assert not editor["active_installed"]
    assert data["providers"]["describer"]["active"] == "world"
    assert data["providers"]["describer"]["active_from"] == "default"
    assert "neuron" in data["core_tools"]


def test_text_output(plugin_module, tmp_path, monkeypatch, capsys):
    from aim_agent.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AIM_EDITOR", "missing-editor")
    monkeypatch.delenv("AIM_CONFIG", raising=False)
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "world" in out and "*world (world)" in out
    assert "active: missing-editor, from environment AIM_EDITOR" in out and "NOT INSTALLED" in out


def test_a_plugin_adds_commands_and_benchmarks(plugin_module, capsys):
    from aim_agent.cli import main
    from aim_agent.plugins import plugin_manager

    try:
        assert main(["--plugin", plugin_module, "hello", "--to", "you"]) == 0  # --plugin is read before parsing
        assert capsys.readouterr().out == "hello you\n"
        assert main(["--plugin", plugin_module, "bench", "count", "--to", "2", "--json"]) == 0
        assert '"counted": [' in capsys.readouterr().out
        assert main(["--plugin", plugin_module, "plugins"]) == 0
        assert "commands: aim hello, aim bench count" in capsys.readouterr().out
    finally:
        plugin_manager().pm.unregister(name=plugin_module)
