"""A reader's measurements as a DICOM SR (TID 1500 Measurement Report, Comprehensive 3D SR) and
back. No Qt.

Written with highdicom on the source series' headers (patient, study and frame of reference from
the source; every source instance listed as evidence; the observer is a device, RadLens). Each
measurement is one group, located in patient coordinates (SCOORD3D) on the source's frame of
reference:

* ROIs (rectangle, ellipse, freehand) and markers: TID 1410 planar ROI groups, the region a
  closed POLYGON, an ELLIPSE (major then minor axis ends) or a POINT, with the ROI's area, mean,
  standard deviation, minimum and maximum;
* rulers, arrows, angles and Cobb angles: TID 1501 groups whose one TID 300 measurement (Length
  or Angle) is inferred from a POLYLINE (a Cobb angle's two lines: a MULTIPOINT of their ends).

Each group's tracking identifier is ``"<shape>: <label>"``, so RadLens reads its own shapes back
exactly; another program's SR is read by graphic type. Only groups on the open volume's frame of
reference and lying in one of its display planes are read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.sr.coding import Code

from inference import __version__
from inference.batch.dicom_file import highdicom_building, save_atomically
from inference.batch.source_headers import SourceHeaders
from inference.batch.sr_writer import procedure_reported
from inference.errors import LoadError
from inference.io.stacks import Stack

from .annotation_store import from_lps, roi_values, to_lps
from .measurements import Measurement, Plane, Shape
from .viewer_model import OpenVolume

__all__ = ["read_measurement_sr", "write_measurement_sr"]

OUTPUT = "measurements SR"
#: Series numbers of measurement SRs: the source's plus this (model SRs take +2000).
SERIES_NUMBER_OFFSET = 3000

LENGTH = Code("410668003", "SCT", "Length")
ANGLE = Code("1483009", "SCT", "Angle")
COBB_ANGLE = Code("285285000", "SCT", "Cobb angle")
AREA = Code("42798000", "SCT", "Area")
MEAN = Code("373098007", "SCT", "Mean")
SD = Code("386136009", "SCT", "Standard deviation")
MINIMUM = Code("255605001", "SCT", "Minimum")
MAXIMUM = Code("56851009", "SCT", "Maximum")
MM = Code("mm", "UCUM", "millimeter")
MM2 = Code("mm2", "UCUM", "square millimeter")
DEGREES = Code("deg", "UCUM", "degree")
HU = Code("[hnsf'U]", "UCUM", "Hounsfield unit")
NO_UNITS = Code("1", "UCUM", "no units")
TRACKING_IDENTIFIER = ("112039", "DCM")


def _region_points(m: Measurement, cur: OpenVolume) -> npt.NDArray[np.float64]:
    """The points of ``m``'s SCOORD3D in LPS mm, as its graphic type wants them."""
    ca, ra = m.plane.in_plane_axes
    first, last = np.asarray(m.points[0], dtype=np.float64), np.asarray(m.points[-1], dtype=np.float64)
    if m.shape == Shape.RECTANGLE:
        corners = []
        for c, r in ((first, first), (last, first), (last, last), (first, last), (first, first)):
            p = first.copy()
            p[ca], p[ra] = c[ca], r[ra]
            corners.append((float(p[0]), float(p[1]), float(p[2])))
        return np.asarray(to_lps(Measurement(m.shape, m.plane, corners), cur))
    if m.shape == Shape.ELLIPSE:
        centre = (first + last) / 2
        half = np.abs(last - first) / 2
        axes = sorted(((float(half[ca]), ca), (float(half[ra]), ra)), reverse=True)  # major axis first
        ends = []
        for radius, axis in axes:
            for sign in (-1.0, 1.0):
                end = centre.copy()
                end[axis] += sign * radius
                ends.append((float(end[0]), float(end[1]), float(end[2])))
        return np.asarray(to_lps(Measurement(m.shape, m.plane, ends), cur))
    pts = np.asarray(to_lps(m, cur))
    if m.shape == Shape.FREEHAND:
        pts = np.vstack([pts, pts[:1]])  # a POLYGON is closed: its last point is its first
    return pts


@dataclass(frozen=True)
class _Group:
    kind: str  # "planar" or "measure"
    graphic_type: str
    name: Code | None = None
    unit: Code | None = None


