"""Issue 27's fast path: images as raw pixels on the sandbox wire, ids remembered per kept object, and the
activation cache (exact values, survives a rerun, never half-written)."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aim_agent import activations
from aim_agent.activations import ActivationCache
from aim_agent.agent.sandbox import wire
from aim_agent.images import ImageStore, image_id, raw_image_id
from aim_agent.system import LayerProbe, System


def noise(seed: int, size: tuple[int, int] = (23, 17), mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "I", "F"])
def test_the_wire_round_trips_images_exactly_as_raw_pixels(mode: str) -> None:
    image = noise(1, mode=mode)
    encoded = wire.encode({"images": [image]})
    item = encoded["images"][0]
    assert "raw" in item and "png" not in item and item["size"] == [23, 17] and item["mode"] == mode
    back = wire.decode(encoded)["images"][0]
    assert back.mode == mode and back.size == image.size and back.tobytes() == image.tobytes()


def test_the_wire_round_trips_arrays_exactly_and_png_stays_readable() -> None:
    arrays = [np.random.default_rng(2).standard_normal((3, 4, 5)).astype(dt) for dt in ("<f4", "<f8", "<f2")]
    arrays += [np.arange(-6, 6, dtype=np.int64).reshape(3, 4), np.array([True, False])]
    for array in arrays:
        back = wire.decode(wire.encode(array))
        assert back.dtype == array.dtype and back.shape == array.shape and back.tobytes() == array.tobytes()
    # an image sent as PNG (AIM_FAST_PATH=0, or an older child) is still decoded, to the same pixels
    image = noise(3)
    png = wire.encode(image, images="png")
    assert "png" in png and wire.decode(png).tobytes() == image.tobytes()
    # a palette or bilevel image travels as RGB, with the same colours
    for mode in ("P", "1"):
        odd = noise(4).convert(mode)
        assert wire.decode(wire.encode(odd)).tobytes() == odd.convert("RGB").tobytes()


def test_the_wire_refuses_raw_images_that_do_not_add_up() -> None:
    good = wire.encode(noise(5))
    for change in ({"mode": "P"}, {"mode": "RGBA"}, {"size": [23, 18]}, {"size": [0, 17]}, {"size": "23x17"},
                   {"raw": "not base64!"}):
        with pytest.raises(wire.WireError):
            wire.decode({**good, **change})
    with pytest.raises(wire.WireError, match="pixels"):  # the pixel budget is charged before decoding
        wire.decode([good, good], max_image_pixels=23 * 17 + 10)


def test_a_known_image_is_found_by_the_hash_of_its_wire_bytes_without_being_rebuilt() -> None:
    image = noise(6)
    seen: list[str] = []

    def known(mode: str, size: tuple[int, int], raw: bytes) -> object:
        seen.append(raw_image_id(raw, size))
        return "the stored object"

    assert wire.decode(wire.encode([image]), on_raw=known) == ["the stored object"]
    assert seen == [image_id(image)]


def test_a_kept_image_is_hashed_once_and_its_id_is_its_pixels() -> None:
    store = ImageStore()
    image = noise(7)
    iid = store.ensure(image)
    assert iid == raw_image_id(image.tobytes(), image.size) == image_id(image)
    same_pixels = Image.frombytes("RGB", image.size, image.tobytes())
    assert image_id(same_pixels) == iid and store.ensure(same_pixels) == iid
    other = noise(8)
    assert image_id(other) != iid


class Doubling(LayerProbe):
    """Three units: the mean colour channels per 4x4 cell, scaled; counts its forward passes."""

    model_name = "doubling"
    layer = "cells"
    num_units = 3
    cacheable = True

    def __init__(self) -> None:
        self.images_seen = 0

    def forward(self, images):
        self.images_seen += len(images)
        arr = torch.stack([torch.as_tensor(np.asarray(im.convert("RGB"), dtype=np.float32) / 255) for im in images])
        return torch.nn.functional.avg_pool2d(arr.permute(0, 3, 1, 2) * 2, 4)

    def fingerprint(self) -> str:
        return "doubling-v1"


def images(n: int) -> list[Image.Image]:
    return [noise(100 + i, size=(16, 16)) for i in range(n)]


def test_the_activation_cache_gives_what_a_forward_pass_gives_and_survives_a_rerun(tmp_path: Path) -> None:
    shown = images(5)
    direct = [System(Doubling(), u).activations(shown) for u in range(3)]
    with activations.enabled(tmp_path):
        probe = Doubling()
        for unit in range(3):  # three units of one layer: the images go through the model once
            got = System(probe, unit).activations(shown + shown[:2])
            assert np.array_equal(got.maps[:5], direct[unit].maps)
            assert np.array_equal(got.maps[5:], direct[unit].maps[:2])
            assert np.array_equal(got.activations[:5], direct[unit].activations)
        assert probe.images_seen == 5
    files = sorted(tmp_path.rglob("*.npy"))
    assert len(files) == 5 and {f.stem for f in files} == {image_id(im) for im in shown}
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".npy"]  # no temporary left
    # a rerun (a new process: a new cache object over the same folder) reads them from disk
    rerun = ActivationCache("doubling-v1", tmp_path)
    for im, unit_maps in zip(shown, direct[1].maps, strict=True):
        maps = rerun.get(image_id(im))
        assert maps is not None and np.array_equal(maps[1], unit_maps)
    assert rerun.stats["disk_hits"] == 5 and rerun.stats["misses"] == 0
    # off again outside the block, and never for a probe that is not a function of the pixels
    assert activations.cache_for(Doubling()) is None
    with activations.enabled(tmp_path):
        plain = Doubling()
        plain.cacheable = False
        assert activations.cache_for(plain) is None


def _write_forever(folder: str) -> None:
    cache = ActivationCache("big", Path(folder))
    maps = np.ones((64, 64, 64), dtype=np.float32)  # 1 MiB a file: a kill lands inside a write
    i = 0
    while True:
        cache.put(f"img_{i:020x}", maps * i)
        i += 1


def test_a_killed_writer_never_leaves_a_half_written_entry(tmp_path: Path) -> None:
    proc = multiprocessing.get_context("spawn").Process(target=_write_forever, args=(str(tmp_path),))
    proc.start()
    try:
        deadline = 600
        while deadline and len(list(tmp_path.rglob("*.npy"))) < 3:
            proc.join(0.1)
            deadline -= 1
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
    entries = list(tmp_path.rglob("*.npy"))
    assert len(entries) >= 3
    reader = ActivationCache("big", tmp_path)
    for path in entries:  # every entry is whole: it loads, with the values written
        maps = reader.get(path.stem)
        assert maps is not None and maps.shape == (64, 64, 64)
        assert np.all(maps == maps.flat[0])
    # a damaged file (someone else's doing) counts as missing, and is written again
    victim = entries[0]
    victim.write_bytes(victim.read_bytes()[:100])
    again = ActivationCache("big", tmp_path)
    assert again.get(victim.stem) is None
    again.put(victim.stem, np.zeros((2, 2, 2), dtype=np.float32))
    assert np.array_equal(ActivationCache("big", tmp_path).get(victim.stem), np.zeros((2, 2, 2)))
