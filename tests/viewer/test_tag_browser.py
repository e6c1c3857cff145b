"""The DICOM tag browser dock on real widgets: follows the slice, searches, copies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom

from tests.viewer.conftest import open_and_wait, settle


def _values(browser: Any) -> dict[str, str]:
    return {n.keyword: n.value for n in browser.shown_nodes()}


def test_tag_browser_follows_the_slice_and_searches(qtbot: Any, controller: Any, sample_study: Path) -> None:
    from PySide6 import QtWidgets

    cur = open_and_wait(qtbot, controller, sample_study)
    window = controller.window
    browser = window.tag_browser
    assert not window.tag_dock.isVisible()
    window.actions_by_name["dicom-tags"].trigger()
    assert window.tag_dock.isVisible()
    for k in (5, 60):
        x, y, _z = controller.model.cursor
        controller.model.set_cursor((x, y, k))
        qtbot.waitUntil(lambda: not controller.busy, timeout=10_000)
        settle(qtbot)
        source = cur.axis_map.display_to_source(controller.model.cursor, cur.volume.size_ijk)
        source_k = int(round(source[2]))
        stack = controller.current_stack
        path = stack.headers[stack.slices[source_k].header_index].path
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        values = _values(browser)
        assert values["SOPInstanceUID"] == ds.SOPInstanceUID
        assert values["ImagePositionPatient"] == "\\".join(str(v) for v in ds.ImagePositionPatient)
        assert browser.source_label.text().startswith(f"Slice {source_k + 1}/")
    browser.search.setText("0020,0032")
    settle(qtbot)
    assert [n.keyword for n in browser.shown_nodes()] == ["ImagePositionPatient"]
    text = browser.copy_selection()
    assert text.startswith("(0020,0032)\tImagePositionPatient\tDS\t")
    assert QtWidgets.QApplication.clipboard().text() == text
    browser.search.clear()
    settle(qtbot)
    assert len(browser.shown_nodes()) > 40


def test_series_browser_entry_shows_its_tags(qtbot: Any, controller: Any, sample_study: Path) -> None:
    open_and_wait(qtbot, controller, sample_study)
    stack = controller.scan_result.stacks()[0]
    controller.show_stack_tags(stack)
    qtbot.waitUntil(lambda: not controller.busy, timeout=10_000)
    first = pydicom.dcmread(stack.headers[stack.slices[0].header_index].path, stop_before_pixels=True)
    assert controller.window.tag_dock.isVisible()
    assert _values(controller.window.tag_browser)["SOPInstanceUID"] == first.SOPInstanceUID