_GROUPS = {
    Shape.RECTANGLE: _Group("planar", "POLYGON"),
    Shape.FREEHAND: _Group("planar", "POLYGON"),
    Shape.ELLIPSE: _Group("planar", "ELLIPSE"),
    Shape.POINT: _Group("planar", "POINT"),
    Shape.DISTANCE: _Group("measure", "POLYLINE", LENGTH, MM),
    Shape.ARROW: _Group("measure", "POLYLINE", LENGTH, MM),
    Shape.ANGLE: _Group("measure", "POLYLINE", ANGLE, DEGREES),
    Shape.COBB: _Group("measure", "MULTIPOINT", COBB_ANGLE, DEGREES),
}


def _group(m: Measurement, cur: OpenVolume, frame_of_reference_uid: str, series_uid: str) -> Any:
    import highdicom as hd

    spec = _GROUPS[m.shape]
    graphic_type = hd.sr.GraphicTypeValues3D[spec.graphic_type]
    points = _region_points(m, cur)
    tracking = hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"{m.shape.value}: {m.label}".strip()[:64])
    if spec.kind == "planar":
        measurements = []
        if m.shape.is_roi:
            st = m.stats(roi_values(m, cur), cur.spacing_xyz)
            unit = HU if cur.volume.metadata.modality == "CT" else NO_UNITS
            measurements = [hd.sr.Measurement(name=AREA, value=st.area_mm2, unit=MM2)]
            if st.count:
                measurements += [
                    hd.sr.Measurement(name=MEAN, value=st.mean, unit=unit),
                    hd.sr.Measurement(name=SD, value=st.sd, unit=unit),
                    hd.sr.Measurement(name=MINIMUM, value=st.minimum, unit=unit),
                    hd.sr.Measurement(name=MAXIMUM, value=st.maximum, unit=unit),
                ]
        return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking,
            referenced_region=hd.sr.ImageRegion3D(
                graphic_type=graphic_type, graphic_data=points, frame_of_reference_uid=frame_of_reference_uid
            ),
            measurements=measurements or None,
        )
    value = m.length_mm(cur.spacing_xyz) if spec.name == LENGTH else m.angle_deg(cur.spacing_xyz)
    assert spec.name is not None and spec.unit is not None
    coordinates = hd.sr.CoordinatesForMeasurement3D(
        graphic_type=graphic_type, graphic_data=points, frame_of_reference_uid=frame_of_reference_uid
    )
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking,
        measurements=[
            hd.sr.Measurement(name=spec.name, value=float(value), unit=spec.unit, referenced_coordinates=[coordinates])
        ],
    )


