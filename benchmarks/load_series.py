"""Benchmark: loading a CT series from a folder, RadLens against the raw-read floor and other readers.

Run from the repository root::

    .venv/bin/python benchmarks/load_series.py [--slices 300] [--repeats 5] [--workdir DIR]

Everything is generated in a temporary folder (under ``--workdir`` if given) and deleted at the
end; writing the data is not timed. All timings are taken in this one run, on warm page cache
(every file is read once, untimed, before timing), as the median of ``--repeats`` runs.

1. Series load (``--slices`` × 512 × 512 int16 CT, ≈157 MB for 300 slices):
   (a) raw-read floor: every file's bytes ``readinto`` one preallocated buffer;
   (b) SimpleITK ``ImageSeriesReader`` (``GetGDCMSeriesFileNames`` + ``Execute``);
   (c) a plain pydicom loop (``dcmread``, ``pixel_array``, sort by z, stack, rescale);
   (d) RadLens ``scan(folder)`` + ``load_stack(stack)``: the full path from a folder;
   (e) RadLens ``load_stack`` alone, given a prior scan (what the viewer does after browsing).
   Target: (d) and (e) ≤ 2.0× the floor.
2. Header scan: ``--headers`` small (64 × 64) DICOM files; RadLens ``scan()`` with default jobs
   (a process pool only from 8000 files on 4+ CPUs) against a ``pydicom.dcmread(stop_before_pixels=True)`` loop.
3. End to end: ``radlens convert SERIES out.nii`` against ``dcm2niix -z n -o DIR -f out SERIES``,
   each a subprocess timed from start to exit. Target: ≤ 1.0× dcm2niix.
4. Peak memory: scan + load_stack in a fresh interpreter, peak RSS (VmHWM) minus that of an
   interpreter that only imports the same modules, as a multiple of the volume's bytes
   (target ≤ 1.25); SimpleITK's series reader measured the same way for context.

5. 4-D series (``--fourd`` files of 64 × 64: an fMRI-like time series of 40 slices per volume,
   Siemens tag conventions, shuffled file names): ``radlens convert SERIES out.nii`` (4-D NIfTI
   and its JSON sidecar) against ``dcm2niix -z n`` (NIfTI and JSON), subprocesses timed from start
   to exit. Target: ≤ 2.0× dcm2niix.

Exit status is 0 whatever the PASS/FAIL lines say (this is a measurement, not a test).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pydicom
from _phantom import phantom
from _timing import REPO_ROOT, child_env, child_peak_rss, median, median_time, spread

from inference.io.dicom_loader import load_stack
from inference.io.dicom_writer import write_dicom_series
from inference.io.scan import POOL_THRESHOLD, scan

ROWS = COLS = 512
SPACING = (0.7, 0.7, 1.0)  # (i, j, k) mm
LOAD_TARGET = 2.0
CONVERT_TARGET = 1.0
FOURD_TARGET = 2.0
FOURD_SLICES = 40
MEMORY_TARGET = 1.25


# --------------------------------------------------------------------------- data


def write_header_folder(folder: Path, n_files: int) -> None:
    """``n_files`` 64 × 64 CT slices in up to three series (sub-folders), for the header scan."""
    n_series = 3 if n_files >= 3 else 1
    per = [n_files // n_series + (1 if s < n_files % n_series else 0) for s in range(n_series)]
    rng = np.random.default_rng(1)
    for s, n in enumerate(per):
        vox = rng.integers(-1000, 1000, size=(n, 64, 64), dtype=np.int16)
        write_dicom_series(
            vox, folder / f"series_{s + 1}", spacing=(3.0, 3.0, 1.0), series_number=s + 1, uid_seed=f"headers-{s}"
        )


def files_in(folder: Path) -> list[str]:
    return sorted(os.path.join(dp, f) for dp, _, fs in os.walk(folder) for f in fs)


def warm(paths: list[str]) -> None:
    """Read every file once so that timings see a warm page cache."""
    for p in paths:
        with open(p, "rb") as fp:
            while fp.read(1 << 20):
                pass


# --------------------------------------------------------------------------- readers


def raw_floor(paths: list[str], sizes: list[int], buf: bytearray) -> None:
    view = memoryview(buf)
    pos = 0
    for p, n in zip(paths, sizes, strict=True):
        with open(p, "rb", buffering=0) as fp:
            got = fp.readinto(view[pos : pos + n])
        if got != n:
            raise OSError(f"{p}: short read {got} of {n}")
        pos += n


def sitk_series(folder: Path) -> object:
    """The ``sitk.Image`` (keep it alive while using an array view of it)."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    names = reader.GetGDCMSeriesFileNames(str(folder))
    reader.SetFileNames(names)
    return reader.Execute()


