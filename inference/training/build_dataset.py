"""``radlens dataset build``: folders of scans → a slice dataset (:mod:`inference.training.dataset_format`).

Sources (volumes) come from

* folders or files: everything the loader reads (every image stack a scan finds, NIfTI, NRRD,
  MetaImage), labelled by name as in the literature's example: a path component named
  ``normal`` gives label 0, anything else 1, applied to every slice of the volume;
* a labels CSV: columns ``path`` or ``series_uid``, ``label`` (0/1) and optionally ``mask`` (a
  lesion mask on the scan's grid; then a slice is positive where the mask crosses it);
* generated chest phantoms (:func:`add_phantoms`), whose built-in nodules are their mask.

With ``lesion_insertion={"kind": ..., "per_volume": n}`` simulated lesions
(:mod:`inference.training.lesions`) are inserted into every host volume: positives are the
slices crossing a lesion (with its mask), negatives the same number of slices of that volume
away from any lesion. Volumes a CSV labels 1 are hosts only when it gives their lesion mask
(the simulated lesions keep out of it, and its lesions are positives too).

Every volume is turned to axial slices along the patient axes closest to its own (no
resampling), windowed to ``window`` (centre, width) and scaled to 0–255, resized to ``size``
(bilinear, ``align_corners=False``; masks nearest), and ``context_slices`` neighbours on each
side become extra channels (2.5-D; edge slices repeat). The split into train/val/test is by
source, stratified by label, and drawn from ``seed``; the input folders are only read.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.errors import GeometryWarning, LoadError, RadLensError
from inference.io.paths import display_path, is_within
from inference.io.stacks import Stack
from inference.progress import CancelToken, ProgressCallback, no_progress
from inference.training.dataset_format import SPLITS, DatasetError, write_dataset
from inference.training.quality import QualityReport, find_label_conflicts, is_near_empty, voxel_hash
from inference.volume import Volume

DEFAULT_SIZE = (224, 224)
DEFAULT_WINDOW = (-600.0, 1500.0)
DEFAULT_SPLIT = (0.7, 0.15, 0.15)
#: Label of a source whose slices carry their own labels (mask or inserted lesions).
MIXED = 2


@dataclass
class SourceVolume:
    """One volume of the dataset before slicing.

    ``label``: whole-volume label (0/1), or ``None`` when ``mask`` decides per slice.
    ``region``: where simulated lesions may go (``None``: :func:`lesions.default_region`).
    """

    name: str
    load: Callable[[], Volume]
    label: int | None
    path: str = ""
    series_uid: str = ""
    mask_path: str = ""
    mask: npt.NDArray[np.uint8] | None = None
    region: Callable[[Volume], npt.NDArray[np.bool_]] | None = None
    mask_of: Callable[[Volume], npt.NDArray[np.uint8]] | None = None
    host: bool = True
    info: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- labels


def label_from_name(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> int:
    """0 when a path component (from ``root``'s own name down) is named ``normal``, else 1."""
    p = Path(path)
    if root is not None:
        r = Path(root)
        try:
            parts = (r.name, *p.relative_to(r).parts)
        except ValueError:
            parts = p.parts
    else:
        parts = p.parts
    from inference.io.image_file import IMAGE_SUFFIXES

    names = []
    for part in parts:
        low = part.lower()
        for suffix in IMAGE_SUFFIXES:
            if low.endswith(suffix):
                low = low[: -len(suffix)]
                break
        names.append(low)
    return 0 if "normal" in names else 1


@dataclass(frozen=True)
class CsvRow:
    line: int
    path: str
    series_uid: str
    label: int
    mask: str


def _cell(row: dict[str | Any, str | Any], fields: dict[str, str], key: str) -> str:
    if key not in fields:
        return ""
    value = row.get(fields[key])
    return value.strip() if isinstance(value, str) else ""


def read_labels_csv(path: str | os.PathLike[str]) -> list[CsvRow]:
    """Rows of a labels CSV (``path`` or ``series_uid``, ``label``, optional ``mask``).

    Relative paths are taken from the CSV's folder. Files that do not exist, bad labels and
    missing columns raise one :class:`DatasetError` listing every problem.
    """
    csv_path = Path(path)
    if not csv_path.is_file():
        raise DatasetError(f"{display_path(csv_path)}: labels CSV not found")
    base = csv_path.parent
    with open(csv_path, newline="", encoding="utf-8-sig") as fp:
        reader = csv.DictReader(fp)
        fields = {(f or "").strip().lower(): f for f in (reader.fieldnames or [])}
        if "label" not in fields or not ({"path", "series_uid"} & fields.keys()):
            raise DatasetError(
                f"{display_path(csv_path)}: a labels CSV needs a 'label' column and a 'path' or 'series_uid' column "
                f"(found: {', '.join(fields) or 'none'})"
            )
        mask_col = fields.get("mask") or fields.get("mask_path")
        rows: list[CsvRow] = []
        problems: list[str] = []
        missing: list[str] = []
        for n, raw in enumerate(reader, start=2):
            rel, uid, label_text = (_cell(raw, fields, key) for key in ("path", "series_uid", "label"))
            mask_rel = (raw.get(mask_col) or "").strip() if mask_col else ""
            if not rel and not uid:
                if any((v or "").strip() for v in raw.values() if isinstance(v, str)):
                    problems.append(f"line {n}: neither path nor series_uid")
                continue
            try:
                label = int(float(label_text))
                if label not in (0, 1):
                    raise ValueError
            except ValueError:
                problems.append(f"line {n}: label must be 0 or 1, got {label_text!r}")
                continue
            full = str(base / rel) if rel else ""
            mask_full = str(base / mask_rel) if mask_rel else ""
            for p in (full, mask_full):
                if p and not os.path.exists(p):
                    missing.append(display_path(p))
            rows.append(CsvRow(n, full, uid, label, mask_full))
    if missing:
        raise DatasetError(
            f"{display_path(csv_path)} names {len(missing)} file(s) that do not exist: " + ", ".join(missing)
        )
    if problems:
        raise DatasetError(f"{display_path(csv_path)}: " + "; ".join(problems))
    if not rows:
        raise DatasetError(f"{display_path(csv_path)}: no rows")
    return rows


# --------------------------------------------------------------------------- finding sources


def _stack_name(stack: Stack, shared_dirs: dict[str, int]) -> str:
    if stack.kind == "file":
        return display_path(stack.file_path)
    folder = os.path.commonpath(stack.paths) if len(stack.paths) > 1 else os.path.dirname(stack.paths[0])
    name = display_path(folder)
    if shared_dirs.get(folder, 0) > 1:
        name += f"#series{stack.series_number}-stack{stack.id}"
    return name


def _stack_folder(stack: Stack) -> str:
    if stack.kind == "file":
        return stack.file_path
    return os.path.commonpath(stack.paths) if len(stack.paths) > 1 else os.path.dirname(stack.paths[0])


def _loader(stack: Stack) -> Callable[[], Volume]:
    def load() -> Volume:
        from inference.io.dicom_loader import load_stack

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GeometryWarning)  # the QA travels in volume.qa_warnings
            return load_stack(stack)

    return load


