"""Scanning a folder: headers only, parsed in worker processes, grouped into stacks."""

from __future__ import annotations

import os
import stat
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from inference.errors import LoadError, NotDicomError, UnreadableFileError
from inference.io.dicom_header import read_header
from inference.io.dicom_record import DicomHeader, check_pixel_length
from inference.io.error_boundary import typed_errors
from inference.io.fast_header import SeriesHeaderReader
from inference.io.paths import display_path
from inference.io.stacks import Stack, Study, build_studies
from inference.progress import CancelToken, ProgressCallback, no_progress

if TYPE_CHECKING:
    import multiprocessing.context

#: With default ``jobs``, headers are parsed in worker processes only from this many files on,
#: and only with at least :data:`POOL_MIN_CPUS` CPUs. In process, a file laid out like one read
#: before takes ~20 µs (``inference.io.fast_header.SeriesHeaderReader``), one walked in full
#: ~70 µs; starting workers and pickling every header back costs more than that saves below
#: several thousand files (measured on 2 CPUs: 3000 files took 270 ms in process with the
#: walk alone, 500 ms in a pool of 2).
POOL_THRESHOLD = 8000
POOL_MIN_CPUS = 4
#: With an explicit ``jobs`` above 1, the pool is used from this many files on.
EXPLICIT_POOL_THRESHOLD = 400
CHUNK = 64
IMAGE_FILE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


@dataclass(frozen=True)
class FileProblem:
    """A file that was not loaded, with the reason."""

    path: str
    error: str
    reason: str

    def summary(self) -> dict[str, str]:
        return {"path": display_path(self.path), "error": self.error, "reason": self.reason}


@dataclass(frozen=True)
class NonImageObject:
    """A DICOM object listed apart: SR, RTSTRUCT, presentation state, SEG…"""

    path: str
    modality: str
    sop_class_uid: str
    series_uid: str
    description: str

    def summary(self) -> dict[str, str]:
        return {
            "path": display_path(self.path),
            "modality": self.modality,
            "sop_class_uid": self.sop_class_uid,
            "description": self.description,
        }


@dataclass
class ScanResult:
    root: str
    studies: list[Study] = field(default_factory=list)
    file_stacks: list[Stack] = field(default_factory=list)
    non_image: list[NonImageObject] = field(default_factory=list)
    not_dicom: list[FileProblem] = field(default_factory=list)
    errors: list[FileProblem] = field(default_factory=list)

    def stacks(self) -> list[Stack]:
        out = [st for study in self.studies for se in study.series for st in se.stacks]
        return out + self.file_stacks

    def stack(self, stack_id: str) -> Stack:
        """Find a stack by its id or its series UID (when that series has one stack)."""
        stacks = self.stacks()
        for st in stacks:
            if st.id == stack_id:
                return st
        matching = [st for st in stacks if st.series_uid == stack_id]
        if len(matching) == 1:
            return matching[0]
        known = ", ".join(st.id for st in stacks) or "none"
        raise LoadError(self.root, f"no stack {stack_id!r} in this folder (stacks: {known})")

    def summary(self) -> dict[str, object]:
        """JSON-ready description; patient names and IDs are left out on purpose."""
        return {
            "root": display_path(self.root),
            "studies": [
                {
                    "study_uid": st.uid,
                    "description": st.description,
                    "date": st.date,
                    "series": [
                        {
                            "series_uid": se.uid,
                            "number": se.number,
                            "modality": se.modality,
                            "description": se.description,
                            "stacks": [s.summary() for s in se.stacks],
                        }
                        for se in st.series
                    ],
                }
                for st in self.studies
            ],
            "files": [s.summary() for s in self.file_stacks],
            "non_image": [n.summary() for n in self.non_image],
            "not_dicom": [p.summary() for p in self.not_dicom],
            "errors": [p.summary() for p in self.errors],
        }


