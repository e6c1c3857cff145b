"""Measurements kept with their study: saved in RadLens's own data folder, never in the scan
folder, and exported as CSV. No Qt.

A study's measurements are one JSON file named by a hash of the series (its SeriesInstanceUID
and stack, or an image file's resolved path), so the file name says nothing about the patient
and the scan folder is never written. Points are stored in patient coordinates (LPS mm), so
they come back where they were whatever display order the volume is shown in.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from inference.io.atomic import atomic_write
from inference.volume import Volume

from .measurements import Measurement, Plane, Shape
from .viewer_model import OpenVolume

__all__ = [
    "FORMAT_VERSION",
    "annotations_folder",
    "from_lps",
    "load_measurements",
    "measurement_rows",
    "measurements_csv",
    "roi_values",
    "save_measurements",
    "store_path",
    "study_key",
    "to_lps",
]

FORMAT_VERSION = 1


def annotations_folder() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("radlens")) / "annotations"


def study_key(volume: Volume) -> str:
    """What identifies the series a volume was loaded from (never shown, only hashed)."""
    md = volume.metadata
    if md.series_uid:
        return f"dicom:{md.series_uid}:{md.extra.get('stack_id', '')}"
    return f"file:{os.path.realpath(md.source)}" if md.source else ""


def store_path(volume: Volume, folder: Path | None = None) -> Path | None:
    """The JSON file that keeps ``volume``'s measurements (None: nothing identifies it)."""
    key = study_key(volume)
    if not key:
        return None
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return (folder or annotations_folder()) / f"{digest}.json"


def to_lps(m: Measurement, cur: OpenVolume) -> list[list[float]]:
    ijk = [cur.axis_map.display_to_source(p, cur.volume.size_ijk) for p in m.points]
    return [[float(v) for v in cur.volume.index_to_lps(np.asarray(p))] for p in ijk]


def from_lps(points_lps: list[list[float]], cur: OpenVolume) -> list[tuple[float, float, float]]:
    out = []
    for lps in points_lps:
        ijk = cur.volume.lps_to_index(np.asarray(lps, dtype=np.float64))
        x, y, z = cur.axis_map.source_to_display(ijk, cur.volume.size_ijk)
        out.append((float(x), float(y), float(z)))
    return out


def save_measurements(path: Path, measurements: list[Measurement], cur: OpenVolume) -> Path:
    """Write the measurements (an empty list too: deleting the last one must stick)."""
    data = {
        "format": "radlens-measurements",
        "version": FORMAT_VERSION,
        "frame_of_reference_uid": cur.volume.metadata.frame_of_reference_uid,
        "measurements": [
            {"shape": m.shape.value, "plane": m.plane.value, "label": m.label, "points_lps": to_lps(m, cur)}
            for m in measurements
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, json.dumps(data, indent=1))


def load_measurements(path: Path, cur: OpenVolume) -> list[Measurement]:
    """The measurements kept in ``path`` on ``cur``'s grid; [] when there are none. Entries that
    do not parse, or that lie off the volume, are left out rather than failing the study."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict) or data.get("format") != "radlens-measurements":
        return []
    out: list[Measurement] = []
    size = np.asarray(cur.shape_xyz, dtype=np.float64)
    for entry in data.get("measurements", []):
        try:
            shape, plane = Shape(entry["shape"]), Plane(entry["plane"])
            points = from_lps(entry["points_lps"], cur)
            label = str(entry.get("label", ""))
        except (KeyError, ValueError, TypeError):
            continue
        pts = np.asarray(points)
        if not len(pts) or np.any(pts < -0.5) or np.any(pts > size - 0.5):
            continue
        m = Measurement(shape, plane, points, label)
        if m.complete:
            out.append(m)
    return out


def roi_values(m: Measurement, cur: OpenVolume) -> np.ndarray:
    """The ROI's slice as ``[row axis, column axis]`` values (colour averaged to grey)."""
    index = int(round(m.p1[m.plane.normal_axis]))
    values = cur.plane_in_display_order(m.plane, index)
    return values.mean(axis=-1) if values.ndim == 3 else values


def measurement_rows(measurements: list[Measurement], cur: OpenVolume) -> list[dict[str, Any]]:
    """One row per measurement with its figures (length, angle, ROI statistics) and LPS points."""
    rows = []
    for m in measurements:
        row: dict[str, Any] = {"id": m.id, "shape": m.shape.value, "plane": m.plane.value, "label": m.label}
        if m.shape in (Shape.DISTANCE, Shape.ARROW):
            row["length_mm"] = round(m.length_mm(cur.spacing_xyz), 3)
        if m.shape in (Shape.ANGLE, Shape.COBB):
            row["angle_deg"] = round(m.angle_deg(cur.spacing_xyz), 3)
        if m.shape.is_roi:
            st = m.stats(roi_values(m, cur), cur.spacing_xyz)
            row.update(
                area_mm2=round(st.area_mm2, 3),
                mean=round(st.mean, 3),
                sd=round(st.sd, 3),
                min=st.minimum,
                max=st.maximum,
                voxels=st.count,
            )
        row["points_lps_mm"] = ";".join(" ".join(f"{v:.2f}" for v in p) for p in to_lps(m, cur))
        rows.append(row)
    return rows


CSV_COLUMNS = (
    "id",
    "shape",
    "plane",
    "label",
    "length_mm",
    "angle_deg",
    "area_mm2",
    "mean",
    "sd",
    "min",
    "max",
    "voxels",
    "points_lps_mm",
)


def measurements_csv(measurements: list[Measurement], cur: OpenVolume) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in measurement_rows(measurements, cur):
        writer.writerow(row)
    return buf.getvalue()
