"""Image stores: bounded in bytes, per context, saved with a run and read back, safe decoding."""

from __future__ import annotations

import base64
import io
import json
import os
import time

import numpy as np
import pytest
from PIL import Image

from aim_agent.files import atomic_write
from aim_agent.images import ImageStore, current_store, decode_image, image_id, load_image, use_store


def _solid(i: int, size: int = 32) -> Image.Image:
    return Image.new("RGB", (size, size), (i % 256, (i * 7) % 256, (i * 13) % 256))


def test_store_is_bounded_in_bytes_and_evicts_the_oldest():
    store = ImageStore(max_bytes=10 * 32 * 32 * 3)
    images = [_solid(i) for i in range(25)]
    for image in images:
        store.register(image)
    assert len(store) == 10 and store.nbytes <= store.max_bytes
    assert store.record(images[0]) is None and store.record(images[-1]) is not None


def test_bound_store_is_the_current_one_even_when_empty():
    mine = ImageStore()
    with use_store(mine):
        assert current_store() is mine
        current_store().register(_solid(1))
    assert current_store() is not mine and len(mine) == 1


def test_records_survive_the_process_with_scene_mask_parent_and_edit(tmp_path):
    store = ImageStore()
    original, overlay, edited = _solid(1), _solid(2), _solid(3)
    mask = np.zeros((32, 32), dtype=bool)
    mask[4:9, 2:20] = True
    store.register(original, scene={"objects": ["dog"]}, meta={"prompt": "a dog"})
    store.register(overlay, parent=image_id(original), mask=mask)
    store.register(edited, parent=image_id(original), edit={"kind": "recolor", "target": "dog", "to": "red"})
    store.save_record(tmp_path, image_id(overlay))  # saves its parent too
    store.save_record(tmp_path, image_id(edited))

    fresh = ImageStore()
    assert fresh.load_dir(tmp_path) == 3
    assert fresh.scene_of(image_id(overlay)) == {"objects": ["dog"]}
    record = fresh.record(image_id(overlay))
    assert record is not None and record.mask is not None and (record.mask == mask).all()
    assert fresh.record(image_id(edited)).edit == {"kind": "recolor", "target": "dog", "to": "red"}
    assert fresh.record(image_id(original)).meta["prompt"] == "a dog"


def test_a_folder_holds_one_png_per_image_and_one_records_file(tmp_path):
    store = ImageStore()
    original, overlay = _solid(1), _solid(2)
    mask = np.zeros((32, 32), dtype=bool)
    mask[3:7, 5:30] = True
    store.register(original, scene={"objects": ["cat"]})
    store.register(overlay, parent=image_id(original), mask=mask)
    for _ in range(2):  # written once
        store.save_record(tmp_path, image_id(overlay))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{image_id(original)}.png", f"{image_id(overlay)}.png", "records.jsonl"])
    lines = (tmp_path / "records.jsonl").read_text().splitlines()
    assert len(lines) == 2

    # a killed writer's half line is skipped, and the next record starts on a line of its own
    with open(tmp_path / "records.jsonl", "a") as f:
        f.write('{"id": "img_half')
    later = ImageStore()
    later.load_dir(tmp_path)
    third = _solid(3)
    later.register(third, parent=image_id(original), meta={"prompt": "a cat"})
    later.save_record(tmp_path, image_id(third))
    fresh = ImageStore()
    assert fresh.load_dir(tmp_path) == 3
    assert (fresh.record(image_id(overlay)).mask == mask).all()
    assert fresh.record(image_id(third)).meta == {"prompt": "a cat"}

    # a pruned PNG is written again when its image is saved again; its record stays readable
    (tmp_path / f"{image_id(overlay)}.png").unlink()
    fresh.save_record(tmp_path, image_id(overlay))
    again = ImageStore()
    assert again.load_dir(tmp_path) == 3 and (again.record(image_id(overlay)).mask == mask).all()


def test_a_folder_written_before_records_jsonl_is_read(tmp_path):
    overlay, mask = _solid(2), np.zeros((32, 32), dtype=bool)
    mask[1:4, 1:4] = True
    iid = image_id(overlay)
    overlay.save(tmp_path / f"{iid}.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / f"{iid}.mask.png")
    (tmp_path / f"{iid}.json").write_text(json.dumps({"id": iid, "scene": None, "parent": None, "edit": None,
                                                      "meta": {"unit": 7}}))
    store = ImageStore()
    assert store.load_dir(tmp_path) == 1
    assert store.record(iid).meta == {"unit": 7} and (store.record(iid).mask == mask).all()
    store.save_record(tmp_path, iid)  # already saved there: nothing new
    assert not (tmp_path / "records.jsonl").exists()


def test_a_decompression_bomb_is_refused_before_decoding():
    buf = io.BytesIO()
    Image.new("1", (12000, 12000)).save(buf, format="PNG")  # small file, 144 M pixels
    data = buf.getvalue()
    assert len(data) < 200_000
    started = time.process_time()
    with pytest.raises(ValueError, match="12000x12000 pixels; the limit is"):
        decode_image(data)
    with pytest.raises(ValueError, match="12000x12000 pixels"):
        load_image(base64.b64encode(data).decode())
    assert time.process_time() - started < 5  # refused from the header, never decoded
    with pytest.raises(ValueError, match="not an image"):
        decode_image(b"not a png at all")


def test_stale_temp_files_of_a_killed_writer_are_removed(tmp_path):
    dead = tmp_path / ".result.safetensors.999999999.abc.tmp"  # no such pid
    dead.write_bytes(b"half")
    mine = tmp_path / f".other.{os.getpid()}.xyz.tmp"  # a live writer: left alone
    mine.write_bytes(b"in progress")
    atomic_write(tmp_path / "result.safetensors", b"whole")
    assert not dead.exists() and mine.exists()
    assert (tmp_path / "result.safetensors").read_bytes() == b"whole"
