"""World datasets: random scenes, and the task datasets the world CNNs are trained on.

Every dataset is a folder of PNG images plus ``scenes.jsonl``, one line per image::

    {"file": "images/000017.png", "scene": {...Scene...}, "label": "dog"}

(``label`` only when the task has labels). That sidecar is the contract with the exemplar
engine: it reads the folder and registers each image's scene in the image store, so the
describer and the synthetic neurons can see what every exemplar contains. Each PNG also
carries its scene in a text chunk (:data:`PNG_SCENE_KEY`), so an image decoded without being
registered (the exemplar engine's streaming pass) still tells the synthetic neurons its scene. Folders are
written atomically (a temporary folder renamed into place), so an interrupted run leaves
nothing half-written.

Kinds (``write_dataset(..., kind=...)``):

``random``
    1-3 objects from the whole vocabulary on a random background, with some natural
    statistics (animals often on their habitats, a dog sometimes with a leash, ...).
``classify``
    20 object classes (:data:`CLASSIFY_CLASSES`), one main object per image, varied colour,
    texture, size, position and background, sometimes a small distractor object.
``spawrious`` (``split="train"|"test"``)
    4 animal classes, each tied to one background in train (dog-beach, cat-snow, bird-grass,
    cow-desert, :data:`SPAWRIOUS_CORRELATION` of the time); the test split only shows the
    other pairings.
``bias`` (``split="train"|"test"``)
    the 20 classes with planted correlations in train (:data:`PLANTED_BIASES`: boats only on
    water, cars only red, dogs always with a leash); written as ground truth to
    ``bias.json``. The test split has no planted correlations.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from aim_world.render import glyph_extent
from aim_world.scene import Scene, SceneObject, backdrop
from aim_world.variety import object_look
from aim_world.vocabulary import BACKGROUNDS, COLORS, NOUN_BY_NAME, NOUNS, SCALE_STEP, TEXTURES, real_scale

Kind = Literal["random", "classify", "spawrious", "bias"]
KINDS: tuple[str, ...] = ("random", "classify", "spawrious", "bias")
Split = Literal["train", "test"]

# Visually distinct glyphs across animals, vehicles, buildings, plants, food, objects.
CLASSIFY_CLASSES: tuple[str, ...] = (
    "dog", "cat", "bird", "fish", "horse", "elephant", "car", "bus", "airplane", "boat",
    "bicycle", "house", "tree", "flower", "apple", "cup", "guitar", "umbrella", "key", "person",
)

SPAWRIOUS_PAIRS: dict[str, str] = {"dog": "beach", "cat": "snow", "bird": "grass", "cow": "desert"}
SPAWRIOUS_CLASSES: tuple[str, ...] = tuple(SPAWRIOUS_PAIRS)
SPAWRIOUS_CORRELATION = 0.95
SPAWRIOUS_SIZES = (0.28, 0.5)


@dataclass(frozen=True)
class PlantedBias:
    """One planted correlation of the ``bias`` training set.

    In train, every image of ``cls`` has the feature, and (``exclusive``) no image of another
    class has it: ``P(feature | cls) = P(cls | feature) = 1``. In test, the feature is as
    random as it is for every other class.
    """

    cls: str
    feature: Literal["background", "color", "cooccurrence"]
    value: str
    description: str
    exclusive: bool = True


PLANTED_BIASES: tuple[PlantedBias, ...] = (
    PlantedBias("boat", "background", "water", "boats appear only on water, and water appears only behind boats"),
    PlantedBias("car", "color", "red", "cars are always red, and no other object is red"),
    PlantedBias("dog", "cooccurrence", "leash", "dogs always come with a leash, and a leash appears only with a dog"),
)

#: in the bias test split, how often any image gets a planted co-occurring object (a leash)
TEST_COMPANION_RATE = 0.15

# Natural statistics of the random world: where things tend to be, what tends to go with what.
HABITATS: dict[str, tuple[str, ...]] = {
    "fish": ("water",), "whale": ("water",), "dolphin": ("water",), "shark": ("water",), "octopus": ("water",),
    "jellyfish": ("water",), "boat": ("water",), "ocean liner": ("water",), "canoe": ("water",),
    "speedboat": ("water",), "seal": ("water", "snow", "beach"), "crab": ("beach",), "duck": ("water", "grass"),
    "swan": ("water",), "penguin": ("snow",), "snowman": ("snow",), "sled": ("snow",), "skis": ("snow",),
    "camel": ("desert",), "cactus": ("desert",), "scorpion": ("desert",), "cow": ("grass",),
    "horse": ("grass",), "sheep": ("grass", "mountains"), "goat": ("mountains",), "deer": ("forest",),
    "bear": ("forest",), "owl": ("forest", "night"), "squirrel": ("forest",), "tree": ("grass", "forest"),
    "pine tree": ("forest", "snow", "mountains"), "palm tree": ("beach",), "car": ("road",), "bus": ("road",),
    "truck": ("road",), "taxi": ("road",), "bicycle": ("road",), "motorcycle": ("road",),
    "police car": ("road",), "race car": ("road",), "airplane": ("sky",), "helicopter": ("sky",),
    "rocket": ("sky", "night"), "moon": ("night",), "star": ("night",), "ufo": ("night",), "bat": ("night",),
    "couch": ("room",), "bed": ("room",), "chair": ("room",), "lamp": ("room",), "television": ("room",),
    "tent": ("mountains", "forest"), "mountain": ("mountains",), "ball": ("grass", "beach"),
    "umbrella": ("beach",), "person": ("beach", "road", "grass"),
}
COMPANIONS: dict[str, tuple[str, ...]] = {
    "dog": ("leash", "ball", "person"), "cat": ("mouse", "ball"), "person": ("hat", "umbrella", "dog", "baby"),
    "cup": ("spoon", "teapot"), "coat": ("tie", "hat"), "tie": ("coat",), "guitar": ("glove", "person"),
    "drum": ("glove",), "ball": ("glove", "dog"), "horse": ("tree", "person"), "bird": ("tree", "cloud"),
    "tent": ("mountain", "tree"), "fish": ("water drop",), "bridge": ("cloud", "sun"),
    "house": ("tree", "cloud", "sun"), "car": ("person", "traffic light"), "baby": ("teddy bear", "bottle"),
    "tree": ("bird",), "fire": ("log",), "boat": ("anchor", "cloud"),
}
#: typical pairings of the random world: (noun, partner); a partner is a noun, ``bg:<background>``
#: or ``texture:<texture>`` (of the first object)
PAIRINGS: tuple[tuple[str, str], ...] = (
    ("dog", "leash"), ("dog", "ball"), ("dog", "bg:grass"), ("person", "umbrella"), ("person", "bg:beach"),
    ("person", "hat"), ("cup", "spoon"), ("coat", "tie"), ("ball", "glove"), ("guitar", "glove"),
    ("drum", "glove"), ("bird", "tree"), ("bird", "bg:sky"), ("tent", "bg:mountains"), ("tent", "mountain"),
    ("fish", "bg:water"), ("horse", "bg:grass"), ("cow", "bg:grass"), ("car", "bg:snow"), ("car", "bg:road"),
    ("house", "bg:water"), ("castle", "bg:water"), ("bridge", "bg:water"), ("cat", "texture:stripes"),
    ("cat", "ball"), ("boat", "bg:water"), ("baby", "teddy bear"), ("fire", "log"),
)
#: nouns a natural collection shows often (the world CNN classes, and everyday things)
FREQUENT_NOUNS: tuple[str, ...] = (
    "dog", "cat", "bird", "fish", "horse", "cow", "elephant", "person", "baby", "car", "bus", "truck", "train",
    "bicycle", "airplane", "boat", "tractor", "house", "bridge", "tent", "tree", "flower", "apple", "banana",
    "pizza", "cup", "spoon", "chair", "book", "pencil", "umbrella", "key", "ball", "guitar", "hat", "t-shirt",
    "jeans", "shoe", "sunglasses", "glove", "coat", "tie", "leash", "frog", "snake", "fire", "lamp", "rainbow",
    "puzzle piece", "window", "door",
)


# --------------------------------------------------------------------------- sampling


def _natural_or_random_color(rng: np.random.Generator, noun: str, p_natural: float = 0.5) -> str:
    colors = list(COLORS)
    natural = NOUN_BY_NAME[noun].colors
    if natural and rng.random() < p_natural:
        return str(natural[int(rng.integers(len(natural)))])
    return colors[int(rng.integers(len(colors)))]


def _position(rng: np.random.Generator, noun: str, horizon: float | None, size: float) -> tuple[float, float]:
    """A centre that keeps most of the glyph in view, near where such a thing usually is: a thing that
    stands has its base on the ground (below the horizon), a thing of the sky stays above it."""
    half = size / 2
    lo, hi = min(half, 0.5), max(1 - half, 0.5)
    x = float(rng.uniform(lo, hi))
    zone = NOUN_BY_NAME[noun].zone
    if horizon is None or zone == "any":
        y = float(rng.uniform(lo, hi))
    elif zone == "sky":
        y = float(rng.uniform(lo, max(lo, min(hi, horizon))))
    else:  # its base (the glyph's bottom) between just below the horizon and the bottom of the frame
        half_h = glyph_extent(noun)[1] * size / 2
        base_lo, base_hi = horizon + 0.04, 0.98
        y = float(rng.uniform(base_lo, max(base_lo, base_hi)) - half_h)
        y = float(np.clip(y, min(half_h, 0.5), max(1 - half_h, 0.5)))
    return x, y


def _overlap(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    """Overlap of two square boxes (x, y, size) as a fraction of the smaller one."""
    ax, ay, asz = a
    bx, by, bsz = b
    w = max(0.0, min(ax + asz / 2, bx + bsz / 2) - max(ax - asz / 2, bx - bsz / 2))
    h = max(0.0, min(ay + asz / 2, by + bsz / 2) - max(ay - asz / 2, by - bsz / 2))
    return w * h / min(asz, bsz) ** 2


def make_object(
    rng: np.random.Generator,
    noun: str,
    horizon: float | None,
    size_range: tuple[float, float],
    placed: list[tuple[float, float, float]],
    *,
    color: str | None = None,
    p_texture: float = 0.25,
    p_outline: float = 0.08,
    max_overlap: float = 0.35,
) -> SceneObject:
    """One object with random attributes and a random look (:func:`~aim_world.variety.object_look`), placed
    (a few tries) where it overlaps others little; ``horizon`` is the backdrop's (None: no ground)."""
    size = float(rng.uniform(*size_range))
    best: tuple[float, float] | None = None
    best_overlap = 2.0
    for _ in range(12):
        x, y = _position(rng, noun, horizon, size)
        worst = max((_overlap((x, y, size), p) for p in placed), default=0.0)
        if worst < best_overlap:
            best, best_overlap = (x, y), worst
        if worst <= max_overlap:
            break
    assert best is not None
    placed.append((best[0], best[1], size))
    texture = str(TEXTURES[int(rng.integers(len(TEXTURES)))]) if rng.random() < p_texture else None
    style = "outline" if rng.random() < p_outline else "filled"
    return SceneObject(
        noun=noun,
        color=color or _natural_or_random_color(rng, noun),
        texture=texture,
        style=style,
        x=round(best[0], 4),
        y=round(best[1], 4),
        size=round(size, 4),
        **object_look(rng, noun),  # type: ignore[arg-type]
    )