def pydicom_loop(paths: list[str]) -> np.ndarray:
    slices = []
    for p in paths:
        ds = pydicom.dcmread(p)
        z = float(ds.ImagePositionPatient[2])
        slope = float(getattr(ds, "RescaleSlope", 1))
        intercept = float(getattr(ds, "RescaleIntercept", 0))
        slices.append((z, ds.pixel_array, slope, intercept))
    slices.sort(key=lambda s: s[0])
    vol = np.stack([s[1] for s in slices]).astype(np.int32)
    slope, intercept = slices[0][2], slices[0][3]
    if slope != 1:
        vol *= int(slope)
    if intercept != 0:
        vol += int(intercept)
    return vol.astype(np.int16)


def radlens_scan_load(folder: Path) -> np.ndarray:
    result = scan(folder)
    (stack,) = result.stacks()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_stack(stack).voxels


def radlens_load(stack: object) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_stack(stack).voxels  # type: ignore[arg-type]


def pydicom_headers(paths: list[str]) -> int:
    n = 0
    for p in paths:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        n += int(ds.Rows)
    return n


# --------------------------------------------------------------------------- report


def verdict(ratio: float, target: float) -> str:
    return f"target ≤ {target:.2f}×  {'PASS' if ratio <= target else 'FAIL'}"


def line(label: str, times: list[float], floor: float | None = None, target: float | None = None) -> str:
    t = median(times)
    text = f"  {label:<44} {t * 1e3:9.1f} ms  (range {spread(times)} ms)"
    if floor is not None:
        ratio = t / floor
        text += f"  {ratio:6.2f}× floor"
        if target is not None:
            text += f"  {verdict(ratio, target)}"
    return text


def section_load(series: Path, paths: list[str], repeats: int, expected: np.ndarray) -> None:
    sizes = [os.path.getsize(p) for p in paths]
    total = sum(sizes)
    vol_bytes = expected.nbytes
    print(f"\n[1] series load: {len(paths)} files, {total / 1e6:.1f} MB on disk, volume {vol_bytes / 1e6:.1f} MB")
    warm(paths)

    # Correctness first (untimed): every reader must give the phantom back.
    import SimpleITK as sitk

    checks = {
        "SimpleITK": sitk.GetArrayFromImage(sitk_series(series)),
        "pydicom loop": pydicom_loop(paths),
        "RadLens scan+load": radlens_scan_load(series),
    }
    for name, arr in checks.items():
        same = arr.shape == expected.shape and np.array_equal(arr, expected)
        print(f"  check {name:<20} shape {arr.shape} dtype {arr.dtype}: {'identical' if same else 'DIFFERENT'}")
    del checks

    buf = bytearray(total)
    floor_t = median_time(lambda: raw_floor(paths, sizes, buf), repeats)
    floor = median(floor_t)
    print(f"  (floor throughput {total / floor / 1e9:.2f} GB/s)")
    print(line("(a) raw-read floor (readinto one buffer)", floor_t, floor))
    print(line("(b) SimpleITK ImageSeriesReader", median_time(lambda: sitk_series(series), repeats), floor))
    print(
        line("(c) pydicom loop (dcmread+pixel_array+stack)", median_time(lambda: pydicom_loop(paths), repeats), floor)
    )
    print(
        line(
            "(d) RadLens scan(folder) + load_stack",
            median_time(lambda: radlens_scan_load(series), repeats),
            floor,
            LOAD_TARGET,
        )
    )
    (stack,) = scan(series).stacks()
    print(
        line(
            "(e) RadLens load_stack (prior scan)", median_time(lambda: radlens_load(stack), repeats), floor, LOAD_TARGET
        )
    )
    print(line("    RadLens scan(folder) alone", median_time(lambda: scan(series), repeats), floor))