def _scan_stacks(path: str, quality: QualityReport, cancel: CancelToken) -> list[Stack]:
    from inference.io.scan import scan

    result = scan(path, cancel=cancel)
    for problem in result.errors:
        quality.add_unreadable(problem.path, problem.error, problem.reason)
    for problem in result.not_dicom:
        if problem.path.lower().endswith((".csv", ".txt", ".md", ".json")):
            quality.add_not_image(problem.path)
        else:
            quality.add_unreadable(problem.path, problem.error, problem.reason)
    return result.stacks()


def sources_from_folders(
    inputs: Sequence[str | os.PathLike[str]], quality: QualityReport, cancel: CancelToken | None = None
) -> list[SourceVolume]:
    """Every image stack under ``inputs``, labelled by name (:func:`label_from_name`)."""
    cancel = cancel or CancelToken()
    out: list[SourceVolume] = []
    for root in inputs:
        stacks = _scan_stacks(os.fspath(root), quality, cancel)
        dirs: dict[str, int] = {}
        for st in stacks:
            dirs[_stack_folder(st)] = dirs.get(_stack_folder(st), 0) + 1
        for st in stacks:
            folder = _stack_folder(st)
            out.append(
                SourceVolume(
                    name=_stack_name(st, dirs),
                    load=_loader(st),
                    label=label_from_name(folder, root),
                    path=display_path(folder),
                    series_uid=st.series_uid,
                )
            )
    return out


def sources_from_csv(
    csv_path: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]],
    quality: QualityReport,
    cancel: CancelToken | None = None,
) -> list[SourceVolume]:
    """The volumes a labels CSV names, by path or by series UID (searched for in ``inputs``)."""
    cancel = cancel or CancelToken()
    rows = read_labels_csv(csv_path)
    out: list[SourceVolume] = []
    by_uid: dict[str, list[Stack]] = {}
    if any(r.series_uid and not r.path for r in rows):
        if not inputs:
            raise DatasetError("the labels CSV names series UIDs: give the folders that hold them as inputs")
        for root in inputs:
            for st in _scan_stacks(os.fspath(root), quality, cancel):
                if st.series_uid:
                    by_uid.setdefault(st.series_uid, []).append(st)
        unknown = [r.series_uid for r in rows if r.series_uid and not r.path and r.series_uid not in by_uid]
        if unknown:
            raise DatasetError(
                f"the labels CSV names {len(unknown)} series UID(s) found in no input: " + ", ".join(unknown)
            )
    for row in rows:
        stacks = by_uid[row.series_uid] if row.series_uid and not row.path else _scan_stacks(row.path, quality, cancel)
        if not stacks:
            quality.add_skipped(display_path(row.path or row.series_uid), f"CSV line {row.line}: no image found")
            continue
        dirs: dict[str, int] = {}
        for st in stacks:
            dirs[_stack_folder(st)] = dirs.get(_stack_folder(st), 0) + 1
        for st in stacks:
            out.append(
                SourceVolume(
                    name=_stack_name(st, dirs),
                    load=_loader(st),
                    label=row.label,
                    path=display_path(_stack_folder(st)),
                    series_uid=st.series_uid,
                    mask_path=row.mask,
                    host=row.label == 0 or bool(row.mask),  # a mask says where its lesions are
                    info={"csv_line": row.line},
                )
            )
    return out