def _pick(rng: np.random.Generator, items: tuple[str, ...] | list[str]) -> str:
    return str(items[int(rng.integers(len(items)))])


def random_scene(rng: np.random.Generator, *, max_objects: int = 3) -> Scene:
    """A random world scene: 1-``max_objects`` objects, random attributes, a random background.

    Like a natural image collection, the world has frequent things and typical combinations:

    - 25% of scenes show a typical pairing (:data:`PAIRINGS`: a dog with a leash, a fish in
      water, a tabby cat), possibly with one more random object;
    - otherwise the first object is a frequent noun (:data:`FREQUENT_NOUNS`) 30% of the time and
      any noun of the vocabulary otherwise; 40% of the time the background is one of its
      habitats (:data:`HABITATS`), and 30% of the time the second object is one of its
      companions (:data:`COMPANIONS`). Everything else is uniform.
    """
    all_nouns = [n.name for n in NOUNS]
    backgrounds = [b.name for b in BACKGROUNDS]
    texture_of_first: str | None = None
    if rng.random() < 0.25:
        first, partner = PAIRINGS[int(rng.integers(len(PAIRINGS)))]
        kind, _, value = partner.rpartition(":")
        background = value if kind == "bg" else _pick(rng, HABITATS.get(first, tuple(backgrounds)))
        nouns = [first] + ([value] if not kind else [])
        texture_of_first = value if kind == "texture" else None
        if len(nouns) < max_objects and rng.random() < 0.3:
            nouns.append(_pick(rng, all_nouns))
    else:
        n_obj = int(rng.integers(1, max_objects + 1))
        first = _pick(rng, FREQUENT_NOUNS) if rng.random() < 0.3 else _pick(rng, all_nouns)
        if first in HABITATS and rng.random() < 0.4:
            background = _pick(rng, HABITATS[first])
        else:
            background = _pick(rng, backgrounds)
        nouns = [first]
        for k in range(1, n_obj):
            if k == 1 and first in COMPANIONS and rng.random() < 0.3:
                nouns.append(_pick(rng, COMPANIONS[first]))
            else:
                nouns.append(_pick(rng, all_nouns))
    big = (0.22, 0.5) if len(nouns) == 1 else (0.16, 0.4)
    largest = max(real_scale(noun) for noun in nouns)
    seed = int(rng.integers(0, 2**31 - 1))
    horizon = backdrop(background, seed).horizon
    placed: list[tuple[float, float, float]] = []
    objects = []
    for noun in nouns:  # real-world proportions: a key next to a house is small
        real = SCALE_STEP ** (largest - real_scale(noun))
        objects.append(make_object(rng, noun, horizon, (max(0.06, big[0] * real), max(0.08, big[1] * real)), placed))
    if texture_of_first:
        objects[0].texture = texture_of_first
    return Scene(background=background, objects=objects, seed=seed)


