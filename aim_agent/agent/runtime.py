"""The heavy side of a run: model, providers, tools, chat clients. Rebuilt from the config.

The graph state holds only data; everything here is built from a :class:`RunConfig` by
:func:`build_runtime`, once per process. A resumed run builds a fresh runtime from the config
stored in its checkpoint, and reloads the images it saved in ``runs/<id>/images``.
"""

from __future__ import annotations

import importlib
import inspect
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aim_agent.agent.backends import BACKEND_CHOICES, BackendSpec, ChatClient, UsageMeter, default_backend
from aim_agent.agent.config import RunConfig
from aim_agent.agent.critic import CriticRules
from aim_agent.agent.schema import Scientist
from aim_agent.config import DEFAULTS
from aim_agent.images import ImageStore
from aim_agent.log import EntryKind, ExperimentLog, LogEntry
from aim_agent.providers import TextToImage
from aim_agent.system import System
from aim_agent.tools.api_text import api_text
from aim_agent.tools.base import ToolContext, ToolSpec
from aim_agent.tools.registry import all_tools


@dataclass
class NodeLog:
    """The entries one graph node adds to the run's experiment log (:meth:`AgentRuntime.node_log`).

    A node adds entries through it and returns :attr:`entries` as its ``log`` update; the state's
    reducer appends them to the checkpointed log.
    """

    log: ExperimentLog
    """the tools' experiment log, equal to the checkpointed one when the node started"""
    start: int
    """how many entries the log had then"""

    def add(self, kind: EntryKind, text: str = "", **fields: Any) -> LogEntry:
        """Add an entry (:meth:`ExperimentLog.add`) in the current round."""
        return self.log.add(kind, text, **fields)

    def extend(self, entries: Sequence[LogEntry]) -> None:
        """Add entries made elsewhere (a pending experiment's) as they are."""
        self.log.entries.extend(entries)

    @property
    def round(self) -> int:
        """The round new entries belong to."""
        return self.log.round

    @round.setter
    def round(self, value: int) -> None:
        self.log.round = value

    @property
    def entries(self) -> list[LogEntry]:
        """What this node added so far, in order."""
        return self.log.since(self.start)


@dataclass
class AgentRuntime:
    """What the nodes use besides the state. Never checkpointed."""

    config: RunConfig
    run_dir: Path
    ctx: ToolContext
    specs: list[ToolSpec]
    scientist: Scientist
    meter: UsageMeter = field(default_factory=UsageMeter)
    critic_client: ChatClient | None = None
    critic_rules: CriticRules = field(default_factory=CriticRules)
    api: str = ""
    started: float = field(default_factory=time.monotonic)

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    @property
    def image_dir(self) -> Path:
        return self.run_dir / "images"

    @property
    def spec_by_name(self) -> dict[str, ToolSpec]:
        return {s.name: s for s in self.specs}

    def sync_log(self, entries: Sequence[LogEntry], round: int) -> ExperimentLog:
        """Make the tools' experiment log equal to the checkpointed one (after a resume or a retry)."""
        log = self.ctx.log
        if log is None:
            log = self.ctx.log = ExperimentLog(self.image_dir, self.ctx.images)
        if len(log.entries) != len(entries) or (entries and log.entries[-1] is not entries[-1]):
            log.entries = list(entries)
        log.round = round
        return log

    def node_log(self, entries: Sequence[LogEntry], round: int) -> NodeLog:
        """The log a node adds to in ``round``, after making the tools' log equal to the checkpointed ``entries``."""
        log = self.sync_log(entries, round)
        return NodeLog(log, len(log.entries))

    def restore_threshold(self, threshold: float | None) -> None:
        """Give the unit the dataset threshold the exemplar step found before a resume (its overlays need it)."""
        system = self.ctx.system
        if system is not None and system.threshold is None and threshold is not None:
            system.threshold = threshold


# --------------------------------------------------------------------------------------------
# building the pieces


