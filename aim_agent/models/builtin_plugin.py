"""The core model loaders as a plugin: ``package.module:factory`` and saved module files."""

from __future__ import annotations

from typing import Any

from aim_agent.hookspecs import hookimpl


@hookimpl
def aim_model_loaders() -> list[Any]:
    from aim_agent.models.user_loader import builtin_loaders

    return builtin_loaders()
