"""Synthetic neurons with known ground truth, computed from world scene graphs (MAIA's three kinds).

A *concept* is a set of things the world can draw: object nouns (``dog``; ``animal`` is every
animal noun), object colours (any object of that colour), textures, whole backgrounds, or
background regions (the ``sky`` part of every outdoor background). A neuron is

``mono``  (A)       responds to concept A;
``or``    (A or B)  responds to either: the larger of the two responses, maps merged;
``cond``  (A | B)   responds to A only when B is also in the image; A alone gives a
                    near-zero leak (:data:`COND_LEAK` of A's response), B alone gives 0.

Response to a concept present in an image: a detector-like confidence that grows with the
visible area of the concept (``0.2 + 0.8 * (1 - exp(-area / 0.03))``, area as a fraction of
the image) plus a small fixed noise, seeded by the scene and the neuron, so the same image
always gives the same number; an absent concept gives exactly 0. The spatial map is the
concept's visible mask, max-pooled to 56 x 56, times that response.

The neurons read the scene behind an image from the image store (``current_store().scene_of``): every
world image (renders, edits, dataset exemplars) is registered with its scene. An image
without a scene is an error: synthetic neurons only see world images.

The neuron list follows MAIA's Table A6 (Shaham et al., 2024) as far as the world's
vocabulary allows; ``docs/synthetic-neurons.md`` lists every substitution and every dropped
neuron, with the reason.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel, Field

from aim_agent.images import current_store, image_id
from aim_agent.system import LayerProbe, System
from aim_world.scene import Scene
from aim_world.vocabulary import BACKGROUND_BY_NAME, COLORS, NOUN_BY_NAME, NOUNS, TEXTURES

NeuronKind = Literal["mono", "or", "cond"]
MAP_SIZE = 56
COND_LEAK = 0.05
NOISE_SD = 0.04
AREA_SCALE = 0.03
LAYER = "neurons"
MODEL_NAME = "synthetic"
VERSION = 1  # bump when responses change: part of the probe fingerprint (exemplar caches)

REGIONS: tuple[str, ...] = (
    "plain backdrop", "sky", "grass", "water", "snow", "sea", "sand", "sand dunes", "grass verge", "road",
    "brick wall", "trees", "forest floor", "wall", "window", "floor", "night sky", "dark ground", "mountains",
    "meadow",
)


class Concept(BaseModel):
    """What a neuron detects: the union of the listed nouns, colours, textures, backgrounds, regions."""

    key: str = Field(description="short id used in neuron names, e.g. 'dog'")
    label: str = Field(description="words for the concept, e.g. 'dogs'")
    nouns: tuple[str, ...] = ()
    colors: tuple[str, ...] = ()
    textures: tuple[str, ...] = ()
    backgrounds: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()

    def check(self) -> None:
        known = (("nouns", "noun", NOUN_BY_NAME), ("colors", "colour", COLORS), ("textures", "texture", TEXTURES),
                 ("backgrounds", "background", BACKGROUND_BY_NAME), ("regions", "region", REGIONS))
        for field, what, valid in known:
            for value in getattr(self, field):
                if value not in valid:
                    raise ValueError(f"concept {self.key!r}: unknown {what} {value!r}")


class NeuronSpec(BaseModel):
    """One synthetic neuron: its kind, its concepts (A, or A and B), its ground-truth label."""

    index: int
    name: str
    kind: NeuronKind
    concepts: list[Concept]
    label: str = Field(description="ground truth, in words")
    maia: str | None = Field(default=None, description="MAIA's Table A6 concept(s), when this neuron follows one")
    note: str | None = Field(default=None, description="how the MAIA concept was mapped to the world")


# --------------------------------------------------------------------------- concepts


def _c(key: str, label: str, **atoms: Any) -> Concept:
    return Concept(key=key, label=label, **{k: tuple(v.split(",")) if isinstance(v, str) else tuple(v)
                                           for k, v in atoms.items()})


def _category(cat: str) -> tuple[str, ...]:
    return tuple(n.name for n in NOUNS if n.category == cat)


# fmt: off
CONCEPTS: dict[str, Concept] = {c.key: c for c in [
    # objects
    _c("dog", "dogs", nouns="dog"),
    _c("cat", "cats", nouns="cat"),
    _c("horse", "horses", nouns="horse"),
    _c("frog", "frogs", nouns="frog"),
    _c("snake", "snakes", nouns="snake"),
    _c("bird", "birds", nouns="bird,eagle,owl,parrot,duck,chicken,penguin,flamingo,peacock,swan"),
    _c("fish", "fish", nouns="fish"),
    _c("bug", "bugs and insects", nouns="beetle,ant,bee,ladybug,spider,butterfly"),
    _c("animal", "animals", nouns=_category("animal")),
    _c("fur", "furry things (teddy bears, bears, sheep, llamas)", nouns="teddy bear,bear,sheep,llama"),
    _c("person", "people", nouns="person,runner,baby"),
    _c("baby", "babies", nouns="baby"),
    _c("boat", "boats and ships", nouns="boat,ocean liner,canoe,speedboat"),
    _c("car", "cars", nouns="car"),
    _c("truck", "trucks", nouns="truck,pickup truck,fire truck"),
    _c("train", "trains and trams", nouns="train,tram"),
    _c("tractor", "tractors", nouns="tractor"),
    _c("bicycle", "bicycles", nouns="bicycle"),
    _c("vehicle", "vehicles", nouns=_category("vehicle")),
    _c("wing", "winged things (airplanes, birds, butterflies, bats)", nouns="airplane,bird,eagle,butterfly,bat"),
    _c("building", "buildings", nouns="house,castle,church,factory,hut"),
    _c("bridge", "bridges", nouns="bridge"),
    _c("tent", "tents", nouns="tent"),
    _c("door", "doors", nouns="door"),
    _c("window", "windows", nouns="window", regions="window"),
    _c("rainbow", "rainbows (arches)", nouns="rainbow"),
    _c("tree", "trees", nouns="tree,pine tree,palm tree", regions="trees"),
    _c("flower", "flowers", nouns="flower,tulip,sunflower,rose"),
    _c("fruit", "fruit", nouns="apple,banana,orange,lemon,grapes,strawberry,cherry,pear,pineapple,watermelon"),
    _c("pizza", "pizza", nouns="pizza"),
    _c("cup", "cups and mugs", nouns="cup"),
    _c("spoon", "spoons", nouns="spoon"),
    _c("handle", "objects with handles (cups, teapots, buckets, baskets, bags)",
       nouns="cup,teapot,bucket,basket,handbag,briefcase"),
    _c("pencil", "pencils", nouns="pencil"),
    _c("book", "books", nouns="book"),
    _c("ladder", "ladders", nouns="ladder"),
    _c("bathtub", "bathtubs", nouns="bathtub"),
    _c("puzzle", "jigsaw puzzle pieces", nouns="puzzle piece"),
    _c("light", "lights and lamps", nouns="light bulb,lamp,candle,flashlight"),
    _c("fire", "fire", nouns="fire"),
    _c("flame", "flames (fires and candles)", nouns="fire,candle"),
    _c("star", "stars", nouns="star"),
    _c("ring", "rings (jewellery)", nouns="ring"),
    _c("log", "wooden logs", nouns="log"),
    _c("ball", "balls", nouns="ball,basketball,baseball,volleyball,football"),
    _c("leash", "leashes (chains)", nouns="leash"),
    _c("umbrella", "umbrellas", nouns="umbrella"),
    _c("instrument", "musical instruments", nouns=_category("instrument")),
    _c("glove", "gloves (hands)", nouns="glove"),
    _c("hat", "hats", nouns="hat"),
    _c("sunglasses", "sunglasses", nouns="sunglasses"),
    _c("jeans", "jeans", nouns="jeans"),
    _c("shirt", "shirts", nouns="t-shirt"),
    _c("dress", "dresses and skirts", nouns="dress"),
    _c("coat", "coats and jackets", nouns="coat"),
    _c("tie", "neckties", nouns="tie"),
    _c("shoes", "shoes and boots", nouns="shoe,boot"),
    _c("mountain", "mountains", nouns="mountain,volcano", regions="mountains"),
    # colours (of objects)
    _c("blue", "blue objects", colors="blue"),
    _c("yellow", "yellow objects", colors="yellow"),
    _c("red", "red objects", colors="red"),
    _c("purple", "purple objects", colors="purple"),
    _c("orange", "orange objects", colors="orange"),
    _c("green", "green objects", colors="green"),
    # textures
    _c("stripes", "striped patterns", textures="stripes"),
    _c("spiral", "spiral patterns", textures="spiral"),
    _c("dots", "polka dots (circles)", textures="dots"),
    _c("checkers", "checkered patterns", textures="checkers"),
    _c("waves", "wavy patterns", textures="waves"),
    # backgrounds and background regions
    _c("sky", "sky", regions="sky,night sky"),
    _c("grass", "grass", regions="grass,grass verge,meadow"),
    _c("water", "water", regions="water,sea"),
    _c("snow", "snow", regions="snow"),
    _c("road", "roads", regions="road"),
    _c("beach", "beach scenes", backgrounds="beach"),
    _c("brick", "brick walls", backgrounds="brick wall"),
    _c("night", "night scenes", backgrounds="night"),
]}

# (kind, A, B, MAIA's concept(s) or None for a world extra, note on the mapping)
_TABLE: list[tuple[str, str, str | None, str | None, str | None]] = [
    # ---- monosemantic (MAIA Table A6, column 1)
    ("mono", "rainbow", None, "arch", "no arch glyph; the rainbow is the world's arch-shaped object"),
    ("mono", "bird", None, "bird", "every bird noun"),
    ("mono", "blue", None, "blue", "objects coloured blue"),
    ("mono", "boat", None, "boat", "boats, ocean liners, canoes, speedboats"),
    ("mono", "brick", None, "brick", "the brick-wall background"),
    ("mono", "bridge", None, "bridge", None),
    ("mono", "bug", None, "bug", "beetle, ant, bee, ladybug, spider, butterfly"),
    ("mono", "building", None, "building", "house, castle, church, factory, hut"),
    ("mono", "dots", None, "circle", "no circle shape; the polka-dot texture is made of circles"),
    ("mono", "dog", None, "dog", None),
    ("mono", "flame", None, "flame", "fire and candle glyphs"),
    ("mono", "frog", None, "frog", None),
    ("mono", "grass", None, "grass", "grass regions of the grass, road and mountain backgrounds"),
    ("mono", "glove", None, "hands", "no hands; the glove is the world's hand-shaped object"),
    ("mono", "handle", None, "handle", "objects are not split into parts: objects that have handles"),
    ("mono", "hat", None, "hat", None),
    ("mono", "jeans", None, "jeans", None),
    ("mono", "puzzle", None, "jigsaw", "puzzle piece"),
    ("mono", "light", None, "light", "light bulb, lamp, candle, flashlight"),
    ("mono", "orange", None, "orange", "the colour orange, on objects"),
    ("mono", "pencil", None, "pencil", None),
    ("mono", "pizza", None, "pizza", None),
    ("mono", "shirt", None, "shirt", "t-shirt"),
    ("mono", "shoes", None, "shoes", "shoe and boot"),
    ("mono", "sky", None, "sky", "sky regions of every outdoor background, night sky included"),
    ("mono", "snake", None, "snake", None),
    ("mono", "spiral", None, "spiral", "spiral texture"),
    ("mono", "stripes", None, "stripes", "stripes texture"),
    ("mono", "sunglasses", None, "sunglasses", None),
    ("mono", "tractor", None, "tractor", None),
    ("mono", "vehicle", None, "vehicle", "every vehicle noun"),
    ("mono", "wing", None, "wing", "objects are not split into parts: winged things"),
    # world extras (replacing dropped MAIA neurons; they use textures, colours and backgrounds the world has)
    ("mono", "cat", None, None, None),
    ("mono", "car", None, None, None),
    ("mono", "tree", None, None, None),
    ("mono", "person", None, None, None),
    ("mono", "fish", None, None, None),
    ("mono", "checkers", None, None, None),
    ("mono", "waves", None, None, None),
    ("mono", "green", None, None, None),
    ("mono", "night", None, None, None),
    ("mono", "water", None, None, None),
    # ---- polysemantic A or B (column 2)
    ("or", "animal", "door", "animal, door", None),
    ("or", "animal", "boat", "animal, ship", "ship -> boats and ships"),
    ("or", "baby", "dog", "baby, dog", None),
    ("or", "bird", "dog", "bird, dog", None),
    ("or", "blue", "yellow", "blue, yellow", "colours of objects"),
    ("or", "book", "building", "bookshelf, building", "bookshelf -> book"),
    ("or", "cup", "road", "cup, road", "road -> the road region"),
    ("or", "dog", "car", "dog, car", None),
    ("or", "dog", "horse", "dog, horse", None),
    ("or", "dog", "instrument", "dog, instrument", "every musical-instrument noun"),
    ("or", "fire", "fur", "fire, fur", "fur -> furry things (teddy bear, bear, sheep, llama)"),
    ("or", "star", "cat", "firework, whisker", "firework -> star; whisker -> cat (no parts)"),
    ("or", "ring", "flower", "necklace, flower", "necklace -> ring (the world's jewellery)"),
    ("or", "person", "building", "people, building", None),
    ("or", "person", "log", "people, wood", "wood -> log"),
    ("or", "red", "purple", "red, purple", "colours of objects"),
    ("or", "shoes", "boat", "shoe, boat", None),
    ("or", "bathtub", "water", "sink, pool", "sink -> bathtub; pool -> water region"),
    ("or", "dress", "water", "skirt, water", "skirt -> dress"),
    ("or", "ladder", "fruit", "stairs, fruit", "stairs -> ladder"),
    ("or", "truck", "train", "truck, train", None),
    ("or", "window", "bicycle", "window, wheel", "wheel -> bicycle (no parts); window noun or a room's window"),
    ("or", "red", "tree", None, None),
    ("or", "waves", "cat", None, None),
    ("or", "night", "boat", None, None),
    # ---- conditional A | B (column 3)
    ("cond", "ball", "glove", "ball | hand", "hand -> glove"),
    ("cond", "beach", "person", "beach | people", None),
    ("cond", "bird", "tree", "bird | tree", None),
    ("cond", "bridge", "sky", "bridge | sky", None),
    ("cond", "building", "sky", "building | sky", None),
    ("cond", "cup", "spoon", "cup | handle", "every cup has a handle, so the condition would be void: spoon instead"),
    ("cond", "dog", "leash", "dog | leash", "leash (a chain glyph)"),
    ("cond", "brick", "animal", "fence | animal", "fence -> brick wall"),
    ("cond", "fish", "water", "fish | water", None),
    ("cond", "grass", "dog", "grass | dog", None),
    ("cond", "horse", "grass", "horse | grass", None),
    ("cond", "instrument", "glove", "instrument | hand", "hand -> glove"),
    ("cond", "building", "water", "skyline | water", "skyline -> buildings"),
    ("cond", "sky", "bird", "sky | bird", None),
    ("cond", "snow", "car", "snow | road", "a scene has one background, never both snow and road: road -> car"),
    ("cond", "coat", "tie", "suit | tie", "suit -> coat"),
    ("cond", "tent", "mountain", "tent | mountain", "mountain noun, volcano, or the mountains background"),
    ("cond", "water", "blue", "water | blue", "blue objects"),
    ("cond", "person", "umbrella", None, None),
    ("cond", "ball", "dog", None, None),
    ("cond", "stripes", "cat", None, None),
]
# fmt: on

#: MAIA Table A6 neurons the world cannot express (concept -> reason).
DROPPED: dict[str, str] = {
    "button": "no button glyph",
    "car window": "objects are not split into parts",
    "eyes": "no body or face parts",
    "feathers": "no feather texture; birds are covered by the bird neurons",
    "hair": "no body or face parts",
    "legs": "no body or face parts",
    "neck": "no body or face parts",
    "paws": "no body or face parts",
    "roof": "objects are not split into parts (a house is one glyph)",
    "tail": "no body or face parts",
    "text": "the world draws no text",
    "tires": "objects are not split into parts",
    "yarn": "no yarn glyph or texture",
    "hand, ear (or)": "no body or face parts",
    "temple, playground (or)": "no playground in the world",
    "wheel | racecar (cond)": "objects are not split into parts: no wheel apart from its vehicle",
}


def _label(kind: str, a: Concept, b: Concept | None) -> str:
    if kind == "mono":
        return a.label
    assert b is not None
    if kind == "or":
        return f"{a.label} or {b.label}"
    return f"{a.label}, only when {b.label} are also present"


@cache
def list_synthetic() -> tuple[NeuronSpec, ...]:
    """The synthetic neuron set, in unit order (unit ``i`` is ``list_synthetic()[i]``)."""
    specs = []
    for i, (kind, a_key, b_key, maia, note) in enumerate(_TABLE):
        a = CONCEPTS[a_key]
        b = CONCEPTS[b_key] if b_key else None
        name = f"{kind}_{a_key}" + (f"_{b_key}" if b_key else "")
        specs.append(NeuronSpec(index=i, name=name, kind=kind, concepts=[a] if b is None else [a, b],  # type: ignore[arg-type]
                                label=_label(kind, a, b), maia=maia, note=note))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise AssertionError("synthetic neuron names must be unique")
    return tuple(specs)


def neuron_names() -> list[str]:
    return [s.name for s in list_synthetic()]


def find_neuron(name: str | int) -> NeuronSpec:
    """A neuron by name (``mono_dog``) or unit index; LookupError listing close names otherwise."""
    specs = list_synthetic()
    if isinstance(name, int) or (isinstance(name, str) and name.isdigit()):
        i = int(name)
        if not 0 <= i < len(specs):
            raise LookupError(f"synthetic unit {i} is out of range: valid units are 0..{len(specs) - 1}")
        return specs[i]
    for spec in specs:
        if spec.name == name:
            return spec
    names = [s.name for s in specs]
    close = difflib.get_close_matches(name, names, n=6, cutoff=0.5)
    close += [n for n in names if name and name.lower() in n and n not in close][: 8 - len(close)]
    hint = f"close names: {', '.join(close)}" if close else f"names look like {', '.join(names[:4])}, ..."
    raise LookupError(f"no synthetic neuron named {name!r}; {hint}. See `list_synthetic()` "
                      f"or docs/synthetic-neurons.md")


# --------------------------------------------------------------------------- responses


@dataclass
class SceneAtoms:
    """What one scene offers to concepts: per-object and per-region visible areas and pooled masks."""

    scene: Scene
    key: str
    object_area: np.ndarray  # (n,) visible fraction of the image per object
    object_maps: np.ndarray  # (n, MAP, MAP) bool
    background_area: float
    background_map: np.ndarray  # (MAP, MAP) bool
    region_area: dict[str, float]
    region_maps: dict[str, np.ndarray]


def _cells(size: int) -> np.ndarray:
    """Map cell (row or column, 0..MAP-1) of each pixel index of an image side of ``size``."""
    return (np.arange(size) * MAP_SIZE) // size


def scene_key(scene: dict[str, Any] | Scene) -> str:
    """Canonical text of what determines a scene's pixels (background, objects, seed): the cache
    key and the noise seed, so a prompt or a note never changes an activation."""
    model = scene if isinstance(scene, Scene) else Scene.model_validate(scene)
    data = model.model_dump(mode="json", include={"background", "objects", "seed"})
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def atoms_of(scene: Scene, size: int, key: str | None = None) -> SceneAtoms:
    """Render ``scene`` at ``size`` and measure its objects and background regions.

    Every pixel gets one atom id: object ``i`` where the object is visible, ``n + k`` where
    background region ``k`` is; one scatter then gives each atom's max-pooled ``(MAP, MAP)`` mask
    and one bincount its area.
    """
    from aim_world.render import background_parts, render

    r = render(scene, size)
    n = len(scene.objects)
    labels, parts = background_parts(scene.background, size, scene.seed, scene.omitted_details())
    owner = r.owner.astype(np.int32)
    atom = np.where(owner >= 0, owner, n + labels.astype(np.int32))
    n_atoms = n + len(parts)
    cells = _cells(size)
    pooled = np.zeros((n_atoms, MAP_SIZE, MAP_SIZE), dtype=bool)
    pooled[atom, cells[:, None], cells[None, :]] = True
    area = np.bincount(atom.ravel(), minlength=n_atoms) / float(size * size)
    return SceneAtoms(
        scene=scene,
        key=key or scene_key(scene),
        object_area=area[:n],
        object_maps=pooled[:n],
        background_area=float(area[n:].sum()),
        background_map=pooled[n:].any(axis=0),
        region_area={p: float(area[n + k]) for k, p in enumerate(parts)},
        region_maps={p: pooled[n + k] for k, p in enumerate(parts)},
    )


def concept_extent(concept: Concept, atoms: SceneAtoms) -> tuple[float, np.ndarray]:
    """(visible area fraction, pooled mask) of a concept in a scene; (0, empty) when absent."""
    scene = atoms.scene
    area = 0.0
    mask = np.zeros((MAP_SIZE, MAP_SIZE), dtype=bool)
    for i, o in enumerate(scene.objects):
        if o.noun in concept.nouns or o.color in concept.colors or o.texture in concept.textures:
            area += float(atoms.object_area[i])
            mask |= atoms.object_maps[i]
    if scene.background in concept.backgrounds:
        area += atoms.background_area
        mask |= atoms.background_map
    else:
        for region in concept.regions:
            if region in atoms.region_area:
                area += atoms.region_area[region]
                mask |= atoms.region_maps[region]
    return area, mask


def scene_noise(key: str, units: int) -> np.ndarray:
    """Fixed standard-normal noise ``(units, 2)`` for one scene: row = neuron, column = concept slot."""
    seed = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng(seed).standard_normal((units, 2))


def concept_response(area: float, noise: float) -> float:
    """Detector confidence for a concept covering ``area`` of the image (0 when absent)."""
    if area <= 0.0:
        return 0.0
    confidence = 0.2 + 0.8 * (1.0 - math.exp(-area / AREA_SCALE))
    return max(0.02, confidence + NOISE_SD * noise)


def neuron_response(
    spec: NeuronSpec,
    atoms: SceneAtoms,
    noise: np.ndarray | None = None,
    extents: dict[str, tuple[float, np.ndarray]] | None = None,
) -> tuple[float, np.ndarray]:
    """(activation, map ``(MAP, MAP)`` float32) of one neuron on one scene.

    ``noise`` is the neuron's row of :func:`scene_noise` (computed when not given); ``extents``
    caches concept extents across the neurons of one scene.
    """
    if noise is None:
        noise = scene_noise(atoms.key, spec.index + 1)[spec.index]
    parts = []
    for slot, concept in enumerate(spec.concepts):
        if extents is not None and concept.key in extents:
            area, mask = extents[concept.key]
        else:
            area, mask = concept_extent(concept, atoms)
            if extents is not None:
                extents[concept.key] = (area, mask)
        parts.append((concept_response(area, float(noise[slot])), mask))
    ra, ma = parts[0]
    if spec.kind == "mono":
        return ra, ma * np.float32(ra)
    rb, mb = parts[1]
    if spec.kind == "or":
        return max(ra, rb), np.maximum(ma * np.float32(ra), mb * np.float32(rb))
    gate = 1.0 if rb > 0.0 else COND_LEAK
    return ra * gate, ma * np.float32(ra * gate)


class SyntheticProbe(LayerProbe):
    """The synthetic neurons as one layer: ``forward(images) -> (B, U, 56, 56)``.

    Each image's scene comes from the image store; scenes are rendered once (masks cached).
    ``unit_label(i)`` is neuron ``i``'s ground truth.
    """

    model_name = MODEL_NAME
    layer = LAYER

    def __init__(self, specs: Sequence[NeuronSpec] | None = None, cache_size: int = 4096) -> None:
        self.specs = tuple(specs if specs is not None else list_synthetic())
        self.num_units = len(self.specs)
        self._cache: OrderedDict[tuple[str, int], SceneAtoms] = OrderedDict()
        self._cache_size = cache_size

    @classmethod
    def for_layer(cls, layer: str = LAYER) -> SyntheticProbe:
        if layer != LAYER:
            raise LookupError(f"the synthetic model has one layer, {LAYER!r}; got {layer!r}")
        return cls()

    def atoms(self, scene: dict[str, Any] | Scene, size: int) -> SceneAtoms:
        model = scene if isinstance(scene, Scene) else Scene.model_validate(scene)
        key = scene_key(model)
        hit = self._cache.get((key, size))
        if hit is not None:
            self._cache.move_to_end((key, size))
            return hit
        atoms = atoms_of(model, size, key)
        self._cache[(key, size)] = atoms
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return atoms

    def scene_for(self, image: Image.Image) -> dict[str, Any]:
        """The image's scene: from the image store, else from the PNG text chunk of a world dataset file."""
        from aim_world.datasets import scene_in_png

        scene = current_store().scene_of(image) or scene_in_png(image)
        if scene is None:
            raise ValueError(
                f"image {image_id(image)} has no world scene: synthetic neurons only see world images "
                "(text2image/edit renders, or exemplars of a world dataset with scenes.jsonl). "
                "Make images with the world generator, or use a real model for other images."
            )
        return scene

    def responses(self, scene: dict[str, Any] | Scene, size: int = 224) -> tuple[np.ndarray, np.ndarray]:
        """(activations ``(U,)``, maps ``(U, MAP, MAP)``) of every neuron on one scene."""
        atoms = self.atoms(scene, size)
        acts = np.zeros(self.num_units, dtype=np.float32)
        maps = np.zeros((self.num_units, MAP_SIZE, MAP_SIZE), dtype=np.float32)
        noise = scene_noise(atoms.key, max(s.index for s in self.specs) + 1)
        extents: dict[str, tuple[float, np.ndarray]] = {}
        for i, spec in enumerate(self.specs):
            acts[i], maps[i] = neuron_response(spec, atoms, noise[spec.index], extents)
        return acts, maps

    def forward(self, images: Sequence[Image.Image]) -> torch.Tensor:
        out = np.stack([self.responses(self.scene_for(im), im.width)[1] for im in images])
        return torch.from_numpy(out)

    def activations_of_scenes(self, scenes: Sequence[dict[str, Any] | Scene], size: int = 224) -> np.ndarray:
        """``(N, U)`` activations straight from scene graphs (no images needed)."""
        return np.stack([self.responses(s, size)[0] for s in scenes])

    def fingerprint(self) -> str:
        table = json.dumps([s.model_dump(mode="json") for s in self.specs], sort_keys=True)
        digest = hashlib.blake2b(f"{table}|{VERSION}|{MAP_SIZE}".encode(), digest_size=10).hexdigest()
        return f"{MODEL_NAME}:{LAYER}:{digest}"

    def unit_label(self, unit: int) -> str | None:
        self.check_unit(unit)
        return self.specs[unit].label

    def unit_name(self, unit: int) -> str:
        self.check_unit(unit)
        return self.specs[unit].name

    def __repr__(self) -> str:
        return f"SyntheticProbe(units={self.num_units})"


@cache
def synthetic_probe() -> SyntheticProbe:
    """The process-wide probe of the synthetic neurons (one render cache shared by all systems)."""
    return SyntheticProbe()


def synthetic_system(name: str | int, **kwargs: Any) -> System:
    """A :class:`System` for one synthetic neuron, by name (``'cond_dog_leash'``) or unit index."""
    spec = find_neuron(name)
    return System(synthetic_probe(), spec.index, **kwargs)


def check_table() -> None:
    """Validate every concept against the vocabulary (run by the tests)."""
    for concept in CONCEPTS.values():
        concept.check()