def import_object(path: str) -> Any:
    """``'package.module:attribute'`` -> the attribute."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected 'module:attribute', got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r} (from {path!r}): {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def build_system(config: RunConfig) -> System:
    """The unit under study, from the config."""
    if config.system_factory:
        factory = import_object(config.system_factory)
        takes_config = bool(inspect.signature(factory).parameters)
        system = factory(config) if takes_config else factory()
        if not isinstance(system, System):
            raise TypeError(f"{config.system_factory} returned {type(system).__name__}, not a System")
        return system
    if config.synthetic:
        from aim_agent.plugins import SYNTHETIC, plugin_manager

        return plugin_manager().unit_system(SYNTHETIC, config.synthetic)
    from aim_agent.models.probe import open_probe

    assert config.model is not None and config.layer is not None and config.unit is not None
    probe = open_probe(config.model, config.layer, sae=config.sae)
    return System(probe, config.unit)


def build_describer(config: RunConfig, meter: UsageMeter) -> Any:
    """A describer provider by name, or a VLM describer when given a backend ``provider:model``."""
    from aim_agent.plugins import MissingPlugin, plugin_manager

    name = config.describer
    if not name:
        return None  # describing switched off
    pm = plugin_manager()
    if name in pm.provider_names("describer"):
        return pm.provider("describer", name)
    hint = pm.missing_hint("describer", name)
    if hint:
        raise MissingPlugin(f"{hint}; or describe with a VLM: --describer google_genai[:MODEL] (or another backend)")
    spec = BackendSpec.parse(name, like=config.backend)  # the scientist's server, when the provider is the same
    if spec.offline:
        return pm.provider("describer", DEFAULTS["describer"])
    from aim_agent.agent.vlm_describer import VLMDescriber

    return VLMDescriber(ChatClient.from_spec(spec, role="describer", meter=meter))


def _provider(kind: str, name: str | None) -> Any:
    if not name:
        return None
    from aim_agent.plugins import plugin_manager

    return plugin_manager().provider(kind, name)


def build_scientist(config: RunConfig, rt: AgentRuntime) -> Scientist:
    """The scientist the config names: a plugin's (hook ``aim_scientists``: ``offline`` is the world's
    rule-based one), or an :class:`LLMScientist` over a chat-model backend.

    In tools mode :func:`build_runtime` binds the tools to it afterwards.
    """
    from aim_agent.plugins import MissingPlugin, plugin_manager

    spec = config.backend or default_backend()
    pm = plugin_manager()
    if spec.provider in pm.provider_names("scientist"):
        scientist: Scientist = pm.provider("scientist", spec.provider).make(config, rt)
        return scientist
    if spec.offline:
        hint = pm.missing_hint("scientist", spec.provider) or "no scientist named 'offline' is installed"
        raise MissingPlugin(
            f"{hint}. Choose a VLM backend instead: --backend {BACKEND_CHOICES} "
            "(with its API key, e.g. GOOGLE_API_KEY, which also makes google_genai the default)"
        )
    from aim_agent.agent.llm_scientist import LLMScientist, default_resolver

    client = ChatClient.from_spec(spec, role="agent", meter=rt.meter)
    return LLMScientist(client, mode=config.mode, resolver=default_resolver(rt.image_dir, rt.ctx.images),
                        max_images=config.max_prompt_images, recent=config.recent_observations)


def merge_tools(overrides: Sequence[ToolSpec] | None) -> list[ToolSpec]:
    """The registry, with same-named specs replaced by ``overrides`` (new names appended)."""
    specs = {s.name: s for s in all_tools()}
    for spec in overrides or ():
        specs[spec.name] = spec
    return list(specs.values())


def build_runtime(
    config: RunConfig,
    run_dir: Path,
    *,
    scientist: Scientist | None = None,
    tools: Sequence[ToolSpec] | None = None,
    system: System | None = None,
    text2image: TextToImage | None = None,
) -> AgentRuntime:
    """Everything a run needs, from its config (the plugins it names are loaded first). ``system`` and
    ``text2image`` replace the unit and the image generator the config names (``aim eval``'s task questions
    bring their own)."""
    from aim_agent.plugins import plugin_manager

    for module in config.plugins:
        plugin_manager().add_module(module, source="run config")
    meter = UsageMeter()
    system = system or build_system(config)
    images = ImageStore()
    # a resumed run gets back its images with their scenes, masks and edits
    images.load_dir(run_dir / "images")
    ctx = ToolContext(
        system=system,
        text2image=text2image or _provider("text2image", config.text2image),
        editor=_provider("editor", config.editor),
        describer=build_describer(config, meter),
        log=ExperimentLog(run_dir / "images", images),
        images=images,
        image_size=config.image_size,
        seed=config.seed,
        exemplar_dataset=config.exemplar_dataset or None,
    )
    specs = merge_tools(tools)
    rt = AgentRuntime(config=config, run_dir=run_dir, ctx=ctx, specs=specs, scientist=scientist,  # type: ignore[arg-type]
                      meter=meter)
    rt.api = api_text(specs, system=system, style="python" if config.mode == "code" else "json")
    if rt.scientist is None:
        rt.scientist = build_scientist(config, rt)
    bind = getattr(rt.scientist, "bind", None)
    if config.mode == "tools" and callable(bind) and not getattr(rt.scientist, "tools", None):
        from aim_agent.tools.adapters import langchain_tools

        bind(langchain_tools(ctx, specs))  # a chat scientist, built above or passed in
    if config.critic_backend is not None and not config.critic_backend.offline:
        rt.critic_client = ChatClient.from_spec(config.critic_backend, role="critic", meter=meter)
    return rt


_CACHE: dict[str, AgentRuntime] = {}
_LOCK = threading.Lock()


def register_runtime(rt: AgentRuntime) -> None:
    with _LOCK:
        _CACHE[rt.run_id] = rt


def runtime_for(context: Any, state: Mapping[str, Any]) -> AgentRuntime:
    """The runtime of a graph call (the one passed as context, else one built from the state's config), with the
    unit's threshold from the state (a resumed run: the exemplar step ran before)."""
    rt = _runtime_for(context, state)
    rt.restore_threshold(state.get("unit_threshold"))
    return rt


def _runtime_for(context: Any, state: Mapping[str, Any]) -> AgentRuntime:
    if isinstance(context, AgentRuntime):
        return context
    run_id = state.get("run_id")
    with _LOCK:
        if run_id in _CACHE:
            return _CACHE[run_id]
    config = state.get("config")
    if config is None:
        raise ValueError("the graph state has no run config: start runs with aim_agent.agent.runner.run_interpret")
    config = config if isinstance(config, RunConfig) else RunConfig.model_validate(config)
    runs_dir = Path(context.get("runs_dir", config.runs_dir)) if isinstance(context, dict) else Path(config.runs_dir)
    rt = build_runtime(config, runs_dir / str(run_id))
    register_runtime(rt)
    return rt
