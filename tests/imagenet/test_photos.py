"""The anonymised photo view: names and order reveal nothing, labels stay outside, the split is fixed."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from imagenet_skips import NEEDS_PHOTOS
from PIL import Image

from aim_agent.cli import main as aim_main
from aim_agent.exemplars.dataset import ImageFolder, resolve_dataset
from aim_imagenet.photos import (
    SOURCE_ENV,
    VARIANTS,
    PhotoDataset,
    PhotoView,
    anonymised_names,
    label_of,
    materialize_photos,
    photo_source,
    require_source,
    split_of,
)

CLASSES = ["n01440764_tench", "n02084071_dog", "n02123045_tabby", "n03000134_chain_link_fence", "n04285008_sports_car"]


def _photos(folder: Path, names: list[str], suffix: str = ".JPEG") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.new("RGB", (40, 30), (i * 40 % 256, 90, 200 - i * 30 % 200)).save(folder / f"{name}{suffix}")
    return folder


@pytest.fixture
def flat(tmp_path: Path) -> Path:
    return _photos(tmp_path / "flat", CLASSES + [f"holiday_{i}" for i in range(15)])


def test_the_view_anonymises_names_and_keeps_labels_beside_the_images(flat: Path, tmp_path: Path) -> None:
    view = materialize_photos(flat, tmp_path / "cache" / "view")
    names = sorted(os.listdir(view.images))
    assert names == [f"p{i:04d}.jpg" for i in range(20)]
    assert not (view.images / "labels.json").exists() and view.labels_file.parent == view.images.parent
    folder = ImageFolder(view.images)
    assert all(f.startswith("p") and "n0" not in f and "tabby" not in f for f in folder.files)
    labels = view.labels()
    assert set(labels) == set(names)
    by_source = {lab.source: name for name, lab in labels.items()}
    tabby = labels[by_source["n02123045_tabby.JPEG"]]
    assert (tabby.wnid, tabby.label) == ("n02123045", "tabby")
    assert labels[by_source["holiday_3.JPEG"]].wnid is None
    # the order is not the sorted source order (a keyed hash decides it)
    assert [labels[n].source for n in names] != sorted(labels[n].source for n in names)
    # the file behind a name is its source photo
    behind = view.images / by_source["n02123045_tabby.JPEG"]
    assert behind.read_bytes() == (flat / "n02123045_tabby.JPEG").read_bytes()


def test_the_split_is_deterministic_disjoint_and_complete(flat: Path, tmp_path: Path) -> None:
    one = materialize_photos(flat, tmp_path / "a")
    two = materialize_photos(flat, tmp_path / "b")
    discovery, heldout = set(os.listdir(one.discovery)), set(os.listdir(one.heldout))
    assert discovery and heldout and not discovery & heldout
    assert discovery | heldout == set(os.listdir(one.images))
    assert (discovery, heldout) == (set(os.listdir(two.discovery)), set(os.listdir(two.heldout)))
    assert one.labels() == two.labels()
    assert all(one.labels()[n].split == "discovery" for n in discovery)
    # stable: a photo's half and name depend on its own path, not on the others
    assert split_of("n02123045_tabby.JPEG") == split_of("n02123045_tabby.JPEG")
    assert anonymised_names(["a.jpg", "b.jpg"]) == anonymised_names(["b.jpg", "a.jpg"])


def test_halves_are_about_half_of_many_photos() -> None:
    halves = [split_of(f"n{i:08d}_x.JPEG") for i in range(2000)]
    assert 900 < halves.count("discovery") < 1100


def test_materializing_again_reuses_the_view_and_rebuilds_when_the_source_changes(flat: Path, tmp_path: Path) -> None:
    root = tmp_path / "view"
    view = materialize_photos(flat, root)
    stamp = (root / "view.json").stat().st_mtime_ns
    assert materialize_photos(flat, root) == view and (root / "view.json").stat().st_mtime_ns == stamp
    _photos(flat, ["n09999999_new_thing"])
    materialize_photos(flat, root)
    assert len(os.listdir(view.images)) == 21
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".view")]  # no temporary folders left


def test_an_imagefolder_tree_takes_labels_from_folder_names(tmp_path: Path) -> None:
    source = tmp_path / "tree"
    _photos(source / "n02123045", ["a", "b"], ".png")
    _photos(source / "my cats", ["c"], ".jpg")
    labels = materialize_photos(source, tmp_path / "v").labels()
    found = sorted((lab.label or "", lab.wnid or "") for lab in labels.values())
    assert found == [("my cats", ""), ("n02123045", "n02123045"), ("n02123045", "n02123045")]
    assert label_of("n02123045_tabby.JPEG") == ("n02123045", "tabby")
    assert label_of("IMG_0001.jpg") == (None, None)


def test_the_datasets_resolve_through_the_plugin(flat: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SOURCE_ENV, str(flat))
    assert photo_source() == flat
    cache = tmp_path / "cache"
    everything = resolve_dataset("imagenet-sample", cache_dir=cache)
    heldout = resolve_dataset("imagenet-sample-heldout", cache_dir=cache)
    assert len(everything) == 20 and set(heldout.files) < set(everything.files)
    assert heldout.root.parent == everything.root.parent  # one shared view
    assert json.loads((everything.root.parent / "labels.json").read_text())


def test_a_missing_source_says_where_it_looked_and_how_to_fetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SOURCE_ENV, str(tmp_path / "nowhere"))
    monkeypatch.setenv("AIM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("aim_imagenet.photos.repo_root", lambda: None)
    assert photo_source() is None
    with pytest.raises(FileNotFoundError, match="aim photos fetch") as info:
        PhotoDataset("imagenet-sample", "all").materialize(tmp_path / "x")
    assert str(tmp_path / "nowhere") in str(info.value)
    with pytest.raises(FileNotFoundError):
        require_source()


def test_fetch_keeps_only_the_photos_of_the_archive(tmp_path: Path) -> None:
    photos = _photos(tmp_path / "src", CLASSES[:3])
    archive = tmp_path / "repo.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in photos.iterdir():
            zf.write(path, f"imagenet-sample-images-master/{path.name}")
        zf.writestr("imagenet-sample-images-master/README.md", "hello")
        zf.writestr("../evil/n01440764_x.JPEG", "not inside")
    target = tmp_path / "out"
    assert aim_main(["photos", "fetch", "--to", str(target), "--url", archive.as_uri()]) == 0
    assert sorted(p.name for p in target.iterdir()) == sorted([f"{c}.JPEG" for c in CLASSES[:3]] + ["n01440764_x.JPEG"])
    assert not (tmp_path / "evil").exists()


def test_fetch_offline_fails_with_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert aim_main(["photos", "fetch", "--to", str(tmp_path / "out"), "--url", "http://127.0.0.1:9/none.zip"]) == 1
    assert "needs the network" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@NEEDS_PHOTOS
def test_the_shared_sample_splits_into_two_halves(tmp_path: Path) -> None:
    source = photo_source()
    assert source is not None
    view = materialize_photos(source, tmp_path / "sample")
    labels = view.labels()
    assert len(labels) == 1000 and len({lab.wnid for lab in labels.values()}) == 1000
    assert 450 < len(os.listdir(view.discovery)) < 550


def test_variants_are_anonymised_copies_that_stay_in_their_photos_half(flat: Path, tmp_path: Path) -> None:
    plain = materialize_photos(flat, tmp_path / "plain")
    view = materialize_photos(flat, tmp_path / "moved-later", variants=tuple(VARIANTS))
    view = PhotoView(Path(shutil.move(str(view.root), str(tmp_path / "moved"))))  # relative links survive a move
    labels = view.labels()
    assert len(labels) == 4 * 20 and len(os.listdir(view.images)) == 80
    assert sorted(os.listdir(view.images)) == [f"p{i:04d}.jpg" for i in range(80)]
    by_source: dict[str, list[str]] = {}
    for name, lab in labels.items():
        by_source.setdefault(lab.source, []).append(name)
        assert (view.folder(lab.split) / name).is_file()  # resolves: in its photo's half
    assert all(sorted(labels[n].variant or "" for n in names) == ["", "crop", "flip", "zoom-out"]
               for names in by_source.values())
    original = Image.open(flat / "n02123045_tabby.JPEG")
    for name in by_source["n02123045_tabby.JPEG"]:
        with Image.open(view.images / name) as im:
            expected = (28, 21) if labels[name].variant == "crop" else original.size
            assert im.size == expected
    halves = {lab.source: lab.split for lab in plain.labels().values()}
    assert all(lab.split == halves[lab.source] for lab in labels.values())  # same halves as without variants
    with pytest.raises(ValueError, match="unknown photo variants"):
        materialize_photos(flat, tmp_path / "bad", variants=("sepia",))


def test_the_variants_dataset_is_registered(flat: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SOURCE_ENV, str(flat))
    folder = resolve_dataset("imagenet-sample-variants-heldout", cache_dir=tmp_path / "cache")
    assert folder.root.parent.name == "imagenet-sample-variants" and len(folder) % 4 == 0
