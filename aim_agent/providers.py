"""The contracts every image provider meets: generators, editors, describers.

A provider is any object with the methods below. The world and diffusers plugins (in
``plugins/``) implement them; VLM describers live in the agent.
Providers register every image they return in :data:`aim_agent.images.STORE`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from PIL import Image


@dataclass
class Generated:
    """One generated image. ``notes`` says what the generator could not do (e.g. undrawable words)."""

    image: Image.Image
    prompt: str
    notes: list[str] = field(default_factory=list)


@dataclass
class Edited:
    """One edit: the original, the edited image, and whether the instruction was applied."""

    original: Image.Image
    edited: Image.Image
    instruction: str
    applied: bool = True
    notes: list[str] = field(default_factory=list)


@runtime_checkable
class TextToImage(Protocol):
    name: str

    def generate(self, prompts: list[str], *, size: int = 224, seed: int = 0) -> list[Generated]:
        """One image per prompt, deterministic for a seed."""
        ...


@runtime_checkable
class ImageEditor(Protocol):
    name: str

    def edit(self, images: list[Image.Image], instructions: list[str], *, seed: int = 0) -> list[Edited]:
        """Apply ``instructions[i]`` to ``images[i]`` (the lists have equal length)."""
        ...


@runtime_checkable
class Describer(Protocol):
    """Describes the highlighted region of images, blind to any hypothesis."""

    name: str

    def describe(self, images: list[Image.Image]) -> list[str]:
        """One description per image, of what lies inside its highlighted (unmasked) region."""
        ...

    def summarize(self, images: list[Image.Image]) -> str:
        """What the highlighted regions of all images have in common."""
        ...


class ProviderError(RuntimeError):
    """A provider cannot serve a request; the message says why and what would work."""