def _phantom_mask(volume: Volume, nodules: Sequence[Any]) -> npt.NDArray[np.uint8]:
    k, j, i = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in volume.shape), indexing="ij")
    si, sj, sk = volume.spacing
    mask = np.zeros(volume.shape, dtype=np.uint8)
    for n, nod in enumerate(nodules):
        ci, cj, ck = nod.center_ijk
        inside = ((i - ci) * si) ** 2 + ((j - cj) * sj) ** 2 + ((k - ck) * sk) ** 2 <= nod.radius_mm**2
        mask[inside] = n + 1
    return mask


def _phantom_nodule_mask(volume: Volume) -> npt.NDArray[np.uint8]:
    """The built-in nodules of a chest phantom on its grid."""
    from inference.sample_study import _nodules

    return _phantom_mask(volume, _nodules(volume.shape, volume.spacing))


def _phantom_region(volume: Volume) -> npt.NDArray[np.bool_]:
    """The phantom's lungs, minus its own nodules and a margin around them."""
    from scipy import ndimage

    from inference.sample_study import lung_mask

    nodules = ndimage.binary_dilation(_phantom_nodule_mask(volume) > 0, iterations=3)
    return np.asarray(lung_mask(volume) & ~nodules, dtype=bool)


def add_phantoms(n: int, seed: int = 0, *, vessels: bool = False) -> list[SourceVolume]:
    """``n`` chest phantoms, each a source of its own, varied in size, field of view and noise;
    with ``vessels``, each lung gets its own pulmonary vessel trees
    (:mod:`inference.training.lung_vessels`), the hard negatives of real lungs.

    :func:`inference.sample_study.make_chest_phantom` fixes the anatomy in millimetres, so the
    variation comes from the grid: the pixel size (1.9–3.0 mm) changes how large the body is
    in the image and whether it fills the field of view, the in-plane and slice counts change
    the shape, and extra Gaussian noise (0–12 HU) inside the body changes the texture. The
    phantom's own nodules are the mask; lesions are inserted into its lungs. Generated data:
    weights trained on it can be shipped.
    """
    from inference.sample_study import make_chest_phantom

    rng = np.random.default_rng(seed)
    out: list[SourceVolume] = []
    for m in range(n):
        nk = int(rng.integers(28, 45))
        nj, ni = int(rng.integers(112, 145)), int(rng.integers(112, 145))
        s_inplane = float(rng.uniform(1.9, 3.0))
        sk = float(rng.uniform(4.0, 6.5))
        extra_sd = float(rng.uniform(0.0, 12.0))
        noise_seed = int(rng.integers(2**31))
        vessel_seed = int(rng.integers(2**31)) if vessels else None
        params = {"shape": [nk, nj, ni], "spacing": [s_inplane, s_inplane, sk], "extra_noise_sd": extra_sd}
        if vessel_seed is not None:
            params["vessel_seed"] = vessel_seed

        def load(
            shape: tuple[int, int, int] = (nk, nj, ni),
            spacing: tuple[float, float, float] = (s_inplane, s_inplane, sk),
            sd: float = extra_sd,
            nseed: int = noise_seed,
            vseed: int | None = vessel_seed,
        ) -> Volume:
            volume, _ = make_chest_phantom(shape, spacing)
            if vseed is not None:
                from scipy import ndimage

                from inference.sample_study import lung_mask
                from inference.training.lung_vessels import add_lung_vessels

                nodules = ndimage.binary_dilation(_phantom_nodule_mask(volume) > 0, iterations=2)
                volume = add_lung_vessels(volume, lung_mask(volume), np.random.default_rng(vseed), keep_out=nodules)
            vox = volume.voxels.astype(np.float32)
            inside = vox > -950
            vox[inside] += np.random.default_rng(nseed).normal(0.0, sd, size=int(inside.sum())).astype(np.float32)
            return volume.with_voxels(np.clip(np.rint(vox), -1024, 3071).astype(np.int16))

        out.append(
            SourceVolume(
                name=f"phantom-{m:03d}",
                load=load,
                label=None,
                path="(generated chest phantom)",
                region=_phantom_region,
                mask_of=_phantom_nodule_mask,
                info={"phantom": params, "mask": "built-in nodules"},
            )
        )
    return out


# --------------------------------------------------------------------------- slicing