def write_measurement_sr(out_path: Path, items: list[Measurement], cur: OpenVolume, stack: Stack) -> Path:
    """Write ``items`` (measured on ``cur``, loaded from ``stack``) as a TID 1500 SR, atomically."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    headers = SourceHeaders(stack)
    headers.check(OUTPUT)
    instances = headers.instances()
    first = instances[0]
    frame_of_reference_uid = str(first.get("FrameOfReferenceUID", ""))
    series_uid = str(first.SeriesInstanceUID)
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=hd.UID(), name="RadLens", manufacturer_name="RadLens", model_name=f"RadLens {__version__}"[:64]
    )
    with highdicom_building(OUTPUT):
        groups = [_group(m, cur, frame_of_reference_uid, series_uid) for m in items]
        report = hd.sr.MeasurementReport(
            observation_context=hd.sr.ObservationContext(
                observer_device_context=hd.sr.ObserverContext(
                    observer_type=codes.DCM.Device, observer_identifying_attributes=device
                )
            ),
            procedure_reported=procedure_reported(str(first.get("Modality", ""))),
            imaging_measurements=groups,
        )
        sr = hd.sr.Comprehensive3DSR(
            evidence=instances,
            content=report,
            series_instance_uid=hd.UID(),
            series_number=SERIES_NUMBER_OFFSET + max(stack.series_number, 0),
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="RadLens",
            manufacturer_model_name="RadLens viewer",
            software_versions=f"RadLens {__version__}",
            is_complete=True,
            series_description="RadLens measurements",
        )
    return save_atomically(sr, out_path, "SR")


# --- reading -------------------------------------------------------------------------------


def _walk(items: Any, identifier: str = "") -> list[tuple[str, Any]]:
    """Every SCOORD3D content item with the tracking identifier of the group it belongs to."""
    found = []
    for item in items or []:
        concept = item.get("ConceptNameCodeSequence")
        code = (str(concept[0].CodeValue), str(concept[0].CodingSchemeDesignator)) if concept else None
        if item.get("ValueType") == "TEXT" and code == TRACKING_IDENTIFIER:
            identifier = str(item.get("TextValue", ""))
    for item in items or []:
        if item.get("ValueType") == "SCOORD3D":
            found.append((identifier, item))
        if "ContentSequence" in item:
            found += _walk(item.ContentSequence, identifier)
    return found


def _plane_of(points: list[tuple[float, float, float]]) -> Plane | None:
    """The display plane all points lie in (the shared display axis), or None."""
    pts = np.asarray(points)
    for plane in (Plane.AXIAL, Plane.CORONAL, Plane.SAGITTAL):
        axis = plane.normal_axis
        if np.ptp(pts[:, axis]) <= 0.5 and abs(pts[0, axis] - round(pts[0, axis])) <= 0.5:
            return plane
    return None


def _measurement(identifier: str, item: Any, cur: OpenVolume) -> Measurement | None:
    graphic_type = str(item.get("GraphicType", ""))
    data = np.asarray([float(v) for v in item.get("GraphicData", [])], dtype=np.float64)
    if data.size < 3 or data.size % 3:
        return None
    points = from_lps(data.reshape(-1, 3).tolist(), cur)
    name, _, label = identifier.partition(":")
    known = {s.value for s in Shape}
    shape = Shape(name.strip()) if name.strip() in known else None
    if graphic_type == "POLYGON" and len(points) > 3 and np.allclose(points[0], points[-1]):
        points = points[:-1]
    plane = _plane_of(points)
    if plane is None:
        return None
    on_slice = round(points[0][plane.normal_axis])
    points = [tuple(float(on_slice) if a == plane.normal_axis else v for a, v in enumerate(p)) for p in points]  # type: ignore[misc]
    ca, ra = plane.in_plane_axes
    if graphic_type == "ELLIPSE" and len(points) == 4:
        pts = np.asarray(points)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        return Measurement(Shape.ELLIPSE, plane, [tuple(lo), tuple(hi)], label.strip())  # type: ignore[list-item]
    if graphic_type == "POLYGON":
        pts = np.asarray(points)
        corners = {(round(p[ca], 3), round(p[ra], 3)) for p in points}
        cs = {c for c, _ in corners}
        rs = {r for _, r in corners}
        if shape != Shape.FREEHAND and len(points) == 4 and len(cs) == 2 and len(rs) == 2:
            lo, hi = pts.min(axis=0), pts.max(axis=0)
            return Measurement(Shape.RECTANGLE, plane, [tuple(lo), tuple(hi)], label.strip())  # type: ignore[list-item]
        return Measurement(Shape.FREEHAND, plane, points, label.strip()) if len(points) >= 3 else None
    if graphic_type == "POINT" and len(points) == 1:
        return Measurement(Shape.POINT, plane, points, label.strip())
    if graphic_type == "MULTIPOINT" and len(points) == 4:
        return Measurement(Shape.COBB, plane, points, label.strip())
    if graphic_type == "POLYLINE" and len(points) in (2, 3):
        if len(points) == 3:
            return Measurement(Shape.ANGLE, plane, points, label.strip())
        return Measurement(Shape.ARROW if shape == Shape.ARROW else Shape.DISTANCE, plane, points, label.strip())
    return None


def read_measurement_sr(path: str | Path, cur: OpenVolume) -> list[Measurement]:
    """The planar measurements of a DICOM SR that lie on ``cur``'s frame of reference.

    Raises :class:`LoadError` when the file is no SR, or none of its measurements can be placed
    on this volume (another frame of reference, or no shape RadLens draws).
    """
    try:
        ds = pydicom.dcmread(str(path))
    except Exception as exc:
        raise LoadError(path, f"cannot read the file as DICOM ({exc})") from exc
    if ds.get("Modality") != "SR" or "ContentSequence" not in ds:
        raise LoadError(path, "not a DICOM structured report")
    frame = cur.volume.metadata.frame_of_reference_uid
    coordinates = _walk(ds.ContentSequence)
    placed = [(i, item) for i, item in coordinates if str(item.get("ReferencedFrameOfReferenceUID", "")) == frame]
    if coordinates and not placed:
        raise LoadError(path, "its measurements lie on another frame of reference than the open image")
    out = [m for identifier, item in placed if (m := _measurement(identifier, item, cur)) is not None]
    if not out:
        raise LoadError(path, "no measurement in it can be shown on this image")
    return out
