"""Window/level presets and the automatic window for modalities without fixed units.

Qt-free: the viewer's display state and the batch key images choose their window here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class WindowLevel:
    center: float
    width: float

    @property
    def levels(self) -> tuple[float, float]:
        half = max(self.width, 1e-6) / 2
        return (self.center - half, self.center + half)


#: CT presets (centre, width) in HU with their keyboard shortcuts, as on a PACS.
CT_PRESETS: dict[str, tuple[WindowLevel, str]] = {
    "Lung": (WindowLevel(-600, 1500), "1"),
    "Mediastinum": (WindowLevel(40, 400), "2"),
    "Abdomen": (WindowLevel(60, 400), "3"),
    "Liver": (WindowLevel(60, 160), "4"),
    "Bone": (WindowLevel(300, 1500), "5"),
    "Brain": (WindowLevel(40, 80), "6"),
    "Stroke": (WindowLevel(40, 40), "7"),
}
AUTO_SHORTCUT = "0"


def auto_window(voxels: npt.NDArray[np.generic], low: float = 1.0, high: float = 99.0) -> WindowLevel:
    """A window from the 1st–99th percentiles of a subsample (MR and anything without units)."""
    flat = np.asarray(voxels).reshape(-1)
    step = max(1, flat.size // 200_000)
    sample = flat[::step].astype(np.float32)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return WindowLevel(0.0, 1.0)
    lo, hi = np.percentile(sample, [low, high])
    if hi <= lo:
        hi = lo + 1.0
    return WindowLevel(float((lo + hi) / 2), float(hi - lo))


def default_window(modality: str, voxels: npt.NDArray[np.generic], file_windows: list[WindowLevel]) -> WindowLevel:
    """The window a study opens with: the file's own first, then a modality default, then auto."""
    if file_windows:
        return file_windows[0]
    if modality == "CT":
        return CT_PRESETS["Mediastinum"][0]
    return auto_window(voxels)


def drag_window(start: WindowLevel, dx: float, dy: float, value_range: float) -> WindowLevel:
    """Right-drag W/L as on a PACS: right widens, down raises the centre (per pixel of motion)."""
    sensitivity = max(value_range, 1.0) / 1000.0
    width = max(1.0, start.width + dx * sensitivity * 2)
    return WindowLevel(start.center + dy * sensitivity, width)
