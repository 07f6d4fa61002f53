"""One experiment as the tools run it: tool calls chained with ``$k.field`` references (tool-calling mode), or
the source of ``run_experiment(system, tools)`` (code mode)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from aim_agent.agent.schema import ToolCall

CHUNK = 60  # images per text2image / edit_images call (the tools take at most 64 prompts)


@dataclass
class Experiment:
    """One experiment: a phase name, a note, and prompts (text2image) or prompts + edits (edit_images)."""

    phase: str
    note: str
    prompts: list[str]
    edits: list[str] | None = None

    def tool_calls(self) -> list[ToolCall]:
        """make images -> neuron -> log, once per chunk of at most :data:`CHUNK` images (a tool's limit)."""
        calls: list[ToolCall] = []
        for start in range(0, len(self.prompts), CHUNK):
            prompts = self.prompts[start : start + CHUNK]
            k = len(calls)
            if self.edits is None:
                calls.append(ToolCall(tool="text2image", args={"prompts": prompts}))
            else:
                edits = self.edits[start : start + CHUNK]
                calls.append(ToolCall(tool="edit_images", args={"prompts": prompts, "edits": edits}))
            calls.append(ToolCall(tool="neuron", args={"images": f"${k}.images"}))
            calls.append(ToolCall(tool="log_experiment", args={
                "note": self.note, "activations": f"${k + 1}.activations", "images": f"${k + 1}.images",
                "prompts": f"${k}.prompts"}))
        return calls

    def code(self) -> str:
        """The same experiment as ``def run_experiment(system, tools)`` for code mode."""

        def listing(name: str, items: list[str]) -> list[str]:
            return [f"    {name} = ["] + [f"        {item!r}," for item in items] + ["    ]"]

        lines = ["def run_experiment(system, tools):"]
        lines += [f"    # {line}" for line in textwrap.wrap(_one_line(self.note), 90)]
        note = repr(self.phase + " experiment")
        if self.edits is None and len(self.prompts) > CHUNK:
            lines += listing("prompts", self.prompts)
            lines += [
                "    activations = []",
                f"    for start in range(0, len(prompts), {CHUNK}):  # a tool call takes at most {CHUNK} prompts",
                f"        chunk = prompts[start:start + {CHUNK}]",
                "        acts, overlays = system.neuron(tools.text2image(chunk))",
                f"        tools.log_experiment(acts, overlays, chunk, note={note})",
                "        activations += acts",
            ]
        else:
            if self.edits is None:
                lines += listing("prompts", self.prompts)
                lines += ["    images = tools.text2image(prompts)"]
            else:
                lines += listing("originals", self.prompts) + listing("edits", self.edits)
                lines += ["    images, prompts = tools.edit_images(originals, edits)"]
            lines += [
                "    activations, overlays = system.neuron(images)",
                f"    tools.log_experiment(activations, overlays, prompts, note={note})",
            ]
        lines.append('    return {"prompts": prompts, "activations": activations}')
        return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())
