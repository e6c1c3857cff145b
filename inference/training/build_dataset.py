"""``radlens dataset build``: a :class:`~inference.training.dataset_spec.DatasetSpec` → a slice dataset
(:mod:`inference.training.dataset_format`).

The sources come from folders, a labels CSV (:mod:`inference.training.sources`), generated chest
phantoms (:mod:`inference.training.phantom_sources`) and pseudo-CT heads
(:mod:`inference.training.pseudo_ct`). With a lesion insertion, simulated lesions
(:mod:`inference.training.lesions`) are inserted into every host volume: positives are the
slices crossing a lesion (with its mask), negatives the same number of slices of that volume
away from any lesion. Volumes a CSV labels 1 are hosts only when it gives their lesion mask
(the simulated lesions keep out of it, and its lesions are positives too).

Each volume is sliced as :mod:`inference.training.slicing` says; the split into train/val/test is
by source, stratified by label, and drawn from the seed (:mod:`inference.training.splits`); the
input folders are only read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.errors import RadLensError
from inference.io.paths import display_path, is_within
from inference.progress import CancelToken, ProgressCallback, no_progress
from inference.training.dataset_format import DatasetError, write_dataset
from inference.training.dataset_spec import DatasetSpec
from inference.training.manifest import DatasetManifest, LabelSource, Preprocessing
from inference.training.quality import QualityReport, find_label_conflicts, voxel_hash
from inference.training.slicing import SlicedVolume, axial_view, slice_volume
from inference.training.sources import SourceVolume, load_mask, sources_from_csv, sources_from_folders
from inference.training.splits import split_sources

__all__ = ["MIXED", "build_dataset"]

#: Label of a source whose slices carry their own labels (mask or inserted lesions).
MIXED = 2


def _check_inputs(spec: DatasetSpec, out_path: Path) -> None:
    """The checks that need the file system: inputs exist, the output lies inside none of them."""
    missing = [display_path(p) for p in spec.paths if not p.exists() and not p.is_symlink()]
    if missing:
        raise DatasetError("input(s) not found: " + ", ".join(missing))
    if not spec.paths and spec.labels is None and spec.phantoms <= 0 and spec.heads is None:
        raise DatasetError("nothing to build from: give input folders, a labels CSV, --phantoms or --pseudo-ct")
    for p in spec.paths:
        if p.is_dir() and is_within(out_path, p):
            raise DatasetError(f"the output {display_path(out_path)} lies inside the input {display_path(p)}")


def _sources(
    spec: DatasetSpec, out_path: Path, quality: QualityReport, cancel: CancelToken
) -> tuple[list[SourceVolume], LabelSource]:
    """Every source the spec names, and where their labels come from."""
    if spec.labels is not None:
        sources = sources_from_csv(spec.labels, spec.paths, quality, cancel)
        label_source = LabelSource.CSV
    else:
        sources = sources_from_folders(spec.paths, quality, cancel)
        label_source = LabelSource.FOLDER_NAME
    for src in sources:
        folder = Path(src.path)
        if src.path and folder.is_dir() and is_within(out_path, folder):
            raise DatasetError(f"the output {display_path(out_path)} lies inside the input {src.path}")
    if spec.phantoms > 0:
        from inference.training.phantom_sources import add_phantoms

        sources += add_phantoms(spec.phantoms, spec.seed, vessels=spec.phantom_vessels)
    heads = spec.heads
    if heads is not None:
        from inference.training.pseudo_ct import add_pseudo_ct

        for head_file in (heads.t1, heads.brain_mask):
            if not Path(head_file).is_file():
                raise DatasetError(f"pseudo-CT input not found: {display_path(head_file)}")
        try:
            sources += add_pseudo_ct(
                heads.t1, heads.brain_mask, int(heads.count), spec.seed, heads.deform_mm, heads.atrophy_mm,
                heads.calcify,
            )  # fmt: skip
        except RadLensError as exc:  # a head that cannot take calcifications
            raise DatasetError(str(exc)) from exc
    if spec.insertion is not None:
        label_source = LabelSource.LESION_INSERTION
        for s in sources:
            if not s.host:
                quality.add_skipped(s.name, "labelled abnormal: not used as a host for simulated lesions")
        sources = [s for s in sources if s.host]
    elif spec.phantoms > 0 and not spec.paths and spec.labels is None:
        label_source = LabelSource.PHANTOM_NODULES
    return sources, label_source


def _inputs_described(spec: DatasetSpec) -> list[str]:
    """The manifest's ``inputs``: what the dataset was made from, in words."""
    out = [display_path(p) for p in spec.paths]
    if spec.labels is not None:
        out.append(f"labels CSV: {display_path(spec.labels)}")
    if spec.phantoms > 0:
        out.append(f"{spec.phantoms} generated chest phantom(s), seed {spec.seed}")
    heads = spec.heads
    if heads is not None:
        out.append(
            f"{heads.count} pseudo-CT head(s) from {display_path(heads.t1)}, seed {spec.seed}"
            + (f", brains bent by up to {heads.deform_mm:g} mm" if heads.deform_mm > 0 else "")
            + (f", CSF spaces widened by up to {heads.atrophy_mm:g} mm" if heads.atrophy_mm > 0 else "")
            + (", physiological calcifications" if heads.calcify else "")
        )
    return out


