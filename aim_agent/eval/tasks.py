"""Model-level evaluation tasks (``aim eval spurious``, ``aim eval bias``): what a plugin offers, what a
scientist gets, what it answers.

Two hooks (:mod:`aim_agent.hookspecs`):

- ``aim_eval_tasks``: an :class:`EvalTask` names a model, draws labelled images of its splits and holds the
  answer (:meth:`EvalTask.truth`: the test set's domains, the planted biases). The evaluator reads the
  answer only after every scientist has concluded.
- ``aim_task_scientists``: a :class:`TaskScientist` answers one :class:`TaskQuestion` about one unit
  without a chat model (the world's offline scientist). Every ``--backend`` that names a chat model gets
  :class:`~aim_agent.eval.task_scientist.ChatTaskScientist` instead (:func:`task_scientist`): one
  interpretation run per question, with MAIA's task prompt.

A scientist never sees the task object: a :class:`TaskQuestion` carries the unit (a
:class:`~aim_agent.system.System`), an image generator, the words of the question (the classes, the
training domain it may render) and the unit's top exemplars from the training-domain set. Nothing in it
names a planted answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aim_agent.contracts import EvalTask as EvalTask
from aim_agent.contracts import Finding as Finding
from aim_agent.contracts import Generate as Generate
from aim_agent.contracts import LabelledImages as LabelledImages
from aim_agent.contracts import Observation as Observation
from aim_agent.contracts import TaskAnswer as TaskAnswer
from aim_agent.contracts import TaskName as TaskName
from aim_agent.contracts import TaskQuestion as TaskQuestion
from aim_agent.contracts import TaskScientist as TaskScientist


def _collect(hook: str) -> list[Any]:
    from aim_agent.plugins import plugin_manager

    return [item for group in getattr(plugin_manager().pm.hook, hook)() for item in (group or [])]


def eval_task(name: str, model: str | None = None) -> EvalTask:
    """The installed task ``name`` (for ``model`` when given): a clear error listing what is installed."""
    tasks: list[EvalTask] = _collect("aim_eval_tasks")
    found = [t for t in tasks if t.name == name and (model is None or t.model == model)]
    if not found:
        have = ", ".join(f"{t.name} ({t.model})" for t in tasks) or "none (is the world plugin installed?)"
        raise LookupError(f"no evaluation task {name!r}{f' for model {model!r}' if model else ''}; installed: {have}")
    return found[0]


def task_scientist(backend: str, *, runs_dir: Path | None = None, **chat: Any) -> TaskScientist:
    """The task scientist ``backend`` names: an installed one (hook ``aim_task_scientists``: ``offline``), or for
    a chat model (``provider[:model]``, the spellings ``aim interpret --backend`` takes) a
    :class:`~aim_agent.eval.task_scientist.ChatTaskScientist` whose runs go under ``runs_dir`` (default
    ``runs/eval/task-runs``); ``chat`` are its options (``mode``, ``max_rounds``, ``max_tokens``, ``max_cost``,
    ``critic_backend``, ``base_url``, ``settings``, ``progress``). A clear error lists the valid names."""
    installed: list[TaskScientist] = _collect("aim_task_scientists")
    found = [s for s in installed if s.name == backend]
    if found:
        return found[0]
    from aim_agent.agent.backends import DEFAULT_MODELS, BackendSpec
    from aim_agent.plugins import plugin_manager

    chat_backends = [*DEFAULT_MODELS, *plugin_manager().provider_names("vlm")]
    spec = BackendSpec.parse(backend, base_url=chat.pop("base_url", None))
    if spec.provider not in chat_backends:
        have = ", ".join(sorted({s.name for s in installed})) or "none"
        raise LookupError(f"no task scientist {backend!r} for spurious/bias questions; valid: {have} (installed), or a "
                          f"chat model: {' | '.join(f'{p}[:MODEL]' for p in chat_backends)} (e.g. "
                          "google_genai:gemini-2.5-flash, openai:gpt-4o with --base-url for vLLM)")
    from aim_agent.eval.task_scientist import ChatTaskScientist

    return ChatTaskScientist(spec, runs_dir=runs_dir or Path("runs/eval/task-runs"), **chat)
