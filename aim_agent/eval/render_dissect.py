"""Render dissection: every concept of the installed vocabularies drawn alone, measured on every unit of a layer.

A reference for ``aim eval units`` that stands beside the IoU dissection (:mod:`aim_agent.eval.dissect`).
The IoU dissection reads natural scenes where concepts come together (a dog on grass under the sky), so a
unit that follows grass may be credited to the dog. Here every concept the vocabularies can show alone
(objects, categories, colours, textures, backgrounds and their regions: :meth:`Vocabularies.concepts`)
is drawn :data:`RENDERS` times over varied scenes by the text-to-image provider
(:meth:`~aim_agent.vocabulary.Vocabulary.concept_prompts`), as the units eval's controlled renders do
for a few candidates (:func:`aim_agent.eval.units.render_checks`).

A concept's **controls** are scenes without it. Where the concepts of a kind exclude each other (a
scene of a cat shows no dog; a blue spoon is not red; a spoon on grass is not on a beach), they are
the renders of the *other* concepts of its kind, drawn in the same contexts: so a dog is measured
against every other object, not against the vocabulary's few neutral control nouns (which nearly
every object beats on some units). For the kinds in :data:`MIXED_KINDS`, whose concepts share scenes
(a beach holds sand and water), and for a kind of one concept, they are ``CONTROLS * renders`` of the
vocabulary's scenes without it (:meth:`~aim_agent.vocabulary.Vocabulary.control_prompts`).

The whole layer is measured once on all those images (one forward pass a batch, every unit at once;
a unit's activation is its spatial max, as :class:`~aim_agent.system.System`'s), and the per-image
activations are cached on disk per (model, layer, vocabulary, renders, seed, image size), written
atomically, so a sweep of units, and the same evaluation again, reuse them.

Per unit and concept: the AUC of the concept's images against its controls (:func:`dissect.auc_matrix`)
and their mean activation. A concept **fires alone** when its AUC is at least :data:`FIRES_ALONE`. The
unit's **reference** is the concept of the vocabulary (not a category: the IoU dissection has none either)
with the highest AUC, ties by the higher mean; when even that one does not fire alone, the reference
is *no clear concept*.

Image ``k`` of every concept and every control list is drawn with seed ``seed * 1000 + k``, so the same
prompt twice in one list gives two layouts; an image (prompt and seed) shared by several lists is drawn
and measured once.

Nothing in a scientist reads this module: it is a reference for evaluation only.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aim_agent.eval.dissect import _safe, auc_matrix
from aim_agent.exemplars.cache import cache_key, load_tensors, save_tensors
from aim_agent.exemplars.dataset import default_cache_dir
from aim_agent.images import ImageStore, use_store
from aim_agent.providers import TextToImage, drawn_images
from aim_agent.system import LayerProbe
from aim_agent.vocabulary import ConceptInfo, Vocabularies, installed_vocabularies

RENDERS = 12  # images of each concept
CONTROLS = 3  # controls per concept: CONTROLS * renders scenes without it
FIRES_ALONE = 0.8  # a concept fires alone on a unit when its AUC against its controls is at least this
NO_CLEAR = "no clear concept"
#: kinds whose concepts share scenes: their controls are the vocabulary's scenes without the concept
MIXED_KINDS = frozenset({"region"})
VERSION = 1


@dataclass
class ConceptScore:
    """One concept on one unit: AUC of its images against its controls, and their mean activation."""

    concept: str
    auc: float
    mean: float
    control_mean: float

    @property
    def fires_alone(self) -> bool:
        return self.auc >= FIRES_ALONE


@dataclass
class RenderReference:
    """What the render dissection says about one unit: its best concept, and whether that one is clear."""

    unit: int
    best: ConceptScore | None  # the highest AUC (ties: mean) among the vocabulary's own concepts

    @property
    def concept(self) -> str | None:
        """The reference concept, or None when there is no clear one (the best does not fire alone)."""
        return self.best.concept if self.best is not None and self.best.fires_alone else None

    @property
    def label(self) -> str:
        return self.concept or NO_CLEAR


@dataclass
class _Plan:
    """What to draw: the unique images ``(prompt, seed)``, and per concept which of them show it and which are
    its controls."""

    images: list[tuple[str, int]]
    shows: dict[str, list[int]]
    controls: dict[str, list[int]]
    kinds: dict[str, str]

    def fingerprint(self) -> str:
        """Changes with the images drawn and what each shows (the controls follow from them, by :data:`VERSION`)."""
        text = json.dumps([self.images, self.shows, self.kinds], sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


@dataclass
class RenderDissection:
    """Activations of every unit of a layer on every concept's renders and controls; scores per unit."""

    model_name: str
    layer: str
    renders: int
    seed: int
    image_size: int
    concepts: list[ConceptInfo]
    activations: np.ndarray  # (images, units), spatial max
    shows: dict[str, list[int]]  # concept key -> rows of its images
    controls: dict[str, list[int]]  # concept key -> rows of its controls
    seconds: float = 0.0
    cache_path: str | None = None
    from_cache: bool = False
    _tables: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    _scores: dict[int, dict[str, ConceptScore]] = field(default_factory=dict, repr=False)

    @property
    def images(self) -> int:
        return int(self.activations.shape[0])

    def tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(C, U)`` each: every concept's AUC against its own controls, the mean activation of its images and
        of its controls, on every unit (computed once; a concept that was not drawn: AUC 0.5). The concepts whose
        images and controls make the same pool, as every object's, are ranked together."""
        if self._tables is None:
            shape = (len(self.concepts), self.activations.shape[1])
            auc, mean, control_mean = np.full(shape, 0.5), np.zeros(shape), np.zeros(shape)
            pools: dict[tuple[int, ...], list[int]] = {}
            for c, info in enumerate(self.concepts):
                pos, neg = self.shows.get(info.key, []), self.controls.get(info.key, [])
                if pos and neg:
                    pools.setdefault(tuple(sorted({*pos, *neg})), []).append(c)
            for rows, members in pools.items():
                acts = self.activations[list(rows)].astype(np.float64)
                where = {r: i for i, r in enumerate(rows)}
                presence = np.zeros((len(rows), len(members)), dtype=bool)
                for j, c in enumerate(members):
                    presence[[where[r] for r in self.shows[self.concepts[c].key]], j] = True
                auc[members] = auc_matrix(acts, presence)
                counts = presence.sum(axis=0)[:, None]  # (M, 1); the controls are the rest of the pool
                sums = presence.T.astype(np.float64) @ acts  # (M, U)
                mean[members] = sums / counts
                control_mean[members] = (acts.sum(axis=0)[None, :] - sums) / (len(rows) - counts)
            self._tables = (auc, mean, control_mean)
        return self._tables

    def scores(self, unit: int) -> dict[str, ConceptScore]:
        """Concept key -> its score on ``unit``, for every concept that was drawn."""
        if unit not in self._scores:
            if not 0 <= unit < self.activations.shape[1]:
                raise IndexError(f"unit {unit} is out of range: {self.layer} has {self.activations.shape[1]} units")
            auc, mean, control_mean = (t[:, unit] for t in self.tables())
            self._scores[unit] = {
                info.key: ConceptScore(info.key, round(float(auc[c]), 4), round(float(mean[c]), 4),
                                       round(float(control_mean[c]), 4))
                for c, info in enumerate(self.concepts) if self.shows.get(info.key) and self.controls.get(info.key)}
        return self._scores[unit]

    def score(self, key: str, unit: int) -> ConceptScore | None:
        """The concept's score on the unit, or None when it was not drawn (unknown, or cannot be shown alone)."""
        return self.scores(unit).get(key)

    def fires_alone(self, key: str, unit: int) -> bool:
        """Whether concept ``key`` drawn alone separates from its controls on the unit (a concept not drawn
        does not)."""
        found = self.score(key, unit)
        return found is not None and found.fires_alone

    def reference(self, unit: int) -> RenderReference:
        kinds = {c.key: c.kind for c in self.concepts}
        own = [s for k, s in self.scores(unit).items() if kinds[k] != "category"]
        best = max(own, key=lambda s: (s.auc, s.mean), default=None)
        return RenderReference(unit=unit, best=best)

    def concept(self, key: str) -> ConceptInfo | None:
        return next((c for c in self.concepts if c.key == key), None)