def iter_files(root: Path, problems: list[FileProblem]) -> Iterator[str]:
    """Every regular, non-hidden file below ``root``, following directory links once (loops are cut)."""
    seen: set[tuple[int, int]] = set()
    stack = [os.fspath(root)]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
        except OSError as exc:
            problems.append(FileProblem(folder, "UnreadableFileError", f"cannot open folder ({exc.strerror or exc})"))
            continue
        if (st.st_dev, st.st_ino) in seen:
            problems.append(FileProblem(folder, "UnreadableFileError", "symbolic link loop: folder already visited"))
            continue
        seen.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            problems.append(FileProblem(folder, "UnreadableFileError", f"cannot list folder ({exc.strerror or exc})"))
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue  # hidden files and folders (.DS_Store, ._AppleDouble, tool sidecars)
            try:
                if entry.is_file():  # from the directory listing, without a stat, unless a link
                    yield entry.path
                    continue
            except OSError:
                pass  # a link loop, or a file gone: the stat below says which
            try:
                mode = os.stat(entry.path).st_mode
            except OSError as exc:
                reason = "broken symbolic link" if entry.is_symlink() else f"cannot stat ({exc.strerror or exc})"
                if exc.errno == 40:  # ELOOP
                    reason = "symbolic link loop"
                problems.append(FileProblem(entry.path, "UnreadableFileError", reason))
                continue
            if stat.S_ISDIR(mode):
                subdirs.append(entry.path)
            elif stat.S_ISREG(mode):
                yield entry.path
            else:
                reason = "not a regular file (FIFO, socket or device)"
                problems.append(FileProblem(entry.path, "UnreadableFileError", reason))
        stack.extend(reversed(subdirs))


def _parse(path: str, reader: SeriesHeaderReader | None = None) -> DicomHeader | FileProblem:
    try:
        header = read_header(path, reader)
        check_pixel_length(header)
        return header
    except LoadError as exc:
        return FileProblem(path, type(exc).__name__, exc.reason)
    except Exception as exc:  # a worker must never die on one file
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        return FileProblem(path, "LoadError", f"unexpected failure reading the header ({type(exc).__name__}: {text})")


def _parse_chunk(paths: list[str], reader: SeriesHeaderReader | None = None) -> list[DicomHeader | FileProblem]:
    reader = reader if reader is not None else SeriesHeaderReader()
    with warnings.catch_warnings():
        # pydicom warns about every non-conformant value; the loader reports what matters.
        warnings.simplefilter("ignore")
        return [_parse(p, reader) for p in paths]


def _pool_context() -> multiprocessing.context.BaseContext:
    import multiprocessing  # imported only when a pool is used: it costs ~50 ms of start-up

    # fork is fastest, but unsafe once other threads (Qt, torch) exist in this process.
    method = "fork" if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)


def parse_headers(
    paths: list[str],
    *,
    jobs: int | None = None,
    on_progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> list[DicomHeader | FileProblem]:
    """Parse many headers, in worker processes when there are enough of them (see :data:`POOL_THRESHOLD`)."""
    cancel = cancel or CancelToken()
    total = max(len(paths), 1)
    chunks = [paths[i : i + CHUNK] for i in range(0, len(paths), CHUNK)]
    out: list[DicomHeader | FileProblem] = []
    if jobs is not None:
        n_jobs, threshold = jobs, EXPLICIT_POOL_THRESHOLD
    else:
        cpus = os.cpu_count() or 1
        n_jobs, threshold = (min(cpus, 8) if cpus >= POOL_MIN_CPUS else 1), POOL_THRESHOLD
    if n_jobs <= 1 or len(paths) < threshold:
        reader = SeriesHeaderReader()  # one for all: a series split over chunks keeps its template
        for chunk in chunks:
            cancel.raise_if_cancelled()
            out.extend(_parse_chunk(chunk, reader))
            on_progress(len(out) / total, f"read {len(out)} of {len(paths)} headers")
        return out
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=_pool_context()) as pool:
        try:
            for result in pool.map(_parse_chunk, chunks):
                cancel.raise_if_cancelled()
                out.extend(result)
                on_progress(len(out) / total, f"read {len(out)} of {len(paths)} headers")
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return out


def _image_file_stack(path: str, n: int) -> Stack | FileProblem:
    """The stack of one NIfTI/NRRD/MetaImage file from its header, or the problem that keeps it out."""
    from inference.errors import LoadError

    try:
        with typed_errors(path, "reading the image header"):
            return _image_file_header_stack(path, n)
    except LoadError as exc:
        return FileProblem(path, type(exc).__name__, exc.reason)