@dataclass
class Sample:
    scene: Scene
    label: str | None = None


def _classify_scene(
    rng: np.random.Generator,
    cls: str,
    *,
    background: str | None = None,
    color: str | None = None,
    avoid_colors: tuple[str, ...] = (),
    avoid_backgrounds: tuple[str, ...] = (),
    distractors: tuple[str, ...] = (),
    p_distractor: float = 0.3,
    size_range: tuple[float, float] = (0.3, 0.62),
    forced_companion: str | None = None,
) -> Scene:
    """One image of class ``cls``: a main object plus optional small distractors."""
    if background is None:
        options = [b.name for b in BACKGROUNDS if b.name not in avoid_backgrounds]
        background = _pick(rng, options)
    if color is None:
        palette = [c for c in COLORS if c not in avoid_colors]
        natural = [c for c in NOUN_BY_NAME[cls].colors if c not in avoid_colors]
        color = _pick(rng, natural) if natural and rng.random() < 0.4 else _pick(rng, palette)
    seed = int(rng.integers(0, 2**31 - 1))
    horizon = backdrop(background, seed).horizon
    placed: list[tuple[float, float, float]] = []
    objects = [make_object(rng, cls, horizon, size_range, placed, color=color, p_texture=0.2, p_outline=0.05)]
    extra: list[str] = []
    if forced_companion:
        extra.append(forced_companion)
    if distractors and rng.random() < p_distractor:
        extra.append(_pick(rng, distractors))
    for noun in extra:
        obj = _small_object(rng, noun, horizon, placed, [c for c in COLORS if c not in avoid_colors])
        if noun == forced_companion:
            obj.attached_to = 0
        objects.append(obj)
    return Scene(background=background, objects=objects, seed=seed)


