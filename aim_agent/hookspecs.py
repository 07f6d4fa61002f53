"""The plugin contract: what a plugin can add to AIM (pluggy hook specifications).

A plugin is a module (or object) with functions named like the specs below, decorated with
:data:`hookimpl`. It is found through the ``aim_agent`` entry-point group, or given with
``--plugin module`` on the command line. Every hook returns a list, so one plugin can add
several things.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from aim_agent.models.base import ModelLoader
    from aim_agent.tools.base import ToolSpec

PROJECT = "aim_agent"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def aim_tools() -> list[ToolSpec]:
    """Experiment tools (see ``aim_agent.tools.base.tool``) this plugin adds."""


@hookspec
def aim_model_loaders() -> list[ModelLoader]:
    """Model loaders (``aim_agent.models.base.ModelLoader``)."""


@hookspec
def aim_text2image() -> list[Any]:
    """Text-to-image providers (``aim_agent.providers.TextToImage``), or factories returning one."""


@hookspec
def aim_image_editors() -> list[Any]:
    """Image editors (``aim_agent.providers.ImageEditor``), or factories returning one."""


@hookspec
def aim_describers() -> list[Any]:
    """Describers/summarizers (``aim_agent.providers.Describer``), or factories returning one."""


@hookspec
def aim_vlm_backends() -> list[Any]:
    """VLM backends: objects with ``name`` and ``make(config) -> BaseChatModel``."""


@hookspec
def aim_datasets() -> list[Any]:
    """Image datasets: objects with ``name`` and ``materialize(root) -> Path`` (an image folder)."""
