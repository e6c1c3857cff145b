"""One preprocessing in training and inference: a card's window gives the network the same tensor
whether the slices come from a dataset (built, stored as uint8, read back by training) or from the
engine's own preprocessing of the scan."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference.engine.planes import SlicePlanes
from inference.models.card import InputSpec, Normalise
from inference.models.intensity import DATASET_LEVELS, STORED_TO_UNIT, ScaleIntensity, intensity_for
from inference.models.registry import discover
from inference.sample_study import make_chest_phantom
from inference.training.batches import to_input
from inference.training.slicing import axial_view, slice_volume


def test_numpy_and_torch_round_alike() -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(0.0, 400.0, size=(3, 17, 19)).astype(np.float32)
    for t in (ScaleIntensity.window(40.0, 400.0), ScaleIntensity(-3.5, 0.01, clip=False), STORED_TO_UNIT):
        a = t(v)
        b = t.apply_(torch.from_numpy(v.copy())).numpy()
        assert np.array_equal(a, b)
        assert a.dtype == np.float32 and not np.shares_memory(a, v)


def test_window_clips_where_the_card_says() -> None:
    t = ScaleIntensity.window(40.0, 400.0)
    assert t.source_range == (-160.0, 240.0)
    out = t(np.array([-1000, -160, 40, 240, 3000], dtype=np.int16))
    assert out.tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    stored = ScaleIntensity.window(40.0, 400.0, top=DATASET_LEVELS)(np.array([40, 3000], dtype=np.int16))
    assert stored.tolist() == [127.5, 255.0]


def _shipped_spec() -> InputSpec:
    card = discover(include_user=False).get("ct-nodule-demo")
    assert card.input.normalise == Normalise.WINDOW and card.input.window is not None and card.input.size is not None
    return card.input


@pytest.mark.parametrize("spec", [_shipped_spec(), InputSpec(size=(40, 36), context_slices=2, window=(-600.0, 1500.0))])
def test_a_cards_preprocessing_is_the_same_tensor_in_training_and_inference(spec: InputSpec) -> None:
    volume, _ = make_chest_phantom((12, 64, 72), (1.5, 1.5, 4.0))
    amap, _ = axial_view(volume)
    voxels = np.asarray(amap.apply(volume.voxels))
    assert spec.window is not None and spec.size is not None
    size = (spec.size[0], spec.size[1])
    sliced = slice_volume(
        voxels, None, 1, size=size, window=spec.window, context_slices=spec.context_slices, balanced=False,
        positives_cap=None, negatives_cap=None, rng=np.random.default_rng(0), whole=True,
    )  # fmt: skip
    assert sliced.images.dtype == np.uint8 and len(sliced.slice_index) == voxels.shape[0]
    trained_on = to_input(torch.from_numpy(sliced.images), "cpu")

    planes = SlicePlanes(voxels, intensity_for(voxels, spec), size, spec.context_slices)
    inferred = planes.batch(0, voxels.shape[0]).contiguous()

    assert trained_on.shape == inferred.shape
    # The dataset stores 255 levels: the same tensor, but for that rounding (and float32's).
    step = 1.0 / DATASET_LEVELS
    assert float((trained_on - inferred).abs().max()) <= step / 2 + 1e-5
    stored = STORED_TO_UNIT.apply_(torch.round(inferred.clamp(0, 1) * DATASET_LEVELS))
    assert float((trained_on == stored).float().mean()) > 0.999  # all but ties of the rounding
    # A different window would not pass: the comparison can fail.
    other = SlicePlanes(voxels, ScaleIntensity.window(spec.window[0] + 50.0, spec.window[1]), size, spec.context_slices)
    assert float((trained_on - other.batch(0, voxels.shape[0])).abs().max()) > 4 * step