def _image_file_header_stack(path: str, n: int) -> Stack | FileProblem:
    from inference.io.image_checks import check_image_file
    from inference.io.image_file import image_suffix
    from inference.io.image_file_fallback import use_simpleitk

    check_image_file(path, image_suffix(path))

    if use_simpleitk():
        import SimpleITK as sitk

        reader = sitk.ImageFileReader()
        reader.SetFileName(path)
        try:
            reader.ReadImageInformation()
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
            return FileProblem(path, "LoadError", f"SimpleITK cannot read this image: {first[:200]}")
        size, sp = tuple(reader.GetSize()), tuple(reader.GetSpacing())
    else:
        from inference.errors import LoadError
        from inference.io.image_file import image_suffix
        from inference.io.image_file_fallback import read_info

        suffix = image_suffix(path)
        try:
            if suffix is None:
                raise LoadError(path, "not a NIfTI, NRRD or MetaImage file name")
            info = read_info(Path(path), suffix)
        except (LoadError, OSError) as exc:
            reason = exc.reason if isinstance(exc, LoadError) else str(exc)
            return FileProblem(path, "LoadError", f"cannot read this image: {reason[:200]}")
        size, sp = info.size, info.spacing
    i, j = size[0], size[1] if len(size) > 1 else 1
    k = size[2] if len(size) > 2 else 1
    return Stack(
        id=str(n),
        kind="file",
        modality="",
        study_uid="",
        series_uid="",
        series_number=0,
        description=Path(path).name,
        rows=j,
        columns=i,
        file_path=path,
        file_shape=(k, j, i),
        pixel_spacing=(float(sp[1]), float(sp[0])) if len(sp) > 1 else None,
    )


def _studies(images: list[DicomHeader], errors: list[FileProblem]) -> list[Study]:
    """:func:`build_studies`; should one header break the grouping, that file is listed as a problem
    and the others are grouped without it."""
    try:
        return build_studies(images)
    except Exception:
        kept = []
        for h in images:
            try:
                build_studies([h])
                kept.append(h)
            except Exception as exc:
                errors.append(FileProblem(h.path, "InvalidValueError", f"its geometry cannot be grouped ({exc})"))
        return build_studies(kept)


def scan(
    path: str | os.PathLike[str],
    *,
    jobs: int | None = None,
    on_progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> ScanResult:
    """Scan a file or folder tree: studies → series → stacks, headers only.

    Files that cannot be read are listed with their reason; the rest still loads.
    Nothing is written anywhere.
    """
    with typed_errors(path, "scanning"):
        return _scan(Path(path), jobs, on_progress, cancel or CancelToken())


def _scan(root: Path, jobs: int | None, on_progress: ProgressCallback, cancel: CancelToken) -> ScanResult:
    result = ScanResult(root=os.fspath(root))
    if not root.exists() and not root.is_symlink():
        raise UnreadableFileError(root, "no such file or folder")
    problems: list[FileProblem] = []
    files = [os.fspath(root)] if not root.is_dir() else list(iter_files(root, problems))
    result.errors.extend(problems)
    image_files = [f for f in files if f.lower().endswith(IMAGE_FILE_SUFFIXES)]
    dicom_candidates = [f for f in files if not f.lower().endswith(IMAGE_FILE_SUFFIXES)]
    on_progress(0.0, f"found {len(files)} files")
    parsed = parse_headers(dicom_candidates, jobs=jobs, on_progress=on_progress, cancel=cancel)
    images: list[DicomHeader] = []
    for item in parsed:
        if isinstance(item, FileProblem):
            (result.not_dicom if item.error == NotDicomError.__name__ else result.errors).append(item)
        elif item.is_image:
            images.append(item)
        else:
            result.non_image.append(
                NonImageObject(item.path, item.modality, item.sop_class_uid, item.series_uid, item.series_description)
            )
    result.studies = _studies(images, result.errors)
    n = len(result.stacks()) + 1
    for f in image_files:
        cancel.raise_if_cancelled()
        made = _image_file_stack(f, n)
        if isinstance(made, Stack):
            result.file_stacks.append(made)
            n += 1
        else:
            result.errors.append(made)
    on_progress(1.0, f"{len(result.stacks())} stack(s), {len(result.errors)} problem file(s)")
    return result
