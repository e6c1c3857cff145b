"""Starting the viewer: the Qt application, the dark theme, headless screenshots."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets


def needs_offscreen() -> bool:
    """True where no display is available (Linux without X11/Wayland and no platform chosen)."""
    if os.environ.get("QT_QPA_PLATFORM"):
        return False
    if sys.platform.startswith("linux"):
        return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return False


#: System libraries Qt's X11 (xcb) platform plugin loads, with the Debian/Ubuntu package that has each.
XCB_LIBRARIES = {
    "xcb-cursor": "libxcb-cursor0",
    "xcb-icccm": "libxcb-icccm4",
    "xcb-keysyms": "libxcb-keysyms1",
    "xkbcommon-x11": "libxkbcommon-x11-0",
}


def missing_display_libraries(find: Callable[[str], str | None] | None = None) -> list[str]:
    """The packages whose libraries Qt's X11 plugin needs and this system lacks (Linux with X11).

    Without them Qt stops with "could not load the Qt platform plugin xcb" only after a long
    wait, and names no package; checked before Qt starts, the user is told what to install.
    """
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM", "xcb") != "xcb":
        return []
    if not os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return []
    if find is None:
        import ctypes.util

        find = ctypes.util.find_library
    return [package for library, package in XCB_LIBRARIES.items() if find(library) is None]


def dark_palette() -> QtGui.QPalette:
    p = QtGui.QPalette()
    c = QtGui.QColor
    roles = QtGui.QPalette.ColorRole
    for role, colour in (
        (roles.Window, c(45, 45, 48)),
        (roles.WindowText, c(220, 220, 220)),
        (roles.Base, c(30, 30, 32)),
        (roles.AlternateBase, c(45, 45, 48)),
        (roles.ToolTipBase, c(60, 60, 60)),
        (roles.ToolTipText, c(230, 230, 230)),
        (roles.Text, c(220, 220, 220)),
        (roles.Button, c(55, 55, 58)),
        (roles.ButtonText, c(220, 220, 220)),
        (roles.Highlight, c(42, 130, 218)),
        (roles.HighlightedText, c(255, 255, 255)),
        (roles.Link, c(90, 170, 255)),
    ):
        p.setColor(role, colour)
    # Disabled controls look disabled: dimmed text, a flatter button (setColor above set every group).
    disabled = QtGui.QPalette.ColorGroup.Disabled
    for role, colour in (
        (roles.WindowText, c(120, 120, 120)),
        (roles.Text, c(120, 120, 120)),
        (roles.ButtonText, c(115, 115, 115)),
        (roles.Button, c(48, 48, 50)),
        (roles.Base, c(40, 40, 42)),
    ):
        p.setColor(disabled, role, colour)
    return p


def application() -> QtWidgets.QApplication:
    import pyqtgraph as pg

    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)
    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(sys.argv[:1])
        app.setApplicationName("RadLens")
        app.setOrganizationName("RadLens")
        app.setStyle("Fusion")
        app.setPalette(dark_palette())
    assert isinstance(app, QtWidgets.QApplication)
    return app


def default_screenshot_path() -> Path:
    import platformdirs

    folder = Path(platformdirs.user_cache_dir("radlens")) / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"radlens-{time.strftime('%Y%m%d-%H%M%S')}.png"


def run_viewer(
    path: str | None,
    stack_id: str | None = None,
    screenshot: str | None = None,
    size: tuple[int, int] = (1500, 800),
    model: str | None = None,
) -> int:
    """Open the viewer on ``path``; with ``screenshot``, render once, save the PNG and exit."""
    if screenshot is None and needs_offscreen():
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        screenshot = str(default_screenshot_path())
        print("radlens view: no display found; rendering to a PNG instead", file=sys.stderr)
    elif screenshot is not None and needs_offscreen():
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    missing = missing_display_libraries()
    if missing:
        print(
            "radlens view: error: Qt's X11 display plugin needs system libraries that are not installed: "
            f"{', '.join(missing)}. Install them (Debian/Ubuntu: sudo apt-get install {' '.join(missing)}; "
            "Fedora: sudo dnf install xcb-util-cursor xcb-util-wm xcb-util-keysyms libxkbcommon-x11), "
            "or run without a display: radlens view --screenshot out.png",
            file=sys.stderr,
        )
        return 2
    app = application()
    from inference.models.registry import DefaultModel, parse_model_request
    from viewer.controllers.viewer_controller import ViewerController

    controller = ViewerController(interactive=screenshot is None)
    controller.auto_model = None if model is None else parse_model_request(model)
    window = controller.window
    if screenshot is not None:
        window.resize(*size)
    t0 = time.perf_counter()
    window.show()
    if path is None:
        from inference.sample_study import write_sample_study

        path = str(write_sample_study())
        if model is None:
            controller.auto_model = DefaultModel.FOR_MODALITY  # the main job: the sample with the default model
    first_frame: list[float] = []
    controller.volume_shown.connect(lambda _v: first_frame.append(time.perf_counter() - t0))
    controller.open_path(path, stack_id)
    if screenshot is None:
        code = app.exec()
        return int(code)
    controller.wait_idle(timeout_s=300)
    for _ in range(5):
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
    ok = controller.model.current is not None
    out = controller.save_screenshot(screenshot, whole=True)
    if first_frame:
        print(f"first frame after {first_frame[0] * 1000:.0f} ms")
    result = controller.analysis.result
    if result is not None:
        score = "n/a" if result.study_score is None else f"{result.study_score:.2f}"
        print(
            f"model {result.model} {result.model_version} on {result.device}: study score {score}, "
            f"{len(result.findings)} finding(s)"
        )
    print(f"screenshot written to {out}")
    if not ok:
        print(f"radlens view: error: {controller.last_error or 'nothing could be shown'}", file=sys.stderr)
    window.close()
    controller.shutdown()
    return 0 if ok else 1
