"""The viewer never takes a 4-D acquisition for a colour volume: it shows the first volume and says so."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from inference.io.scan import scan
from inference.progress import CancelToken
from tests.inference.series4d import anatomy, contrasts, write_classic
from viewer.controllers.loading import load_stack_for_viewer


def test_a_4d_series_is_shown_as_its_first_volume_with_a_note(tmp_path: Path) -> None:
    vox = contrasts(anatomy(4), [1.0, 1.01, 1.02])
    written = write_classic(tmp_path / "in", vox)
    (stack,) = scan(written.folder).stacks()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        volume = load_stack_for_viewer(stack, CancelToken(), lambda f, m: None)
    assert volume.voxels.ndim == 3 and not volume.is_4d and not volume.is_colour
    np.testing.assert_array_equal(volume.voxels, vox[0])
    assert any("4-D time series of 3 volumes: showing volume 1" in q for q in volume.qa_warnings)
