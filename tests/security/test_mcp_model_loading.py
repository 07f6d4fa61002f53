"""MCP clients choose among the models the operator offers: no paths, no modules, no pickles.

The review's chain: model code in the sandbox wrote a ``.pt`` file, then asked the loopback
MCP server for ``list_layers(model="<that file>")``, and the server unpickled it (code ran as
root). And ``module:factory`` let a client import and call anything (``os:abort`` killed the
server).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from aim_fake_plugin import ColorNet
from attacks import write_factory_module, write_pickle_bomb
from mcp import Client, StdioServerParameters
from mcp_http import AIM, FAKE, env

from aim_agent.config import load_config
from aim_agent.plugins import AimPlugins

pytestmark = pytest.mark.anyio


def _text(result) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


def _server(tmp_path: Path, **options):
    from aim_agent.mcp_server import ServerOptions, build_server

    plugins = AimPlugins()
    plugins.add_module("aim_fake_plugin", source="test")
    config = load_config({"text2image": "fake", "editor": "fake", "describer": "fake"}, env={}, cwd=tmp_path)
    return build_server(ServerOptions(config=config, plugins=plugins, runs_dir=tmp_path / "runs", **options))


async def test_a_pickle_the_sandbox_wrote_is_never_loaded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    bomb = write_pickle_bomb(tmp_path / "model.pt", marker)
    server = _server(tmp_path)
    async with Client(server) as client:
        calls = [
            ("list_layers", {"model": str(bomb)}),
            ("list_layers", {"model": "model.pt"}),  # relative to the server's directory
            ("load_system", {"model": str(bomb), "layer": "0", "unit": 0}),
            ("start_interpret", {"model": str(bomb), "layer": "0", "unit": 0, "backend": "offline"}),
        ]
        for name, arguments in calls:
            result = await client.call_tool(name, arguments)
            assert result.is_error, (name, _text(result))
            assert "not offered by this server" in _text(result) and "--trust-model" in _text(result)
        assert (await client.call_tool("list_models", {})).structured_content["configured"]["allowed"] == []
    assert not marker.exists()
    assert not any((tmp_path / "runs").glob("mcp-*"))  # no run was started (the folder itself is checked at start)


async def test_module_factory_specs_are_not_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    write_factory_module(tmp_path, "client_named_module", marker)
    monkeypatch.syspath_prepend(str(tmp_path))
    server = _server(tmp_path)
    async with Client(server) as client:
        for spec in ("client_named_module:build", "os:abort", "os:getcwd", "subprocess:getoutput"):
            result = await client.call_tool("list_layers", {"model": spec})
            assert result.is_error and "not offered" in _text(result), _text(result)
    assert not marker.exists() and "client_named_module" not in sys.modules


async def test_os_abort_does_not_kill_a_stdio_server(tmp_path):
    params = StdioServerParameters(command=AIM, args=FAKE, env=env(), cwd=str(tmp_path))
    async with Client(params) as client:
        for name, arguments in (("list_layers", {"model": "os:abort"}),
                                ("load_system", {"model": "os:abort", "layer": "x", "unit": 0})):
            result = await client.call_tool(name, arguments)
            assert result.is_error and "not offered" in _text(result)
        alive = await client.call_tool("list_layers", {"model": "fake-color"})  # still serving
        assert not alive.is_error, _text(alive)


async def test_what_the_operator_trusts_does_load(tmp_path, monkeypatch):
    """The control: a whole-module pickle and a factory load when the operator offered them."""
    torch.save(ColorNet().eval(), tmp_path / "color.pt")
    marker = tmp_path / "imported"
    write_factory_module(tmp_path, "operator_models", marker)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "aim.toml").write_text('[models.named]\nfactory = "operator_models:build"\n')
    from aim_agent.mcp_server import ServerOptions, build_server

    plugins = AimPlugins()
    plugins.add_module("aim_fake_plugin", source="test")
    server = build_server(ServerOptions(config=load_config(env={}, cwd=tmp_path), plugins=plugins,
                                        runs_dir=tmp_path / "runs",
                          trusted_models=[str(tmp_path / "color.pt")]))
    async with Client(server) as client:
        pickled = await client.call_tool("list_layers", {"model": str(tmp_path / "color.pt")})
        assert not pickled.is_error, _text(pickled)
        assert "relu" in [layer["name"] for layer in pickled.structured_content["layers"]]
        named = await client.call_tool("load_system", {"model": "factory", "layer": "0", "unit": 1})
        assert not named.is_error, _text(named)
        listed = (await client.call_tool("list_models", {})).structured_content["configured"]
        assert listed["named"] == {"factory": "operator_models:build"}
        assert str(tmp_path / "color.pt") in listed["allowed"]
    assert marker.exists()
    sys.modules.pop("operator_models", None)