def _window(voxels: npt.NDArray[Any], window: tuple[float, float]) -> npt.NDArray[np.float32]:
    centre, width = window
    lo, hi = centre - width / 2.0, centre + width / 2.0
    v = np.clip(voxels.astype(np.float32), lo, hi)
    return np.asarray((v - lo) * (255.0 / (hi - lo)), dtype=np.float32)


def _resize(
    stack: npt.NDArray[np.float32], size: tuple[int, int], nearest: bool, area: bool = False
) -> npt.NDArray[np.float32]:
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(stack))
    if area:
        # Coverage of each output pixel (adaptive average pooling; bilinear when upsampling).
        h, w = stack.shape[2:]
        if size[0] <= h and size[1] <= w:
            out = F.adaptive_avg_pool2d(t, size)
        else:
            out = F.interpolate(t, size=size, mode="bilinear", align_corners=False)
    elif nearest:
        out = F.interpolate(t, size=size, mode="nearest")
    else:
        out = F.interpolate(t, size=size, mode="bilinear", align_corners=False)
    return np.asarray(out.numpy(), dtype=np.float32)


def _choose(rng: np.random.Generator, candidates: list[int], cap: int | None) -> list[int]:
    if cap is None or len(candidates) <= cap:
        return candidates
    picked = rng.choice(len(candidates), size=cap, replace=False)
    return sorted(candidates[int(p)] for p in picked)


@dataclass
class _Sliced:
    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.uint8]
    masks: npt.NDArray[np.uint8]
    slice_index: npt.NDArray[np.int32]
    near_empty: int


def slice_volume(
    voxels: npt.NDArray[Any],
    mask: npt.NDArray[np.uint8] | None,
    label: int | None,
    *,
    size: tuple[int, int],
    window: tuple[float, float],
    context_slices: int,
    balanced: bool,
    positives_cap: int | None,
    negatives_cap: int | None,
    rng: np.random.Generator,
    slice_numbers: npt.NDArray[np.int32] | None = None,
    whole: bool = False,
) -> _Sliced:
    """Slices ``[z]`` of axial ``voxels[z, y, x]`` as windowed, resized 2.5-D samples.

    With a ``mask``: positives are slices the mask crosses; negatives are slices more than
    ``context_slices + 1`` slices from any of them (``balanced``: as many as positives).
    Without: every slice carries ``label``. Near-empty slices are skipped and counted.
    ``whole``: every slice, in order (the stack models learn from runs of them): positives where
    the mask crosses, every other slice negative, near-empty ones counted but kept.
    """
    nz = voxels.shape[0]
    windowed = _window(voxels, window)
    near = [is_near_empty(np.rint(windowed[z]).astype(np.uint8)) for z in range(nz)]
    keep = [z for z in range(nz) if not near[z]]
    n_near = nz - len(keep)
    if whole:
        label_of = (
            np.asarray(mask.reshape(nz, -1).any(axis=1), dtype=bool) if mask is not None else np.full(nz, bool(label))
        )
        positives = [z for z in range(nz) if label_of[z]]
        negatives = [z for z in range(nz) if not label_of[z]]
    elif mask is not None:
        has: npt.NDArray[np.bool_] = np.asarray(mask.reshape(nz, -1).any(axis=1), dtype=bool)
        pos_z = np.flatnonzero(has)
        margin = context_slices + 1
        far = np.ones(nz, dtype=bool)
        for z in pos_z:
            far[max(0, z - margin) : z + margin + 1] = False
        positives = [z for z in keep if has[z]]
        negatives = [z for z in keep if far[z]]
        negatives_cap2 = negatives_cap
        if balanced:
            negatives_cap2 = len(positives) if negatives_cap is None else min(negatives_cap, len(positives))
        positives = _choose(rng, positives, positives_cap)
        negatives = _choose(rng, negatives, negatives_cap2)
    else:
        assert label is not None
        all_z = _choose(rng, keep, positives_cap if label == 1 else negatives_cap)
        positives, negatives = (all_z, []) if label == 1 else ([], all_z)
    chosen = sorted(positives + negatives)
    pos_set = set(positives)
    c = context_slices
    if not chosen:
        h, w = size
        return _Sliced(
            np.zeros((0, 2 * c + 1, h, w), np.uint8),
            np.zeros(0, np.uint8),
            np.zeros((0, h, w), np.uint8),
            np.zeros(0, np.int32),
            n_near,
        )
    idx = np.clip(np.asarray(chosen)[:, None] + np.arange(-c, c + 1)[None, :], 0, nz - 1)
    stack = windowed[idx]  # (n, C, y, x)
    images = np.clip(np.rint(_resize(stack, size, nearest=False)), 0, 255).astype(np.uint8)
    if mask is not None:
        m = (mask[np.asarray(chosen)] > 0).astype(np.float32)[:, None]
        masks = (_resize(m, size, nearest=True)[:, 0] > 0.5).astype(np.uint8)
        # A lesion smaller than an output pixel can fall between nearest samples: keep every
        # pixel it covers at all, so that no positive sample has an empty mask.
        lost = [n for n, z in enumerate(chosen) if z in pos_set and not masks[n].any()]
        if lost:
            covered = _resize(m[lost], size, nearest=False, area=True)[:, 0] > 0
            masks[lost] = covered.astype(np.uint8)
    else:
        masks = np.zeros((len(chosen), *size), dtype=np.uint8)
    labels = np.asarray([1 if z in pos_set else 0 for z in chosen], dtype=np.uint8)
    numbers = np.asarray(chosen, dtype=np.int32) if slice_numbers is None else slice_numbers[np.asarray(chosen)]
    return _Sliced(images, labels, masks, numbers.astype(np.int32), n_near)


