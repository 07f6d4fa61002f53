"""Network Dissection on datasets with exact masks: exact numbers on a planted unit, and the world end to end."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aim_agent.eval.dissect import Dissection, auc_matrix, average_ranks, dissect
from aim_agent.exemplars.dataset import ImageFolder
from aim_agent.system import LayerProbe
from aim_agent.vocabulary import Annotation, ConceptInfo

S = 8  # mask side; the planted probe's maps have the same size, so nothing is upsampled
CONCEPTS = [ConceptInfo("object:square", "object", "square", ("square",)),
            ConceptInfo("object:bar", "object", "bar", ("bar",)),
            ConceptInfo("background:plain", "background", "plain", ("plain",))]


def _square(i: int) -> np.ndarray:
    """Image i's square: 4x4 pixels (a quarter of the image) at a position that depends on i; none when i % 3 == 2."""
    mask = np.zeros((S, S), dtype=bool)
    if i % 3 != 2:
        r, c = (i % 2) * 4, ((i // 2) % 2) * 4
        mask[r:r + 4, c:c + 4] = True
    return mask


def _bar(i: int) -> np.ndarray:
    mask = np.zeros((S, S), dtype=bool)
    mask[:, i % S] = True  # one column in every image
    return mask


class PlantedAnnotator:
    """Exact masks of the tiny dataset: a square (in two of three images), a bar, and the plain rest."""

    concepts = CONCEPTS
    size = S

    def fingerprint(self) -> str:
        return "planted:v1"

    def annotate(self, file: str) -> Annotation | None:
        i = int(Path(file).stem)
        labels = np.full((S, S), 2, dtype=np.int16)  # atom 2: the background
        labels[_bar(i)] = 1
        labels[_square(i)] = 0  # the square covers the bar where they meet
        return Annotation(labels=labels, atoms=[(0,), (1,), (2,)])


class PlantedProbe(LayerProbe):
    """Unit 0 fires exactly on the square's visible mask; unit 1 on the bar; unit 2 is silent."""

    model_name = "planted"
    layer = "l"
    num_units = 3

    def forward(self, images: Sequence[Image.Image]) -> torch.Tensor:
        out = torch.zeros(len(images), 3, S, S)
        for b, image in enumerate(images):
            i = int(np.asarray(image)[0, 0, 0])
            note = PlantedAnnotator().annotate(f"{i:02d}.png")
            assert note is not None
            out[b, 0] = torch.from_numpy((note.labels == 0).astype(np.float32))
            out[b, 1] = torch.from_numpy((note.labels == 1).astype(np.float32))
        return out

    def fingerprint(self) -> str:
        return "planted-probe:v1"


@pytest.fixture()
def tiny(tmp_path: Path) -> ImageFolder:
    root = tmp_path / "tiny"
    root.mkdir()
    for i in range(12):  # the image's first pixel says which image it is
        Image.fromarray(np.full((S, S, 3), i, dtype=np.uint8)).save(root / f"{i:02d}.png")
    return ImageFolder(root)


def test_dissection_finds_the_planted_concept_with_exact_iou(tiny: ImageFolder, tmp_path: Path) -> None:
    result = dissect(PlantedProbe(), tiny, annotator=PlantedAnnotator(), quantile=0.5, min_images=3,
                     cache_dir=tmp_path / "cache", progress=False)
    assert result.images == 12 and not result.from_cache
    square, bar, silent = result.units
    # the square unit: thresholded at the 0.5 quantile (0: below it, only the mask fires): IoU exactly 1
    assert square.iou_concept == "object:square" and square.iou[0].score == 1.0
    assert square.auc_concept == "object:square" and square.auc[0].score == 1.0  # fires iff a square is there
    # the bar unit: its visible pixels are the bar minus the square; IoU with the bar's visible mask is 1
    assert bar.iou_concept == "object:bar" and bar.iou[0].score == 1.0
    assert silent.dead and silent.max_activation == 0.0
    # the IoU of the square unit with the bar, by hand: no overlap with the bar's visible pixels -> 0
    assert dict((s.concept, s.score) for s in square.iou)["object:bar"] == 0.0
    # cached: the second call reads the JSON
    again = dissect(PlantedProbe(), tiny, annotator=PlantedAnnotator(), quantile=0.5, min_images=3,
                    cache_dir=tmp_path / "cache", progress=False)
    assert again.from_cache and again.units[0].iou == square.iou
    saved = json.loads(Path(result.cache_path or "").read_text())
    assert Dissection.from_json(saved).units[1].iou_concept == "object:bar"


def test_the_threshold_is_the_quantile_of_every_spatial_value(tiny: ImageFolder, tmp_path: Path) -> None:
    result = dissect(PlantedProbe(), tiny, annotator=PlantedAnnotator(), quantile=0.9, min_images=3,
                     cache_dir=tmp_path / "cache", progress=False)
    values = np.concatenate([(PlantedAnnotator().annotate(f"{i:02d}.png").labels == 0).ravel()  # type: ignore[union-attr]
                             for i in range(12)]).astype(np.float64)
    assert result.units[0].threshold == pytest.approx(float(np.quantile(values, 0.9)))


def test_ranks_and_auc_match_the_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(30, 2)).astype(np.float64)  # many ties
    presence = rng.random((30, 3)) < 0.4
    ranks = average_ranks(scores)
    assert ranks[:, 0].sum() == pytest.approx(30 * 31 / 2)
    auc = auc_matrix(scores, presence)
    for c in range(3):
        for u in range(2):
            pos, neg = scores[presence[:, c], u], scores[~presence[:, c], u]
            pairs = [(1.0 if p > q else 0.5 if p == q else 0.0) for p in pos for q in neg]
            assert auc[c, u] == pytest.approx(sum(pairs) / len(pairs))


def test_a_dataset_without_masks_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "plain-folder"
    root.mkdir()
    Image.new("RGB", (8, 8)).save(root / "a.png")
    with pytest.raises(ValueError, match="no exact concept masks"):
        dissect(PlantedProbe(), root, cache_dir=tmp_path / "cache", progress=False)


def test_world_dissection_of_synthetic_neurons_finds_their_concepts(tmp_path: Path) -> None:
    """Synthetic neurons are defined by exact concept masks: dissection over a small world dataset names them."""
    from aim_world.datasets import write_dataset
    from aim_world.neurons import Concept, NeuronSpec, SyntheticProbe

    folder = write_dataset(tmp_path / "world-tiny", 60, seed=3, size=64)  # 4 road scenes: above min_images
    specs = [NeuronSpec(index=0, name="sky", kind="mono", concepts=[Concept(key="sky", label="sky", regions=("sky",))],
                        label="sky"),
             NeuronSpec(index=1, name="road", kind="mono",
                        concepts=[Concept(key="road", label="road", backgrounds=("road",))], label="road")]
    result = dissect(SyntheticProbe(specs), folder, quantile=0.8, min_images=3, cache_dir=tmp_path / "cache",
                     progress=False)
    sky, road = result.units
    assert sky.iou_concept == "region:sky" and sky.iou[0].score > 0.6
    assert road.iou_concept == "background:road" and road.auc_concept == "background:road"
    assert road.auc[0].score == 1.0
