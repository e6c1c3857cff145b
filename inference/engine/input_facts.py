"""What is known about an input before a model sees it: from the stack's headers, the scan's QA and the volume.

Read defensively: a stack from another loader may lack the DICOM headers (a NIfTI file), and the
loader may or may not already know the number of volumes per position or whether a file is a mosaic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.volume import Volume

#: BodyPartExamined (and words in the protocol or series description) → the card's body regions.
_REGION_WORDS = (
    (re.compile(r"\b(head|brain|skull|cran|cerebr|neuro|kopf|schaedel|schädel)", re.I), "head"),
    (re.compile(r"(chest|thorax|thx|lung|pulmo|thorac)", re.I), "chest"),
    (re.compile(r"(abd|liver|pancrea|kidney|renal)", re.I), "abdomen"),
    (re.compile(r"(pelvi|prostat|hip\b)", re.I), "pelvis"),
    (re.compile(r"\b(neck|cervical|c-spine)", re.I), "neck"),
    (re.compile(r"(knee|ankle|foot|wrist|hand|shoulder|elbow|extrem)", re.I), "extremity"),
)
_DWI = re.compile(r"(diff|dwi|dti|\badc\b|tensor|ep_b\d|\btrace)", re.I)
_FLAIR = re.compile(r"flair", re.I)
_T1 = re.compile(r"(t1|mprage|mp-rage|mp2rage|spgr|bravo|tfl|vibe|fspgr|\bffe\b)", re.I)
_T2 = re.compile(r"(t2(?!\*)|\btse\b|haste|\bfse\b)", re.I)
_TAGS = (
    "BodyPartExamined",
    "ProtocolName",
    "SeriesDescription",
    "ScanningSequence",
    "SequenceName",
    "RepetitionTime",
    "EchoTime",
    "InversionTime",
    "DiffusionBValue",
    "ImageType",
)


@dataclass(frozen=True)
class InputFacts:
    modality: str
    image_type: tuple[str, ...] = ()
    body_part: str = ""  # BodyPartExamined as written
    protocol: str = ""
    series_description: str = ""
    sequence_name: str = ""
    repetition_time: float | None = None
    echo_time: float | None = None
    inversion_time: float | None = None
    b_value: float | None = None
    volumes_per_position: int = 1
    is_mosaic: bool = False
    mosaic_unpacked: bool = False  # the loader knows mosaics (``stack.is_mosaic``) and unpacks them into slices
    qa_codes: tuple[str, ...] = ()
    slices: int = 0
    in_plane: tuple[int, int] = (0, 0)
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    slice_normal_lps: tuple[float, float, float] = (0.0, 0.0, 1.0)

    @property
    def tag_regions(self) -> tuple[str, ...]:
        """Body regions named by BodyPartExamined, else by the protocol or series description."""
        for text in (self.body_part, f"{self.protocol} {self.series_description}"):
            found = tuple(dict.fromkeys(r for pattern, r in _REGION_WORDS if pattern.search(text)))
            if found:
                return found
        return ()

    @property
    def sequence(self) -> str:
        """The MR contrast the headers say ("T1", "T2", "FLAIR", "PD", "DWI"), or "" when they do not.

        Only what is written: image type, b-value, sequence and series names, then TR/TE/TI by the
        usual rules (T1: TR < 1000 ms and TE < 30 ms, or an inversion time of 300–1500 ms with a short
        TE; T2: TR > 2000 ms and TE > 70 ms; PD: TR > 1500 ms and TE < 30 ms)."""
        kinds = {t.upper() for t in self.image_type}
        if kinds & {"DIFFUSION", "ADC", "TRACEW", "FA", "TENSOR"} or (self.b_value or 0) > 0:
            return "DWI"
        names = f"{self.sequence_name} {self.protocol} {self.series_description}"
        if _DWI.search(names):
            return "DWI"
        if _FLAIR.search(names):
            return "T1" if re.search(r"\bt1", names, re.I) else "FLAIR"  # a T1-weighted FLAIR is T1
        if _T1.search(names):
            return "T1"
        if _T2.search(names):
            return "T2"
        tr, te, ti = self.repetition_time, self.echo_time, self.inversion_time
        if tr is None or te is None:
            return ""
        if ti is not None and ti > 1500 and te > 60:
            return "FLAIR"
        if (tr < 1000 and te < 30) or (ti is not None and 300 <= ti <= 1500 and te < 30):
            return "T1"
        if tr > 2000 and te > 70:
            return "T2"
        if tr > 1500 and te < 30:
            return "PD"
        return ""


def _number(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _first_header_tags(path: str) -> dict[str, Any]:
    """The few tags the suitability check needs that the scan does not keep, from one file's header."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(_TAGS))
    except Exception:  # an unreadable header was already reported by the scan; nothing to add
        return {}
    out: dict[str, Any] = {}
    for tag in _TAGS:
        value = ds.get(tag)
        if value is not None:
            out[tag] = list(value) if tag == "ImageType" else value
    return out


def _volumes_per_position(stack: Any) -> int:
    """How many slices share one position: 1 for a 3-D volume, N for N volumes of a 4-D series
    stacked by the scan (until the loader says it itself as ``stack.n_volumes``)."""
    known = getattr(stack, "n_volumes", None)
    if isinstance(known, int) and known > 0:
        return known
    slices = getattr(stack, "slices", ())
    positions = [s.geometry.position for s in slices if s.geometry.position is not None]
    if len(positions) < 2:
        return 1
    _, counts = np.unique(np.round(np.asarray(positions, dtype=np.float64), 1), axis=0, return_counts=True)
    return int(counts.max())


def gather_facts(volume: Volume, stack: Any = None, modality: str = "") -> InputFacts:
    """Everything known about ``volume`` (and the scanned ``stack`` it came from, when given)."""
    md = volume.metadata
    headers = getattr(stack, "headers", ()) or ()
    tags: dict[str, Any] = _first_header_tags(headers[0].path) if headers else {}
    image_type = tuple(str(t).upper() for t in (headers[0].image_type if headers else tags.get("ImageType", ())))
    qa_codes = tuple(q.code.value for q in getattr(stack, "qa", ()) or ()) or tuple(
        w.split(":", 1)[0] for w in volume.qa_warnings
    )
    mosaic = getattr(stack, "is_mosaic", None)
    k, j, i = volume.shape
    normal = np.asarray(volume.direction, dtype=np.float64)[:, 2]
    return InputFacts(
        modality=(md.modality or getattr(stack, "modality", "") or modality).upper(),
        image_type=image_type,
        body_part=str(tags.get("BodyPartExamined", "")),
        protocol=str(tags.get("ProtocolName", "")),
        series_description=str(tags.get("SeriesDescription", md.series_description)),
        sequence_name=str(tags.get("SequenceName", "")),
        repetition_time=_number(tags.get("RepetitionTime")),
        echo_time=_number(tags.get("EchoTime")),
        inversion_time=_number(tags.get("InversionTime")),
        b_value=_number(tags.get("DiffusionBValue")),
        volumes_per_position=(
            volume.n_volumes if volume.is_4d else _volumes_per_position(stack) if stack is not None else 1
        ),
        is_mosaic=bool(mosaic) if mosaic is not None else "MOSAIC" in image_type,
        mosaic_unpacked=mosaic is not None,
        qa_codes=qa_codes,
        slices=k,
        in_plane=(j, i),
        spacing=volume.spacing,
        slice_normal_lps=(float(normal[0]), float(normal[1]), float(normal[2])),
    )
