"""The photo tagger: blind to file names and labels, tags the highlighted region, keeps its text format."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from imagenet_skips import NEEDS_ARCH, NEEDS_LITE2, NEEDS_PHOTOS
from PIL import Image

from aim_agent.images import ImageStore, image_id, use_store
from aim_agent.overlay import make_overlay
from aim_agent.providers import Describer
from aim_imagenet.tagger import MAX_KINDS, PhotoTagger, region_box, region_of, tag_probabilities
from aim_imagenet.wordnet import taxonomy

ITEM = r"[^;(),]+ \(\d\.\d\d\)"
LINE = re.compile(rf"^{ITEM}(, {ITEM})*(; kinds: {ITEM}(, {ITEM})*)?$")


@pytest.fixture(scope="module")
def tagger(random_lite0: Path) -> PhotoTagger:
    from aim_imagenet.models import load_efficientnet

    return PhotoTagger("photo-tagger-lite0", model=load_efficientnet("efficientnet-lite0", random_lite0))


def _photo(seed: int, size: tuple[int, int] = (120, 90)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


class _BlindStore(ImageStore):
    """A store whose records have only ``mask`` and ``parent``: reading ``meta`` or ``scene`` fails loudly."""

    def record(self, image_or_id):  # type: ignore[no-untyped-def, override]
        found = super().record(image_or_id)
        return None if found is None else SimpleNamespace(id=found.id, mask=found.mask, parent=found.parent)


@NEEDS_ARCH
def test_the_tagger_never_reads_a_file_name_or_label(tagger: PhotoTagger) -> None:
    photo = _photo(1)
    with use_store(ImageStore()):
        bare = tagger.describe([photo])
    with use_store(ImageStore()) as store:
        store.register(photo, meta={"file": "n02123045_tabby.JPEG", "label": "tabby", "class": 281},
                       scene={"objects": [{"name": "tabby"}]})
        revealing = tagger.describe([photo])
    with use_store(_BlindStore()) as store:  # would raise AttributeError on record.meta / record.scene
        store.register(photo, meta={"file": "n02123045_tabby.JPEG"})
        blind = tagger.describe([photo])
    assert bare == revealing == blind


@NEEDS_ARCH
def test_an_overlay_is_tagged_as_the_crop_of_its_original_around_the_mask(tagger: PhotoTagger) -> None:
    photo, other = _photo(2, (200, 100)), _photo(3, (200, 100))
    mask = np.zeros((100, 200), dtype=bool)
    mask[10:30, 150:180] = True
    with use_store(_BlindStore()) as store:
        overlay = make_overlay(photo, mask)
        store.register(overlay, parent=store.ensure(photo), mask=mask)
        region = region_of(overlay)
        assert region_of(other) is other  # no record: the whole image
        crop = photo.crop(region_box(mask, photo.size))  # type: ignore[arg-type]
        assert np.array_equal(np.asarray(region), np.asarray(crop))
        assert tagger.describe([overlay]) == tagger.describe([crop])
    left, top, right, bottom = region_box(mask, (200, 100))  # type: ignore[misc]
    assert left <= 150 and right >= 180 and top <= 10 and bottom >= 30
    assert right - left >= 200 / 3 - 1 and bottom - top >= 100 / 3 - 1
    assert region_box(np.zeros((4, 4), dtype=bool), (8, 8)) is None
    # a mask at another resolution than the original is scaled to it
    assert region_box(np.ones((7, 7), dtype=bool), (224, 224)) == (0, 0, 224, 224)


@NEEDS_ARCH
def test_descriptions_keep_the_format_and_batches_give_the_same_tags(tagger: PhotoTagger) -> None:
    assert isinstance(tagger, Describer)
    photos = [_photo(i) for i in range(5)]
    lines = tagger.describe(photos)
    assert len(lines) == 5 and all(LINE.match(line) for line in lines), lines
    small = PhotoTagger("photo-tagger-lite0", model=tagger.model, batch_size=2)
    assert small.describe(photos) == lines
    tags = tagger.tags(photos)
    assert all(len(t) >= 1 and all(w in taxonomy() for w, _ in t) for t in tags)
    assert tagger.summarize(photos).startswith("shared kinds: ")
    assert tagger.describe([]) == [] and tagger.summarize([]) == "no images"


def test_the_text_lists_top_classes_then_the_kinds_they_share() -> None:
    tax = taxonomy()
    probs = np.full((1, 1000), 0.07 / 995, dtype=np.float32)  # the rest spread thin
    probs[0, [281, 282, 285, 287, 9]] = [0.62, 0.21, 0.08, 0.01, 0.01]  # tabby, tiger cat, Egyptian cat, lynx
    (tagging,) = tag_probabilities(probs, tax)
    text = tagging.text(tax)
    head = "tabby (0.62), tiger cat (0.21), Egyptian cat (0.08); kinds: domestic cat (0.91), cat (0.92)"
    assert text.startswith(head), text
    assert "lynx" not in text.split(";")[0]  # below 0.02
    kinds = [tax.name(w) for w, _ in tagging.kinds]
    assert kinds.index("domestic cat") < kinds.index("feline") < kinds.index("carnivore") < kinds.index("mammal")
    assert "entity" not in kinds and "object" not in kinds and len(kinds) <= MAX_KINDS
    assert LINE.match(text)


def test_unknown_tagger_names_are_refused() -> None:
    with pytest.raises(KeyError, match="photo-tagger-lite2"):
        PhotoTagger("photo-tagger-lite9")


@NEEDS_ARCH
@NEEDS_LITE2
@NEEDS_PHOTOS
def test_the_real_lite2_tagger_names_sample_photos() -> None:
    from aim_imagenet.photos import photo_source

    source = photo_source()
    assert source is not None
    files = {p.name: p for p in source.glob("*.JPEG")}
    chosen = ["n02099601_golden_retriever.JPEG", "n07747607_orange.JPEG", "n04285008_sports_car.JPEG"]
    if not all(name in files for name in chosen):
        pytest.skip("the sample folder lacks the three photos this test reads")
    images = [Image.open(files[name]).convert("RGB") for name in chosen]
    with use_store(ImageStore()):
        lines = PhotoTagger("photo-tagger").describe(images)
    assert lines[0].startswith("golden retriever") and "dog (" in lines[0]
    assert lines[1].startswith("orange") and "fruit (" in lines[1]
    assert lines[2].startswith("sports car") and "car (" in lines[2]
    assert image_id(images[0]) != image_id(images[1])
