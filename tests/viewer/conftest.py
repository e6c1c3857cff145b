"""Viewer fixtures: an offscreen Qt application, a controller with a shown window, the sample study.

Everything here drives the real widgets and reads back what they show: annotations, panels,
status bar text and grabbed pixels.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

WINDOW_SIZE = (1500, 800)
LOAD_TIMEOUT_MS = 60_000


@pytest.fixture(scope="session", autouse=True)
def qt_application() -> Any:
    """The viewer's own QApplication (dark theme, pyqtgraph row-major images), made once."""
    from viewer.app import application

    return application()


@pytest.fixture(scope="session")
def sample_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled sample chest phantom written as a DICOM series."""
    from inference.sample_study import write_sample_study

    return write_sample_study(tmp_path_factory.mktemp("sample-study") / "sample")


def _visible_top_levels() -> set[int]:
    from PySide6 import QtWidgets

    return {id(w) for w in QtWidgets.QApplication.topLevelWidgets() if w.isVisible()}


@pytest.fixture
def controller(qtbot: Any, tmp_path: Path) -> Iterator[Any]:
    """A non-interactive controller whose main window is shown at a fixed size.

    On teardown the window is closed and the controller shut down; no window may stay visible
    and no worker thread may still run.
    """
    from PySide6 import QtCore, QtWidgets

    from viewer.controllers.settings import Settings
    from viewer.controllers.viewer_controller import ViewerController

    before = _visible_top_levels()
    ctrl = ViewerController(settings=Settings(tmp_path / "viewer.ini"), interactive=False)
    ctrl.window.resize(*WINDOW_SIZE)
    ctrl.window.show()
    qtbot.waitExposed(ctrl.window)
    try:
        yield ctrl
    finally:
        ctrl.window.close()
        ctrl.shutdown()
        QtWidgets.QApplication.processEvents()
        leaked = [
            f"{type(w).__name__}({w.objectName()!r})"
            for w in QtWidgets.QApplication.topLevelWidgets()
            if w.isVisible() and id(w) not in before
        ]
        active = QtCore.QThreadPool.globalInstance().activeThreadCount()
        ctrl.window.deleteLater()
        QtWidgets.QApplication.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete)
        assert not leaked, f"top-level widgets left visible after close: {leaked}"
        assert active == 0, f"{active} worker thread(s) still running after shutdown"


def open_and_wait(qtbot: Any, controller: Any, path: str | Path, stack_id: str | None = None) -> Any:
    """Open ``path`` through the controller and wait until a volume is shown; return it."""
    controller.open_path(path, stack_id)
    qtbot.waitUntil(
        lambda: controller.model.current is not None or bool(controller.last_error), timeout=LOAD_TIMEOUT_MS
    )
    assert controller.model.current is not None, f"nothing opened: {controller.last_error}"
    qtbot.waitUntil(lambda: not (controller.loader.busy or controller.drawing), timeout=LOAD_TIMEOUT_MS)
    settle(qtbot)
    return controller.model.current


def open_overlay_and_wait(qtbot: Any, controller: Any, path: str | Path) -> Any:
    """File → Open mask through the controller (read on a worker thread); the layer it added, or
    None with ``controller.last_error`` saying why."""
    controller.last_error = ""
    before = len(controller.model.layers)
    assert controller.open_mask(path)
    qtbot.waitUntil(lambda: not controller.busy, timeout=LOAD_TIMEOUT_MS)
    layers = list(controller.model.layers)
    return layers[-1] if len(layers) > before else None


def settle(qtbot: Any) -> None:
    """Let queued signals, layout changes and repaints run."""
    qtbot.wait(30)


def image_rgb(image: Any) -> npt.NDArray[np.uint8]:
    """A QImage as an ``(h, w, 3)`` RGB array (a copy)."""
    from PySide6 import QtGui

    img = image.convertToFormat(QtGui.QImage.Format.Format_RGB888)
    h, w, bpl = img.height(), img.width(), img.bytesPerLine()
    raw = np.frombuffer(img.constBits(), dtype=np.uint8, count=h * bpl).reshape(h, bpl)
    return raw[:, : w * 3].reshape(h, w, 3).copy()


def grab_rgb(widget: Any) -> npt.NDArray[np.uint8]:
    """What ``widget`` shows right now, as RGB pixels in widget coordinates."""
    pixmap = widget.grab()
    assert pixmap.devicePixelRatio() == 1.0
    return image_rgb(pixmap.toImage())


def screen_point(view: Any, col: float, row: float) -> Any:
    """The viewport position (QPoint) of image pixel centre ``(col, row)`` in a SliceView."""
    from PySide6 import QtCore

    sx, sy = view.pixel_mm
    scene = view.vb.mapViewToScene(QtCore.QPointF((col + 0.5) * sx, (row + 0.5) * sy))
    return view.mapFromScene(scene)


def widget_point(view: Any, col: float, row: float) -> tuple[int, int]:
    """``(x, y)`` of image pixel ``(col, row)`` in ``view.grab()`` coordinates."""
    p = view.viewport().mapTo(view, screen_point(view, col, row))
    return p.x(), p.y()


def is_crosshair(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Pixels of the crosshair pen, (255, 200, 0) at alpha 200 over a grey image."""
    r, g, b = (rgb[..., c].astype(int) for c in range(3))
    return (r >= 190) & (g >= 140) & (b <= 60) & (r - g >= 20) & (r - g <= 75)
