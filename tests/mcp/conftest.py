"""Fixtures for the MCP server tests. The fakes live in ``aim_fake_plugin`` (also a real plugin module)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import aim_fake_plugin  # noqa: E402

from aim_agent.system import System  # noqa: E402


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fakes() -> SimpleNamespace:
    """The fake classes, for tests that build their own server."""
    return SimpleNamespace(
        module=aim_fake_plugin,
        **{
            name: getattr(aim_fake_plugin, name)
            for name in (
                "ColorProbe",
                "FakeTextToImage",
                "FakeEditor",
                "FakeDescriber",
                "FakeLoader",
                "fake_context",
                "draw",
            )
        },
    )


@pytest.fixture
def fake_server(tmp_path):
    """An AIM MCP server over the fakes: every session starts with red unit 0 of the colour probe."""
    from aim_agent.mcp_server import ServerOptions, build_server

    return build_server(ServerOptions(
        context_factory=lambda: aim_fake_plugin.fake_context(System(aim_fake_plugin.ColorProbe(), 0)),
        runs_dir=tmp_path / "runs",
        progress_interval=0.05,
    ))
