"""Finding plugins and the providers they offer.

:func:`plugin_manager` returns the process-wide :class:`AimPlugins`, which loads the
``aim_agent`` entry-point group once (the world, transformers and diffusers plugins register
themselves there) plus any module named with ``--plugin``.

The core needs none of them: ``AIM_DISABLE_PLUGINS=world`` (comma-separated plugin names)
blocks a plugin before the entry points load, and asking for something only it provides
raises :class:`MissingPlugin`, whose message names the plugin and why it is absent.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
from collections.abc import Iterable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pluggy

from aim_agent import hookspecs

if TYPE_CHECKING:
    from aim_agent.agent.config import RunConfig
    from aim_agent.agent.schema import Scientist
    from aim_agent.system import System

PROVIDER_KINDS = {
    "text2image": "aim_text2image",
    "editor": "aim_image_editors",
    "describer": "aim_describers",
    "vlm": "aim_vlm_backends",
    "dataset": "aim_datasets",
    "scientist": "aim_scientists",
    "units": "aim_units",
}
#: the unit source (hook ``aim_units``) that ``--synthetic``, ``RunConfig.synthetic`` and
#: ``load_system(synthetic=...)`` name a unit of, unless the reference names another (``fresh:s7_3``)
SYNTHETIC = "synthetic"
#: environment variable: plugins (entry-point names, as ``aim plugins`` lists them) to leave out
DISABLE_ENV = "AIM_DISABLE_PLUGINS"

#: how messages name each kind
_KIND_WORDS = {"text2image": "text2image provider", "units": "unit source", "vlm": "VLM backend"}

#: Where well-known names come from: (kind, name) -> the first-party plugin (its entry-point name)
#: that provides it. Only used to say which plugin is missing when one of them is asked for.
PROVIDED_BY: Mapping[tuple[str, str], str] = {
    ("scientist", "offline"): "world",
    ("units", "synthetic"): "world",
    ("units", "fresh"): "world",
    ("text2image", "world"): "world",
    ("editor", "world"): "world",
    ("describer", "world"): "world",
    ("dataset", "world"): "world",
    ("model", "world-cnn"): "world",
    ("model", "world-cnn-spawrious"): "world",
    ("model", "world-cnn-bias"): "world",
    ("command", "world"): "world",
    ("benchmark", "world"): "world",
    ("model", "efficientnet-lite0"): "imagenet",
    ("model", "efficientnet-lite2"): "imagenet",
    ("describer", "photo-tagger"): "imagenet",
    ("describer", "photo-tagger-lite0"): "imagenet",
    ("describer", "photo-tagger-lite2"): "imagenet",
    ("dataset", "imagenet-sample"): "imagenet",
    ("dataset", "imagenet-sample-discovery"): "imagenet",
    ("dataset", "imagenet-sample-heldout"): "imagenet",
    ("command", "photos"): "imagenet",
    ("scientist", "concepts"): "concepts",
    ("text2image", "sd15"): "diffusers",
    ("text2image", "sdxl"): "diffusers",
    ("text2image", "diffusers"): "diffusers",
    ("editor", "instruct-pix2pix"): "diffusers",
    ("editor", "flux-kontext"): "diffusers",
}


@runtime_checkable
class ScientistFactory(Protocol):
    """A scientist that needs no chat model, by name (hook ``aim_scientists``)."""

    name: str

    def make(self, config: RunConfig, runtime: Any) -> Scientist:
        """The scientist for one run; ``runtime`` is the run's ``AgentRuntime`` (tools, run folder, meter)."""
        ...


@runtime_checkable
class UnitSource(Protocol):
    """Named units that are not a model layer, e.g. synthetic neurons with known answers (hook ``aim_units``).

    ``system`` returns a :class:`~aim_agent.system.System` whose probe may know each unit's
    ground truth (``unit_label``); the agent, its sandbox and MCP clients never see the probe.
    """

    name: str
    description: str

    def unit_names(self) -> list[str]: ...

    def system(self, unit: str | int) -> System: ...