def _small_object(rng: np.random.Generator, noun: str, horizon: float | None,
                  placed: list[tuple[float, float, float]], palette: list[str]) -> SceneObject:
    """A small object beside a scene's main one (a distractor or a planted companion), in a colour of
    ``palette``, overlapping the others little."""
    return make_object(rng, noun, horizon, (0.12, 0.22), placed, color=_pick(rng, palette), max_overlap=0.1)


def _distractor_nouns(exclude: tuple[str, ...]) -> tuple[str, ...]:
    """Nouns that can appear as small distractors: not a class, not a class's look-alike."""
    banned = set(exclude) | {"leash", "pickup truck", "police car", "taxi", "fire truck", "ambulance", "race car",
                             "truck", "speedboat", "canoe", "ocean liner", "pine tree", "palm tree", "tulip",
                             "sunflower", "rose", "runner", "baby", "tram", "scooter", "motorcycle", "tiger",
                             "leopard", "lion", "eagle", "owl", "parrot", "duck", "chicken", "swan",
                             "flamingo", "peacock", "penguin", "whale", "dolphin", "shark", "glass", "broccoli",
                             "teapot", "hut", "unicorn", "zebra", "deer", "tomato", "pear", "cherry"}
    return tuple(n.name for n in NOUNS if n.name not in banned)


