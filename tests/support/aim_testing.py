"""Helpers shared by test folders (on ``sys.path`` through pytest's ``pythonpath`` setting)."""

from __future__ import annotations

from collections.abc import Sequence

from aim_agent.tools.base import ToolContext, ToolSpec, tool
from aim_agent.tools.core import ActivationsOutput, ExemplarsInput

#: the wall-clock limit of a test's child process: it only catches a hang, so a slow or loaded machine (a
#: Python start-up with torch takes tens of seconds at load 15) never reaches it
HANG_S = 900


def prompt_exemplars(prompts: Sequence[str]) -> ToolSpec:
    """A ``dataset_exemplars`` tool over a few generated images (no dataset pass: fast).

    The unit's top ``k`` of the images the context's text2image makes from ``prompts``.
    """
    fixed = list(prompts)

    @tool(name="dataset_exemplars", positional=("k",), idempotent=True, needs_system=True)
    def dataset_exemplars(ctx: ToolContext, args: ExemplarsInput) -> ActivationsOutput:
        """The unit's top images among a few generated scenes."""
        made = ctx.require("text2image").generate(fixed, size=ctx.image_size, seed=ctx.seed)
        acts, overlays = ctx.require_system().neuron([g.image for g in made])
        order = sorted(range(len(acts)), key=lambda i: (-acts[i], i))[: args.k]
        return ActivationsOutput(activations=[acts[i] for i in order], images=[overlays[i] for i in order])

    return dataset_exemplars
