"""The plugin contract: what a plugin can add to AIM (pluggy hook specifications).

A plugin is a module (or object) with functions named like the specs below, decorated with
:data:`hookimpl`. It is found through the ``aim_agent`` entry-point group, or given with
``--plugin module`` on the command line. Every hook returns a list, so one plugin can add
several things.

A plugin can be switched off without uninstalling it: ``AIM_DISABLE_PLUGINS=world`` (a
comma-separated list of plugin names, as ``aim plugins`` shows them) blocks it before the
entry points load (:class:`aim_agent.plugins.AimPlugins`).

The types the hooks promise live in :mod:`aim_agent.contracts`, below everything that uses them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from aim_agent.contracts import (
        Benchmark,
        CliCommand,
        EvalTask,
        ModelLoader,
        ScientistFactory,
        TaskScientist,
        UnitSource,
        Vocabulary,
    )

PROJECT = "aim_agent"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def aim_tools() -> list[Any]:
    """Experiment tools this plugin adds: :class:`aim_agent.tools.base.ToolSpec` objects, made with
    ``@aim_agent.tools.base.tool``."""


@hookspec
def aim_model_loaders() -> list[ModelLoader]:
    """Model loaders (:class:`aim_agent.contracts.ModelLoader`).

    A loader may also have ``known_models() -> list[dict]`` (``name``, ``available``, ``note``):
    the named models it ships or knows, listed by ``aim layers`` and the MCP tool ``list_models``.
    """


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


@hookspec
def aim_scientists() -> list[ScientistFactory]:
    """Scientists that need no chat model: objects with ``name`` and ``make(config, runtime) -> Scientist``.

    ``--backend NAME`` (and ``backend`` in a run config) picks one by name; ``offline``, the
    default when no VLM key is set, is the world plugin's rule-based scientist.
    """


@hookspec
def aim_units() -> list[UnitSource]:
    """Named unit sources (synthetic neurons): objects with ``name``, ``description``,
    ``unit_names() -> list[str]`` and ``system(unit: str | int) -> System``.

    ``--synthetic UNIT`` (``synthetic`` in a run config, ``load_system(synthetic=...)`` over
    MCP) opens unit ``UNIT`` (a name or an index) of the source named ``synthetic``;
    ``--synthetic SOURCE:UNIT`` opens a unit of another source (``fresh:s7_3``).

    A source whose units have known answers can also offer them to ``aim eval synthetic``
    (``eval_units``, ``ground_truth``, ``vocabulary``: :class:`aim_agent.eval.truth.EvaluableUnits`).
    """


@hookspec
def aim_cli_commands() -> list[CliCommand]:
    """Command-line commands: objects (modules will do) with ``name`` and ``register(subparsers)``.

    ``register`` adds the ``aim NAME`` parser and sets ``func(args) -> int`` on it, as the
    core commands in ``aim_agent/cli/`` do. An optional ``help`` attribute (one line) is what
    ``aim --help`` lists, so listing the commands need not build their parsers. ``aim NAME``
    builds only NAME's parser.
    """


@hookspec
def aim_benchmarks() -> list[Benchmark]:
    """Benchmarks for ``aim bench NAME``: objects (modules will do) with ``name``,
    ``add_arguments(parser)`` and ``run(args) -> dict``; the first line of ``__doc__`` is the help.
    """


@hookspec
def aim_vocabularies() -> list[Vocabulary]:
    """Concept vocabularies (:class:`aim_agent.contracts.Vocabulary`): which words a broader word covers (the
    critic counts a frog for "animal"), the concepts a text names, exact concept masks of the datasets they
    know (``aim dissect``) and prompts that show one concept (``aim eval units``)."""


@hookspec
def aim_eval_tasks() -> list[EvalTask]:
    """Model-level evaluation tasks (:class:`aim_agent.contracts.EvalTask`): a model, labelled images of its
    splits, and the held-out answer (domains of the test set, planted biases) that ``aim eval spurious`` and
    ``aim eval bias`` read only after every agent answer is in. Never shown to a scientist."""


@hookspec
def aim_task_scientists() -> list[TaskScientist]:
    """Scientists for model-level questions about one unit (:class:`aim_agent.contracts.TaskScientist`): is
    this unit SELECTIVE or SPURIOUS, where is this class under-recognised. ``name`` is the backend
    (``offline``)."""