def build_dataset(
    spec: DatasetSpec,
    out: str | os.PathLike[str],
    *,
    on_progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> Path:
    """Build the slice dataset ``spec`` describes in ``out``; returns ``out``.

    Raises :class:`DatasetError` for missing inputs, a CSV naming missing files, an output inside
    an input folder, no usable volume, or a training split without positives or negatives.
    Unreadable inputs are listed in ``manifest["quality"]`` and the rest still builds.
    """
    from inference.training.insertion import insert_mixed
    from inference.training.lesions import LesionPlacementError

    cancel = cancel or CancelToken()
    out_path = Path(out)
    _check_inputs(spec, out_path)
    insertion = spec.insertion
    size, window, context_slices = spec.size, spec.window, spec.context_slices

    quality = QualityReport()
    on_progress(0.0, "finding volumes")
    sources, label_source = _sources(spec, out_path, quality, cancel)

    rng = np.random.default_rng(spec.seed)
    sliced: dict[str, SlicedVolume] = {}
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
                mask = load_mask(src.mask_path, volume)
            except RadLensError as exc:
                quality.add_skipped(src.name, str(exc))
                continue
        elif mask_of is not None:
            mask = mask_of(volume)
        variants = insertion.variants if insertion is not None else 1
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
                        list(insertion.kinds),
                        insertion.per_volume,
                        setting=insertion.region,
                        own_region=src.region,
                        keep_out=mask,
                    )
                except LesionPlacementError as exc:
                    quality.add_skipped(name, f"no room for simulated lesions: {exc}")
                    continue
                host_mask = inserted if mask is None else np.where(inserted > 0, inserted, mask).astype(np.uint8)

            amap, numbers = axial_view(host)
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
                positives_cap=spec.positives_per_source,
                negatives_cap=spec.negatives_per_source,
                rng=rng,
                slice_numbers=numbers,
                whole=spec.whole_stacks,
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
    split_of_group = split_sources(strata, spec.split, spec.seed)

    names = list(records)
    split_of = {name: split_of_group[group_of[name]] for name in names}
    manifest = DatasetManifest(
        inputs=_inputs_described(spec),
        label_source=label_source,
        preprocessing=Preprocessing(size, window, context_slices, spec.whole_stacks),
        seed=spec.seed,
        split_fractions=spec.split,
        lesion_insertion=insertion,
        sources=[records[n] for n in names],
        quality=quality,
    )
    for i, name in enumerate(names):
        r = sliced[name]
        pos = int(r.labels.sum())
        n_slices = len(r.labels)
        records[name].update(
            {"id": i, "split": split_of[name], "slices": n_slices, "positives": pos, "negatives": n_slices - pos}
        )
        manifest.counts[split_of[name]].add(pos, n_slices)
    train = manifest.counts["train"]
    # A held-out test set (split 0 0 1) has no training split to check.
    if spec.split[0] > 0 and (train.positives == 0 or train.negatives == 0):
        missing_class = "positive (lesion)" if train.positives == 0 else "negative (normal)"
        raise DatasetError(
            f"the training split has no {missing_class} slices ({train.positives} positive, "
            f"{train.negatives} negative from {train.sources} source(s)); add volumes of that class "
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
    if out_path.exists() and not (out_path / "manifest.json").is_file():
        if out_path.is_dir() and any(out_path.iterdir()):
            raise DatasetError(f"{display_path(out_path)} exists and is not a RadLens dataset; not overwriting it")
        if out_path.is_dir():
            out_path.rmdir()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    written = write_dataset(out_path, manifest.to_dict(), arrays)
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