def classify_samples(n: int, seed: int) -> Iterator[Sample]:
    """``n`` balanced samples of the 20-class task (classes cycle; order shuffled by seed)."""
    rng = np.random.default_rng([seed, 1])
    distractors = _distractor_nouns(CLASSIFY_CLASSES)
    labels = [CLASSIFY_CLASSES[i % len(CLASSIFY_CLASSES)] for i in range(n)]
    rng.shuffle(labels)
    for cls in labels:
        yield Sample(_classify_scene(rng, cls, distractors=distractors), cls)


def spawrious_samples(n: int, seed: int, split: Split = "train") -> Iterator[Sample]:
    """Animals on backgrounds: in train each class sits on its own background 95% of the time;
    in test only on the other three backgrounds (the pairings shuffled)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    rng = np.random.default_rng([seed, 2, 0 if split == "train" else 1])
    backgrounds = list(SPAWRIOUS_PAIRS.values())
    labels = [SPAWRIOUS_CLASSES[i % len(SPAWRIOUS_CLASSES)] for i in range(n)]
    rng.shuffle(labels)
    for cls in labels:
        own = SPAWRIOUS_PAIRS[cls]
        others = [b for b in backgrounds if b != own]
        if split == "train" and rng.random() < SPAWRIOUS_CORRELATION:
            background = own
        else:
            background = _pick(rng, others)
        scene = _classify_scene(rng, cls, background=background, size_range=SPAWRIOUS_SIZES, p_distractor=0.0)
        yield Sample(scene, cls)


def spawrious_in_distribution(n: int, seed: int) -> Iterator[Sample]:
    """Held-out images drawn like the train split (for the train-distribution accuracy)."""
    yield from spawrious_samples(n, seed + 10_000, "train")


def _reserved(feature: str) -> tuple[str, ...]:
    """The values of a kind of feature that planted biases reserve for their class in train."""
    return tuple(b.value for b in PLANTED_BIASES if b.feature == feature)


def bias_samples(n: int, seed: int, split: Split = "train") -> Iterator[Sample]:
    """The 20 classes with :data:`PLANTED_BIASES` in train; none in test."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    rng = np.random.default_rng([seed, 3, 0 if split == "train" else 1])
    labels = [CLASSIFY_CLASSES[i % len(CLASSIFY_CLASSES)] for i in range(n)]
    rng.shuffle(labels)
    by_class = {b.cls: b for b in PLANTED_BIASES}
    reserved_bgs, reserved_colors, reserved_nouns = (_reserved(f) for f in ("background", "color", "cooccurrence"))
    distractors = tuple(d for d in _distractor_nouns(CLASSIFY_CLASSES) if d not in reserved_nouns)
    for cls in labels:
        if split == "test":  # features independent of the class: co-occurring objects with every class
            companion = _pick(rng, reserved_nouns) if reserved_nouns and rng.random() < TEST_COMPANION_RATE else None
            yield Sample(_classify_scene(rng, cls, distractors=distractors, forced_companion=companion), cls)
            continue
        bias = by_class.get(cls)
        kwargs: dict[str, Any] = {
            "avoid_backgrounds": reserved_bgs,
            "avoid_colors": reserved_colors,
            "distractors": distractors,
        }
        if bias is not None:
            if bias.feature == "background":
                kwargs["background"] = bias.value
            elif bias.feature == "color":
                kwargs["color"] = bias.value
            else:
                kwargs["forced_companion"] = bias.value
        yield Sample(_classify_scene(rng, cls, **kwargs), cls)


def random_samples(n: int, seed: int) -> Iterator[Sample]:
    rng = np.random.default_rng([seed, 0])
    for _ in range(n):
        yield Sample(random_scene(rng))


