"""File → Open mask: a DICOM SEG lands as a label layer on the series it references, read off the GUI thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tests.inference.test_seg_reader import _seg, _series

from .conftest import open_and_wait, open_overlay_and_wait


def test_dicom_seg_opens_as_a_layer_and_a_foreign_one_is_refused(qtbot: Any, controller: Any, tmp_path: Path) -> None:
    volume, files = _series(tmp_path / "series", "viewer", np.eye(3))
    labels = _seg(volume, files, tmp_path / "seg.dcm")
    other, other_files = _series(tmp_path / "other", "other", np.eye(3))
    _seg(other, other_files, tmp_path / "other-seg.dcm")
    open_and_wait(qtbot, controller, tmp_path / "series")
    layer = open_overlay_and_wait(qtbot, controller, tmp_path / "seg.dcm")
    assert layer is not None
    np.testing.assert_array_equal(layer.labels, labels)
    assert layer.names[1] == "nodule"
    assert open_overlay_and_wait(qtbot, controller, tmp_path / "other-seg.dcm") is None
    assert "frame of reference" in controller.last_error or "references none" in controller.last_error
    assert len(controller.model.layers) == 1


def test_an_overlay_is_read_off_the_gui_thread_and_only_lands_on_its_own_image(
    qtbot: Any, controller: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    import threading

    from viewer.models import overlay_files

    volume, files = _series(tmp_path / "series", "viewer", np.eye(3))
    _seg(volume, files, tmp_path / "seg.dcm")
    open_and_wait(qtbot, controller, tmp_path / "series")
    release, readers = threading.Event(), []
    real = overlay_files.read_overlay

    def held_read(vol: Any, path: Any) -> Any:
        readers.append(threading.current_thread())
        assert release.wait(30)
        return real(vol, path)

    monkeypatch.setattr(overlay_files, "read_overlay", held_read)
    assert controller.open_mask(tmp_path / "seg.dcm")
    qtbot.waitUntil(lambda: bool(readers), timeout=5000)
    assert readers[0] is not threading.main_thread()  # the GUI thread went on while the file was read
    assert controller.busy and len(controller.model.layers) == 0
    release.set()
    with qtbot.waitSignal(controller.overlay_opened, timeout=30_000) as opened:
        pass
    assert opened.args[0].names[1] == "nodule" and len(controller.model.layers) == 1

    # Read for one image, finished after another was opened: not laid over the wrong one.
    release.clear()
    assert controller.open_mask(tmp_path / "seg.dcm")
    qtbot.waitUntil(lambda: len(readers) == 2, timeout=5000)
    _series(tmp_path / "other", "other", np.eye(3))
    open_and_wait(qtbot, controller, tmp_path / "other")
    release.set()
    qtbot.waitUntil(lambda: not controller.busy, timeout=30_000)
    assert "no longer open" in controller.last_error
    assert len(controller.model.layers) == 0
