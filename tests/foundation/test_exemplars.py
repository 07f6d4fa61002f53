"""The exemplar engine against a brute-force reference; cache, resume, errors, datasets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from aim_testing import HANG_S
from PIL import Image

from aim_agent.exemplars import ImageFolder, compute_exemplars, exemplars_for_system, resolve_dataset
from aim_agent.exemplars.dataset import decode
from aim_agent.images import current_store, image_id
from aim_agent.models import LoadedModel
from aim_agent.models.probe import ModelProbe
from aim_agent.system import LayerProbe, System


class Counting(LayerProbe):
    """Wraps a probe and counts forward calls (batches)."""

    def __init__(self, base: LayerProbe) -> None:
        self.base, self.calls = base, 0
        self.model_name, self.layer, self.num_units = base.model_name, base.layer, base.num_units

    def forward(self, images: Sequence[Image.Image]) -> torch.Tensor:
        self.calls += 1
        return self.base.forward(images)

    def fingerprint(self) -> str:
        return self.base.fingerprint()


def brute_force(probe: LayerProbe, folder: ImageFolder) -> tuple[list[int], torch.Tensor]:
    """Indices of the decodable files and all their maps (N, U, h, w), one image at a time."""
    indices, maps = [], []
    for i, rel in enumerate(folder.files):
        try:
            image = decode(folder.root / rel)
        except Exception:
            continue
        indices.append(i)
        maps.append(probe.forward([image]))
    return indices, torch.cat(maps)


def check_against_reference(result, probe: LayerProbe, folder: ImageFolder, reduce: str = "max") -> None:
    indices, maps = brute_force(probe, folder)
    flat = maps.flatten(2)
    scores = flat.amax(2) if reduce == "max" else flat.mean(2)  # (N, U)
    n = len(indices)
    assert result.images_seen == n
    for unit in range(maps.shape[1]):
        order = torch.sort(scores[:, unit], descending=True, stable=True).indices
        expected_files = [indices[int(j)] for j in order[: result.keep]]
        assert result.indices[unit, :n].tolist() == expected_files
        torch.testing.assert_close(result.values[unit, :n], scores[order, unit], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(result.maps[unit, :n].float(), maps[order, unit].half().float())
        assert result.indices[unit, n:].eq(-1).all()
        reference = torch.quantile(maps[:, unit].reshape(-1), result.quantile)
        torch.testing.assert_close(result.thresholds[unit], reference, rtol=1e-6, atol=1e-6)


@pytest.fixture
def conv_probe(resnet: LoadedModel) -> ModelProbe:
    return ModelProbe(resnet, "resnet.encoder.stages.1")


def test_conv_layer_top_k_maps_and_thresholds_equal_brute_force(
    conv_probe: ModelProbe, image_folder: Path, tmp_path: Path
) -> None:
    result = compute_exemplars(conv_probe, image_folder, batch_size=8, cache_dir=tmp_path, quantile=0.9,
                               progress=False)
    assert result.keep == 50 and result.values.shape == (16, 50) and result.maps.shape == (16, 50, 4, 4)
    assert result.quantile_method == "exact"
    check_against_reference(result, conv_probe, ImageFolder(image_folder))
    top = result.top(3, 5)
    assert [ex.rank for ex in top] == [0, 1, 2, 3, 4]
    assert top[0].activation >= top[-1].activation and top[0].map.shape == (4, 4)


def test_token_layer_and_mean_reduce_equal_brute_force(vit: LoadedModel, image_folder: Path, tmp_path: Path) -> None:
    probe = ModelProbe(vit, "layers.1")
    result = compute_exemplars(probe, image_folder, batch_size=5, cache_dir=tmp_path, reduce="mean",
                               progress=False)
    assert result.maps.shape == (32, 50, 4, 4)
    check_against_reference(result, probe, ImageFolder(image_folder), reduce="mean")


def test_quantile_over_memory_budget_is_exact_on_a_deterministic_subsample(
    conv_probe: ModelProbe, image_folder: Path, tmp_path: Path
) -> None:
    result = compute_exemplars(conv_probe, image_folder, batch_size=8, cache_dir=tmp_path, quantile=0.5,
                               quantile_budget_mb=16 * 100 * 4 / 2**20, progress=False)
    stride = int(result.quantile_method.split("every ")[1].split("th")[0])
    assert stride > 1
    folder = ImageFolder(image_folder)
    indices, maps = brute_force(conv_probe, folder)
    rows = [r for r, i in enumerate(indices) if i % stride == 0]
    for unit in (0, 7):
        reference = torch.quantile(maps[rows, unit].reshape(-1), 0.5)
        torch.testing.assert_close(result.thresholds[unit], reference, rtol=1e-6, atol=1e-6)


def test_corrupt_file_is_skipped_counted_and_named(
    conv_probe: ModelProbe, image_folder: Path, tmp_path: Path, n_good: int
) -> None:
    result = compute_exemplars(conv_probe, image_folder, batch_size=8, cache_dir=tmp_path, progress=False)
    assert result.images_seen == n_good
    assert [file for file, _ in result.skipped] == ["broken.jpg"]
    assert "broken.jpg" not in {result.dataset.files[i] for i in result.indices.flatten().tolist() if i >= 0}


def test_second_call_reuses_the_cache_without_forward_passes(
    conv_probe: ModelProbe, image_folder: Path, tmp_path: Path
) -> None:
    first = compute_exemplars(Counting(conv_probe), image_folder, batch_size=8, cache_dir=tmp_path, progress=False)
    assert first.cache_path is not None and first.cache_path.is_file() and not first.from_cache
    counting = Counting(conv_probe)
    again = compute_exemplars(counting, image_folder, k=20, batch_size=8, cache_dir=tmp_path, progress=False)
    assert counting.calls == 0 and again.from_cache and again.batches_run == 0
    assert torch.equal(first.values, again.values) and torch.equal(first.thresholds, again.thresholds)
    # asking for more than was kept recomputes with a larger keep
    more = compute_exemplars(counting, image_folder, k=60, batch_size=8, cache_dir=tmp_path, progress=False)
    assert counting.calls == 3 and more.keep == 60
    # another quantile is another cache entry
    compute_exemplars(counting, image_folder, quantile=0.5, batch_size=8, cache_dir=tmp_path, progress=False)
    assert counting.calls == 6


def test_interrupted_pass_resumes_and_processes_only_the_rest(
    conv_probe: ModelProbe, image_folder: Path, tmp_path: Path
) -> None:
    reference = compute_exemplars(conv_probe, image_folder, batch_size=4, cache_dir=tmp_path / "ref", progress=False)

    def interrupt_after_two(done: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    counting = Counting(conv_probe)
    with pytest.raises(KeyboardInterrupt):
        compute_exemplars(counting, image_folder, batch_size=4, cache_dir=tmp_path, checkpoint_every=100,
                          on_batch=interrupt_after_two, progress=False)
    assert counting.calls == 2
    assert list(tmp_path.rglob("*.partial.safetensors"))  # the interrupt saved a checkpoint
    total_batches = -(-len(ImageFolder(image_folder)) // 4)  # 22 files -> 6 batches
    counting.calls = 0
    resumed = compute_exemplars(counting, image_folder, batch_size=4, cache_dir=tmp_path, progress=False)
    assert counting.calls == total_batches - 2 and resumed.batches_run == total_batches - 2
    assert torch.equal(resumed.indices, reference.indices)
    assert torch.equal(resumed.values, reference.values)
    assert torch.equal(resumed.thresholds, reference.thresholds)
    assert resumed.skipped == reference.skipped and resumed.images_seen == reference.images_seen
    assert not list(tmp_path.rglob("*.partial.safetensors"))  # removed once the result is written


SLOW_PROBE = textwrap.dedent("""
    import sys, time
    import numpy as np
    import torch
    from aim_agent.exemplars import compute_exemplars
    from aim_agent.system import LayerProbe

    class Slow(LayerProbe):
        \"\"\"Mean colour on a 4x4 grid, slowly.\"\"\"
        model_name, layer, num_units = "slow", "rgb", 3
        def __init__(self, delay=0.0):
            self.delay, self.calls = delay, 0
        def forward(self, images):
            self.calls += 1
            time.sleep(self.delay)
            x = np.stack([np.asarray(im.resize((4, 4)), dtype=np.float32) for im in images])
            return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
        def fingerprint(self):
            return "slow-v1"

    def run(folder, cache, delay):
        probe = Slow(delay)
        result = compute_exemplars(probe, folder, batch_size=2, cache_dir=cache, checkpoint_every=1,
                                   checkpoint_seconds=0, progress=False)
        return probe.calls, result

    if __name__ == "__main__":
        calls, result = run(sys.argv[1], sys.argv[2], float(sys.argv[3]))
        print("CALLS", calls)
