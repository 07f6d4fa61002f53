"""System over a hand-made probe: activations, overlays, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from aim_agent.images import current_store, image_id
from aim_agent.system import LayerProbe, System


class RednessProbe(LayerProbe):
    """Unit 0: redness per pixel; unit 1: blueness. Grid 8x8 (average-pooled)."""

    model_name = "redness"
    layer = "pixels"
    num_units = 2

    def forward(self, images):
        arr = torch.stack([torch.as_tensor(np.asarray(im.convert("RGB"), dtype=np.float32) / 255) for im in images])
        arr = arr.permute(0, 3, 1, 2)  # B,3,H,W
        red = arr[:, 0] - arr[:, 1:].mean(1)
        blue = arr[:, 2] - arr[:, :2].mean(1)
        maps = torch.stack([red, blue], 1)
        return torch.nn.functional.avg_pool2d(maps, maps.shape[-1] // 8)


def half_red(size: int = 64) -> Image.Image:
    arr = np.zeros((size, size, 3), dtype=np.uint8)
    arr[:, : size // 2] = (255, 0, 0)
    return Image.fromarray(arr)


def test_activations_max_and_mean_match_direct_computation():
    img = half_red()
    grid = RednessProbe().forward([img])[0, 0].numpy()
    assert System(RednessProbe(), 0).activations([img]).activations[0] == pytest.approx(grid.max())
    assert System(RednessProbe(), 0, reduce="mean").activations([img]).activations[0] == pytest.approx(grid.mean())


def test_neuron_returns_maia_shape_and_overlay_highlights_the_red_half():
    img = half_red()
    acts, overlays = System(RednessProbe(), 0).neuron([img, Image.new("RGB", (64, 64), "blue")])
    assert len(acts) == 2 and acts[0] > 0.5 > acts[1]
    record = current_store().record(overlays[0])
    assert record is not None and record.parent == image_id(img)
    assert record.mask[:, :20].all() and not record.mask[:, 44:].any()
    # outside the mask the overlay is dimmed, inside it keeps the original colour
    pixels = np.asarray(overlays[0])
    assert pixels[32, 10].tolist() == [255, 0, 0]
    assert pixels[32, 50].tolist() == [0, 0, 0]


def test_threshold_controls_the_mask():
    img = half_red()
    high = System(RednessProbe(), 0, threshold=5.0)
    _, overlays = high.neuron([img])
    assert not current_store().record(overlays[0]).mask.any()


def test_errors_name_what_is_valid():
    with pytest.raises(IndexError, match=r"valid units are 0\.\.1"):
        System(RednessProbe(), 2)
    with pytest.raises(ValueError, match="reduce"):
        System(RednessProbe(), 0, reduce="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no images"):
        System(RednessProbe(), 0).activations([])


def test_batches_give_the_same_answer_as_one_batch():
    imgs = [half_red(), Image.new("RGB", (64, 64), (200, 30, 30))] * 5
    one = System(RednessProbe(), 0, batch_size=64).activations(imgs).activations
    many = System(RednessProbe(), 0, batch_size=3).activations(imgs).activations
    np.testing.assert_allclose(one, many)


def test_mask_includes_a_peak_equal_to_the_threshold_but_never_silent_pixels():
    import numpy as np

    from aim_agent.overlay import activation_mask

    grid = np.array([[0.0, 1.0], [2.0, 2.0]])
    assert activation_mask(grid, 2.0).tolist() == [[False, False], [True, True]]
    assert activation_mask(grid, 0.0).tolist() == [[False, True], [True, True]]  # zeros stay dark
