"""Corner text, orientation letters and a scale bar drawn onto an RGB image, as the viewer draws
them over a pane: what a reader needs to read a key image on its own. Qt-free (Pillow, with the
DejaVu font matplotlib ships)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.io.orientation import orientation_label
from inference.volume import Volume

__all__ = ["ImageText", "annotate", "edge_letters", "scale_bar_mm"]

TEXT = (230, 230, 230)
EDGE = (255, 220, 120)
BACKING = (0, 0, 0, 150)


@dataclass(frozen=True)
class ImageText:
    """Lines in the four corners, and the patient-direction letters on the left, right, top and
    bottom edges."""

    top_left: list[str] = field(default_factory=list)
    top_right: list[str] = field(default_factory=list)
    bottom_left: list[str] = field(default_factory=list)
    bottom_right: list[str] = field(default_factory=list)
    edges: tuple[str, str, str, str] = ("", "", "", "")


def edge_letters(volume: Volume, plane: str, axis_map: Any) -> tuple[str, str, str, str]:
    """The letters on a displayed slice's edges (left, right, top, bottom) for ``plane``
    ("axial", "coronal" or "sagittal") of ``volume`` shown through ``axis_map``."""
    dirs = np.asarray(axis_map.display_directions(volume.direction), dtype=np.float64)
    if plane == "axial":
        right, down = dirs[:, 0], dirs[:, 1]
    elif plane == "coronal":
        right, down = dirs[:, 0], -dirs[:, 2]
    else:
        right, down = dirs[:, 1], -dirs[:, 2]
    return (orientation_label(-right), orientation_label(right), orientation_label(-down), orientation_label(down))


def scale_bar_mm(width_px: int, mm_per_px: float) -> float:
    """A round length in mm (1, 2 or 5 × 10ⁿ) of at most a quarter of the image's width."""
    target = max(width_px * mm_per_px / 4, 1e-3)
    base = 10 ** np.floor(np.log10(target))
    return float(max(base * step for step in (1, 2, 5) if base * step <= target))


@lru_cache(maxsize=4)
def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        from matplotlib import font_manager

        return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)
    except (ImportError, OSError):
        return ImageFont.load_default()


def annotate(rgb: npt.NDArray[np.uint8], mm_per_px: float, text: ImageText) -> npt.NDArray[np.uint8]:
    """``rgb`` with ``text`` on dark backings and a scale bar at the bottom centre."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(np.ascontiguousarray(rgb)).convert("RGBA")
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    w, h = image.size
    size = max(10, min(16, w // 32))
    font, bold = _font(size), _font(size + 2)
    line = size + 4

    def put(x: float, y: float, s: str, colour: tuple[int, int, int], f: Any, anchor: str) -> None:
        if not s:
            return
        box = draw.textbbox((x, y), s, font=f, anchor=anchor)
        draw.rectangle((box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1), fill=BACKING)
        draw.text((x, y), s, font=f, fill=(*colour, 255), anchor=anchor)

    for n, s in enumerate(text.top_left):
        put(4, 3 + n * line, s, TEXT, font, "la")
    for n, s in enumerate(text.top_right):
        put(w - 4, 3 + n * line, s, TEXT, font, "ra")
    for n, s in enumerate(reversed(text.bottom_left)):
        put(4, h - 3 - n * line, s, TEXT, font, "ld")
    for n, s in enumerate(reversed(text.bottom_right)):
        put(w - 4, h - 3 - n * line, s, TEXT, font, "rd")
    left, right, top, bottom = text.edges
    put(4, h / 2, left, EDGE, bold, "lm")
    put(w - 4, h / 2, right, EDGE, bold, "rm")
    put(w / 2, 3 + line * max(len(text.top_left), len(text.top_right)), top, EDGE, bold, "ma")
    rows_below = max(len(text.bottom_left), len(text.bottom_right))
    bar_y = h - 6 - line * rows_below
    put(w / 2, bar_y - 8 - line, bottom, EDGE, bold, "md")
    length_mm = scale_bar_mm(w, mm_per_px)
    length_px = int(round(length_mm / mm_per_px))
    x0 = w // 2 - length_px // 2
    for colour, width in (((0, 0, 0, 200), 4), ((*TEXT, 255), 2)):
        draw.line((x0, bar_y, x0 + length_px, bar_y), fill=colour, width=width)
        draw.line((x0, bar_y - 4, x0, bar_y), fill=colour, width=width)
        draw.line((x0 + length_px, bar_y - 4, x0 + length_px, bar_y), fill=colour, width=width)
    put(w / 2, bar_y - 5, f"{length_mm:g} mm", TEXT, _font(max(9, size - 2)), "md")
    out = Image.alpha_composite(image, layer).convert("RGB")
    return np.asarray(out, dtype=np.uint8)
