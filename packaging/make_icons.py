"""Render packaging/icons/radlens.svg at the sizes each platform wants.

Writes ``png/radlens-<N>.png`` (Linux hicolor sizes 16–512), ``radlens.ico`` (Windows: 16, 24,
32, 48, 64, 128, 256) and ``radlens.icns`` (macOS: 16–1024). The outputs are committed; run this
again only after editing the SVG: ``.venv/bin/python packaging/make_icons.py``.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

ICONS = Path(__file__).resolve().parent / "icons"
LINUX_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
WINDOWS_SIZES = (16, 24, 32, 48, 64, 128, 256)
MAC_SIZES = (16, 32, 64, 128, 256, 512, 1024)


def render(size: int) -> bytes:
    """The SVG drawn at ``size`` × ``size`` pixels, as PNG bytes."""
    from PySide6 import QtCore, QtGui, QtSvg

    image = QtGui.QImage(size, size, QtGui.QImage.Format.Format_ARGB32)
    image.fill(QtCore.Qt.GlobalColor.transparent)
    painter = QtGui.QPainter(image)
    painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
    QtSvg.QSvgRenderer(str(ICONS / "radlens.svg")).render(painter)
    painter.end()
    buffer = QtCore.QBuffer()
    buffer.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return bytes(buffer.data().data())


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PIL import Image
    from PySide6 import QtGui

    _app = QtGui.QGuiApplication(sys.argv[:1])
    (ICONS / "png").mkdir(parents=True, exist_ok=True)
    images = {}
    for size in sorted({*LINUX_SIZES, *WINDOWS_SIZES, *MAC_SIZES}):
        images[size] = Image.open(io.BytesIO(render(size))).convert("RGBA")
        images[size].load()
    for size in LINUX_SIZES:
        images[size].save(ICONS / "png" / f"radlens-{size}.png", optimize=True)
    biggest = images[max(WINDOWS_SIZES)]
    biggest.save(ICONS / "radlens.ico", sizes=[(s, s) for s in WINDOWS_SIZES])
    images[1024].save(ICONS / "radlens.icns")
    print(f"icons written to {ICONS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