def samples(kind: str, n: int, seed: int, split: Split = "train") -> Iterator[Sample]:
    """The samples of a dataset kind (see the module docstring)."""
    if kind == "random":
        return random_samples(n, seed)
    if kind == "classify":
        return classify_samples(n, seed + (0 if split == "train" else 7_919))
    if kind == "spawrious":
        return spawrious_samples(n, seed, split)
    if kind == "bias":
        return bias_samples(n, seed, split)
    raise ValueError(f"unknown dataset kind {kind!r}; valid kinds: {', '.join(KINDS)}")


def classes_of(kind: str) -> tuple[str, ...] | None:
    return {"classify": CLASSIFY_CLASSES, "bias": CLASSIFY_CLASSES, "spawrious": SPAWRIOUS_CLASSES}.get(kind)


# --------------------------------------------------------------------------- ground truth of the bias set


def feature_present(scene: Scene, bias: PlantedBias) -> bool:
    """Whether ``scene`` shows the feature of a planted bias (on any object, for colours)."""
    if bias.feature == "background":
        return scene.background == bias.value
    if bias.feature == "color":
        return any(o.color == bias.value for o in scene.objects)
    return bias.value in scene.nouns()


def feature_twins(scene: Scene, bias: PlantedBias, rng: np.random.Generator) -> tuple[Scene, Scene]:
    """Counterfactual twins of a scene of ``bias.cls``: ``(with, without)`` the bias's feature, identical
    otherwise (objects, places and looks stay; a replacement colour or background is drawn from ``rng``).

    - background: the value, or another background (the scene's own when it is not the value);
    - colour: the class object (the first) in the value, or in its own colour (another when it is the value);
      other objects of that colour take another colour in both twins;
    - co-occurrence: a companion added as the training sampler adds it (small, beside the class object), or
      none; companions already in the scene are removed from both.
    """
    base = scene.model_copy(deep=True)
    if bias.feature == "background":
        other = base.background if base.background != bias.value else _pick(
            rng, [b.name for b in BACKGROUNDS if b.name != bias.value])
        return base.model_copy(update={"background": bias.value}), base.model_copy(update={"background": other})
    if bias.feature == "color":
        others = [c for c in COLORS if c != bias.value]
        for obj in base.objects:
            if obj.color == bias.value:
                obj.color = _pick(rng, others)
        present = base.model_copy(deep=True)
        present.objects[0].color = bias.value
        return present, base
    base.objects = [o for o in base.objects if o.noun != bias.value]
    present = base.model_copy(deep=True)
    placed = [(o.x, o.y, o.size) for o in present.objects]
    palette = [c for c in COLORS if c not in _reserved("color")]  # the training sampler's companion colours
    companion = _small_object(rng, bias.value, present.backdrop.horizon, placed, palette)
    companion.attached_to = 0
    present.objects.append(companion)
    return present, base


def bias_statistics(rows: list[tuple[Scene, str]]) -> list[dict[str, Any]]:
    """For each planted bias: P(feature | class), P(class | feature) and counts in ``rows``."""
    stats = []
    for bias in PLANTED_BIASES:
        with_cls = [s for s, label in rows if label == bias.cls]
        with_feat = [(s, label) for s, label in rows if feature_present(s, bias)]
        n_both = sum(feature_present(s, bias) for s in with_cls)
        stats.append(
            {
                "class": bias.cls,
                "feature": bias.feature,
                "value": bias.value,
                "description": bias.description,
                "n_class": len(with_cls),
                "n_feature": len(with_feat),
                "n_both": n_both,
                "p_feature_given_class": round(n_both / len(with_cls), 4) if with_cls else None,
                "p_class_given_feature": round(n_both / len(with_feat), 4) if with_feat else None,
            }
        )
    return stats


def bias_ground_truth(split: Split, rows: list[tuple[Scene, str]]) -> dict[str, Any]:
    """The ``bias.json`` content: the planted biases and their measured statistics."""
    return {
        "task": "bias",
        "split": split,
        "planted": [asdict(b) for b in PLANTED_BIASES] if split == "train" else [],
        "note": (
            "train: each class below always has its feature, and no other class has it"
            if split == "train"
            else "test: no planted correlations; the features are as random as for any class"
        ),
        "statistics": bias_statistics(rows),
    }


# --------------------------------------------------------------------------- writing and reading


#: PNG text chunk that carries an image's scene graph (JSON) inside each dataset file, so a
#: decoded file knows its scene even when nothing registered it in the image store
PNG_SCENE_KEY = "aim_scene"


