"""A describer provider backed by a VLM: blind by construction.

It meets :class:`aim_agent.providers.Describer`: ``describe(images)`` and ``summarize(images)``
take images and nothing else, and the prompt is fixed text about highlighted regions. No task,
unit name or hypothesis can reach the model, so its descriptions are an independent check on the
scientist (MAIA's describer saw only the exemplars; so does this one).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from langchain_core.messages import HumanMessage, SystemMessage
from PIL import Image

from aim_agent.agent.backends import ChatClient
from aim_agent.agent.llm_scientist import text_of
from aim_agent.agent.prompts import DESCRIBER_SYSTEM, SUMMARY_REQUEST, describer_request
from aim_agent.tools.adapters import image_block

_LINE = re.compile(r"^\s*(?:image\s*)?(\d+)\s*[:.)\-]\s*(.+?)\s*$", re.I | re.M)


class VLMDescriber:
    """Describes the highlighted region of images with a chat model, a few images per request."""

    def __init__(self, client: ChatClient, *, batch_size: int = 8) -> None:
        self.client = client
        self.batch_size = batch_size
        self.name = f"vlm:{client.spec.label()}"

    def _ask(self, request: str, images: Sequence[Image.Image]) -> str:
        content = [{"type": "text", "text": request}] + [image_block(im) for im in images]
        reply = self.client.invoke([SystemMessage(content=DESCRIBER_SYSTEM), HumanMessage(content=content)])
        return text_of(reply)

    def describe(self, images: list[Image.Image]) -> list[str]:
        out: list[str] = []
        for start in range(0, len(images), self.batch_size):
            batch = images[start : start + self.batch_size]
            text = self._ask(describer_request(len(batch)), batch)
            found = {int(m.group(1)): m.group(2) for m in _LINE.finditer(text)}
            if not found and len(batch) == 1 and text.strip():
                found = {1: text.strip()}
            out += [found.get(i, "") for i in range(1, len(batch) + 1)]
        return out

    def summarize(self, images: list[Image.Image]) -> str:
        return self._ask(SUMMARY_REQUEST, images[: self.batch_size * 2]).strip()
