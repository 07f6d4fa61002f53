"""The contracts every image provider meets: generators, editors, describers.

A provider is any object with the methods below. The world and diffusers plugins (in
``plugins/``) implement them; VLM describers live in the agent.
Providers register every image they return in the image store (:func:`aim_agent.images.current_store`);
an editor that knows what it changed says so in :class:`EditChange`, so nobody downstream has
to re-read the instruction to learn what an edit did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from PIL import Image
from pydantic import BaseModel, Field

EditKind = Literal["add", "remove", "replace", "recolor", "retexture", "restyle", "resize", "move", "background",
                   "other"]


class EditChange(BaseModel):
    """What an edit changed, as the editor itself reports it (structured provenance).

    Object names are the editor's own nouns ("dog", "car"); ``attributes`` are the new values
    of changed objects ("color": "red"). An editor that cannot tell (a diffusion model) leaves
    ``Edited.change`` as None: the edit's effect is then unknown, never guessed from its words.
    """

    kind: EditKind
    removed: list[str] = Field(default_factory=list, description="objects no longer in the image")
    added: list[str] = Field(default_factory=list, description="objects new in the image")
    changed: list[str] = Field(default_factory=list, description="objects kept but changed")
    attributes: dict[str, str] = Field(default_factory=dict, description="new attribute values of changed objects")
    background: str | None = Field(default=None, description="the new background, when it changed")


@dataclass
class Generated:
    """One generated image. ``notes`` says what the generator could not do (e.g. undrawable words).

    A prompt the generator cannot draw at all gives ``image=None`` and ``error`` saying why: one bad
    prompt fails only its own image, never the batch.
    """

    image: Image.Image | None
    prompt: str
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def drawn_images(made: list[Generated]) -> list[Image.Image]:
    """The images of a batch, or :class:`ProviderError` naming the first prompt that could not be drawn."""
    for g in made:
        if g.image is None:
            raise ProviderError(f"could not draw {g.prompt!r}: {g.error or 'no image'}")
    return [g.image for g in made if g.image is not None]


@dataclass
class Edited:
    """One edit: the original, the edited image, and whether the instruction was applied."""

    original: Image.Image
    edited: Image.Image
    instruction: str
    applied: bool = True
    notes: list[str] = field(default_factory=list)
    change: EditChange | None = None


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
