"""The world's concept vocabulary for the core (hook ``aim_vocabularies``): categories and their members,
the concepts a text names, exact concept masks of world datasets, and prompts that show one concept.

Concepts are the world's own: every object noun (with its vocabulary category), colour, texture,
background, and the parts backgrounds are drawn from (sky, water, grass, sand, trees, ...: *regions*).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from aim_agent.vocabulary import Annotation, ConceptInfo

#: mask side of world annotations: the synthetic neurons' map size; activation maps are upsampled to it
MASK_SIZE = 56
SCENES_FILE = "scenes.jsonl"
#: words that name a category but mean "anything" in a label ("red objects"): never read as that category
_GENERIC_WORDS = frozenset({"object", "objects", "thing", "things"})
#: words that name the pattern concept (any texture) in a label
PATTERN_WORDS = ("patterned", "pattern", "patterns")


def _plural(word: str) -> str:
    return word if word.endswith("s") else word + "s"


@cache
def _category_words() -> dict[str, tuple[str, ...]]:
    """Vocabulary category -> the words that name it ('animal', 'animals')."""
    from aim_world import vocabulary as vocab
    from aim_world.scientist.concepts import CATEGORY_PHRASES

    out: dict[str, tuple[str, ...]] = {}
    for noun in vocab.NOUNS:
        cat = noun.category
        if cat not in out:
            out[cat] = tuple(dict.fromkeys([cat, _plural(cat), CATEGORY_PHRASES.get(cat, _plural(cat))]))
    return out


def region_of_part(part: str) -> str | None:
    """The region concept a background part belongs to: the shared regions under their common name (sea ->
    water, meadow -> grass), other parts under their own name; None for a part that is the whole background."""
    from aim_world.scientist.parsing import _canonical_part, region_names

    if part in ("plain backdrop", "brick wall"):
        return None
    canonical = _canonical_part(part)
    return canonical if canonical in region_names() else part


@cache
def _part_backgrounds() -> dict[str, tuple[str, ...]]:
    """Region name -> the backgrounds that hold it."""
    from aim_world import vocabulary as vocab
    from aim_world.render import background_parts

    out: dict[str, list[str]] = {}
    for bg in vocab.BACKGROUND_BY_NAME:
        for part in background_parts(bg, 16, 0)[1]:
            region = region_of_part(part)
            if region is not None and bg not in out.setdefault(region, []):
                out[region].append(bg)
    return {k: tuple(v) for k, v in out.items()}


@cache
def world_concepts() -> tuple[ConceptInfo, ...]:
    """Every concept of the world: objects, colours, textures, the pattern, backgrounds, regions (in that order)."""
    from aim_world import vocabulary as vocab
    from aim_world.scene import TEXTURE_ADJECTIVES
    from aim_world.scientist.concepts import PATTERN

    cats = _category_words()
    out = [ConceptInfo(f"object:{n.name}", "object", n.name, (n.name, *n.synonyms), n.category, cats[n.category])
           for n in vocab.NOUNS]
    synonyms: dict[str, list[str]] = {}
    for word, color in vocab.COLOR_SYNONYMS.items():
        synonyms.setdefault(color, []).append(word)
    out += [ConceptInfo(f"color:{c}", "color", c, (c, *synonyms.get(c, []))) for c in vocab.COLORS]
    tex_words: dict[str, list[str]] = {}
    for word, texture in vocab.TEXTURE_SYNONYMS.items():
        tex_words.setdefault(texture, []).append(word)
    out += [ConceptInfo(f"texture:{t}", "texture", t, tuple(dict.fromkeys([t, TEXTURE_ADJECTIVES[t], *tex_words[t]])))
            for t in vocab.TEXTURES]
    # a patterned surface of any texture (a unit that fires on stripes, dots and waves alike): drawn as the
    # textures in turn on neutral objects, against the same objects plain
    out.append(ConceptInfo(f"pattern:{PATTERN}", "pattern", PATTERN, PATTERN_WORDS))
    out += [ConceptInfo(f"background:{b}", "background", b, (b,)) for b in vocab.BACKGROUND_BY_NAME]
    for region, bgs in sorted(_part_backgrounds().items()):
        home = bgs[0] if len(bgs) == 1 else None  # a part of one background belongs to it ('sand' of the beach)
        out.append(ConceptInfo(f"region:{region}", "region", region, (region,), home, (home,) if home else ()))
    return tuple(out)


@cache
def _by_key() -> dict[str, ConceptInfo]:
    return {c.key: c for c in world_concepts()}


class WorldAnnotator:
    """Exact masks of a world dataset folder (``scenes.jsonl``): each image's scene is rendered at
    :data:`MASK_SIZE`; every visible object is an atom (its noun, colour, texture), every background part
    another (its region and the scene's background)."""

    def __init__(self, root: Path, size: int = MASK_SIZE) -> None:
        self.root = Path(root)
        self.size = size
        # the pattern (any texture) has no masks of its own here: its textures' are there (and the cache key of a
        # dissection, which follows these concepts, stays that of the world before the pattern concept)
        self.concepts = [c for c in world_concepts() if c.kind != "pattern"]
        self._index = {c.key: i for i, c in enumerate(self.concepts)}
        self._scenes: dict[str, dict[str, Any]] | None = None

    @property
    def scenes(self) -> dict[str, dict[str, Any]]:
        if self._scenes is None:
            self._scenes = {}
            for line in (self.root / SCENES_FILE).read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    self._scenes[str(row["file"])] = row["scene"]
        return self._scenes

    def fingerprint(self) -> str:
        table = json.dumps([c.key for c in self.concepts])
        digest = hashlib.blake2b(table.encode(), digest_size=8).hexdigest()
        return f"world-annotator:v1:{self.size}:{digest}"

    def annotate(self, file: str) -> Annotation | None:
        from aim_world.render import background_parts, render
        from aim_world.scene import Scene

        data = self.scenes.get(file)
        if data is None:
            return None
        scene = Scene.model_validate(data)
        drawn = render(scene, self.size)
        n = len(scene.objects)
        parts_map, parts = background_parts(scene.background, self.size, scene.seed,
                                            scene.omitted_details())
        owner = drawn.owner.astype(np.int32)
        labels = np.where(owner >= 0, owner, n + parts_map.astype(np.int32))
        idx = self._index
        atoms: list[tuple[int, ...]] = []
        for o in scene.objects:
            keys = [f"object:{o.noun}", f"color:{o.color}"] + ([f"texture:{o.texture}"] if o.texture else [])
            atoms.append(tuple(idx[k] for k in keys if k in idx))
        for part in parts:
            region = region_of_part(part)
            keys = [f"background:{scene.background}"] + ([f"region:{region}"] if region else [])
            atoms.append(tuple(idx[k] for k in keys if k in idx))
        return Annotation(labels=labels.astype(np.int16), atoms=atoms)

    def __repr__(self) -> str:
        return f"WorldAnnotator({str(self.root)!r}, size={self.size})"


def _as_scientist_concept(info: ConceptInfo) -> Any:
    """The offline scientist's concept for a vocabulary concept (regions of one background: that background)."""
    from aim_world.scientist.concepts import Concept
    from aim_world.scientist.parsing import region_names

    if info.kind == "region" and info.name not in region_names():
        return Concept("background", _part_backgrounds()[info.name][0])
    return Concept(info.kind, info.name)  # type: ignore[arg-type]


def _first_position(text: str, words: Sequence[str]) -> int:
    """Where in ``text`` the first of ``words`` (or its plural) appears; the end when none does."""
    import re

    lowered = text.lower().replace("-", " ")
    found = [m.start() for w in words for m in [re.search(rf"\b{re.escape(w.lower().replace('-', ' '))}", lowered)]
             if m is not None]
    return min(found, default=len(text))


class WorldVocabulary:
    """The world's concepts for the core (see the module docstring)."""

    name = "world"

    def members(self, term: str) -> frozenset[str]:
        from aim_world import vocabulary as vocab

        word = " ".join(term.lower().split())
        if word in vocab.NOUN_BY_NAME:
            return frozenset()  # a noun ('person') is itself, even when a category shares its name
        for cat, words in _category_words().items():
            if word in words:
                return frozenset(n.name for n in vocab.NOUNS if n.category == cat)
        # a background part (sand, sky, water) is shown by every background that holds it: "a cup on a beach"
        # shows sand, though its prompt never says the word
        holders = _part_backgrounds().get(word) or _part_backgrounds().get(word.removesuffix(" regions"))
        return frozenset(b for b in holders or () if b != word)

    def concepts_in(self, text: str) -> list[ConceptInfo]:
        from aim_agent.agent.critic import mentions
        from aim_world.scientist.parsing import parse_text

        found: list[ConceptInfo] = []
        for c in parse_text(text).concepts():
            info = _by_key().get(c.key)
            if info is not None:
                found.append(info)
        if any(mentions(text, w) for w in PATTERN_WORDS):
            found.append(next(c for c in world_concepts() if c.kind == "pattern"))
        for cat, words in _category_words().items():
            named = [w for w in words if w not in _GENERIC_WORDS]
            if any(mentions(text, w) for w in named[1:]) or (named and mentions(text, named[0]) and not found):
                found.append(ConceptInfo(f"category:{cat}", "category", cat, words))
        unique = list({c.key: c for c in found}.values())
        return sorted(unique, key=lambda c: _first_position(text, c.words))  # in the order the text names them



    def concepts(self) -> list[ConceptInfo]:
        """Every concept of the world and every category of its nouns (all can be drawn alone)."""
        categories = [self.concept(f"category:{cat}") for cat in _category_words()]
        return [*world_concepts(), *(c for c in categories if c is not None)]

    def annotator(self, root: Path) -> WorldAnnotator | None:
        return WorldAnnotator(root) if (Path(root) / SCENES_FILE).is_file() else None

    def concept(self, key: str) -> ConceptInfo | None:
        if key.startswith("category:"):
            cat = key.split(":", 1)[1]
            words = _category_words().get(cat)
            return ConceptInfo(key, "category", cat, words) if words else None
        return _by_key().get(key)

    def concept_prompts(self, key: str, n: int) -> list[str]:
        from aim_world.scientist.scenes import Palette, realize

        info = self.concept(key)
        if info is None:
            raise LookupError(f"the world vocabulary has no concept {key!r}")
        concept = _as_scientist_concept(info)
        palette = Palette.avoiding([concept])
        specs = [realize([concept], i, palette) for i in range(n)]
        return [s.prompt() for s in specs if s is not None]

    def control_prompts(self, avoid: Sequence[str], n: int) -> list[str]:
        from aim_world.scientist.scenes import Palette, realize

        concepts = [_as_scientist_concept(c) for c in (self.concept(k) for k in avoid) if c is not None]
        palette = Palette.avoiding(concepts, concepts)
        specs = [realize([], i, palette) for i in range(n)]
        return [s.prompt() for s in specs if s is not None]

    def __repr__(self) -> str:
        return "WorldVocabulary()"