def _plan(concepts: Sequence[ConceptInfo], vocabularies: Vocabularies, renders: int, controls: int,
          seed: int) -> tuple[list[ConceptInfo], _Plan]:
    index: dict[tuple[str, int], int] = {}

    def rows(prompts: Sequence[str]) -> list[int]:
        out = []
        for k, prompt in enumerate(prompts):
            key = (prompt, seed * 1000 + k)
            out.append(index.setdefault(key, len(index)))
        return out

    drawn: list[ConceptInfo] = []
    shows: dict[str, list[int]] = {}
    for info in concepts:
        owner = vocabularies.owner(info.key)
        mine = owner[0].concept_prompts(info.key, renders) if owner is not None else []
        if mine:  # a concept that cannot be shown alone is not part of the dissection
            drawn.append(info)
            shows[info.key] = rows(mine)
    kinds: dict[str, list[str]] = {}
    for info in drawn:
        kinds.setdefault(info.kind, []).append(info.key)
    control_rows: dict[str, list[int]] = {}
    for info in drawn:
        own = set(shows[info.key])
        if info.kind in MIXED_KINDS or len(kinds[info.kind]) < 2:
            owner = vocabularies.owner(info.key)
            assert owner is not None
            found = rows(owner[0].control_prompts([info.key], controls * renders))
        else:
            found = [r for key in kinds[info.kind] if key != info.key for r in shows[key]]
        control_rows[info.key] = list(dict.fromkeys(r for r in found if r not in own))
    return drawn, _Plan(images=list(index), shows=shows, controls=control_rows,
                        kinds={c.key: c.kind for c in drawn})