def section_headers(folder: Path, repeats: int) -> None:
    paths = files_in(folder)
    n = len(paths)
    print(f"\n[2] header scan: {n} files of 64×64 in {len(os.listdir(folder))} series, {os.cpu_count()} CPUs")
    warm(paths)
    result = scan(folder)
    found = sum(s.n_slices for s in result.stacks())
    pool = "process pool" if n >= POOL_THRESHOLD and (os.cpu_count() or 1) > 1 else "in process"
    print(f"  check: RadLens found {len(result.stacks())} stacks, {found} slices, {len(result.errors)} errors")
    rl = median(median_time(lambda: scan(folder), repeats))
    pd = median(median_time(lambda: pydicom_headers(paths), repeats))
    label = f"RadLens scan() (default jobs, {pool})"
    print(f"  {label:<44} {rl * 1e3:9.1f} ms  {n / rl:8.0f} files/s")
    print(f"  {'pydicom dcmread(stop_before_pixels) loop':<44} {pd * 1e3:9.1f} ms  {n / pd:8.0f} files/s")
    one = median(median_time(lambda: scan(folder, jobs=1), repeats))
    print(f"  {'(context) RadLens scan(jobs=1), in process':<44} {one * 1e3:9.1f} ms  {n / one:8.0f} files/s")
    print(f"  RadLens (default jobs) / pydicom throughput: {pd / rl:.2f}×")


def section_convert(series: Path, work: Path, repeats: int) -> None:
    radlens = Path(sys.executable).with_name("radlens")
    dcm2niix = shutil.which("dcm2niix")
    print("\n[3] end to end, NIfTI conversion (subprocess, start to exit)")
    out_rl = work / "convert_radlens"
    out_dx = work / "convert_dcm2niix"
    rl_cmd = [str(radlens), "convert", str(series), str(out_rl / "out.nii")]
    dx_cmd = [dcm2niix or "dcm2niix", "-z", "n", "-o", str(out_dx), "-f", "out", str(series)]

    def fresh(folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)

    def run(cmd: list[str], expect: Path) -> None:
        done = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), check=False)
        if done.returncode != 0 or not expect.exists():
            raise RuntimeError(f"{cmd[0]} failed ({done.returncode}): {(done.stderr or done.stdout)[-1500:]}")

    # An installed radlens has its modules compiled to bytecode (pip does it); a working tree
    # edited since its last run would time Python compiling them instead.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO_ROOT / "inference")], check=True)
    fresh(out_rl)
    run(rl_cmd, out_rl / "out.nii")  # warm-up, also checks the output
    import nibabel as nib

    got = np.asanyarray(nib.load(out_rl / "out.nii").dataobj)
    print(f"  check: radlens wrote {got.shape} {got.dtype}, {os.path.getsize(out_rl / 'out.nii') / 1e6:.1f} MB")
    rl_t = median_time(lambda: run(rl_cmd, out_rl / "out.nii"), repeats, setup=lambda: fresh(out_rl))
    print(line("radlens convert SERIES out.nii", rl_t))
    if dcm2niix is None:
        print("  dcm2niix not installed: no comparison")
        return
    fresh(out_dx)
    run(dx_cmd, out_dx / "out.nii")
    print(f"  check: dcm2niix wrote {os.path.getsize(out_dx / 'out.nii') / 1e6:.1f} MB")
    dx_t = median_time(lambda: run(dx_cmd, out_dx / "out.nii"), repeats, setup=lambda: fresh(out_dx))
    print(line("dcm2niix -z n", dx_t))
    ratio = median(rl_t) / median(dx_t)
    print(f"  radlens / dcm2niix: {ratio:.2f}×  {verdict(ratio, CONVERT_TARGET)}")
    # Interpreter start-up and the imports of `radlens convert` alone (one BLAS thread, as it sets), for context.
    imports = "import inference.cli.main, inference.io.open_path, inference.io.dicom_loader, inference.io.nifti_writer"
    imp_t = median_time(
        lambda: subprocess.run(
            [sys.executable, "-c", imports], env={**child_env(), "OPENBLAS_NUM_THREADS": "1"}, check=True
        ),
        repeats,
    )
    print(line("(context) python start + radlens imports", imp_t))


