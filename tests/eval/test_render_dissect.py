"""The render dissection (every concept drawn alone, the whole layer measured once, cached) and what
``aim eval units`` reads from it and from a run's log: planted concepts, the cache, the summary fields."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from PIL import Image

from aim_agent.eval import render_dissect as rd
from aim_agent.eval.render_dissect import render_dissect
from aim_agent.eval.units import (
    UnitResult,
    UnitsEvaluation,
    label_concepts,
    render_verdict,
    repeated_proposals,
)
from aim_agent.providers import Generated
from aim_agent.system import LayerProbe
from aim_agent.vocabulary import ConceptInfo, Vocabularies

RENDERS = 4


class FakeVocabulary:
    """Objects (dog, cat, cup), colours (red, blue), one texture, a region and a category; 'a <word> <i>'."""

    name = "fake"
    infos: ClassVar[list[ConceptInfo]] = [
        ConceptInfo("object:dog", "object", "dog", ("dog",), "animal", ("animal", "animals")),
        ConceptInfo("object:cat", "object", "cat", ("cat",), "animal", ("animal", "animals")),
        ConceptInfo("object:cup", "object", "cup", ("cup",)),
        ConceptInfo("color:red", "color", "red", ("red",)),
        ConceptInfo("color:blue", "color", "blue", ("blue",)),
        ConceptInfo("texture:stripes", "texture", "stripes", ("stripes", "striped")),
        ConceptInfo("region:sand", "region", "sand", ("sand",)),
        ConceptInfo("category:animal", "category", "animal", ("animal", "animals")),
    ]

    def concepts(self) -> list[ConceptInfo]:
        return list(self.infos)

    def members(self, term: str) -> frozenset[str]:
        return frozenset()

    def concept(self, key: str) -> ConceptInfo | None:
        return next((c for c in self.infos if c.key == key), None)

    def concepts_in(self, text: str) -> list[ConceptInfo]:
        return [c for c in self.infos if c.kind != "category" and c.name in text.split()]

    def annotator(self, root: Path) -> None:
        return None

    def concept_prompts(self, key: str, n: int) -> list[str]:
        word = "dog" if key == "category:animal" else key.split(":")[1]  # every animal drawn is a dog
        return [f"a {word} {i % 2}" for i in range(n)]  # each prompt twice: two seeds, two images

    def control_prompts(self, avoid: Sequence[str], n: int) -> list[str]:
        return [f"a control {i}" for i in range(n)]


class FakeTextToImage:
    """The red channel says whether the prompt names a dog; the green channel varies with prompt and seed."""

    name = "fake-t2i"

    def __init__(self) -> None:
        self.drawn = 0

    def generate(self, prompts: list[str], *, size: int = 224, seed: int = 0) -> list[Generated]:
        self.drawn += len(prompts)
        out = []
        for p in prompts:
            red = 255 if "dog" in p.split() else 0
            green = (sum(map(ord, p)) * 7 + seed * 13) % 200
            out.append(Generated(image=Image.new("RGB", (4, 4), (red, green, 0)), prompt=p))
        return out


class FakeProbe(LayerProbe):
    """Unit 0 follows the red channel (dogs), unit 1 is the same on every image, unit 2 the green channel."""

    model_name = "fake-model"
    layer = "l"
    num_units = 3

    def __init__(self, fail_after: int | None = None) -> None:
        self.forwards = 0
        self.fail_after = fail_after

    def forward(self, images: Sequence[Image.Image]) -> torch.Tensor:
        self.forwards += 1
        if self.fail_after is not None and self.forwards > self.fail_after:
            raise RuntimeError("the probe died")
        pixels = torch.from_numpy(np.stack([np.asarray(im, dtype=np.float32) for im in images]))  # (B, 4, 4, 3)
        out = torch.zeros(len(images), 3, 2, 2)
        out[:, 0] = pixels[:, :2, :2, 0] / 255.0
        out[:, 1] = 1.0
        out[:, 2] = pixels[:, :2, :2, 1] / 255.0
        return out


VOCAB = Vocabularies([FakeVocabulary()])


def _dissect(tmp_path: Path, probe: LayerProbe | None = None, t2i: FakeTextToImage | None = None,
             **kw: Any) -> rd.RenderDissection:
    return render_dissect(probe or FakeProbe(), t2i or FakeTextToImage(), vocabularies=VOCAB, renders=RENDERS,
                          controls=2, seed=kw.pop("seed", 3), cache_dir=tmp_path / "cache", progress=False,
                          batch_size=kw.pop("batch_size", 8), **kw)


def test_the_render_dissection_finds_the_planted_concept_and_says_when_there_is_none(tmp_path: Path) -> None:
    probe, t2i = FakeProbe(), FakeTextToImage()
    result = _dissect(tmp_path, probe, t2i)
    assert not result.from_cache and [c.key for c in result.concepts] == [c.key for c in FakeVocabulary.infos]
    # every image is drawn once and the whole layer measured once a batch
    assert t2i.drawn == result.images and probe.forwards == math.ceil(result.images / 8)
    # an object's controls are the other objects' images; a region's (a mixed kind) and a lone texture's are
    # the vocabulary's scenes without it
    assert set(result.controls["object:dog"]) == {*result.shows["object:cat"], *result.shows["object:cup"]}
    assert len(result.shows["object:dog"]) == RENDERS
    assert len(result.controls["region:sand"]) == len(result.controls["texture:stripes"]) == 2 * RENDERS
    assert not set(result.controls["region:sand"]) & set(result.shows["region:sand"])

    dog_unit = result.reference(0)
    # the category (all dogs) ties with the dog; the reference is a concept of the vocabulary's own
    assert result.score("category:animal", 0).auc == 1.0  # type: ignore[union-attr]
    assert dog_unit.concept == "object:dog" and dog_unit.best is not None and dog_unit.best.auc == 1.0
    assert result.fires_alone("object:dog", 0) and not result.fires_alone("object:cat", 0)
    assert not result.fires_alone("object:unknown", 0)  # a concept that was not drawn does not fire alone
    cat = result.score("object:cat", 0)
    assert cat is not None and cat.auc == pytest.approx(0.25)  # below the dogs, tied with the cups
    assert cat.mean == 0.0 and cat.control_mean == 0.5  # its controls: 4 dogs (1.0) and 4 cups (0.0)
    flat = result.reference(1)  # the same activation everywhere: every AUC 0.5
    assert flat.concept is None and flat.label == rd.NO_CLEAR and flat.best is not None and flat.best.auc == 0.5


def test_the_cache_is_reused_and_never_half_written(tmp_path: Path) -> None:
    first = _dissect(tmp_path)
    path = Path(first.cache_path or "")
    assert path.is_file()
    probe, t2i = FakeProbe(), FakeTextToImage()
    again = _dissect(tmp_path, probe, t2i)
    assert again.from_cache and again.cache_path == first.cache_path and probe.forwards == t2i.drawn == 0
    assert np.array_equal(again.activations, first.activations)
    assert again.reference(0).concept == "object:dog"
    assert not _dissect(tmp_path, seed=4).from_cache  # another seed: other images, another entry

    path.write_bytes(path.read_bytes()[:100])  # a file cut short (as by a crash of a writer without renames)
    redone = _dissect(tmp_path)
    assert not redone.from_cache and np.array_equal(redone.activations, first.activations)
    assert _dissect(tmp_path).from_cache

    path.unlink()
    with pytest.raises(RuntimeError, match="the probe died"):
        _dissect(tmp_path, FakeProbe(fail_after=1), batch_size=4)
    folder = path.parent
    assert not path.exists() and not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def _concepts(*keys: str) -> list[ConceptInfo]:
    return [c for k in keys for c in FakeVocabulary.infos if c.key == k]


def test_the_verdict_counts_a_named_concept_that_does_not_fire_alone_as_imprecise(tmp_path: Path) -> None:
    result = _dissect(tmp_path)
    right = render_verdict(_concepts("object:dog", "object:cup"), result, 0)
    assert right["render_reference"] == "object:dog" and right["match_render_main"]
    assert right["fires_alone"] == ["object:dog"] and right["precision"] == 0.5  # the cup does not fire alone
    wrong_main = render_verdict(_concepts("object:cat", "object:dog"), result, 0)
    assert not wrong_main["match_render_main"] and wrong_main["precision"] == 0.5
    category = render_verdict(_concepts("category:animal"), result, 0)  # 'animals' names the dog's category
    assert category["match_render_main"] and category["precision"] == 1.0
    unclear = render_verdict(_concepts("object:dog"), result, 1)
    assert unclear["render_reference"] is None and unclear["render_best"] is not None
    assert not unclear["match_render_main"] and unclear["precision"] == 0.0
    assert render_verdict([], result, 0)["precision"] is None


def _write_log(run_dir: Path, proposals: list[dict[str, Any] | None]) -> None:
    """A log.jsonl with a 'hypothesis' entry per proposal (None: an experiment entry between them)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, p in enumerate(proposals):
        if p is None:
            lines.append({"kind": "experiment", "text": "ran", "round": i, "data": {}})
        else:
            lines.append({"kind": "hypothesis", "text": "", "round": i,
                          "data": {"proposal": {**p, "thoughts": f"round {i}"}}})
    (run_dir / "log.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_repeated_proposals_are_counted_from_the_runs_log(tmp_path: Path) -> None:
    a = {"hypotheses": [{"id": "h1", "statement": "dog"}], "tool_calls": [{"tool": "text2image"}]}
    b = {"hypotheses": [{"id": "h1", "statement": "cat"}], "tool_calls": [{"tool": "text2image"}]}
    _write_log(tmp_path / "one", [a, None, a, None, b, a])  # a, a again (thoughts differ): one repeat
    assert repeated_proposals(tmp_path / "one") == 1
    _write_log(tmp_path / "three", [a, a, None, a, a])
    assert repeated_proposals(tmp_path / "three") == 3
    _write_log(tmp_path / "none", [a, b, a])
    assert repeated_proposals(tmp_path / "none") == 0
    assert repeated_proposals(tmp_path / "missing") == 0


def _row(unit: int, concepts: list[str], fires: list[str], *, match_render: bool, match_main: bool,
         forced: str | None = None, repeats: int = 0, reference: str | None = "object:dog") -> UnitResult:
    return UnitResult(unit=unit, labels=[" or ".join(concepts)], description="", confidence=0.9, forced=forced,
                      run_dir="", reference="object:dog", reference_iou=0.1, auc_concept=None, auc=None,
                      agent_concepts=concepts, match=match_main, match_auc=False, match_main=match_main,
                      render_reference=reference, render_best="object:dog", render_auc=0.9 if reference else 0.6,
                      match_render_main=match_render, fires_alone=fires,
                      precision=len(fires) / len(concepts) if concepts else None, repeated_proposals=repeats)


def test_the_summary_reports_both_agreements_concepts_precision_forced_and_repeats() -> None:
    units = [
        _row(1, ["object:dog"], ["object:dog"], match_render=True, match_main=True),
        _row(2, ["object:cat", "object:dog", "object:leash"], ["object:dog"], match_render=False, match_main=False,
             forced="veto limit", repeats=2),
        _row(3, ["object:dog", "color:red"], ["object:dog", "color:red"], match_render=True, match_main=False),
        _row(4, ["object:cup"], [], match_render=False, match_main=False, reference=None, repeats=1),
    ]
    s = UnitsEvaluation(model="m", layer="l", dataset="d", seed=0, units=units).summary()
    assert s["match_main_render_reference"] == 2 and s["match_main_concept"] == 1
    assert s["render_reference_unclear"] == 1
    assert s["concepts_per_label_median"] == 1.5 and s["concepts_per_label"] == 1.75
    assert s["precision"] == round(4 / 7, 4)  # 4 of the 7 named concepts fire alone
    assert s["forced_conclusions"] == 1
    assert s["repeated_proposals"] == 3 and s["runs_with_repeated_proposals"] == 2


class SecondVocabulary(FakeVocabulary):
    name = "second"
    infos: ClassVar[list[ConceptInfo]] = [ConceptInfo("wordnet:dog", "synset", "dog", ("dog",))]


def test_a_label_is_read_by_the_first_vocabulary_that_finds_a_concept_in_it() -> None:
    both = Vocabularies([FakeVocabulary(), SecondVocabulary()])
    assert [c.key for c in label_concepts(["dog or cup"], both)] == ["object:dog", "object:cup"]
    assert [c.key for c in label_concepts(["dog"], Vocabularies([SecondVocabulary(), FakeVocabulary()]))] == [
        "wordnet:dog"]
