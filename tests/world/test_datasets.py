"""World datasets: deterministic sampling, the scenes.jsonl sidecar, atomic writes, planted-bias truth."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aim_agent.cli import main
from aim_world import datasets as ds
from aim_world.render import render
from aim_world.scene import Scene


def _dump(kind: str, n: int, seed: int, split: str = "train") -> list[tuple[str, str | None]]:
    return [(s.scene.model_dump_json(), s.label) for s in ds.samples(kind, n, seed, split)]  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ds.KINDS)
def test_sampling_is_deterministic_per_seed(kind: str) -> None:
    assert _dump(kind, 12, 3) == _dump(kind, 12, 3)
    assert _dump(kind, 12, 3) != _dump(kind, 12, 4)


def test_random_scenes_cover_the_vocabulary() -> None:
    scenes = [s.scene for s in ds.samples("random", 300, 0)]
    counts = Counter(len(s.objects) for s in scenes)
    assert set(counts) == {1, 2, 3}
    assert len({s.background for s in scenes}) >= 12
    assert len({o.noun for s in scenes for o in s.objects}) > 150
    assert len({o.color for s in scenes for o in s.objects}) >= 12
    assert any(o.texture for s in scenes for o in s.objects)
    sizes = [o.size for s in scenes for o in s.objects]
    assert min(sizes) < 0.2 and max(sizes) > 0.45


def test_write_dataset_sidecar_matches_the_images(tmp_path: Path) -> None:
    out = ds.write_dataset(tmp_path / "cls", 8, seed=5, kind="classify", size=96)
    rows = [json.loads(line) for line in (out / "scenes.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and len(list((out / "images").glob("*.png"))) == 8
    for row in rows:
        assert set(row) == {"file", "scene", "label"}
        assert row["label"] in ds.CLASSIFY_CLASSES
        scene = Scene.model_validate(row["scene"])
        assert scene.objects[0].noun == row["label"]
        # the sidecar is exact: re-rendering the scene gives the very pixels on disk
        on_disk = np.asarray(Image.open(out / row["file"]).convert("RGB"))
        np.testing.assert_array_equal(on_disk, np.asarray(render(scene, 96).image))
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["kind"] == "classify" and meta["n"] == 8 and len(meta["classes"]) == 20
    # same arguments, same files
    again = ds.write_dataset(tmp_path / "cls2", 8, seed=5, kind="classify", size=96)
    assert (again / "scenes.jsonl").read_text() == (out / "scenes.jsonl").read_text()
    random_rows = ds.read_dataset(ds.write_dataset(tmp_path / "rnd", 3, seed=0, size=64))
    assert all("label" not in r and isinstance(r["scene"], Scene) and r["path"].is_file() for r in random_rows)


def test_writes_are_atomic(tmp_path: Path) -> None:
    def interrupt(i: int, n: int) -> None:
        if i == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ds.write_dataset(tmp_path / "half", 6, size=64, progress=interrupt)
    assert list(tmp_path.iterdir()) == []  # nothing half-written, no temporary folder left
    ds.write_dataset(tmp_path / "full", 2, size=64)
    with pytest.raises(ds.DatasetExists, match="already exists"):
        ds.write_dataset(tmp_path / "full", 2, size=64)
    ds.write_dataset(tmp_path / "full", 3, size=64, overwrite=True)
    assert len((tmp_path / "full" / "scenes.jsonl").read_text().splitlines()) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


def test_planted_bias_ground_truth_matches_the_data(tmp_path: Path) -> None:
    out = ds.write_dataset(tmp_path / "bias", 160, seed=2, kind="bias", size=32)
    truth = json.loads((out / "bias.json").read_text())
    assert {b["cls"] for b in truth["planted"]} == {"boat", "car", "dog"}
    rows = [(r["scene"], r["label"]) for r in ds.read_dataset(out)]
    # recompute the statistics from scenes.jsonl: every planted bias holds both ways
    for planted, stat in zip(ds.PLANTED_BIASES, truth["statistics"], strict=True):
        with_class = [s for s, label in rows if label == planted.cls]
        with_feature = [label for s, label in rows if ds.feature_present(s, planted)]
        assert with_class and all(ds.feature_present(s, planted) for s in with_class)
        assert with_feature and set(with_feature) == {planted.cls}
        assert stat["n_class"] == len(with_class) and stat["n_feature"] == len(with_feature)
        assert stat["p_feature_given_class"] == 1.0 and stat["p_class_given_feature"] == 1.0
    # the test split has none of it: features show up with other classes, and classes without them
    test_rows = [(s.scene, s.label) for s in ds.samples("bias", 400, 2, "test")]
    for stat in ds.bias_statistics(test_rows):  # type: ignore[arg-type]
        assert stat["p_class_given_feature"] < 0.5, stat
        assert stat["p_feature_given_class"] < 0.5, stat


def test_counterfactual_twins_differ_only_in_the_feature() -> None:
    """Each planted bias's twins: the feature in one, not the other, and everything else the same."""
    rng = np.random.default_rng(0)
    for bias in ds.PLANTED_BIASES:
        scenes = [s.scene for s in ds.bias_samples(400, 5, "test") if s.label == bias.cls]
        for scene in scenes:
            with_, without = ds.feature_twins(scene, bias, rng)
            assert ds.feature_present(with_, bias) and not ds.feature_present(without, bias)
            assert with_.seed == without.seed == scene.seed
            if bias.feature == "background":
                assert with_.objects == without.objects == scene.objects
            elif bias.feature == "color":
                assert with_.background == without.background == scene.background
                assert [o.model_copy(update={"color": ""}) for o in with_.objects] == \
                    [o.model_copy(update={"color": ""}) for o in without.objects]
                assert [o.color for o in with_.objects[1:]] == [o.color for o in without.objects[1:]]
            else:
                assert with_.objects[:-1] == without.objects and with_.objects[-1].noun == bias.value
                assert with_.objects[-1].attached_to == 0 and bias.value not in without.nouns()
                assert without.objects == [o for o in scene.objects if o.noun != bias.value]


