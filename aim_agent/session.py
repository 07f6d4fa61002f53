"""Wiring a session: pick providers by name and build the :class:`ToolContext` tools run in."""

from __future__ import annotations

from pathlib import Path

from aim_agent.config import DEFAULTS
from aim_agent.images import DEFAULT_STORE
from aim_agent.log import ExperimentLog
from aim_agent.plugins import plugin_manager
from aim_agent.system import System
from aim_agent.tools.base import ToolContext, Tools
from aim_agent.tools.registry import all_tools


def make_context(
    system: System | None = None,
    *,
    text2image: str | None = DEFAULTS["text2image"],
    editor: str | None = DEFAULTS["editor"],
    describer: str | None = DEFAULTS["describer"],
    log_dir: Path | None = None,
    image_size: int = DEFAULTS["image_size"],
    seed: int = DEFAULTS["seed"],
    exemplar_dataset: str | None = DEFAULTS["exemplar_dataset"],
) -> ToolContext:
    """A ToolContext with the named providers (None leaves a primitive unavailable).

    For scripts and notebooks: it works in the process's default image store, so
    ``system.neuron(images)`` called directly sees the scenes of images the tools made.
    (Runs and MCP sessions each get a store of their own instead.)
    """
    pm = plugin_manager()
    return ToolContext(
        images=DEFAULT_STORE,
        system=system,
        text2image=pm.provider("text2image", text2image) if text2image else None,
        editor=pm.provider("editor", editor) if editor else None,
        describer=pm.provider("describer", describer) if describer else None,
        log=ExperimentLog(log_dir),
        image_size=image_size,
        seed=seed,
        exemplar_dataset=exemplar_dataset or None,
    )


def make_tools(ctx: ToolContext) -> Tools:
    """The ``tools`` object for code mode, over every registered tool."""
    return Tools(ctx, all_tools())
