"""File → Open segmentation: a DICOM SEG lands as a label layer on the series it references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tests.inference.test_seg_reader import _seg, _series

from .conftest import open_and_wait


def test_dicom_seg_opens_as_a_layer_and_a_foreign_one_is_refused(qtbot: Any, controller: Any, tmp_path: Path) -> None:
    volume, files = _series(tmp_path / "series", "viewer", np.eye(3))
    labels = _seg(volume, files, tmp_path / "seg.dcm")
    other, other_files = _series(tmp_path / "other", "other", np.eye(3))
    _seg(other, other_files, tmp_path / "other-seg.dcm")
    open_and_wait(qtbot, controller, tmp_path / "series")
    layer = controller.open_mask(tmp_path / "seg.dcm")
    assert layer is not None
    np.testing.assert_array_equal(layer.labels, labels)
    assert layer.names[1] == "nodule"
    assert controller.open_mask(tmp_path / "other-seg.dcm") is None
    assert "frame of reference" in controller.last_error or "references none" in controller.last_error
    assert len(controller.model.layers) == 1
