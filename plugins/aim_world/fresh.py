"""Fresh synthetic neurons: new mono / OR / conditional neurons drawn from the whole world vocabulary.

The 88 shipped neurons (``neurons.py``) are a fixed set, and whoever tunes the agent has seen
them. Fresh neurons are drawn anew from a seed, so an evaluation on them is out of sample:
nobody has seen seed 8's neurons before drawing them.

Unit source ``fresh`` (hook ``aim_units``): unit ``s<SEED>_<K>`` is neuron ``K`` of seed ``SEED``
(``aim interpret --synthetic fresh:s7_3``). The names are neutral: they say nothing about the
answer, which stays in the probe (``unit_label``) like the shipped neurons' does.

How neuron ``K`` of seed ``SEED`` is drawn (deterministic: the same seed gives the same neurons on
every machine, and the first ``n`` neurons of a seed do not depend on how many are asked for):

- its kind: each run of three consecutive neurons holds one mono, one OR and one conditional
  neuron, in an order drawn from the seed;
- its concept A: a concept type (an object 40%, a noun group 15%, a colour 15%, a texture 10%, a
  background 10%, a background region 10%), then a concept of that type uniformly. Objects are
  the vocabulary's nouns; noun groups are its categories (every animal, every vehicle, ...:
  :data:`GROUP_CATEGORIES`), colours and textures are of objects, regions are the parts of
  backgrounds (the sky of outdoor scenes, the sea of the beach, ...);
- an OR neuron's B: a second concept drawn the same way; a conditional neuron's condition B: a
  colour, a texture, a background, a region or a companion object (one type uniformly), then
  uniformly among the concepts of that type that pass the checks below. A companion object is a
  noun that appears next to A in the exemplar dataset often enough; nothing lists companions;
- the checks, on the scenes of the default exemplar dataset (``world``: 2000 random scenes),
  where a concept *fires* when it covers at least :data:`FIRE_AREA` of an image (its response is
  then about 0.4 or more) and is *present* when any pixel of it is visible:

  - the neuron fires on at least :data:`MIN_FIRING` images;
  - OR: A fires without B, and B without A, each on at least :data:`MIN_CONTRAST` images;
  - conditional: A fires without B on at least :data:`MIN_CONTRAST` images (so the condition
    can be seen to matter);
  - A and B share no noun, colour, texture, background or region;
  - the neuron is none of the shipped ones and none of the seed's earlier ones.

  A draw that fails a check is drawn again (a new attempt of the same neuron).

Neurons are served in blocks of :data:`BLOCK`: one probe per ``(seed, block)``, so the exemplar
pass over the dataset is made once per block and cached like any layer's.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from aim_agent.system import System
from aim_world import vocabulary as vocab
from aim_world.neurons import VERSION, Concept, NeuronSpec, SyntheticProbe, _label, atoms_of, list_synthetic

SOURCE_NAME = "fresh"
#: neurons per probe (one exemplar pass per block)
BLOCK = 32
#: visible area (fraction of the image) from which a concept counts as firing: response ~0.4 or more
FIRE_AREA = 0.01
#: images of the exemplar dataset a neuron must fire on
MIN_FIRING = 12
#: images that tell an OR neuron's halves apart, or show a conditional neuron's A without its condition
MIN_CONTRAST = 8
MAX_ATTEMPTS = 2000
#: the first names ``unit_names()`` lists (any seed and index work)
LISTED = 60
#: bumped whenever the draw changes, so caches and reports do not mix generations
GENERATOR_VERSION = 1

CONCEPT_WEIGHTS: dict[str, float] = {
    "object": 0.40, "group": 0.15, "color": 0.15, "texture": 0.10, "background": 0.10, "region": 0.10,
}
CONDITION_TYPES: tuple[str, ...] = ("color", "texture", "background", "region", "object")
#: categories that read as one group; 'nature' and 'object' are grab-bags (sun, rock, fire; anchor, clock, ...)
GROUP_CATEGORIES: tuple[str, ...] = (
    "animal", "person", "vehicle", "building", "plant", "food", "electronics", "clothing", "instrument", "sport",
)
KIND_CYCLE: tuple[str, ...] = ("mono", "or", "cond")
_NAME = re.compile(r"^s(\d+)_(\d+)$")


# --------------------------------------------------------------------------- the concepts to draw from


@cache
def candidate_concepts() -> dict[str, tuple[Concept, ...]]:
    """Concepts by type: objects (nouns), groups (categories), colours, textures, backgrounds, regions."""
    from aim_world.truth import atomic_concepts

    by_type: dict[str, list[Concept]] = {t: [] for t in CONCEPT_WEIGHTS}
    for concept in atomic_concepts():
        kind, _, value = concept.key.partition(":")
        if kind == "noun":
            by_type["object"].append(concept)
        elif kind == "category" and value in GROUP_CATEGORIES:
            by_type["group"].append(concept)
        elif kind in ("color", "texture", "background"):
            by_type[kind].append(concept)
        elif kind == "region" and value not in vocab.BACKGROUND_BY_NAME:  # the brick-wall region is its background
            by_type["region"].append(concept)
    return {t: tuple(cs) for t, cs in by_type.items()}


def _atoms(concept: Concept) -> frozenset[str]:
    from aim_world.truth import concept_atoms

    return frozenset(concept_atoms(concept))


# --------------------------------------------------------------------------- the exemplar dataset's statistics


@dataclass(frozen=True)
class AtomTable:
    """Visible area of every atom (``noun:dog``, ``color:red``, ``region:sky``, ...) in every dataset scene."""

    columns: tuple[str, ...]
    area: np.ndarray  # (scenes, atoms) float32

    def concept_areas(self, concepts: Sequence[Concept]) -> np.ndarray:
        """``(scenes, len(concepts))``: each concept's visible area (the sum of its atoms' areas)."""
        index = {atom: i for i, atom in enumerate(self.columns)}
        member = np.zeros((len(self.columns), len(concepts)), dtype=np.float32)
        for j, concept in enumerate(concepts):
            for atom in _atoms(concept):
                if atom in index:
                    member[index[atom], j] = 1.0
        return self.area @ member


def _table_columns() -> tuple[str, ...]:
    from aim_world.neurons import REGIONS

    return tuple([f"noun:{n.name}" for n in vocab.NOUNS] + [f"color:{c}" for c in vocab.COLORS]
                 + [f"texture:{t}" for t in vocab.TEXTURES] + [f"background:{b.name}" for b in vocab.BACKGROUNDS]
                 + [f"region:{r}" for r in REGIONS])


def _dataset_scenes() -> tuple[list[Any], str]:
    """The scenes of the default exemplar dataset (drawn, not rendered to files) and its name."""
    from aim_world.datasets import WorldDataset, samples

    ds = WorldDataset()
    return [s.scene for s in samples("random", ds.n, ds.seed)], ds.folder_name


def build_atom_table() -> AtomTable:
    """Render every scene of the default exemplar dataset once (about 6 s) and measure its atoms."""
    from aim_world.datasets import WorldDataset

    scenes, _ = _dataset_scenes()
    columns = _table_columns()
    col = {atom: i for i, atom in enumerate(columns)}
    area = np.zeros((len(scenes), len(columns)), dtype=np.float32)
    for i, scene in enumerate(scenes):
        atoms = atoms_of(scene, WorldDataset.size)
        for j, obj in enumerate(scene.objects):
            a = float(atoms.object_area[j])
            area[i, col[f"noun:{obj.noun}"]] += a
            area[i, col[f"color:{obj.color}"]] += a
            if obj.texture:
                area[i, col[f"texture:{obj.texture}"]] += a
        area[i, col[f"background:{scene.background}"]] += atoms.background_area
        for region, a in atoms.region_area.items():
            area[i, col[f"region:{region}"]] += a
    return AtomTable(columns=columns, area=area)


@cache
def atom_table() -> AtomTable:
    """:func:`build_atom_table`, cached on disk (``$AIM_CACHE/synthetic-fresh/``) and in the process."""
    from aim_agent.exemplars.dataset import default_cache_dir
    from aim_agent.files import atomic_write

    _, dataset = _dataset_scenes()
    columns = _table_columns()
    key = hashlib.blake2b(f"{dataset}|{VERSION}|{GENERATOR_VERSION}|{'|'.join(columns)}".encode(),
                          digest_size=8).hexdigest()
    path = default_cache_dir() / "synthetic-fresh" / f"atoms-{key}.npz"
    if path.is_file():
        try:
            with np.load(path) as data:
                return AtomTable(columns=columns, area=data["area"])
        except (OSError, ValueError, KeyError):
            pass  # damaged: rebuild
    table = build_atom_table()
    buffer = io.BytesIO()
    np.savez_compressed(buffer, area=table.area)
    atomic_write(path, buffer.getvalue())
    return table


@cache
def _concept_stats() -> tuple[dict[str, tuple[Concept, ...]], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """For every candidate concept, by type: the images it fires on and the images it is present in."""
    table = atom_table()
    fires: dict[str, np.ndarray] = {}
    present: dict[str, np.ndarray] = {}
    concepts = candidate_concepts()
    for kind, group in concepts.items():
        areas = table.concept_areas(group)
        fires[kind] = areas >= FIRE_AREA
        present[kind] = areas > 0.0
    return concepts, fires, present


# --------------------------------------------------------------------------- drawing


def _signature(kind: str, concepts: Sequence[Concept]) -> tuple[Any, ...]:
    atoms = [_atoms(c) for c in concepts]
    if kind == "or":
        return (kind, frozenset(atoms))
    return (kind, *atoms)


@cache
def shipped_signatures() -> frozenset[tuple[Any, ...]]:
    return frozenset(_signature(s.kind, s.concepts) for s in list_synthetic())


def kind_of(seed: int, k: int) -> str:
    """Neuron ``k``'s kind: each run of three neurons holds one of each kind, in a seeded order."""
    order = np.random.default_rng([seed, 0, k // 3]).permutation(len(KIND_CYCLE))
    return KIND_CYCLE[int(order[k % 3])]


def _pick_type(rng: np.random.Generator) -> str:
    types = list(CONCEPT_WEIGHTS)
    weights = np.array([CONCEPT_WEIGHTS[t] for t in types])
    return types[int(rng.choice(len(types), p=weights / weights.sum()))]


def _draw(rng: np.random.Generator, kind: str) -> list[Concept] | None:
    """One attempt at a neuron of ``kind``: its concepts, or None when the draw fails a check."""
    concepts, fires, present = _concept_stats()
    a_type = _pick_type(rng)
    ia = int(rng.integers(len(concepts[a_type])))
    a = concepts[a_type][ia]
    fa, pa = fires[a_type][:, ia], present[a_type][:, ia]
    if kind == "mono":
        return [a] if fa.sum() >= MIN_FIRING else None
    b_type = _pick_type(rng) if kind == "or" else CONDITION_TYPES[int(rng.integers(len(CONDITION_TYPES)))]
    if kind == "cond" and a_type == "background" and b_type == "background":
        return None  # a scene has one background
    fb, pb = fires[b_type], present[b_type]
    if kind == "or":
        ok = (((fa[:, None] | fb).sum(axis=0) >= MIN_FIRING)
              & ((fa[:, None] & ~pb).sum(axis=0) >= MIN_CONTRAST)
              & ((fb & ~pa[:, None]).sum(axis=0) >= MIN_CONTRAST))
    else:
        ok = (((fa[:, None] & pb).sum(axis=0) >= MIN_FIRING)
              & ((fa[:, None] & ~pb).sum(axis=0) >= MIN_CONTRAST))
    atoms_a = _atoms(a)
    valid = [j for j in np.flatnonzero(ok) if not atoms_a & _atoms(concepts[b_type][j])]
    if not valid:
        return None
    b = concepts[b_type][int(valid[int(rng.integers(len(valid)))])]
    return [a, b]


_GENERATED: dict[int, list[NeuronSpec]] = {}


def fresh_neurons(seed: int, n: int) -> tuple[NeuronSpec, ...]:
    """The first ``n`` fresh neurons of ``seed`` (drawn once per process, in order)."""
    if seed < 0:
        raise ValueError(f"the seed of fresh neurons must be 0 or more, got {seed}")
    done = _GENERATED.setdefault(seed, [])
    seen = set(shipped_signatures()) | {_signature(s.kind, s.concepts) for s in done}
    while len(done) < n:
        k = len(done)
        kind = kind_of(seed, k)
        for attempt in range(MAX_ATTEMPTS):
            concepts = _draw(np.random.default_rng([seed, 1, k, attempt]), kind)
            if concepts is None or _signature(kind, concepts) in seen:
                continue
            a, b = concepts[0], (concepts[1] if len(concepts) > 1 else None)
            spec = NeuronSpec(index=k % BLOCK, name=f"s{seed}_{k}", kind=kind, concepts=concepts,  # type: ignore[arg-type]
                              label=_label(kind, a, b), note=f"fresh neuron {k} of seed {seed}")
            seen.add(_signature(kind, concepts))
            done.append(spec)
            break
        else:  # pragma: no cover - the vocabulary is far larger than any seed needs
            raise RuntimeError(f"could not draw fresh neuron {k} of seed {seed} in {MAX_ATTEMPTS} attempts")
    return tuple(done[:n])


def parse_unit(unit: str | int) -> tuple[int, int]:
    """``'s7_3'`` -> ``(7, 3)``; a clear error otherwise."""
    match = _NAME.match(str(unit).strip())
    if not match:
        raise LookupError(f"fresh synthetic neurons are named s<SEED>_<K> (s7_3: neuron 3 of seed 7), got {unit!r}; "
                          f"e.g. aim interpret --synthetic {SOURCE_NAME}:s7_3")
    return int(match.group(1)), int(match.group(2))


def find_fresh(unit: str | int) -> NeuronSpec:
    seed, k = parse_unit(unit)
    return fresh_neurons(seed, k + 1)[k]


# --------------------------------------------------------------------------- probes and the unit source


class FreshProbe(SyntheticProbe):
    """One block of :data:`BLOCK` fresh neurons of one seed, as one layer."""

    def __init__(self, seed: int, block: int) -> None:
        specs = fresh_neurons(seed, (block + 1) * BLOCK)[block * BLOCK:]
        super().__init__(specs)
        self.model_name = f"synthetic-{SOURCE_NAME}"
        self.layer = f"s{seed}-b{block}"

    def __repr__(self) -> str:
        return f"FreshProbe(layer={self.layer!r}, units={self.num_units})"


@cache
def fresh_probe(seed: int, block: int) -> FreshProbe:
    """The process-wide probe of one block (one render cache shared by its systems)."""
    return FreshProbe(seed, block)


def fresh_system(unit: str | int, **kwargs: Any) -> System:
    """A :class:`System` for fresh neuron ``s<SEED>_<K>``."""
    seed, k = parse_unit(unit)
    return System(fresh_probe(seed, k // BLOCK), k % BLOCK, **kwargs)


class FreshNeurons:
    """Fresh synthetic neurons as a unit source (hook ``aim_units``): ``--synthetic fresh:s<SEED>_<K>``.

    Also what ``aim eval synthetic --set fresh`` reads: ``eval_units``, ``ground_truth`` (only
    after a unit's run) and ``vocabulary``.
    """

    name = SOURCE_NAME
    description = (f"fresh synthetic neurons drawn from the whole world vocabulary by seed; unit s<SEED>_<K> "
                   f"(neutral names; listed: seed 0's first {LISTED}, any seed and K work)")

    def unit_names(self) -> list[str]:
        return [f"s0_{k}" for k in range(LISTED)]

    def system(self, unit: str | int) -> System:
        return fresh_system(unit)

    def eval_units(self, seed: int, n: int | None) -> list[str]:
        return [f"s{seed}_{k}" for k in range(LISTED if n is None else n)]

    def ground_truth(self, unit: str) -> Any:
        from aim_world.truth import unit_truth

        return unit_truth(find_fresh(unit))

    def vocabulary(self) -> list[Any]:
        from aim_world.truth import vocabulary_concepts

        return list(vocabulary_concepts())

    def __repr__(self) -> str:
        return "FreshNeurons()"
