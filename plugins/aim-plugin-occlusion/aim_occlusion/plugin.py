"""The plugin module named by the entry point: one function per AIM hook it implements."""

from __future__ import annotations

from typing import Any

from aim_agent.hookspecs import hookimpl


@hookimpl
def aim_tools() -> list[Any]:
    from aim_occlusion.occlusion import occlusion_map

    return [occlusion_map]
