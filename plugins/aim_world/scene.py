"""The world's scene graph: what an image contains, exactly.

A :class:`Scene` is the single source of truth for a world image. The renderer turns it
into pixels and per-object masks; the editor changes it and re-renders; the describer and
the synthetic neurons read it. Coordinates are fractions of the image side, so one scene
renders at any size.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, computed_field

Relation = Literal["left of", "right of", "above", "below", "next to", "on top of", "behind", "in front of",
                   "with", "holding"]
SPATIAL_RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below", "next to", "on top of", "behind",
                                      "in front of")
#: Noto Emoji's weight axis: the glyph styles from thin (300) to bold (700)
FONT_WEIGHTS: tuple[int, ...] = (300, 400, 500, 600, 700)


class SceneObject(BaseModel):
    """One drawn object (a glyph from the noun vocabulary)."""

    noun: str = Field(description="canonical vocabulary noun, e.g. 'dog'")
    color: str = Field(description="canonical colour name, e.g. 'red'")
    texture: str | None = Field(default=None, description="pattern inside the glyph: stripes, dots, ...")
    style: Literal["filled", "outline"] = "filled"
    x: float = Field(ge=0.0, le=1.0, description="centre, fraction of width from the left")
    y: float = Field(ge=0.0, le=1.0, description="centre, fraction of height from the top")
    size: float = Field(
        gt=0.0, le=1.5, description="glyph box side, fraction of the image side (> 1: a cropped close-up)"
    )
    attached_to: int | None = Field(
        default=None, description="index of the object this one belongs to ('dog with leash')"
    )
    # How it looks beyond what a prompt says (seeded variety; all 0/500/False draws the plain glyph).
    weight: int = Field(default=500, ge=300, le=700, description="glyph stroke weight (Noto Emoji wght axis)")
    rotation: float = Field(default=0.0, ge=-45.0, le=45.0, description="degrees, counter-clockwise")
    flip: bool = Field(default=False, description="mirrored left-right")
    shear: float = Field(default=0.0, ge=-0.4, le=0.4, description="horizontal shear (mild perspective)")
    shade: float = Field(default=0.0, ge=0.0, le=0.5, description="strength of the light gradient (lit from top-left)")
    grain: float = Field(default=0.0, ge=0.0, le=0.2, description="strength of the texture noise on its fill")
    visible: float | None = Field(
        default=None, ge=0.0, le=1.0, description="visible fraction of its pixels, when it is occluded on request"
    )

    def phrase(self) -> str:
        """Its attributes in words: 'red striped dog', 'blue outlined car'."""
        words = [self.color]
        if self.texture:
            words.append(TEXTURE_ADJECTIVES.get(self.texture, self.texture))
        if self.style == "outline":
            words.append("outlined")
        words.append(self.noun)
        return " ".join(words)


TEXTURE_ADJECTIVES = {"stripes": "striped", "dots": "polka-dot", "checkers": "checkered",
                      "spiral": "spiral", "waves": "wavy"}


class SceneRelation(BaseModel):
    """A spatial or compositional relation the prompt asked for, between two object indices."""

    subject: int
    relation: Relation
    object: int


class Negation(BaseModel):
    """Something the prompt excluded ("no people", "a cat that is not black"); the scene obeys it.

    With ``objects`` empty it excludes every object of kind ``noun`` (only those with the given colour,
    texture or style when one is named) or the ``background``; with ``objects`` it says those
    objects do not have the given colour, texture or style.
    """

    phrase: str = Field(description="the prompt's words, e.g. 'no people'")
    noun: str | None = None
    color: str | None = None
    texture: str | None = None
    style: Literal["filled", "outline"] | None = None
    background: str | None = None
    objects: list[int] = Field(default_factory=list, description="objects an attribute exclusion is about")

    def broken_by(self, scene: Scene) -> list[int]:
        """Indices of the objects that break this negation (or [-1] when the background does)."""
        if self.background is not None and scene.background == self.background:
            return [-1]
        if self.objects:
            return [i for i in self.objects if i < len(scene.objects) and self._has_attribute(scene.objects[i])]
        if self.noun is None:
            return []
        return [i for i, o in enumerate(scene.objects)
                if o.noun == self.noun and (self._has_attribute(o) or not self._names_attribute())]

    def _names_attribute(self) -> bool:
        return any(v is not None for v in (self.color, self.texture, self.style))

    def _has_attribute(self, o: SceneObject) -> bool:
        return (self.color is not None and o.color == self.color) or (
            self.texture is not None and o.texture == self.texture) or (
            self.style is not None and o.style == self.style)


#: nouns a backdrop draws as part of itself, and the name of that detail: "no trees" in a forest removes them
BACKDROP_DETAILS: dict[str, str] = {"tree": "trees", "pine tree": "trees", "cloud": "clouds", "star": "stars",
                                    "mountain": "mountains", "snowflake": "snowfall"}

N_VARIANTS = 24  # background layouts (cloud, tree, star, ... placements); colours and horizon vary continuously


class Backdrop(BaseModel):
    """How a scene's background is drawn: a function of (background, seed), recorded with the scene.

    ``variant`` picks one of :data:`N_VARIANTS` layouts of the background's details (clouds, trees,
    waves); the other fields vary continuously: where the ground starts, brightness, warmth
    (red up and blue down, or the reverse) and contrast.
    """

    variant: int = Field(ge=0, lt=N_VARIANTS)
    horizon: float | None = Field(description="where the ground starts, fraction of the height; None: no ground")
    brightness: float
    warmth: float
    contrast: float


def backdrop(background: str, seed: int) -> Backdrop:
    """The backdrop of ``background`` for a scene seed (deterministic)."""
    from aim_world.vocabulary import BACKGROUND_BY_NAME

    if background not in BACKGROUND_BY_NAME:
        raise KeyError(f"unknown background {background!r}; valid: {', '.join(BACKGROUND_BY_NAME)}")
    rng = np.random.default_rng([seed % 2**32, 7, *background.encode()])
    base = BACKGROUND_BY_NAME[background].horizon
    shift = float(rng.uniform(-0.07, 0.07)) * (0.6 if base is not None and base > 0.7 else 1.0)
    return Backdrop(
        variant=int(rng.integers(0, N_VARIANTS)),
        horizon=None if base is None else round(base + shift, 4),
        brightness=round(float(rng.uniform(0.88, 1.1)), 4),
        warmth=round(float(rng.uniform(-0.07, 0.07)), 4),
        contrast=round(float(rng.uniform(0.85, 1.12)), 4),
    )


class Scene(BaseModel):
    """A whole image: background, objects in drawing order (later ones on top), relations."""

    background: str = Field(description="canonical background name, e.g. 'beach'")
    objects: list[SceneObject] = Field(default_factory=list)
    relations: list[SceneRelation] = Field(default_factory=list)
    seed: int = 0
    prompt: str | None = None
    unknown_words: list[str] = Field(default_factory=list, description="prompt words the world cannot draw")
    notes: list[str] = Field(default_factory=list, description="what the parser could not do as asked")
    negations: list[Negation] = Field(default_factory=list, description="what the prompt excluded; obeyed")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def backdrop(self) -> Backdrop:
        """How the background is drawn (layout variant, horizon, colours): derived from background and seed."""
        return backdrop(self.background, self.seed)

    def omitted_details(self) -> tuple[str, ...]:
        """The backdrop details this scene's negations remove ("a forest with no trees": the forest's trees,
        "a sky without clouds": its clouds), so the picture obeys a negation the backdrop would break."""
        nouns = {n.noun for n in self.negations if n.noun is not None and not n.objects and not n._names_attribute()}
        return tuple(sorted({detail for noun, detail in BACKDROP_DETAILS.items() if noun in nouns}))

    def broken_negations(self) -> list[Negation]:
        """The negations this scene does not obey (none for a parsed scene; an edit may break one)."""
        return [n for n in self.negations if n.broken_by(self)]

    def nouns(self) -> list[str]:
        return [o.noun for o in self.objects]

    def attachments(self, index: int) -> list[int]:
        """Indices of the objects attached (directly or through others) to object ``index``."""
        found: list[int] = []
        frontier = [index]
        while frontier:
            parent = frontier.pop()
            for j, obj in enumerate(self.objects):
                if obj.attached_to == parent and j not in found and j != index:
                    found.append(j)
                    frontier.append(j)
        return sorted(found)

    def reordered(self, order: list[int]) -> Scene:
        """This scene with its objects drawn in ``order`` (a permutation of their indices; later ones on top).
        Every index that names an object (attachments, relations, negations) follows its object."""
        if sorted(order) != list(range(len(self.objects))):
            raise ValueError(f"order {order} is not a permutation of the {len(self.objects)} object indices")
        if order == sorted(order):
            return self
        new_index = {old: new for new, old in enumerate(order)}
        objects = []
        for old in order:
            o = self.objects[old]
            attached = None if o.attached_to is None else new_index[o.attached_to]
            objects.append(o.model_copy(update={"attached_to": attached}))
        relations = [r.model_copy(update={"subject": new_index[r.subject], "object": new_index[r.object]})
                     for r in self.relations]
        negations = [n.model_copy(update={"objects": [new_index[i] for i in n.objects]}) for n in self.negations]
        return self.model_copy(update={"objects": objects, "relations": relations, "negations": negations})

    def caption(self) -> str:
        """A plain sentence of what the scene shows (what a perfect captioner would say)."""
        from collections import Counter

        from aim_world.vocabulary import plurals

        counts = Counter(o.phrase() for o in self.objects)
        parts = [
            (f"an {phrase}" if phrase[0] in "aeiou" else f"a {phrase}") if n == 1 else f"{n} {plurals(phrase)[0]}"
            for phrase, n in counts.items()
        ]
        things = ", ".join(parts) if parts else "nothing"
        return f"{things} on a {self.background} background"