_IMPORTS = (
    "import warnings, numpy, pydicom\n"
    "from inference.io.scan import scan\n"
    "from inference.io.dicom_loader import load_stack\n"
    "import inference.volume, inference.errors\n"
)
_RADLENS_LOAD = """
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    (stack,) = scan(sys.argv[1]).stacks()
    vol = load_stack(stack)
assert vol.voxels.shape[0] > 0
"""
_SITK_IMPORTS = "import numpy, SimpleITK as sitk\n"
_SITK_LOAD = """
reader = sitk.ImageSeriesReader()
reader.SetFileNames(reader.GetGDCMSeriesFileNames(sys.argv[1]))
image = reader.Execute()
assert image.GetSize()[2] > 0
"""


def section_memory(series: Path, vol_bytes: int) -> None:
    print(f"\n[4] peak memory while loading (fresh interpreter, VmHWM), volume {vol_bytes / 1e6:.1f} MB")
    for name, imports, load, target in (
        ("RadLens scan+load_stack", _IMPORTS, _RADLENS_LOAD, MEMORY_TARGET),
        ("SimpleITK ImageSeriesReader", _SITK_IMPORTS, _SITK_LOAD, None),
    ):
        base = child_peak_rss("import sys\n" + imports, str(series))
        peak = child_peak_rss("import sys\n" + imports + load, str(series))
        ratio = (peak - base) / vol_bytes
        text = (
            f"  {name:<30} peak {peak / 1e6:7.1f} MB, baseline {base / 1e6:6.1f} MB, "
            f"extra {(peak - base) / 1e6:7.1f} MB = {ratio:.2f}× volume"
        )
        if target is not None:
            text += f"  {verdict(ratio, target)}"
        else:
            text += "  (context)"
        print(text)


