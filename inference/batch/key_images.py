"""Key images: the slices a model scored highest, drawn as the viewer draws them, as PNG files.

Each image is the slice with the model's heatmap and label outlines over it, in the viewer's
orientation, with square pixels (the viewer keeps the aspect ratio in millimetres), the study's
own window, and the viewer's corner text, orientation letters and scale bar. Files are named
``key_01_slice0042.png`` (rank, then the slice number counted from 1, as everywhere a reader
sees one), so a report can say which slice it shows without another file.
"""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import numpy as np
import numpy.typing as npt

from inference import __version__
from inference.batch.errors import OutputWriteError
from inference.display.annotate import ImageText, annotate, edge_letters
from inference.display.render import render_slice_rgb, slice_orientation
from inference.display.window_level import volume_window
from inference.engine.findings import label_values
from inference.engine.interpretation import slice_scores
from inference.engine.result import Result
from inference.io.atomic import atomic_write
from inference.models.card import DEFAULT_LABEL_COLOUR, ModelCard
from inference.volume import Volume

#: How the analysis panel shows a model's explanation map; key images use the same.
HEATMAP_THRESHOLD = 0.1
HEATMAP_OPACITY = 0.6
#: Preferred distance between key slices, so three images do not show one lesion thrice.
MIN_GAP_SLICES = 3
#: Images smaller than this (longer side, pixels) are enlarged by an integer factor.
MIN_SIDE_PX = 256
_NAME = re.compile(r"^key_(\d{2,})_slice(\d{4,})\.png$")


def key_image_name(rank: int, k: int) -> str:
    """``key_01_slice0042.png`` for the best-scored image (``rank`` 1) showing slice ``k`` (index
    from 0): the name counts slices from 1, as the viewer, the score plot and the PDF do."""
    return f"key_{rank:02d}_slice{k + 1:04d}.png"


def key_image_slice(path: str | Path) -> int | None:
    """The slice index ``k`` (from 0) a key image file shows, from its name (None for another name)."""
    match = _NAME.match(Path(path).name)
    return int(match.group(2)) - 1 if match else None


def slice_score(result: Result, k: int, label_map: npt.NDArray[np.uint8] | None = None) -> float | None:
    """The probability shown for slice ``k`` (slice probability or highest map value), if any."""
    if result.slice_probabilities is None and not result.heatmaps and result.probability_map is None:
        return None
    scores = slice_scores(result, label_map)
    return None if scores is None or not 0 <= k < len(scores) else float(scores[k])


def choose_key_slices(result: Result, count: int, label_map: npt.NDArray[np.uint8] | None = None) -> list[int]:
    """Up to ``count`` distinct slices, best first, at least :data:`MIN_GAP_SLICES` apart where the
    volume allows. Without slice probabilities the largest findings' slices come first."""
    scores = slice_scores(result, label_map)
    if scores is None or count <= 0:
        return []
    labels = label_map if label_map is not None else result.label_map
    if result.slice_probabilities is None and labels is not None and labels.any():
        # A map's highest value ties across many slices (a brain mask is ~1 from the vertex to the
        # cord): the slices the model marks most come first, those it marks nothing on last.
        scores = (labels.reshape(labels.shape[0], -1) != 0).sum(axis=1, dtype=np.float64)
    order = [int(k) for k in np.argsort(-scores, kind="stable")]
    if result.slice_probabilities is None and result.findings:
        largest = sorted(result.findings, key=lambda f: (-f.volume_ml, -f.max_probability))
        first = [min(max(int(round(f.centroid_ijk[2])), 0), len(scores) - 1) for f in largest]
        order = list(dict.fromkeys(first + order))
    for gap in (MIN_GAP_SLICES, 1):
        chosen: list[int] = []
        for k in order:
            if all(abs(k - c) >= gap for c in chosen):
                chosen.append(k)
            if len(chosen) == count:
                return chosen
    return chosen