def test_counterfactual_report_counts_paired_wins_and_losses() -> None:
    from aim_world.cnn import WIDTHS, WorldCNN
    from aim_world.train import counterfactual_report

    torch.manual_seed(0)
    rows = counterfactual_report(WorldCNN(len(ds.CLASSIFY_CLASSES), WIDTHS).eval(), n=6, seed=3)
    assert [r["class"] for r in rows] == [b.cls for b in ds.PLANTED_BIASES]
    for r in rows:
        assert r["n"] == 6 and 0 <= r["wins"] + r["losses"] <= 6
        # accuracy with minus without is exactly the paired wins minus losses
        gain = r["accuracy_with_feature"] - r["accuracy_without_feature"]
        assert gain == pytest.approx((r["wins"] - r["losses"]) / 6, abs=1e-3)
        assert 0 <= r["p_class_with_feature"] <= 1 and 0 <= r["p_class_without_feature"] <= 1


def test_spawrious_pairings() -> None:
    train = list(ds.samples("spawrious", 400, 0, "train"))
    own = sum(s.scene.background == ds.SPAWRIOUS_PAIRS[s.label] for s in train)  # type: ignore[index]
    assert 0.9 <= own / len(train) <= 0.99
    assert set(Counter(s.label for s in train).values()) == {100}
    test = list(ds.samples("spawrious", 200, 0, "test"))
    assert not any(s.scene.background == ds.SPAWRIOUS_PAIRS[s.label] for s in test)  # type: ignore[index]
    assert {s.scene.background for s in test} == set(ds.SPAWRIOUS_PAIRS.values())


def test_world_dataset_plugin_materializes_once(tmp_path: Path) -> None:
    from aim_agent.plugins import plugin_manager

    world = plugin_manager().provider("dataset", "world")
    assert isinstance(world, ds.WorldDataset) and world.n == 2000 and world.size == 224
    small = ds.WorldDataset()
    small.n, small.size = 4, 32
    folder = small.materialize(tmp_path)
    stamp = (folder / "scenes.jsonl").stat().st_mtime_ns
    assert small.materialize(tmp_path) == folder
    assert (folder / "scenes.jsonl").stat().st_mtime_ns == stamp
    assert len(list((folder / "images").glob("*.png"))) == 4


def test_cli_writes_a_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert main(["world", "dataset", str(out), "-n", "5", "--kind", "spawrious", "--split", "test",
                 "--size", "48", "--seed", "1"]) == 0
    assert len(list((out / "images").glob("*.png"))) == 5
    rows = ds.read_dataset(out)
    assert len(rows) == 5 and all(r["label"] in ds.SPAWRIOUS_CLASSES for r in rows)
    assert "wrote 5 images" in capsys.readouterr().out
    assert main(["world", "dataset", str(out), "-n", "5"]) == 2  # exists: an error the user can act on
    assert "already exists" in capsys.readouterr().err