def _axial(volume: Volume) -> tuple[Any, npt.NDArray[np.int32]]:
    """The axis map to axial ``[z, y, x]`` and, per display slice z, its source k (or z when not axial)."""
    from inference.io.orientation import closest_lps_axes

    amap = closest_lps_axes(volume.direction)
    nz = amap.display_shape(volume.size_ijk)[2]
    z = np.arange(nz, dtype=np.int32)
    if amap.source_axis[2] == 2 and amap.flip[2]:
        z = (nz - 1 - z).astype(np.int32)
    return amap, z


def _load_mask(path: str, volume: Volume) -> npt.NDArray[np.uint8]:
    from inference.io.scan import scan

    stacks = scan(path).stacks()
    if not stacks:
        raise LoadError(path, "no image in the mask file or folder")
    mask_volume = _loader(stacks[0])()
    if mask_volume.shape != volume.shape or not np.allclose(mask_volume.affine, volume.affine, atol=0.05):
        raise LoadError(
            path,
            f"mask grid {mask_volume.shape} does not match the scan's {volume.shape} (or lies elsewhere in space)",
        )
    return (np.asarray(mask_volume.voxels) > 0).astype(np.uint8)


# --------------------------------------------------------------------------- split


def split_sources(groups: dict[str, int], fractions: tuple[float, float, float], seed: int) -> dict[str, str]:
    """Assign each group (name → stratum label) to train/val/test, stratified, by largest remainder."""
    total = sum(fractions)
    if total <= 0 or any(f < 0 for f in fractions):
        raise DatasetError(f"split fractions must be non-negative and not all zero, got {fractions}")
    fr = [f / total for f in fractions]
    rng = np.random.default_rng(seed)
    out: dict[str, str] = {}
    for stratum in sorted(set(groups.values())):
        names = sorted(n for n, s in groups.items() if s == stratum)
        order = [names[int(i)] for i in rng.permutation(len(names))]
        n = len(order)
        exact = [f * n for f in fr]
        counts = [int(np.floor(e)) for e in exact]
        for i in sorted(range(3), key=lambda i: -(exact[i] - counts[i]))[: n - sum(counts)]:
            counts[i] += 1
        if counts[0] == 0 and n > 0 and fr[0] > 0:
            donor = max(range(1, 3), key=lambda i: counts[i])
            counts[donor] -= 1
            counts[0] += 1
        start = 0
        for split, count in zip(SPLITS, counts, strict=True):
            for name in order[start : start + count]:
                out[name] = split
            start += count
    return out


# --------------------------------------------------------------------------- build


