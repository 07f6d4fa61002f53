"""Test doubles for the agent tests: a redness unit, tiny providers, scripted scientists, a fake chat model.

Also a plugin module (``--plugin aim_test_fakes``): it offers the providers below under the name
``fake``, so a run config can name them and a resumed run in a new process rebuilds them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from aim_testing import prompt_exemplars
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from PIL import Image

from aim_agent.agent.schema import Conclusion, Proposal, ScientistView, ToolCall
from aim_agent.hookspecs import hookimpl
from aim_agent.images import current_store
from aim_agent.providers import Edited, Generated
from aim_agent.system import LayerProbe, System
from aim_agent.tools.base import ToolContext, tool
from aim_agent.tools.core import ActivationsOutput, ExemplarsInput

# ---------------------------------------------------------------------------------------------
# the unit: mean redness of 8x8 patches


class RednessProbe(LayerProbe):
    """Unit 0 fires on red pixels (red minus the mean of green and blue), on an 8x8 grid."""

    model_name = "redness"
    layer = "pixels"
    num_units = 1

    def forward(self, images: Sequence[Image.Image]) -> torch.Tensor:
        arr = torch.stack([torch.as_tensor(np.asarray(im.convert("RGB"), dtype=np.float32) / 255) for im in images])
        arr = arr.permute(0, 3, 1, 2)
        red = (arr[:, 0] - arr[:, 1:].mean(1)).clamp(min=0)[:, None]
        return torch.nn.functional.avg_pool2d(red, red.shape[-1] // 8)


def redness_system() -> System:
    return System(RednessProbe(), 0)


# ---------------------------------------------------------------------------------------------
# providers

COLORS = {
    "red": (220, 30, 30), "blue": (30, 60, 220), "green": (40, 170, 60), "yellow": (230, 210, 40),
    "white": (245, 245, 245), "black": (20, 20, 20), "orange": (240, 140, 20),
}
BACKGROUNDS = {
    "grass": (70, 150, 70), "snow": (235, 240, 245), "beach": (225, 205, 150), "sand": (225, 205, 150),
    "sky": (130, 175, 230), "road": (110, 110, 110), "water": (40, 90, 170), "table": (150, 110, 70),
}
OBJECTS = ("ball", "car", "apple", "dog", "cat", "boat", "cube", "flower")


def draw(prompt: str, size: int = 64) -> Image.Image:
    words = re.findall(r"[a-z]+", prompt.lower())
    bg = next((BACKGROUNDS[w] for w in words if w in BACKGROUNDS), (200, 200, 200))
    arr = np.zeros((size, size, 3), dtype=np.uint8)
    arr[:] = bg
    if any(w.rstrip("s") in OBJECTS for w in words):
        color = next((COLORS[w] for w in words if w in COLORS), (90, 90, 90))
        q = size // 4
        arr[q : size - q, q : size - q] = color
        # a seed-free, prompt-dependent mark so different prompts never give identical pixels
        arr[0, 0] = (sum(map(ord, prompt)) % 256, len(prompt) % 256, 7)
    else:
        arr[0, 0] = (sum(map(ord, prompt)) % 256, len(prompt) % 256, 9)
    image = Image.fromarray(arr)
    current_store().register(image, meta={"prompt": prompt})
    return image


class FakeText2Image:
    name = "fake"

    def generate(self, prompts: list[str], *, size: int = 224, seed: int = 0) -> list[Generated]:
        return [Generated(image=draw(p), prompt=p) for p in prompts]


def apply_edit(prompt: str, instruction: str) -> str:
    text = instruction.lower().strip()
    m = re.match(r"change the colou?r of (?:the )?(\w+) to (\w+)", text)
    if m:
        noun, color = m.groups()
        words = [w for w in prompt.split() if w.lower() not in COLORS]
        out = " ".join(words)
        return re.sub(rf"\b{noun}\b", f"{color} {noun}", out, count=1)
    m = re.match(r"change the background to (\w+)", text)
    if m:
        head = re.split(r"\b(on|in|at)\b", prompt, maxsplit=1)[0].strip()
        return f"{head} on {m.group(1)}"
    m = re.match(r"replace (?:the )?(.+?) with (?:a |an |the )?(.+)", text)
    if m:
        old, new = m.groups()
        return re.sub(rf"\b{re.escape(old)}\b", new, prompt, count=1)
    m = re.match(r"remove (?:the )?(.+)", text)
    if m:
        return re.sub(rf"\b{re.escape(m.group(1))}\b", "", prompt).replace("  ", " ")
    return prompt


class FakeEditor:
    name = "fake"

    def edit(self, images: list[Image.Image], instructions: list[str], *, seed: int = 0) -> list[Edited]:
        out = []
        for image, instruction in zip(images, instructions, strict=True):
            record = current_store().record(image)
            prompt = str(record.meta.get("prompt", "")) if record else ""
            out.append(Edited(original=image, edited=draw(apply_edit(prompt, instruction)), instruction=instruction))
        return out


class FakeDescriber:
    """Names the colour of the brightest region. Records every call (to check it is blind)."""

    name = "fake"
    calls: ClassVar[list[tuple[Any, ...]]] = []

    def describe(self, images: list[Image.Image], *args: Any, **kwargs: Any) -> list[str]:
        FakeDescriber.calls.append(("describe", images, args, kwargs))
        out = []
        for image in images:
            arr = np.asarray(image.convert("RGB"), dtype=np.float32)
            centre = arr[arr.shape[0] // 2, arr.shape[1] // 2]
            name = min(COLORS, key=lambda c: float(np.abs(np.array(COLORS[c]) - centre).sum()))
            out.append(f"a {name} square")
        return out

    def summarize(self, images: list[Image.Image], *args: Any, **kwargs: Any) -> str:
        FakeDescriber.calls.append(("summarize", images, args, kwargs))
        return "squares"


@hookimpl
def aim_text2image() -> list[Any]:
    return [FakeText2Image]


@hookimpl
def aim_image_editors() -> list[Any]:
    return [FakeEditor]


@hookimpl
def aim_describers() -> list[Any]:
    return [FakeDescriber]


EXEMPLAR_PROMPTS = ["a red ball on grass", "a red car on snow", "a red apple on a table", "an orange ball on sand",
                    "a blue car on a road", "a green ball on grass"]


@tool("dataset_exemplars", positional=("k",))
def fake_exemplars(ctx: ToolContext, args: ExemplarsInput) -> ActivationsOutput:
    """Top-activating images of the unit among a few fixed test pictures."""
    system = ctx.require_system()
    images = [draw(p) for p in EXEMPLAR_PROMPTS]
    acts, overlays = system.neuron(images)
    order = sorted(range(len(acts)), key=lambda i: -acts[i])[: args.k]
    return ActivationsOutput(activations=[acts[i] for i in order], images=[overlays[i] for i in order])


def fake_config(tmp: Path, **changes: Any) -> Any:
    from aim_agent.agent.config import RunConfig

    values: dict[str, Any] = dict(
        system_factory="aim_test_fakes:redness_system",
        plugins=["aim_test_fakes"],
        text2image="fake",
        editor="fake",
        describer="fake",
        runs_dir=str(tmp),
        mode="tools",
        max_rounds=6,
        exemplars_k=4,
    )
    values.update(changes)
    return RunConfig(**values)


# ---------------------------------------------------------------------------------------------
# scientists

RED_PROMPTS = ["a red ball on grass", "a red car on snow", "a red apple on sand", "a red cube on a road",
               "a red flower on water"]
CONTROL_PROMPTS = ["a blue ball on grass", "a green car on snow", "a yellow apple on sand"]


def red_hypothesis(confidence: float = 0.7) -> Any:
    from aim_agent.agent.schema import Hypothesis

    return Hypothesis(id="h1", statement="the unit fires on red objects", concepts=["red"], confidence=confidence)


def tool_round(prompts: list[str], ready: bool = False) -> Proposal:
    return Proposal(
        thoughts=f"test {len(prompts)} prompts",
        hypotheses=[red_hypothesis()],
        tool_calls=[
            ToolCall(tool="text2image", args={"prompts": prompts}),
            ToolCall(tool="neuron", args={"images": "$0.images"}),
        ],
        ready_to_conclude=ready,
    )


def code_round(prompts: list[str], ready: bool = False) -> Proposal:
    code = (
        "def run_experiment(system, tools):\n"
        f"    prompts = {prompts!r}\n"
        "    images = tools.text2image(prompts)\n"
        "    acts, overlays = system.neuron(images)\n"
        "    print('max', max(acts))\n"
        "    return dict(zip(prompts, acts))\n"
    )
    return Proposal(thoughts="code round", hypotheses=[red_hypothesis()], code=code, ready_to_conclude=ready)


class ScriptedScientist:
    """Plays back proposals; records every view. ``crash_at`` exits the process at that round."""

    name = "scripted"

    def __init__(
        self,
        script: Sequence[Proposal | Callable[[ScientistView], Proposal]],
        *,
        crash_at: int | None = None,
        marker: Path | None = None,
    ) -> None:
        self.script = list(script)
        self.views: list[ScientistView] = []
        self.conclude_views: list[ScientistView] = []
        self.crash_at = crash_at
        self.marker = marker

    def propose(self, view: ScientistView) -> Proposal:
        self.views.append(view)
        if self.marker is not None:
            with self.marker.open("a") as f:
                f.write(f"{os.getpid()} propose {view.round + 1}\n")
        if self.crash_at is not None and view.round + 1 == self.crash_at:
            os._exit(17)  # a hard kill: no cleanup, no exception handlers
        # view.round counts finished experiments; index by it, so a resumed run replays the same script
        item = self.script[min(view.round, len(self.script) - 1)]
        return item(view) if callable(item) else item.model_copy(deep=True)

    def conclude(self, view: ScientistView) -> Conclusion:
        self.conclude_views.append(view)
        return Conclusion(description="red objects", labels=["red"], evidence=[], confidence=0.8,
                          forced=view.must_conclude)


# ---------------------------------------------------------------------------------------------
# a scripted chat model


class FakeChat(GenericFakeChatModel):
    """Replies from a list (a reply may be a function of the messages received); records every call.

    ``bind_tools`` returns the model itself, so tool-calling code paths run unchanged.
    """

    script: list[Any] = []  # noqa: RUF012 (pydantic fields: copied per instance)
    received: list[list[BaseMessage]] = []  # noqa: RUF012
    bound_tools: list[Any] = []  # noqa: RUF012

    def bind_tools(self, tools: Any, **kwargs: Any) -> FakeChat:  # type: ignore[override]
        self.bound_tools = list(tools)
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        from langchain_core.outputs import ChatGeneration, ChatResult

        self.received.append(list(messages))
        if len(self.received) > len(self.script):
            raise AssertionError(f"the fake chat model was called {len(self.received)} times; "
                                 f"its script has {len(self.script)} replies")
        item = self.script[len(self.received) - 1]
        reply = item(messages) if callable(item) else item
        reply = reply if isinstance(reply, AIMessage) else AIMessage(content=str(reply))
        return ChatResult(generations=[ChatGeneration(message=reply)])


def fake_chat(replies: Sequence[str | AIMessage | Callable[[list[BaseMessage]], Any]]) -> FakeChat:
    return FakeChat(messages=iter([]), script=list(replies), received=[])


# ---------------------------------------------------------------------------------------------
# world exemplars without a dataset pass


WORLD_PROMPTS = [
    "a brown dog on grass", "a black dog on snow", "a red car on a road", "a blue car on a beach",
    "a yellow cat on a beach", "a blue cup on grass", "a green tree in a forest", "a white boat on water",
    "a brown dog with a red leash on grass", "a gray car at night", "a brown horse in the desert",
    "a red ball in a room",
]


world_exemplars = prompt_exemplars(WORLD_PROMPTS)
