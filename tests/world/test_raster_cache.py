"""The on-disk raster cache: identical pixels with or without it, bounded, atomic, safe to share."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from aim_testing import HANG_S

from aim_world.parse import parse
from aim_world.raster_cache import RasterCache, using
from aim_world.render import clear_caches, render

CASES = json.loads((Path(__file__).parent / "data" / "main_renders.json").read_text())[::4]


def _renders(size: int = 96) -> list[tuple[bytes, bytes]]:
    out = []
    for case in CASES:
        r = render(parse(case["prompt"], seed=case["seed"]), size)
        out.append((np.asarray(r.image).tobytes(), r.owner.tobytes()))
    return out


def test_pixels_are_identical_computed_stored_and_read_back(tmp_path: Path) -> None:
    with using(RasterCache(None, 0)):  # no cache at all
        clear_caches()
        plain = _renders()
    with using(RasterCache(tmp_path, 64 << 20)):
        clear_caches()
        first = _renders()  # computed and written
        assert any(tmp_path.rglob("*.raster"))
        clear_caches()
        again = _renders()  # read back from disk
    clear_caches()
    assert plain == first == again


def test_the_cache_stops_growing_at_its_bound(tmp_path: Path) -> None:
    store = RasterCache(tmp_path, 40_000)
    for k in range(50):
        store.put(f"k{k}", [np.ones((64, 64, 3), dtype=np.uint8)])  # 12 KiB each
    total = sum(p.stat().st_size for p in tmp_path.rglob("*.raster"))
    assert 0 < total <= 40_000
    assert store.get("k0") is not None and store.get("k49") is None


def test_round_trip_of_bool_and_uint8_arrays(tmp_path: Path) -> None:
    store = RasterCache(tmp_path, 1 << 20)
    rng = np.random.default_rng(0)
    arrays = [rng.random((37, 53)) > 0.5, rng.integers(0, 255, (5, 7, 3), dtype=np.uint8)]
    store.put("key", arrays)
    got = store.get("key")
    assert got is not None
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(arrays, got, strict=True))
    assert not got[0].flags.writeable


def test_a_damaged_entry_is_a_miss_and_is_removed(tmp_path: Path) -> None:
    store = RasterCache(tmp_path, 1 << 20)
    store.put("key", [np.ones((8, 8), dtype=bool)])
    (path,) = tmp_path.rglob("*.raster")
    path.write_bytes(path.read_bytes()[:40])  # a torn or tampered file
    assert store.get("key") is None and not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x93NUMPY\x01\x00" + b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }".ljust(118)
                     + b"\n" + b"\x80\x04N.")  # an object array (a pickle): refused, never loaded
    assert store.get("key") is None
    store.put("key", [np.ones((8, 8), dtype=bool)])
    data = bytearray(path.read_bytes())
    data[8 + 8 + 16 : 8 + 8 + 24] = (1 << 40).to_bytes(8, "little")  # a header claiming a huge shape
    path.write_bytes(bytes(data))
    assert store.get("key") is None and not path.exists()


def test_off_when_the_bound_is_zero(tmp_path: Path) -> None:
    store = RasterCache(tmp_path, 0)
    store.put("key", [np.ones((8, 8), dtype=bool)])
    assert store.get("key") is None and not any(tmp_path.rglob("*.raster"))


def test_a_bad_bound_in_the_environment_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from aim_world.raster_cache import default_raster_cache

    default_raster_cache.cache_clear()
    monkeypatch.setenv("AIM_WORLD_RASTER_CACHE_MB", "lots")
    try:
        with pytest.raises(ValueError, match="AIM_WORLD_RASTER_CACHE_MB"):
            default_raster_cache()
    finally:
        default_raster_cache.cache_clear()


def test_processes_filling_one_cache_at_once_agree(tmp_path: Path) -> None:
    """Four processes render the same scenes into one empty cache at the same time: every entry is
    whole (atomic renames) and every process draws the same pixels."""
    script = (
        "import hashlib, sys\n"
        "from pathlib import Path\n"
        "import numpy as np\n"
        "from aim_world.parse import parse\n"
        "from aim_world.raster_cache import RasterCache, using\n"
        "from aim_world.render import render\n"
        "h = hashlib.sha256()\n"
        "with using(RasterCache(Path(sys.argv[1]), int(sys.argv[2]))):\n"
        "    for i, p in enumerate(['a red dog on the beach', 'three striped cats in the snow', 'a car on a road']):\n"
        "        r = render(parse(p, seed=i), 80)\n"
        "        h.update(np.asarray(r.image).tobytes()); h.update(r.owner.tobytes())\n"
        "print(h.hexdigest())\n"
    )
    def run(folder: Path, bound: int) -> list[str]:
        return [sys.executable, "-c", script, str(folder), str(bound)]

    procs = [subprocess.Popen(run(tmp_path, 64 << 20), stdout=subprocess.PIPE, text=True) for _ in range(4)]
    digests = {p.communicate(timeout=HANG_S)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(digests) == 1
    assert not list(tmp_path.rglob(".tmp-*"))  # no half-written entry left behind
    again = subprocess.run(run(tmp_path, 64 << 20), capture_output=True, text=True, timeout=HANG_S, check=True)
    uncached = subprocess.run(run(tmp_path / "off", 0), capture_output=True, text=True, timeout=HANG_S, check=True)
    assert digests == {again.stdout.strip()} == {uncached.stdout.strip()}  # read back or computed: same pixels
