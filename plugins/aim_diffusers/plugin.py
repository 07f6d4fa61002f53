"""Registers the diffusers providers (imported only when used).

text2image: ``sd15``, ``sdxl``, ``diffusers`` (any pipeline); editors: ``instruct-pix2pix``,
``flux-kontext``. Choose them with ``--text2image sd15``, ``AIM_EDITOR=instruct-pix2pix`` or
``[providers]`` in aim.toml; see :mod:`aim_diffusers.providers` for where weights come from.
"""

from __future__ import annotations

from typing import Any

from aim_agent.hookspecs import hookimpl


@hookimpl
def aim_text2image() -> list[Any]:
    from aim_diffusers.providers import TEXT_TO_IMAGE

    return list(TEXT_TO_IMAGE)


@hookimpl
def aim_image_editors() -> list[Any]:
    from aim_diffusers.providers import EDITORS

    return list(EDITORS)