@runtime_checkable
class CliCommand(Protocol):
    """An ``aim NAME`` command (hook ``aim_cli_commands``); a module with these attributes will do.

    It may also have ``help``: the one-line help that ``aim --help`` lists without calling
    ``register`` (without it, ``aim --help`` registers the command to read its help).
    """

    name: str

    def register(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


@runtime_checkable
class Benchmark(Protocol):
    """An ``aim bench NAME`` benchmark (hook ``aim_benchmarks``); a module with these attributes will do."""

    name: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> dict[str, Any]: ...


class MissingPlugin(LookupError):
    """Something only a plugin provides was asked for, and that plugin is not there; the text says which."""


def disabled_from_env(env: Mapping[str, str] | None = None) -> list[str]:
    """Plugin names in ``AIM_DISABLE_PLUGINS`` (comma-separated; blanks ignored)."""
    text = (os.environ if env is None else env).get(DISABLE_ENV, "")
    return [name.strip() for name in text.split(",") if name.strip()]


def entry_point(name: str) -> importlib.metadata.EntryPoint | None:
    """The installed ``aim_agent`` entry point called ``name``, loaded or not."""
    found = importlib.metadata.entry_points(group=hookspecs.PROJECT, name=name)
    return next(iter(found), None)


def plugin_label(name: str) -> str:
    """``'the diffusers plugin (aim_diffusers)'``: the plugin's name and, when installed, its package."""
    ep = entry_point(name)
    package = ep.value.split(":")[0].split(".")[0] if ep is not None else ""
    return f"the {name} plugin ({package})" if package else f"the {name} plugin"


class AimPlugins:
    """A pluggy manager plus name-indexed access to what plugins provide.

    ``disable`` lists plugin names to block (default: ``AIM_DISABLE_PLUGINS``); they are not
    loaded even when installed, and asking for what they provide raises :class:`MissingPlugin`.
    """

    def __init__(self, load_entry_points: bool = True, disable: Iterable[str] | None = None) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        #: plugin names blocked in this manager (``AIM_DISABLE_PLUGINS`` or ``disable``)
        self.disabled: tuple[str, ...] = tuple(disabled_from_env() if disable is None else disable)
        for name in self.disabled:
            self.pm.set_blocked(name)
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

    def unit_sources(self) -> list[UnitSource]:
        """Every installed unit source (hook ``aim_units``), built once."""
        return [self.provider("units", name) for name in self.provider_names("units")]

    def vocabularies(self) -> list[Any]:
        """Concept vocabularies (hook ``aim_vocabularies``); see :mod:`aim_agent.vocabulary`."""
        return self._collect("aim_vocabularies")

    def cli_commands(self) -> list[CliCommand]:
        return self._collect("aim_cli_commands")

    def benchmarks(self) -> list[Benchmark]:
        return self._collect("aim_benchmarks")

    # ---------------------------------------------------------------- which plugin is missing

    def has_plugin(self, name: str) -> bool:
        """Whether plugin ``name`` is loaded (by entry point, or its module through ``--plugin``)."""
        if self.pm.has_plugin(name):
            return True
        ep = entry_point(name)
        module = ep.value.split(":")[0] if ep is not None else None
        return module is not None and any(getattr(p, "__name__", None) == module for p in self.pm.get_plugins())

    def why_absent(self, name: str) -> str:
        """Why plugin ``name`` is not loaded, and what to do about it (one clause)."""
        if name in self.disabled:
            return f"which is disabled ({DISABLE_ENV} names it: remove it from there to use it)"
        if entry_point(name) is None:
            if name in PROVIDED_BY.values():  # a first-party plugin
                return "which is not installed (it ships with aim-agent: reinstall aim-agent)"
            return "which is not installed"
        return "which did not load (see `aim plugins`)"

    def require(self, name: str, what: str) -> None:
        """Raise :class:`MissingPlugin` ("``what`` needs the NAME plugin (PACKAGE), which ...") unless loaded."""
        if not self.has_plugin(name):
            raise MissingPlugin(f"{what} needs {plugin_label(name)}, {self.why_absent(name)}")

    def missing_hint(self, kind: str, name: str) -> str | None:
        """For a ``kind`` named ``name`` that is not installed: which absent plugin provides it, or None."""
        plugin = PROVIDED_BY.get((kind, name))
        if plugin is None or self.has_plugin(plugin):
            return None
        what = _KIND_WORDS.get(kind, kind)
        return f"the {what} {name!r} comes from {plugin_label(plugin)}, {self.why_absent(plugin)}"

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
                valid = ", ".join(self.provider_names(kind))
                hint = self.missing_hint(kind, name)
                if hint:
                    raise MissingPlugin(f"{hint}; installed {_KIND_WORDS.get(kind, kind)}s: {valid or 'none'}")
                raise LookupError(f"no {kind} provider named {name!r}; installed: {valid or 'none installed'}")
        return self._instances[key]

    def unit_system(self, source: str, unit: str | int) -> System:
        """Unit ``unit`` (a name, or an index as an int or digits) of the unit source ``source``.

        A unit reference may name its own source: ``fresh:s7_3`` is unit ``s7_3`` of the source
        ``fresh`` whatever ``source`` says (:func:`split_unit_ref`).
        """
        if isinstance(unit, str):
            source, unit = split_unit_ref(unit, source)
            unit = int(unit) if unit.isdigit() else unit
        system: System = self.provider("units", source).system(unit)
        return system


def split_unit_ref(ref: str, default: str = SYNTHETIC) -> tuple[str, str]:
    """``'fresh:s7_3'`` -> ``('fresh', 's7_3')``; a reference without ``SOURCE:`` is a unit of ``default``."""
    source, sep, unit = ref.strip().partition(":")
    if not sep:
        return default, ref.strip()
    if not source.strip() or not unit.strip():
        raise LookupError(f"a unit reference is UNIT or SOURCE:UNIT (e.g. fresh:s7_3), got {ref!r}")
    return source.strip(), unit.strip()


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
