"""Finding plugins and the providers they offer.

:func:`plugin_manager` returns the process-wide :class:`AimPlugins`, which loads the
``aim_agent`` entry-point group once (the world, transformers and diffusers plugins register
themselves there) plus any module named with ``--plugin``.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

import pluggy

from aim_agent import hookspecs

PROVIDER_KINDS = {
    "text2image": "aim_text2image",
    "editor": "aim_image_editors",
    "describer": "aim_describers",
    "vlm": "aim_vlm_backends",
    "dataset": "aim_datasets",
}


class AimPlugins:
    """A pluggy manager plus name-indexed access to what plugins provide."""

    def __init__(self, load_entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        # core model loaders (module:factory, saved files) are a plugin like any other
        from aim_agent.models import builtin_plugin

        self.pm.register(builtin_plugin, name="aim_agent.models.builtin_plugin")
        if load_entry_points:
            self.pm.load_setuptools_entrypoints(hookspecs.PROJECT)
        self._instances: dict[tuple[str, str], Any] = {}
        #: plugin name -> how it was added when not through an entry point ("--plugin", "environment ...")
        self.module_sources: dict[str, str] = {}

    def add_module(self, name: str, source: str = "--plugin") -> None:
        """Register a plugin module by import path (``--plugin my_pkg.aim_plugin``).

        ``source`` says where the name came from (shown by ``aim plugins``).
        """
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ImportError(f"cannot import plugin module {name!r}: {exc}") from exc
        if not self.pm.is_registered(module):
            self.pm.register(module, name=name)
            self.module_sources[name] = source

    def _collect(self, hook: str) -> list[Any]:
        results = getattr(self.pm.hook, hook)()
        return [item for group in results for item in (group or [])]

    def tools(self) -> list[Any]:
        return self._collect("aim_tools")

    def model_loaders(self) -> list[Any]:
        return self._collect("aim_model_loaders")

    def provider_names(self, kind: str) -> list[str]:
        """Names of the providers of one kind (``text2image``, ``editor``, ``describer``, ...)."""
        return [_name_of(p) for p in self._collect(_hook_for(kind))]

    def provider(self, kind: str, name: str) -> Any:
        """The provider ``name`` of ``kind``, built once (factories are called on first use)."""
        key = (kind, name)
        if key not in self._instances:
            for candidate in self._collect(_hook_for(kind)):
                if _name_of(candidate) == name:
                    self._instances[key] = candidate() if isinstance(candidate, type) else candidate
                    break
            else:
                valid = ", ".join(self.provider_names(kind)) or "none installed"
                raise LookupError(f"no {kind} provider named {name!r}; installed: {valid}")
        return self._instances[key]


def _hook_for(kind: str) -> str:
    if kind not in PROVIDER_KINDS:
        raise ValueError(f"unknown provider kind {kind!r}; valid kinds: {', '.join(PROVIDER_KINDS)}")
    return PROVIDER_KINDS[kind]


def _name_of(provider: Any) -> str:
    return str(getattr(provider, "name", getattr(provider, "__name__", type(provider).__name__)))


@cache
def plugin_manager() -> AimPlugins:
    """The process-wide plugin manager (entry points loaded once)."""
    return AimPlugins()