def render_dissect(
    probe: LayerProbe,
    text2image: TextToImage,
    *,
    vocabularies: Vocabularies | None = None,
    renders: int = RENDERS,
    controls: int = CONTROLS,
    seed: int = 0,
    image_size: int = 224,
    batch_size: int = 64,
    cache_dir: str | Path | None = None,
    progress: bool | None = None,
) -> RenderDissection:
    """Draw every concept of ``vocabularies`` (default: the installed ones) alone and measure every unit of
    ``probe``'s layer on the images; cached (see the module docstring)."""
    if renders < 2 or controls < 1:
        raise ValueError(f"renders must be at least 2 and controls at least 1, not {renders} and {controls}")
    vocabularies = vocabularies if vocabularies is not None else installed_vocabularies()
    concepts, plan = _plan(vocabularies.concepts(), vocabularies, renders, controls, seed)
    if not concepts:
        names = ", ".join(v.name for v in vocabularies.items) or "none installed"
        raise ValueError(f"no installed vocabulary can draw a concept alone (vocabularies: {names}); a render "
                         "dissection needs one that lists its concepts and writes prompts for them, such as the "
                         "world's")
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    key = cache_key(kind="render-dissect", version=VERSION, probe=probe.fingerprint(), layer=probe.layer,
                    vocabulary=plan.fingerprint(), text2image=getattr(text2image, "name", "?"), renders=renders,
                    controls=controls, seed=seed, image_size=image_size)
    path = root / "render-dissect" / _safe(probe.model_name) / f"{_safe(probe.layer)}-{key}.safetensors"

    def made(acts: np.ndarray, seconds: float, from_cache: bool) -> RenderDissection:
        return RenderDissection(model_name=probe.model_name, layer=probe.layer, renders=renders, seed=seed,
                                image_size=image_size, concepts=concepts, activations=acts, shows=plan.shows,
                                controls=plan.controls, seconds=seconds, cache_path=str(path), from_cache=from_cache)

    found = load_tensors(path)
    if found is not None and "activations" in found[0] and found[0]["activations"].shape[0] == len(plan.images):
        return made(found[0]["activations"].numpy(), float(found[1].get("seconds", 0.0)), True)
    started = time.perf_counter()
    acts = _measure(probe, text2image, plan.images, image_size, batch_size,
                    sys.stderr.isatty() if progress is None else progress)
    seconds = round(time.perf_counter() - started, 2)
    save_tensors(path, {"activations": torch.from_numpy(acts)},
                 {"model": probe.model_name, "layer": probe.layer, "renders": renders, "controls": controls,
                  "seed": seed, "image_size": image_size, "images": len(plan.images), "seconds": seconds,
                  "concepts": [c.key for c in concepts]})
    return made(acts, seconds, False)


def _measure(probe: LayerProbe, text2image: TextToImage, images: Sequence[tuple[str, int]], image_size: int,
             batch_size: int, progress: bool) -> np.ndarray:
    """``(N, U)`` float32: every unit's spatial max on each image, drawn and measured a batch at a time."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    out = np.zeros((len(images), probe.num_units), dtype=np.float32)
    bar = Progress(TextColumn("render dissection {task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), console=Console(stderr=True), disable=not progress)
    # the drawn images stay out of the session's image store (thousands of them, never looked at)
    with bar, use_store(ImageStore(max_images=2 * batch_size)), torch.inference_mode():
        task = bar.add_task(probe.layer, total=len(images))
        for lo in range(0, len(images), batch_size):
            batch = images[lo : lo + batch_size]
            by_seed: dict[int, list[int]] = {}
            for i, (_, s) in enumerate(batch):
                by_seed.setdefault(s, []).append(i)
            pictures: list[Any] = [None] * len(batch)
            for s, members in by_seed.items():
                for i, image in zip(members, drawn_images(text2image.generate([batch[i][0] for i in members],
                                                                              size=image_size, seed=s)), strict=True):
                    pictures[i] = image
            maps = probe.forward(pictures).float()
            out[lo : lo + len(batch)] = maps.flatten(2).max(dim=2).values.cpu().numpy()
            bar.update(task, completed=lo + len(batch))
    return out
