"""Window/level presets and the automatic window for modalities without fixed units.

Qt-free: the viewer's display state and the batch key images choose their window here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inference.volume import Volume


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
    # Head CT: a subdural window between brain and bone, and the temporal bone's wide window.
    "Subdural": (WindowLevel(75, 215), "8"),
    "Temporal bone": (WindowLevel(600, 2800), "9"),
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


def preset_action_name(name: str) -> str:
    """The viewer action's name for a preset: ``"Temporal bone"`` → ``"preset-temporal-bone"``."""
    return "preset-" + name.lower().replace(" ", "-")


def default_window(
    modality: str,
    voxels: npt.NDArray[np.generic],
    file_windows: list[WindowLevel],
    *,
    file_windows_vary: bool = False,
) -> WindowLevel:
    """The window a study opens with: the file's own first, then a modality default, then auto.

    Where the slices carry windows that differ from slice to slice (Siemens MR writes one per
    slice, fitted to that slice alone), no single file window suits the volume: outside CT the
    automatic window is used instead.
    """
    if file_windows and not (file_windows_vary and modality != "CT"):
        return file_windows[0]
    if modality == "CT":
        return CT_PRESETS["Mediastinum"][0]
    return auto_window(voxels)


def volume_window(volume: Volume) -> WindowLevel:
    """The window ``volume`` opens with, from its modality, its file windows and its voxels."""
    md = volume.metadata
    files = [WindowLevel(w.center, w.width) for w in md.windows]
    return default_window(md.modality, volume.voxels, files, file_windows_vary=bool(md.extra.get("windows_vary")))


#: Fraction of the current width one pixel of right-drag moves the centre (the width moves twice that).
DRAG_FRACTION_PER_PIXEL = 1.0 / 400.0
#: With Shift held, a drag moves the window this many times more slowly.
FINE_DRAG_FACTOR = 0.2


def drag_window(start: WindowLevel, dx: float, dy: float, *, fine: bool = False) -> WindowLevel:
    """Right-drag W/L as on a PACS: right widens, down raises the centre.

    The step per pixel follows the window the drag started from, so a narrow window (W 40, a
    stroke window) moves in fractions of a unit and a wide one (W 2000, bone) in several units;
    ``fine`` (Shift held) makes it five times finer still.
    """
    sensitivity = max(start.width, 1.0) * DRAG_FRACTION_PER_PIXEL * (FINE_DRAG_FACTOR if fine else 1.0)
    width = max(1.0, start.width + dx * sensitivity * 2)
    return WindowLevel(start.center + dy * sensitivity, width)