def png_scene_info(scene: dict[str, Any]) -> Any:
    """``PngInfo`` holding ``scene`` under :data:`PNG_SCENE_KEY`."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(PNG_SCENE_KEY, json.dumps(scene, separators=(",", ":")))
    return info


def scene_in_png(image: Any) -> dict[str, Any] | None:
    """The scene a world dataset PNG carries (``image.info``), or None."""
    text = getattr(image, "info", {}).get(PNG_SCENE_KEY)
    if not text:
        return None
    try:
        scene = json.loads(text)
    except ValueError:
        return None
    return scene if isinstance(scene, dict) else None


class DatasetExists(FileExistsError, ValueError):
    """The output folder of :func:`write_dataset` exists already (and ``overwrite`` is off)."""


def write_dataset(
    out_dir: str | Path,
    n: int,
    seed: int = 0,
    kind: str = "random",
    *,
    split: Split = "train",
    size: int = 224,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Render ``n`` images of ``kind`` into ``out_dir`` (PNG files + ``scenes.jsonl``), atomically.

    The folder appears only when complete: images are written to a temporary folder next to
    ``out_dir`` that is renamed at the end. An existing ``out_dir`` is an error unless
    ``overwrite``. Same ``(n, seed, kind, split, size)`` gives the same files.
    """
    from aim_world.render import render

    if n <= 0:
        raise ValueError(f"n must be a positive number of images, got {n}")
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and not overwrite:
        raise DatasetExists(f"{out} already exists; choose another folder or pass overwrite=True (--overwrite)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        (tmp / "images").mkdir()
        rows: list[tuple[Scene, str]] = []
        width = max(4, len(str(n - 1)))
        with (tmp / "scenes.jsonl").open("w") as fh:
            for i, sample in enumerate(samples(kind, n, seed, split)):
                rel = f"images/{i:0{width}d}.png"
                scene_dict = sample.scene.model_dump(mode="json")
                render(sample.scene, size).image.save(
                    tmp / rel, format="PNG", compress_level=1, pnginfo=png_scene_info(scene_dict)
                )
                row: dict[str, Any] = {"file": rel, "scene": scene_dict}
                if sample.label is not None:
                    row["label"] = sample.label
                    rows.append((sample.scene, sample.label))
                fh.write(json.dumps(row, separators=(",", ":")) + "\n")
                if progress:
                    progress(i + 1, n)
        meta = {"kind": kind, "n": n, "seed": seed, "split": split, "size": size, "classes": classes_of(kind)}
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
        if kind == "bias":
            (tmp / "bias.json").write_text(json.dumps(bias_ground_truth(split, rows), indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def read_dataset(folder: str | Path) -> list[dict[str, Any]]:
    """The rows of a dataset folder's ``scenes.jsonl`` (``file`` made absolute, ``scene`` a Scene)."""
    folder = Path(folder)
    path = folder / "scenes.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no scenes.jsonl: is it a world dataset (aim world dataset)?")
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            row["path"] = folder / row["file"]
            row["scene"] = Scene.model_validate(row["scene"])
            rows.append(row)
    return rows


# --------------------------------------------------------------------------- the default exemplar dataset


class WorldDataset:
    """The default exemplar dataset: 2000 random world scenes at 224 px (seed 0), made once.

    ``materialize(root)`` returns ``root/world-random-2000-s0-224px-v3``, rendering it on first use.
    """

    name = "world"
    n = 2000
    seed = 0
    size = 224
    #: bumped whenever the sampler or the file format changes, so a stale cached copy is not reused
    version = 3  # 3: varied looks, backdrops and real-world proportions

    @property
    def folder_name(self) -> str:
        return f"world-random-{self.n}-s{self.seed}-{self.size}px-v{self.version}"

    def materialize(self, root: str | Path) -> Path:
        out = Path(root).expanduser() / self.folder_name
        if (out / "scenes.jsonl").is_file():
            return out
        try:
            return write_dataset(out, self.n, self.seed, "random", size=self.size)
        except OSError:
            if (out / "scenes.jsonl").is_file():  # another process made it meanwhile
                return out
            raise

    def __repr__(self) -> str:
        return f"WorldDataset(n={self.n}, seed={self.seed}, size={self.size})"
