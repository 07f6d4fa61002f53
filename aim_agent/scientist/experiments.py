"""Step 2: the experiments, as searches of the described dataset measured on the unit.

An :class:`Experiment` is a list of :class:`Search` es. Each finds images the blind describer says
show a concept (or controls that show none of the candidates), runs the unit on them and logs the
result. It is written either as tool calls chained with ``$k.field`` references (tool-calling mode)
or as the source of ``run_experiment(system, tools)`` (code mode): the same tools either way.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from aim_agent.agent.schema import ToolCall
from aim_agent.scientist.evidence import PHOTO_PREFIX


@dataclass(frozen=True)
class Search:
    """Images showing any of ``concepts`` (controls when empty) and none of ``without``."""

    concepts: tuple[str, ...]
    without: tuple[str, ...]
    n: int
    skip: int = 0
    #: also the unit's exemplars: only where the dataset holds too few other images of a concept
    include_exemplars: bool = False

    @property
    def label(self) -> str:
        return " or ".join(self.concepts) if self.concepts else "controls"


@dataclass(frozen=True)
class Experiment:
    """One round: a phase name, why it runs, and its searches."""

    phase: str
    note: str
    searches: tuple[Search, ...]

    def tool_calls(self) -> list[ToolCall]:
        """search -> neuron -> log, once per search."""
        calls: list[ToolCall] = []
        for s in self.searches:
            k = len(calls)
            calls.append(ToolCall(tool="dataset_search", args={
                "concepts": list(s.concepts), "without": list(s.without), "n": s.n, "skip": s.skip,
                "include_exemplars": s.include_exemplars}))
            calls.append(ToolCall(tool="neuron", args={"images": f"${k}.images"}))
            calls.append(ToolCall(tool="log_experiment", args={
                "note": f"{self.phase}: {s.label}", "activations": f"${k + 1}.activations",
                "images": f"${k + 1}.images", "descriptions": f"${k}.descriptions"}))
        return calls

    def code(self) -> str:
        """The same experiment as ``def run_experiment(system, tools)``."""
        lines = ["def run_experiment(system, tools):"]
        lines += [f"    # {line}" for line in textwrap.wrap(" ".join(self.note.split()), 90)]
        lines.append("    searches = [  # (concepts, without, n, skip, include_exemplars)")
        lines += [f"        ({list(s.concepts)!r}, {list(s.without)!r}, {s.n}, {s.skip}, {s.include_exemplars}),"
                  for s in self.searches]
        lines += [
            "    ]",
            "    results = {}",
            "    for concepts, without, n, skip, exemplars in searches:",
            "        name = ' or '.join(concepts) or 'controls'",
            "        images, descriptions = tools.dataset_search(concepts, without, n, skip=skip,",
            "                                                    include_exemplars=exemplars)",
            "        if not images:",
            "            results[name] = 'no image found'",
            "            continue",
            "        activations, overlays = system.neuron(images)",
            f"        prompts = [{PHOTO_PREFIX!r} + d for d in descriptions]",
            f"        tools.log_experiment(activations, overlays, prompts, note={self.phase!r} + ': ' + name)",
            "        results[name] = {'n': len(images), 'mean': round(sum(activations) / len(activations), 4)}",
            "    return results",
        ]
        return "\n".join(lines) + "\n"
