"""The single tool registry: core tools plus every plugin's tools."""

from __future__ import annotations

from aim_agent.tools.base import ToolSpec
from aim_agent.tools.core import CORE_TOOLS


def builtin_tools() -> list[ToolSpec]:
    """The tools that ship with the core: the experiment tools, then the circuit tools (attribute, ablate)."""
    from aim_agent.circuits.tools import CIRCUIT_TOOLS

    return [*CORE_TOOLS, *CIRCUIT_TOOLS]


def all_tools(plugins: object | None = None) -> list[ToolSpec]:
    """Built-in tools then plugin tools, in a stable order; two tools may not share a name."""
    from aim_agent.plugins import AimPlugins, plugin_manager

    manager = plugins if isinstance(plugins, AimPlugins) else plugin_manager()
    specs: dict[str, ToolSpec] = {}
    for spec in [*builtin_tools(), *manager.tools()]:
        if spec.name in specs and specs[spec.name] is not spec:
            raise ValueError(
                f"two tools are named {spec.name!r} (from {specs[spec.name].plugin} and {spec.plugin}); "
                "rename one of them"
            )
        specs[spec.name] = spec
    return list(specs.values())