def write_fourd_series(folder: Path, n_files: int) -> tuple[int, int]:
    """A time series of ``n_files`` single-frame 64 × 64 MR files (40 slices a volume), returns
    ``(volumes, slices)``; file names shuffled so that no order comes from them."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True)
    n_vol = max(n_files // FOURD_SLICES, 2)
    rng = np.random.default_rng(4)
    names = rng.permutation(n_vol * FOURD_SLICES)
    base = rng.integers(0, 1000, (FOURD_SLICES, 64, 64)).astype(np.int16)
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.Modality, ds.Manufacturer, ds.SeriesDescription = "MR", "SIEMENS", "bench fmri"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = generate_uid(), generate_uid(), generate_uid()
    ds.SeriesNumber = 3
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [3.0, 3.0]
    ds.SliceThickness = 3.0
    ds.RepetitionTime, ds.EchoTime, ds.FlipAngle = 2000.0, 30.0, 80
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    ds.Rows = ds.Columns = 64
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    for v in range(n_vol):
        for k in range(FOURD_SLICES):
            ds.SOPInstanceUID = generate_uid()
            ds.InstanceNumber = v * FOURD_SLICES + k + 1
            ds.AcquisitionNumber = v + 1
            seconds = 8 * 3600 + 2.0 * v + 0.05 * k
            ds.AcquisitionTime = f"{int(seconds // 3600):02d}{int(seconds % 3600 // 60):02d}{seconds % 60:09.6f}"
            ds.ImagePositionPatient = [-96.0, -96.0, -60.0 + 3.0 * k]
            ds.PixelData = (base[k] + v).astype("<i2").tobytes()
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = ds.SOPClassUID
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta = meta
            ds.save_as(folder / f"IM{names[v * FOURD_SLICES + k]:06d}", enforce_file_format=True)
    return n_vol, FOURD_SLICES


def section_fourd(work: Path, n_files: int, repeats: int) -> None:
    series = work / "fourd"
    t0 = time.perf_counter()
    n_vol, n_k = write_fourd_series(series, n_files)
    print(f"\n[5] 4-D series: {n_vol * n_k} files ({n_vol} volumes × {n_k} slices of 64×64), subprocesses")
    print(f"  (written in {time.perf_counter() - t0:.1f} s, not timed)")
    warm(files_in(series))
    radlens = Path(sys.executable).with_name("radlens")
    out_rl, out_dx = work / "fourd_radlens", work / "fourd_dcm2niix"
    rl_cmd = [str(radlens), "convert", str(series), str(out_rl / "out.nii")]
    dx_cmd = [shutil.which("dcm2niix") or "dcm2niix", "-z", "n", "-o", str(out_dx), "-f", "out", str(series)]

    def fresh(folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)

    def run(cmd: list[str], expect: Path) -> None:
        done = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), check=False)
        if done.returncode != 0 or not expect.exists():
            raise RuntimeError(f"{cmd[0]} failed ({done.returncode}): {(done.stderr or done.stdout)[-1500:]}")

    fresh(out_rl)
    run(rl_cmd, out_rl / "out.nii")
    import nibabel as nib

    shape = nib.load(out_rl / "out.nii").shape
    print(f"  check: radlens wrote {shape}")
    rl_t = median_time(lambda: run(rl_cmd, out_rl / "out.nii"), repeats, setup=lambda: fresh(out_rl))
    print(line("radlens convert SERIES out.nii (4-D)", rl_t))
    if shutil.which("dcm2niix") is None:
        print("  dcm2niix not installed: no comparison")
        return
    fresh(out_dx)
    run(dx_cmd, out_dx / "out.nii")
    dx_t = median_time(lambda: run(dx_cmd, out_dx / "out.nii"), repeats, setup=lambda: fresh(out_dx))
    print(line("dcm2niix -z n", dx_t))
    ratio = median(rl_t) / median(dx_t)
    print(f"  radlens / dcm2niix: {ratio:.2f}×  {verdict(ratio, FOURD_TARGET)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300, help="slices of 512×512 in the CT series")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median reported)")
    parser.add_argument("--headers", type=int, default=3000, help="small files for the header-scan benchmark")
    parser.add_argument("--workdir", type=Path, default=None, help="where to make the temporary folder")
    parser.add_argument("--fourd", type=int, default=10_000, help="files in the 4-D series benchmark")
    parser.add_argument(
        "--only",
        nargs="*",
        choices=["load", "headers", "convert", "memory", "fourd"],
        default=None,
        help="run some sections",
    )
    args = parser.parse_args()
    sections = set(args.only or ["load", "headers", "convert", "memory", "fourd"])

    import SimpleITK as sitk

    print("RadLens series-load benchmark")
    print(
        f"  python {platform.python_version()}, numpy {np.__version__}, pydicom {pydicom.__version__}, "
        f"SimpleITK {sitk.Version_VersionString()}, {os.cpu_count()} CPUs, {platform.machine()} {platform.system()}"
    )
    dx = shutil.which("dcm2niix")
    if dx:
        version = subprocess.run([dx, "-v"], capture_output=True, text=True, check=False).stdout.strip().splitlines()
        print(f"  dcm2niix {version[-1] if version else '?'}")
    print(f"  {args.slices} slices × {ROWS}×{COLS} int16, median of {args.repeats} repeats, warm page cache")

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="radlens-bench-", dir=args.workdir))
    try:
        t0 = time.perf_counter()
        expected = phantom(args.slices)
        series = work / "series"
        write_dicom_series(expected, series, spacing=SPACING, series_description="bench phantom", uid_seed="bench")
        headers = work / "headers"
        if "headers" in sections:
            write_header_folder(headers, args.headers)
        print(f"  (data written in {time.perf_counter() - t0:.1f} s, not timed, under {work})")
        paths = files_in(series)
        if "load" in sections:
            section_load(series, paths, args.repeats, expected)
        if "headers" in sections:
            section_headers(headers, args.repeats)
        if "convert" in sections:
            warm(paths)
            section_convert(series, work, args.repeats)
        if "memory" in sections:
            warm(paths)
            section_memory(series, expected.nbytes)
        if "fourd" in sections:
            section_fourd(work, args.fourd, args.repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
