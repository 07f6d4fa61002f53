"""Helpers shared by test folders (on ``sys.path`` through pytest's ``pythonpath`` setting)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import anyio

from aim_agent.tools.base import ToolContext, ToolSpec, tool
from aim_agent.tools.core import ActivationsOutput, ExemplarsInput

#: the wall-clock limit of a test's child process: it only catches a hang, so a slow or loaded machine (a
#: Python start-up with torch takes tens of seconds at load 15) never reaches it
HANG_S = 900

T = TypeVar("T")


async def poll(fetch: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, every: float = 0.02,
               hang_s: float = HANG_S) -> T:
    """``await fetch()`` every ``every`` seconds until ``done`` says yes; the last value (the caller asserts on it).

    A wait for an event that comes when it comes: only a hang (``hang_s``) ends it early, never a machine's
    speed (a loop of N tries of a few milliseconds each is a wall-clock limit a loaded machine exceeds).
    """
    deadline = time.monotonic() + hang_s
    value = await fetch()
    while not done(value) and time.monotonic() < deadline:
        await anyio.sleep(every)
        value = await fetch()
    return value


def wait_for(check: Callable[[], T], *, every: float = 0.05, hang_s: float = HANG_S) -> T:
    """``check()`` every ``every`` seconds until it returns something truthy (returned), or the last falsy value
    after ``hang_s`` (a hang)."""
    deadline = time.monotonic() + hang_s
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(every)
        value = check()
    return value


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
