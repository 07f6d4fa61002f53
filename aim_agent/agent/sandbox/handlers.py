"""The handlers of an experiment: what model-written code may do with ``system`` and ``tools``."""

from __future__ import annotations

from typing import Any

from aim_agent.agent.sandbox.spec import ObjectHandler

#: methods of :class:`aim_agent.system.System` the code may call (``call_neuron`` is MAIA's name)
SYSTEM_METHODS = ("neuron", "call_neuron", "activations", "describe")
#: attributes it may read; never ``ground_truth`` or ``probe``
SYSTEM_ATTRIBUTES = ("layer", "unit", "model_name")


def experiment_handlers(system: Any | None = None, tools: Any | None = None) -> dict[str, ObjectHandler]:
    """``{"system": ..., "tools": ...}`` for :func:`run_code`, in that order.

    ``system`` is exposed through :data:`SYSTEM_METHODS` and :data:`SYSTEM_ATTRIBUTES` only
    (methods it lacks are skipped); ``tools`` (an :class:`aim_agent.tools.Tools`) through one
    method per registered tool, so the allow-list is the tool registry itself. A missing
    object becomes an empty proxy whose every method call fails with a clear error.
    """
    handlers: dict[str, ObjectHandler] = {}
    if system is None:
        handlers["system"] = ObjectHandler(doc="no system is loaded")
    else:
        methods = [m for m in SYSTEM_METHODS if callable(getattr(system, m, None))]
        attributes = [a for a in SYSTEM_ATTRIBUTES if hasattr(system, a)]
        handlers["system"] = ObjectHandler.from_object(system, methods, attributes)
    if tools is None:
        handlers["tools"] = ObjectHandler(doc="no tools are available")
    else:
        names = [spec.name for spec in tools.specs]
        handlers["tools"] = ObjectHandler.from_object(tools, names, doc="AIM's experiment tools")
    return handlers