""")


def test_kill_9_mid_run_then_rerun_continues_from_the_checkpoint(
    tmp_path: Path, make_images, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aim_agent.exemplars.cache import load_tensors

    folder = make_images(tmp_path / "images", 16, seed=3, corrupt=False)
    (tmp_path / "slow_probe.py").write_text(SLOW_PROBE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import slow_probe

    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), str(tmp_path)])}
    proc = subprocess.Popen([sys.executable, "-m", "slow_probe", str(folder), str(cache), "0.25"], env=env,
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + HANG_S  # ends at the checkpoint; only a hang reaches it
    checkpoint = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(cache.rglob("*.partial.safetensors"))
        loaded = load_tensors(found[0]) if found else None
        if loaded is not None and loaded[1]["batches_done"] >= 2:
            checkpoint = loaded[1]
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up or save anything more
    proc.wait()
    assert checkpoint is not None, proc.stderr.read().decode()[-2000:] if proc.stderr else "no checkpoint"
    # the rerun (in this process, same probe fingerprint) continues from the checkpoint on disk
    latest = load_tensors(next(cache.rglob("*.partial.safetensors")))
    assert latest is not None
    done = latest[1]["batches_done"]
    assert 2 <= done < 8
    calls, resumed = slow_probe.run(folder, cache, 0.0)
    assert calls == 8 - done  # 16 images in batches of 2: only the rest ran
    _, fresh = slow_probe.run(folder, tmp_path / "fresh", 0.0)
    assert torch.equal(resumed.indices, fresh.indices) and torch.equal(resumed.values, fresh.values)
    assert torch.equal(resumed.thresholds, fresh.thresholds) and resumed.images_seen == 16
    sys.modules.pop("slow_probe", None)


def test_empty_and_unreadable_datasets_give_clear_errors(conv_probe: ModelProbe, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError, match=r"holds no images.*\.jpg, \.jpeg, \.png, \.webp"):
        compute_exemplars(conv_probe, empty, cache_dir=tmp_path, progress=False)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"no image .* could be decoded \(1 of 1 files skipped: a.png"):
        compute_exemplars(conv_probe, broken, cache_dir=tmp_path, progress=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolder(tmp_path / "nowhere")


def test_unknown_dataset_name_lists_plugin_datasets_and_names_resolve_through_plugins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_images
) -> None:
    import aim_agent.plugins as plugins
    from aim_agent.hookspecs import hookimpl

    class Tiny:
        name = "tiny-set"

        def materialize(self, root: Path) -> Path:
            return make_images(root, 3, corrupt=False)

    class Plugin:
        @hookimpl
        def aim_datasets(self) -> list:
            return [Tiny()]

    manager = plugins.AimPlugins(load_entry_points=False)
    manager.pm.register(Plugin())
    monkeypatch.setattr(plugins, "plugin_manager", lambda: manager)
    folder = resolve_dataset("tiny-set", cache_dir=tmp_path)
    assert folder.name == "tiny-set" and len(folder) == 3 and folder.root == (tmp_path / "datasets" / "tiny-set")
    with pytest.raises(LookupError, match=r"no dataset 'nope'.*installed datasets: tiny-set.*--dataset PATH"):
        resolve_dataset("nope", cache_dir=tmp_path)


def test_exemplars_for_system_gives_overlays_registered_with_masks_and_scenes(
    conv_probe: ModelProbe, tmp_path: Path, make_images
) -> None:
    folder = make_images(tmp_path / "world", 9, seed=5, corrupt=False)
    files = ImageFolder(folder).files
    with open(folder / "scenes.jsonl", "w") as fh:
        for rel in files:
            fh.write(json.dumps({"file": rel, "scene": {"objects": [{"noun": "dog"}], "tag": rel}}) + "\n")
    system = System(conv_probe, 4)
    found = exemplars_for_system(system, k=5, dataset=folder, cache_dir=tmp_path / "cache", batch_size=4)
    layer = compute_exemplars(conv_probe, folder, cache_dir=tmp_path / "cache", progress=False)
    assert found.threshold == pytest.approx(layer.threshold(4)) and system.threshold == found.threshold
    assert found.activations == [round(v, 4) for v in layer.values[4, :5].tolist()]
    assert found.files == [files[i] for i in layer.indices[4, :5].tolist()]
    for overlay, source, rel in zip(found.images, found.sources, found.files, strict=True):
        assert overlay.size == source.size == (32, 32)  # as the model saw it (resized + cropped)
        record = current_store().record(overlay)
        assert record is not None and record.parent == image_id(source) and record.mask is not None
        assert record.mask.shape == (32, 32) and record.meta["unit"] == 4
        assert current_store().scene_of(overlay)["tag"] == rel  # overlay -> model view -> file with its scene
    # an explicit threshold on the system is kept
    system2 = System(conv_probe, 4, threshold=123.0)
    exemplars_for_system(system2, k=2, dataset=folder, cache_dir=tmp_path / "cache")
    assert system2.threshold == 123.0


def test_folder_lists_recursively_sorted_and_fingerprint_tracks_changes(tmp_path: Path, make_images) -> None:
    folder = make_images(tmp_path / "imgs", 6, corrupt=False)
    listed = ImageFolder(folder)
    assert listed.files == sorted(listed.files) and "sub/img000.jpg" in listed.files
    assert all(not f.endswith(".txt") for f in listed.files)
    before = listed.fingerprint()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(folder / "zzz.png")
    assert ImageFolder(folder).fingerprint() != before