def _square_pixels(rgb: npt.NDArray[np.uint8], pixel_mm: tuple[float, float]) -> npt.NDArray[np.uint8]:
    """Nearest-neighbour resize to square pixels, enlarged by an integer factor when small."""
    rows, cols = rgb.shape[:2]
    out_rows, out_cols = _square_shape(rgb.shape[:2], pixel_mm)
    if (out_rows, out_cols) == (rows, cols):
        return rgb
    r = np.minimum((np.arange(out_rows) + 0.5) * rows / out_rows, rows - 1).astype(np.intp)
    c = np.minimum((np.arange(out_cols) + 0.5) * cols / out_cols, cols - 1).astype(np.intp)
    return np.ascontiguousarray(rgb[r[:, None], c[None, :]])


def _square_shape(shape: tuple[int, ...], pixel_mm: tuple[float, float]) -> tuple[int, int]:
    """(rows, columns) of an image of ``shape`` drawn with square pixels, at least MIN_SIDE_PX."""
    rows, cols = shape[0], shape[1]
    unit = min(pixel_mm)
    height, width = rows * pixel_mm[1] / unit, cols * pixel_mm[0] / unit
    factor = max(1, math.ceil(MIN_SIDE_PX / max(height, width)))
    return max(1, round(height * factor)), max(1, round(width * factor))


def _png_bytes(rgb: npt.NDArray[np.uint8], description: str) -> bytes:
    # Pillow is matplotlib's own image writer (a required dependency of it).
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Software", f"RadLens {__version__}")
    info.add_text("Description", description)
    buffer = io.BytesIO()
    # zlib level 3: half the time of the default 6, files ~8% larger.
    Image.fromarray(rgb).save(buffer, format="PNG", pnginfo=info, compress_level=3)
    return buffer.getvalue()


def write_key_images(
    volume: Volume,
    result: Result,
    out_dir: Path,
    *,
    card: ModelCard | None = None,
    count: int = 3,
    label_map: npt.NDArray[np.uint8] | None = None,
) -> list[Path]:
    """Write up to ``count`` key images of the best-scored slices into ``out_dir``; paths best first.

    Each is drawn as the viewer shows it to a reader: the study's own window (the one the viewer
    opens it with, never the model's input window), the result's first explanation map, labels
    (``label_map`` or the result's) outlined in the card's colours, and the viewer's corner text,
    orientation letters and scale bar. Slices are numbered from 1 in names and captions. Each PNG
    appears atomically.
    """
    labels = label_map if label_map is not None else result.label_map
    heat = next(iter(result.heatmaps.values())) if result.heatmaps else None
    window = volume_window(volume)
    colours = {lab.value: lab.colour for lab in card.labels} if card is not None else {}
    if labels is not None:
        for value in label_values(labels):
            colours.setdefault(value, DEFAULT_LABEL_COLOUR)
        colours.pop(0, None)
    orientation = slice_orientation(volume)
    model = f"{card.name} {card.version}" if card is not None else f"{result.model} {result.model_version}"
    paths = []
    for rank, k in enumerate(choose_key_slices(result, count, labels), start=1):
        rgb = render_slice_rgb(
            volume,
            k,
            window=window,
            labels=None if labels is None else labels[k],
            label_colours=colours,
            heatmap=None if heat is None else heat[k],
            heatmap_threshold=HEATMAP_THRESHOLD,
            heatmap_opacity=HEATMAP_OPACITY,
        )
        score = slice_score(result, k, labels)
        n = volume.shape[0]
        caption = f"slice {k + 1}/{n}" + ("" if score is None else f", probability {score:.3f}") + f"; {model}"
        square = _square_pixels(rgb, orientation.pixel_mm)
        mm_per_px = rgb.shape[1] * orientation.pixel_mm[0] / square.shape[1]
        text = ImageText(
            top_left=[model],
            top_right=[
                orientation.plane.capitalize(),
                f"slice {k + 1}/{n}",
                *([] if score is None else [f"p {score:.2f}"]),
            ],
            bottom_left=[f"W {window.width:.0f} L {window.center:.0f}"],
            edges=edge_letters(volume, orientation.plane, orientation.axis_map),
        )
        path = Path(out_dir) / key_image_name(rank, k)
        try:
            atomic_write(path, _png_bytes(annotate(square, mm_per_px, text), caption))
        except OSError as exc:
            raise OutputWriteError(path, f"cannot write the key image ({exc.strerror or exc})") from exc
        paths.append(path)
    return paths