def _check_lesion_insertion(spec: dict[str, Any] | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    from inference.training.insertion import parse_kinds

    try:
        kinds = parse_kinds(spec.get("kind", "solid"))
    except ValueError as exc:
        raise DatasetError(str(exc)) from exc
    per = int(spec.get("per_volume", 1))
    if per < 1:
        raise DatasetError(f"per_volume must be at least 1, got {per}")
    region = spec.get("region", "auto")
    if region not in ("auto", "lungs", "soft-tissue"):
        raise DatasetError(f"unknown lesion region {region!r}; choose auto, lungs or soft-tissue")
    variants = int(spec.get("variants", 1))
    if variants < 1:
        raise DatasetError(f"variants must be at least 1, got {variants}")
    return {"kind": ",".join(kinds), "per_volume": per, "region": region, "variants": variants}


def build_dataset(
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    labels: str | os.PathLike[str] | None = None,
    size: tuple[int, int] = DEFAULT_SIZE,
    window: tuple[float, float] = DEFAULT_WINDOW,
    context_slices: int = 1,
    split: tuple[float, float, float] = DEFAULT_SPLIT,
    seed: int = 0,
    lesion_insertion: dict[str, Any] | None = None,
    phantoms: int = 0,
    phantom_vessels: bool = False,
    pseudo_ct: tuple[str, str, int] | None = None,
    pseudo_ct_deform_mm: float = 0.0,
    pseudo_ct_atrophy_mm: float = 0.0,
    pseudo_ct_calcify: bool = False,
    positives_per_source: int | None = None,
    negatives_per_source: int | None = None,
    whole_stacks: bool = False,
    on_progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> Path:
    """Build a slice dataset in ``out`` from ``inputs`` (folders or files; a ``.csv`` among them is
    taken as ``labels``) and/or ``phantoms`` generated chest phantoms (with pulmonary vessel trees
    when ``phantom_vessels``) and/or ``pseudo_ct`` heads ``(T1, brain mask, N)``, their brains bent by up to
    ``pseudo_ct_deform_mm``, their CSF spaces widened by up to ``pseudo_ct_atrophy_mm`` and, with
    ``pseudo_ct_calcify``, physiological calcifications drawn in.
    ``whole_stacks`` keeps every slice of every volume, in order (for the
    CNN + RNN and the 3-D U-Net) instead of sampling them. Returns ``out``.

    Raises :class:`DatasetError` for missing inputs, a CSV naming missing files, an output inside
    an input folder, no usable volume, or a training split without positives or negatives.
    Unreadable inputs are listed in ``manifest["quality"]`` and the rest still builds.
    """
    from inference.training.insertion import insert_mixed
    from inference.training.lesions import LesionPlacementError

    cancel = cancel or CancelToken()
    out_path = Path(out)
    paths = [Path(p) for p in inputs]
    csv_inputs = [p for p in paths if p.suffix.lower() == ".csv" and p.is_file()]
    if csv_inputs:
        if labels is not None or len(csv_inputs) > 1:
            raise DatasetError("give one labels CSV")
        labels = csv_inputs[0]
        paths = [p for p in paths if p != csv_inputs[0]]
    missing = [display_path(p) for p in paths if not p.exists() and not p.is_symlink()]
    if missing:
        raise DatasetError("input(s) not found: " + ", ".join(missing))
    if not paths and labels is None and phantoms <= 0 and (pseudo_ct is None or pseudo_ct[2] <= 0):
        raise DatasetError("nothing to build from: give input folders, a labels CSV, --phantoms or --pseudo-ct")
    for p in paths:
        if p.is_dir() and is_within(out_path, p):
            raise DatasetError(f"the output {display_path(out_path)} lies inside the input {display_path(p)}")
    size = (int(size[0]), int(size[1]))
    if min(size) < 1 or context_slices < 0 or window[1] <= 0:
        raise DatasetError(f"bad preprocessing: size {size}, context {context_slices}, window {window}")
    insertion = _check_lesion_insertion(lesion_insertion)
    if whole_stacks and (positives_per_source is not None or negatives_per_source is not None):
        raise DatasetError("--whole-stacks keeps every slice: leave out --positives-per-source/--negatives-per-source")

    quality = QualityReport()
    on_progress(0.0, "finding volumes")
    if labels is not None:
        sources = sources_from_csv(labels, paths, quality, cancel)
        label_source = "csv"
    else:
        sources = sources_from_folders(paths, quality, cancel)
        label_source = "folder-name"
    for src in sources:
        folder = Path(src.path)
        if src.path and folder.is_dir() and is_within(out_path, folder):
            raise DatasetError(f"the output {display_path(out_path)} lies inside the input {src.path}")
    if phantoms > 0:
        sources += add_phantoms(phantoms, seed, vessels=phantom_vessels)
    if pseudo_ct is not None and pseudo_ct[2] > 0:
        from inference.training.pseudo_ct import add_pseudo_ct

        for head_file in pseudo_ct[:2]:
            if not Path(head_file).is_file():
                raise DatasetError(f"pseudo-CT input not found: {display_path(head_file)}")
        if not 0.0 <= pseudo_ct_deform_mm <= 10.0:
            raise DatasetError(f"--pseudo-ct-deform must lie in 0…10 mm, got {pseudo_ct_deform_mm}")
        if not 0.0 <= pseudo_ct_atrophy_mm <= 5.0:
            raise DatasetError(f"--pseudo-ct-atrophy must lie in 0…5 mm, got {pseudo_ct_atrophy_mm}")
        try:
            sources += add_pseudo_ct(
                pseudo_ct[0], pseudo_ct[1], int(pseudo_ct[2]), seed, pseudo_ct_deform_mm, pseudo_ct_atrophy_mm,
                pseudo_ct_calcify,
            )  # fmt: skip
        except RadLensError as exc:  # a head that cannot take calcifications
            raise DatasetError(str(exc)) from exc
    if insertion is not None:
        label_source = "lesion-insertion"
        for s in sources:
            if not s.host:
                quality.add_skipped(s.name, "labelled abnormal: not used as a host for simulated lesions")
        sources = [s for s in sources if s.host]
    elif phantoms > 0 and not paths and labels is None:
        label_source = "phantom-nodules"

    rng = np.random.default_rng(seed)
    sliced: dict[str, _Sliced] = {}
    records: dict[str, dict[str, Any]] = {}
    entries: list[tuple[str, str, str, int]] = []
    seen_hash: dict[str, tuple[str, int]] = {}
    total = max(len(sources), 1)
    for n, src in enumerate(sources):
        cancel.raise_if_cancelled()
        on_progress(0.05 + 0.9 * n / total, f"volume {n + 1} of {len(sources)}: {src.name[-40:]}")
        try:
            volume = src.load()
        except (RadLensError, OSError, ValueError, RuntimeError) as exc:
            path = getattr(exc, "path", None) or src.path
            quality.add_unreadable(str(path), type(exc).__name__, getattr(exc, "reason", str(exc)))
            continue
        if volume.voxels.ndim != 3:
            quality.add_skipped(src.name, "colour image: only greyscale volumes are used")
            continue
        quality.add_geometry_warnings(src.name, list(volume.qa_warnings))
        digest = voxel_hash(volume.voxels)
        stratum = src.label if (src.label is not None and insertion is None and not src.mask_path) else MIXED
        if digest in seen_hash and seen_hash[digest][1] == stratum:
            quality.add_duplicate(seen_hash[digest][0], src.name, digest)
            continue
        seen_hash.setdefault(digest, (src.name, stratum))
        entries.append((src.name, volume.metadata.series_uid or src.series_uid, digest, stratum))

        mask: npt.NDArray[np.uint8] | None = None
        mask_of = src.mask_of
        if src.mask_path:
            try:
                mask = _load_mask(src.mask_path, volume)
            except RadLensError as exc:
                quality.add_skipped(src.name, str(exc))
                continue
        elif mask_of is not None:
            mask = mask_of(volume)
        variants = insertion["variants"] if insertion is not None else 1
        for v in range(variants):
            name = src.name if variants == 1 else f"{src.name}#v{v + 1}"
            host, host_mask = volume, mask
            lesion_specs: list[dict[str, Any]] = []
            region_name = ""
            if insertion is not None:
                try:
                    host, inserted, lesion_specs, region_name = insert_mixed(
                        volume,
                        rng,
                        insertion["kind"].split(","),
                        insertion["per_volume"],
                        setting=insertion["region"],
                        own_region=src.region,
                        keep_out=mask,
                    )
                except LesionPlacementError as exc:
                    quality.add_skipped(name, f"no room for simulated lesions: {exc}")
                    continue
                host_mask = inserted if mask is None else np.where(inserted > 0, inserted, mask).astype(np.uint8)

            amap, numbers = _axial(host)
            voxels = np.asarray(amap.apply(host.voxels))
            axial_mask = None if host_mask is None else np.asarray(amap.apply(host_mask))
            result = slice_volume(
                voxels,
                axial_mask,
                None if host_mask is not None else src.label,
                size=size,
                window=window,
                context_slices=context_slices,
                balanced=insertion is not None or mask_of is not None,
                positives_cap=positives_per_source,
                negatives_cap=negatives_per_source,
                rng=rng,
                slice_numbers=numbers,
                whole=whole_stacks,
            )
            if result.near_empty and v == 0:
                quality.add_near_empty(src.name, result.near_empty)
            if len(result.labels) == 0:
                quality.add_skipped(name, "no usable slices")
                continue
            sliced[name] = result
            records[name] = {
                "name": name,
                "path": src.path,
                "series_uid": volume.metadata.series_uid or src.series_uid,
                **({"group": src.name, "variant": v + 1} if variants > 1 else {}),
                "modality": volume.metadata.modality,
                "label": src.label if host_mask is None else None,
                "mask": display_path(src.mask_path) if src.mask_path else (src.info.get("mask") or None),
                "shape": list(volume.shape),
                "spacing": [round(float(s), 4) for s in volume.spacing],
                "axial_axes": {"source_axis": list(amap.source_axis), "flip": list(amap.flip)},
                "sha256": digest,
                "stratum": stratum,
                **({"lesion_region": region_name, "lesions": lesion_specs} if insertion is not None else {}),
                **{key: val for key, val in src.info.items() if key != "mask"},
            }

    conflicts, involved = find_label_conflicts(entries)
    for c in conflicts:
        quality.label_conflicts.append(c)
    for name in involved:
        sliced.pop(name, None)
        records.pop(name, None)
    if not sliced:
        raise DatasetError(
            "no usable volume: nothing was readable, every volume was left out, or every slice was empty"
            + _problem_hint(quality)
        )

    # Sources sharing a series UID (several stacks of one series) stay in one split.
    # Variants of one source (the same anatomy with other simulated lesions) likewise.
    group_of = {name: (rec.get("group") or rec["series_uid"] or name) for name, rec in records.items()}
    strata: dict[str, int] = {}
    for name, rec in records.items():
        g = group_of[name]
        strata[g] = rec["stratum"] if strata.get(g, rec["stratum"]) == rec["stratum"] else MIXED
    split_of_group = split_sources(strata, split, seed)

    names = list(records)
    split_of = {name: split_of_group[group_of[name]] for name in names}
    counts = {s: {"sources": 0, "negatives": 0, "positives": 0, "total": 0} for s in SPLITS}
    for i, name in enumerate(names):
        r = sliced[name]
        pos = int(r.labels.sum())
        n_slices = len(r.labels)
        records[name].update(
            {"id": i, "split": split_of[name], "slices": n_slices, "positives": pos, "negatives": n_slices - pos}
        )
        c = counts[split_of[name]]
        c["sources"] += 1
        c["positives"] += pos
        c["negatives"] += len(r.labels) - pos
        c["total"] += len(r.labels)
    seen_in: dict[str, set[str]] = {}
    for name in names:
        seen_in.setdefault(name, set()).add(split_of[name])
    assert all(len(s) == 1 for s in seen_in.values()), "a source landed in two splits"
    train = counts["train"]
    # A held-out test set (split 0 0 1) has no training split to check.
    if split[0] > 0 and (train["positives"] == 0 or train["negatives"] == 0):
        missing_class = "positive (lesion)" if train["positives"] == 0 else "negative (normal)"
        raise DatasetError(
            f"the training split has no {missing_class} slices ({train['positives']} positive, "
            f"{train['negatives']} negative from {train['sources']} source(s)); add volumes of that class "
            "(folders named `normal` give negatives), or insert simulated lesions" + _problem_hint(quality)
        )

    cancel.raise_if_cancelled()
    on_progress(0.96, "writing the dataset")
    arrays: dict[str, npt.NDArray[Any]] = {
        "images": np.concatenate([sliced[n].images for n in names]),
        "labels": np.concatenate([sliced[n].labels for n in names]),
        "masks": np.concatenate([sliced[n].masks for n in names]),
        "sources": np.concatenate([np.full(len(sliced[n].labels), i, np.int32) for i, n in enumerate(names)]),
        "slice_index": np.concatenate([sliced[n].slice_index for n in names]),
    }
    manifest: dict[str, Any] = {
        "created_by": "radlens dataset build",
        "inputs": [display_path(p) for p in paths]
        + ([f"labels CSV: {display_path(labels)}"] if labels is not None else [])
        + ([f"{phantoms} generated chest phantom(s), seed {seed}"] if phantoms > 0 else [])
        + (
            [
                f"{pseudo_ct[2]} pseudo-CT head(s) from {display_path(pseudo_ct[0])}, seed {seed}"
                + (f", brains bent by up to {pseudo_ct_deform_mm:g} mm" if pseudo_ct_deform_mm > 0 else "")
                + (f", CSF spaces widened by up to {pseudo_ct_atrophy_mm:g} mm" if pseudo_ct_atrophy_mm > 0 else "")
                + (", physiological calcifications" if pseudo_ct_calcify else "")
            ]
            if pseudo_ct is not None and pseudo_ct[2] > 0
            else []
        ),
        "label_source": label_source,
        "preprocessing": {
            "size": list(size),
            "window": {"center": float(window[0]), "width": float(window[1])},
            "context_slices": int(context_slices),
            "channels": 2 * int(context_slices) + 1,
            "orientation": "axial slices along the patient axes closest to the volume's own (no resampling)",
            "resize": "bilinear, align_corners=False (masks: nearest); pixel aspect not preserved",
            "scale": "clip to [center - width/2, center + width/2], map linearly to 0-255",
            "slices": "every slice, in order" if whole_stacks else "sampled: lesion slices and slices away from them",
        },
        "seed": int(seed),
        "split_fractions": [float(f) for f in split],
        "split_by": "source (stratified by source label; stacks of one series stay together)",
        "lesion_insertion": insertion,
        "sources": [records[n] for n in names],
        "splits": {s: [records[n]["id"] for n in names if split_of[n] == s] for s in SPLITS},
        "counts": counts,
        "quality": quality.to_dict(),
    }
    if out_path.exists() and not (out_path / "manifest.json").is_file():
        if out_path.is_dir() and any(out_path.iterdir()):
            raise DatasetError(f"{display_path(out_path)} exists and is not a RadLens dataset; not overwriting it")
        if out_path.is_dir():
            out_path.rmdir()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    written = write_dataset(out_path, manifest, arrays)
    on_progress(1.0, f"{len(arrays['labels'])} slices from {len(names)} source(s)")
    return written


#: How many input problems a failed build's message lists (it writes no quality report).
_PROBLEMS_SHOWN = 5


def _problem_hint(quality: QualityReport) -> str:
    """The input problems behind a failed build, each with its path and reason."""
    problems = [f"{u['path']}: {u['reason']}" for u in quality.unreadable]
    problems += [f"{s['source']}: {s['reason']}" for s in quality.skipped_sources]
    problems += [f"label conflict between {', '.join(c['sources'])}" for c in quality.label_conflicts]
    if not problems:
        return ""
    more = len(problems) - _PROBLEMS_SHOWN
    shown = problems[:_PROBLEMS_SHOWN] + ([f"and {more} more"] if more > 0 else [])
    return f" ({len(problems)} input problem(s): " + "; ".join(shown) + ")"
