"""Registers the transformers model loader."""

from __future__ import annotations

from typing import Any

from aim_agent.hookspecs import hookimpl


@hookimpl
def aim_model_loaders() -> list[Any]:
    from aim_transformers.loader import TransformersLoader

    return [TransformersLoader()]
