"""4-D series, Siemens mosaics and mixed enhanced objects: grouping, geometry, tables, against dcm2niix.

Inputs are real scanner files (nibabel's Siemens DWI mosaics) or series written here with pydicom
from Colin27 in each vendor's tag conventions (:mod:`tests.inference.series4d`); the oracle is
dcm2niix run on the same files: voxel centres within 0.05 mm, values equal, ``.bval`` equal and
``.bvec`` equal once both are taken back to the patient frame through each file's own affine.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt
import pytest

from inference.errors import AmbiguousVolumesError, IncompleteVolumesError
from inference.io.dicom_loader import load_stack
from inference.io.nifti_writer import ras_affine
from inference.io.scan import scan
from inference.volume import FourthAxis, Volume

from .geometry_oracle import RAS_TO_LPS, in_other_index_order
from .series4d import (
    Geometry,
    anatomy,
    contrasts,
    write_classic,
    write_enhanced,
    write_enhanced_per_volume,
    write_enhanced_timeseries,
)

NIBABEL_DATA = Path(nib.__file__).parent / "nicom" / "tests" / "data"
BVALS = [0.0, 1000.0, 1000.0, 0.0, 2000.0]
BVECS = [(0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.6, 0.8), (0.0, 0.0, 0.0), (0.57735, 0.57735, -0.57735)]


def _load(folder: Path) -> Volume:
    stacks = scan(folder).stacks()
    assert len(stacks) == 1, [s.summary() for s in stacks]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_stack(stacks[0])


def _dcm2niix(folder: Path, out: Path) -> list[Path]:
    out.mkdir()
    done = subprocess.run(
        ["dcm2niix", "-z", "n", "-o", str(out), "-f", "x", str(folder)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return sorted(out.glob("*.nii"))


def _same_as_dcm2niix(volume: Volume, nifti: Path) -> None:
    """Every volume's voxel centres (0.05 mm) and values equal dcm2niix's."""
    img = nib.load(str(nifti))
    data = np.asarray(img.dataobj)
    data = data[..., np.newaxis] if data.ndim == 3 else data
    assert data.shape[3] == volume.n_volumes
    affine = RAS_TO_LPS @ img.affine
    for n in range(volume.n_volumes):
        theirs = np.transpose(data[..., n], (2, 1, 0))
        ours = volume.frame(n)
        placed = in_other_index_order(theirs, affine, ours.affine, ours.shape, atol_mm=0.05)
        np.testing.assert_array_equal(placed, ours.voxels, err_msg=f"volume {n}")


def _bvec_to_lps(bvec: npt.NDArray[np.float64], ras: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """FSL ``.bvec`` columns (voxel frame, x negated for a positive determinant) back to patient LPS."""
    rotation = ras[:3, :3] / np.linalg.norm(ras[:3, :3], axis=0)
    v = bvec.copy()
    if np.linalg.det(ras[:3, :3]) > 0:
        v[0] = -v[0]
    return np.asarray(np.diag([-1.0, -1.0, 1.0]) @ rotation @ v)


def _tables(nifti: Path) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    stem = str(nifti)[: -len(".nii.gz")] if str(nifti).endswith(".gz") else str(nifti)[: -len(".nii")]
    bval = np.loadtxt(stem + ".bval", ndmin=1)
    bvec = np.loadtxt(stem + ".bvec", ndmin=2)
    return bval, _bvec_to_lps(bvec, nib.load(str(nifti)).affine)


def _radlens(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inference.cli.main", *args], capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def brain() -> npt.NDArray[np.float64]:
    return anatomy(5)


def test_siemens_mosaics_become_one_4d_diffusion_stack_like_nibabel_and_dcm2niix(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel.nicom: "DICOM readers are highly experimental"
        from nibabel.nicom import csareader

    folder = tmp_path / "mosaics"
    folder.mkdir()
    for name in ("siemens_dwi_0", "siemens_dwi_1000"):
        (folder / f"{name}.dcm").write_bytes(gzip.decompress((NIBABEL_DATA / f"{name}.dcm.gz").read_bytes()))
    (stack,) = scan(folder).stacks()
    assert (stack.is_mosaic, stack.n_volumes, stack.fourth_axis, stack.n_slices) == (True, 2, "diffusion", 48)
    from inference.io.acquisition_keys import read_frame_keys

    for header in stack.headers:  # the CSA header read from the bytes, as through pydicom
        assert read_frame_keys(header) == read_frame_keys(header, fast=False)
    assert (stack.rows, stack.columns) == (128, 128)
    volume = _load(folder)
    assert volume.voxels.shape == (2, 48, 128, 128)
    # nibabel's test_dicomwrappers EXPECTED_AFFINE for this mosaic (RAS, the same axis order as ours).
    expected = np.array(
        [
            [-1.796875, 0, 0, 115],
            [0, -1.79684984, -0.01570896, 135.028779],
            [0, -0.00940843750, 2.99995887, -78.710481],
            [0, 0, 0, 1],
        ]
    )
    np.testing.assert_allclose(ras_affine(volume), expected, atol=1e-5)
    assert [f.b_value for f in volume.frames] == [0.0, 1000.0]
    import pydicom

    csa = csareader.get_csa_header(pydicom.dcmread(folder / "siemens_dwi_1000.dcm", stop_before_pixels=True))
    np.testing.assert_allclose(volume.frames[1].gradient, csareader.get_g_vector(csa), atol=1e-6)
    (nifti,) = _dcm2niix(folder, tmp_path / "dx")
    _same_as_dcm2niix(volume, nifti)  # (these files' pixels are zero: the tiles are checked below)
    import json

    proc = _radlens("convert", str(folder), str(tmp_path / "rl"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ours = json.loads(next((tmp_path / "rl").glob("*.json")).read_text())
    theirs = json.loads(nifti.with_suffix(".json").read_text())
    assert ours["SliceTiming"] == pytest.approx(theirs["SliceTiming"], abs=1e-6)  # CSA MosaicRefAcqTimes
    for name in ("RepetitionTime", "EchoTime", "FlipAngle", "MagneticFieldStrength"):
        assert ours[name] == pytest.approx(theirs[name]), name
    # dcm2niix flips the rows, so its "j-" is "j" in the DICOM row order this file keeps.
    assert (theirs["PhaseEncodingDirection"], ours["PhaseEncodingDirection"]) == ("j-", "j")


@pytest.mark.parametrize("vendor", ["SIEMENS", "GE", "PHILIPS", "standard"])
def test_diffusion_series_in_each_vendors_tags_matches_dcm2niix(
    vendor: str, brain: npt.NDArray[np.float64], tmp_path: Path
) -> None:
    vox = contrasts(brain, [1.0, 0.6, 0.5, 0.98, 0.3])
    written = write_classic(tmp_path / "in", vox, vendor=vendor, bvals=BVALS, bvecs=BVECS)
    volume = _load(written.folder)
    assert volume.is_4d and volume.frames[0].axis is FourthAxis.DIFFUSION
    np.testing.assert_array_equal(volume.voxels, vox)  # acquisition order, slices in place
    (theirs,) = _dcm2niix(written.folder, tmp_path / "dx")
    _same_as_dcm2niix(volume, theirs)
    proc = _radlens("convert", str(written.folder), str(tmp_path / "rl"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (ours,) = sorted((tmp_path / "rl").glob("*.nii.gz"))
    our_bval, our_bvec = _tables(ours)
    their_bval, their_bvec = _tables(theirs)
    np.testing.assert_array_equal(our_bval, their_bval)
    np.testing.assert_allclose(our_bvec, their_bvec, atol=2e-3)
    expected = np.array(BVECS).T / np.maximum(np.linalg.norm(np.array(BVECS), axis=1), 1e-12)
    np.testing.assert_allclose(our_bvec, expected, atol=1e-4)


@pytest.mark.parametrize("time_tags", ["acquisition", "temporal"])
def test_time_series_is_4d_in_time_and_matches_dcm2niix(
    time_tags: str, brain: npt.NDArray[np.float64], tmp_path: Path
) -> None:
    vox = contrasts(brain, [1.0, 1.01, 1.02, 0.99])
    written = write_classic(tmp_path / "in", vox, time_tags=time_tags)
    (stack,) = scan(written.folder).stacks()
    assert (stack.n_volumes, stack.n_slices, stack.fourth_axis) == (4, 5, "time")
    volume = _load(written.folder)
    assert [f.value for f in volume.frames] == pytest.approx([0.0, 2.0, 4.0, 6.0])
    np.testing.assert_array_equal(volume.voxels, vox)
    (theirs,) = _dcm2niix(written.folder, tmp_path / "dx")
    _same_as_dcm2niix(volume, theirs)


def test_a_volume_with_a_missing_file_is_left_out_and_said(brain: npt.NDArray[np.float64], tmp_path: Path) -> None:
    vox = contrasts(brain, [1.0, 1.01, 1.02, 0.99])
    written = write_classic(tmp_path / "in", vox, skip=[(2, 3)])
    (stack,) = scan(written.folder).stacks()
    assert stack.n_volumes == 3
    assert any("incomplete-volumes" in str(q) and "volume(s) 3 of 4" in str(q) for q in stack.qa)
    with pytest.warns(UserWarning, match="incomplete-volumes"):
        volume = load_stack(stack)
    np.testing.assert_array_equal(volume.voxels, vox[[0, 1, 3]])
    assert [f.value for f in volume.frames] == pytest.approx([0.0, 2.0, 6.0])


def test_missing_file_without_a_volume_key_refuses_the_stack(brain: npt.NDArray[np.float64], tmp_path: Path) -> None:
    vox = contrasts(brain, [1.0, 1.01, 1.02])
    written = write_classic(tmp_path / "in", vox, time_tags="time-only", skip=[(1, 0)])
    (stack,) = scan(written.folder).stacks()
    assert stack.refusal is not None and stack.refusal[0] == "IncompleteVolumesError"
    with pytest.raises(IncompleteVolumesError, match="fewer than 3 slices"):
        load_stack(stack)
    proc = _radlens("convert", str(written.folder), str(tmp_path / "out.nii.gz"))
    assert proc.returncode != 0 and "IncompleteVolumesError" not in proc.stdout
    assert not (tmp_path / "out.nii.gz").exists()


def test_slices_sharing_positions_with_nothing_to_tell_them_apart_are_refused(
    brain: npt.NDArray[np.float64], tmp_path: Path
) -> None:
    vox = contrasts(brain, [1.0, 1.01])
    written = write_classic(tmp_path / "in", vox, time_tags="none")
    (stack,) = scan(written.folder).stacks()
    assert stack.refusal is not None
    with pytest.raises(AmbiguousVolumesError, match="not stacked"):
        load_stack(stack)


def test_one_series_uid_with_two_series_numbers_is_two_series(brain: npt.NDArray[np.float64], tmp_path: Path) -> None:
    vox = contrasts(brain, [1.0])
    write_classic(tmp_path / "in" / "a", vox, series_number=3)
    write_classic(tmp_path / "in" / "b", vox, series_number=4)
    import pydicom

    uid = pydicom.dcmread(next((tmp_path / "in" / "a").iterdir())).SeriesInstanceUID
    for f in (tmp_path / "in" / "b").iterdir():
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = uid
        ds.save_as(f)
    stacks = scan(tmp_path / "in").stacks()
    assert sorted(s.series_number for s in stacks) == [3, 4]
    assert all(not s.is_4d and s.n_slices == 5 for s in stacks)


def test_magnitude_and_phase_of_one_series_are_two_stacks(brain: npt.NDArray[np.float64], tmp_path: Path) -> None:
    vox = contrasts(brain, [1.0, 0.2])
    import pydicom

    written = write_classic(tmp_path / "in", vox, time_tags="none")
    for f in written.files:
        ds = pydicom.dcmread(f)
        if ds.InstanceNumber > 5:  # GE-style: the component only in ImageType's fourth value
            ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER", "PHASE"]
        else:
            ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER", "MAGNITUDE"]
        ds.save_as(f)
    stacks = scan(written.folder).stacks()
    assert len(stacks) == 2 and all(s.refusal is None and not s.is_4d for s in stacks)


def test_enhanced_file_with_magnitude_phase_and_two_echoes_is_split(
    brain: npt.NDArray[np.float64], tmp_path: Path
) -> None:
    magnitude = contrasts(brain, [1.0, 0.7])
    phase = contrasts(brain, [0.1, 0.15])
    folder = tmp_path / "in"
    folder.mkdir()
    write_enhanced(folder / "enhanced.dcm", magnitude, phase, [5.0, 12.0])
    stacks = scan(folder).stacks()
    assert len(stacks) == 4 and all(s.refusal is None and not s.is_4d and s.n_slices == 5 for s in stacks)
    loaded = []
    for s in stacks:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded.append(load_stack(s).voxels)
    expected = [magnitude[0], magnitude[1], phase[0], phase[1]]
    for want in expected:
        assert sum(np.array_equal(got, want) for got in loaded) == 1
    theirs = _dcm2niix(folder, tmp_path / "dx")
    assert len(theirs) == 4  # dcm2niix splits them the same way


def test_colour_and_4d_are_told_apart_and_frame_gives_3d(brain: npt.NDArray[np.float64], tmp_path: Path) -> None:
    vox = contrasts(brain, [1.0, 0.5, 0.25])
    written = write_classic(tmp_path / "in", vox, vendor="standard", bvals=BVALS[:3], bvecs=BVECS[:3])
    volume = _load(written.folder)
    assert volume.is_4d and not volume.is_colour and volume.shape == (5, 32, 28)
    one = volume.frame(2)
    assert one.voxels.ndim == 3 and not one.is_4d and one.metadata.extra["frame"].b_value == 1000.0
    np.testing.assert_array_equal(one.voxels, vox[2])
    mask = volume.with_voxels(np.zeros(volume.shape, np.uint8))  # a 3-D map on the 4-D volume's grid
    assert not mask.is_4d and mask.shape == volume.shape and mask.affine.tolist() == volume.affine.tolist()
    assert volume.with_voxels(volume.voxels.astype(np.float32)).frames == volume.frames
    colour = Volume(np.zeros((5, 4, 4, 3), np.uint8), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    assert colour.is_colour and not colour.is_4d and colour.shape == (5, 4, 4)


def test_convert_writes_a_bids_sidecar_without_identifiers(brain: npt.NDArray[np.float64], tmp_path: Path) -> None:
    import json

    vox = contrasts(brain, [1.0, 1.01, 1.02])
    written = write_classic(tmp_path / "in", vox)
    proc = _radlens("convert", str(written.folder), str(tmp_path / "out"), "-f", "%s_%m_%a")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (sidecar,) = (tmp_path / "out").glob("5_MR_time.json")
    data = json.loads(sidecar.read_text())
    assert data["RepetitionTime"] == 2.0 and data["EchoTime"] == 0.03 and data["FlipAngle"] == 90
    assert data["Manufacturer"] == "SIEMENS" and data["MagneticFieldStrength"] == 3
    assert data["PhaseEncodingAxis"] == "j" and data["FourthAxis"] == "time"
    assert data["SliceTiming"] == pytest.approx([0.0, 0.4, 0.8, 1.2, 1.6])
    text = sidecar.read_text()
    assert "Test^Four" not in text and "4D-0001" not in text
    img = nib.load(str(tmp_path / "out" / "5_MR_time.nii.gz"))
    assert img.shape == (28, 32, 5, 3) and img.header.get_zooms()[3] == pytest.approx(2.0)


def test_folder_mode_converts_every_stack_in_one_scan(brain: npt.NDArray[np.float64], tmp_path: Path) -> None:
    write_classic(tmp_path / "in" / "a", contrasts(brain, [1.0, 1.01]), series_number=3)
    write_classic(tmp_path / "in" / "b", contrasts(brain, [1.0]), series_number=4, geometry=Geometry(origin=(0, 0, 0)))
    write_classic(tmp_path / "in" / "c", contrasts(brain, [1.0, 2.0]), series_number=5, time_tags="none")
    proc = _radlens("convert", str(tmp_path / "in"), str(tmp_path / "out"))
    assert proc.returncode == 1  # one stack refused, the others written
    assert sorted(p.name for p in (tmp_path / "out").glob("*.nii.gz")) == ["3_ep2d_test.nii.gz", "4_ep2d_test.nii.gz"]
    assert "not converted" in proc.stdout and "not stacked" in proc.stdout
    assert "2 of 3 stack(s) converted" in proc.stdout
    assert not any(p.name.startswith(".") for p in (tmp_path / "out").iterdir())
    proc = _radlens("convert", str(tmp_path / "in"), str(tmp_path / "out.nrrd"))
    assert proc.returncode != 0 and "must end in .nii" in proc.stderr and not (tmp_path / "out.nrrd").exists()


def test_shuffled_copies_give_the_same_volumes(brain: npt.NDArray[np.float64], tmp_path: Path) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    vox = contrasts(brain[:3], [1.0, 0.6, 0.5, 0.98])
    written = write_classic(tmp_path / "in", vox, vendor="SIEMENS", bvals=BVALS[:4], bvecs=BVECS[:4])
    files = sorted(written.files)
    reference = _load(written.folder)
    counter = iter(range(10_000))

    @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.permutations(list(range(len(files)))))
    def check(order: list[int]) -> None:
        folder = tmp_path / f"perm{next(counter)}"
        folder.mkdir()
        for name, source in zip(order, files, strict=True):
            (folder / f"f{name:03d}.dcm").symlink_to(source)
        volume = _load(folder)
        np.testing.assert_array_equal(volume.voxels, reference.voxels)
        assert volume.frames == reference.frames
        shutil.rmtree(folder)

    check()


def test_scan_summary_and_thumbnail_of_a_4d_stack(brain: npt.NDArray[np.float64], tmp_path: Path) -> None:
    from inference.io.thumbnails import stack_thumbnail

    written = write_classic(tmp_path / "in", contrasts(brain, [1.0, 1.01, 1.02]))
    (stack,) = scan(written.folder).stacks()
    summary = stack.summary()
    assert (summary["slices"], summary["volumes"], summary["fourth_axis"], summary["refused"]) == (5, 3, "time", None)
    assert summary["dimensions"] == [5, 32, 28]
    from inference.cli.scan_command import format_scan

    assert "[3 time volumes × 5×32×28]" in format_scan(scan(written.folder))
    thumb = stack_thumbnail(stack)
    assert thumb is not None and thumb.shape == (32, 28) and thumb.max() > 0


def test_enhanced_files_of_one_volume_each_join_into_one_4d_series(
    brain: npt.NDArray[np.float64], tmp_path: Path
) -> None:
    """Siemens XA writes one enhanced object per volume; dcm2niix (this version) converts each alone,
    so each of its outputs is checked against the matching volume of ours."""
    vox = contrasts(brain, [1.0, 0.6, 0.5, 0.98, 0.3])
    write_enhanced_per_volume(tmp_path / "in", vox, BVALS, BVECS)
    (stack,) = scan(tmp_path / "in").stacks()
    assert (stack.n_volumes, stack.fourth_axis, stack.n_slices) == (5, "diffusion", 5)
    volume = _load(tmp_path / "in")
    np.testing.assert_array_equal(volume.voxels, vox)  # frames shuffled in each file, files named out of order
    assert [f.b_value for f in volume.frames] == BVALS
    theirs = _dcm2niix(tmp_path / "in", tmp_path / "dx")
    assert len(theirs) == 5
    for nifti in theirs:
        img = nib.load(str(nifti))
        raw = np.asarray(img.dataobj)
        data = np.transpose(raw[..., 0] if raw.ndim == 4 else raw, (2, 1, 0))
        matches = []
        for n in range(5):
            ours = volume.frame(n)
            placed = in_other_index_order(data, RAS_TO_LPS @ img.affine, ours.affine, ours.shape, atol_mm=0.05)
            if np.array_equal(placed, ours.voxels):
                matches.append(n)
        assert len(matches) == 1, nifti
    # dcm2niix writes b = 0 for each of these single-volume files: the tables are checked against the truth.
    (tmp_path / "rl").mkdir()
    proc = _radlens("convert", str(tmp_path / "in"), str(tmp_path / "rl" / "dwi.nii.gz"))
    assert proc.returncode == 0, proc.stderr
    bval, bvec = _tables(tmp_path / "rl" / "dwi.nii.gz")
    np.testing.assert_array_equal(bval, BVALS)
    expected = np.array(BVECS).T / np.maximum(np.linalg.norm(np.array(BVECS), axis=1), 1e-12)
    np.testing.assert_allclose(bvec, expected, atol=1e-4)


def test_philips_derived_trace_volume_is_left_out_like_dcm2niix(brain: npt.NDArray[np.float64], tmp_path: Path) -> None:
    vox = contrasts(brain, [1.0, 0.6, 0.5, 0.4])
    bvecs = [(0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 0.0)]
    written = write_classic(tmp_path / "in", vox, vendor="PHILIPS", bvals=[0, 1000, 1000, 1000], bvecs=bvecs)
    (stack,) = scan(written.folder).stacks()
    assert stack.n_volumes == 3 and any("derived-volumes" in str(q) for q in stack.qa)
    volume = _load(written.folder)
    np.testing.assert_array_equal(volume.voxels, vox[:3])
    theirs = [p for p in _dcm2niix(written.folder, tmp_path / "dx") if "ADC" not in p.name]
    (main,) = theirs
    _same_as_dcm2niix(volume, main)
    (tmp_path / "rl").mkdir()
    proc = _radlens("convert", str(written.folder), str(tmp_path / "rl" / "dwi.nii.gz"))
    assert proc.returncode == 0, proc.stderr
    ours_bval, ours_bvec = _tables(tmp_path / "rl" / "dwi.nii.gz")
    their_bval, their_bvec = _tables(main)
    np.testing.assert_array_equal(ours_bval, their_bval)
    np.testing.assert_allclose(ours_bvec, their_bvec, atol=1e-4)


@pytest.mark.parametrize("implicit", [False, True])
@pytest.mark.parametrize("vendor", ["SIEMENS", "GE", "PHILIPS", "standard"])
def test_keys_read_from_the_bytes_equal_pydicoms(
    vendor: str, implicit: bool, brain: npt.NDArray[np.float64], tmp_path: Path
) -> None:
    from inference.io.acquisition_keys import read_frame_keys
    from inference.io.dicom_header import read_header

    vox = contrasts(brain[:2], [1.0, 0.6, 0.5, 0.98, 0.3])
    written = write_classic(tmp_path / "in", vox, vendor=vendor, bvals=BVALS, bvecs=BVECS, implicit=implicit)
    for path in written.files:
        header = read_header(path)
        fast = read_frame_keys(header)
        assert fast == read_frame_keys(header, fast=False)
        assert fast[0].b_value is not None and fast[0].acquisition_time is not None


def test_enhanced_time_series_in_one_file_is_4d_in_its_dimension_order(
    brain: npt.NDArray[np.float64], tmp_path: Path
) -> None:
    vox = contrasts(brain, [1.0, 1.01, 1.02, 0.99])
    (tmp_path / "in").mkdir()
    write_enhanced_timeseries(tmp_path / "in" / "fmri.dcm", vox)
    (stack,) = scan(tmp_path / "in").stacks()
    assert (stack.n_volumes, stack.n_slices, stack.fourth_axis) == (4, 5, "time") and stack.refusal is None
    volume = _load(tmp_path / "in")
    np.testing.assert_array_equal(volume.voxels, vox)
    (theirs,) = _dcm2niix(tmp_path / "in", tmp_path / "dx")
    _same_as_dcm2niix(volume, theirs)


def test_an_extra_slice_in_a_3d_series_is_refused_and_a_copied_file_ignored(
    brain: npt.NDArray[np.float64], tmp_path: Path
) -> None:
    import pydicom

    vox = contrasts(brain, [1.0])
    written = write_classic(tmp_path / "in", vox)
    shutil.copy(written.files[0], tmp_path / "in" / "copy-of-first")  # the same instance twice
    (stack,) = scan(written.folder).stacks()
    assert stack.refusal is None and stack.n_slices == 5
    assert any("duplicate-files" in str(q) for q in stack.qa)
    np.testing.assert_array_equal(_load(written.folder).voxels, vox[0])
    extra = pydicom.dcmread(written.files[2])
    extra.SOPInstanceUID = pydicom.uid.generate_uid()
    extra.save_as(tmp_path / "in" / "extra")  # another image at a position already taken
    (stack,) = scan(written.folder).stacks()
    assert stack.refusal is not None and stack.refusal[0] == "AmbiguousVolumesError"
    with pytest.raises(AmbiguousVolumesError, match="1 of 5 positions hold more than one slice"):
        load_stack(stack)


def test_mosaic_tiles_are_cut_in_slice_order(tmp_path: Path) -> None:
    """nibabel's real mosaic headers (CSA included) over a mosaic of known slices (its own pixels
    are zero): the tiles come out as the slices, in CSA slice order, as dcm2niix cuts them."""
    import pydicom

    from .colin27 import read_colin27

    t1 = read_colin27()[0][40:136:2, 40:168, 26:154].astype(np.float64)
    t1 = 1000.0 * t1 / max(float(t1.max()), 1.0)
    truth = np.stack([np.rint(t1 * (1.0 - 0.4 * v) + 100 * v) for v in (0, 1)]).astype(np.uint16)  # (t, k, j, i)
    folder = tmp_path / "mosaics"
    folder.mkdir()
    for v, name in enumerate(("siemens_dwi_0", "siemens_dwi_1000")):
        raw = gzip.decompress((NIBABEL_DATA / f"{name}.dcm.gz").read_bytes())
        (folder / f"{name}.dcm").write_bytes(raw)
        ds = pydicom.dcmread(folder / f"{name}.dcm")
        mosaic = np.zeros((896, 896), np.uint16)
        for k in range(48):
            r, c = divmod(k, 7)
            mosaic[r * 128 : (r + 1) * 128, c * 128 : (c + 1) * 128] = truth[v, k]
        ds.PixelData = mosaic.tobytes()
        ds.save_as(folder / f"{name}.dcm")
    volume = _load(folder)
    np.testing.assert_array_equal(volume.voxels, truth.astype(volume.voxels.dtype))
    (nifti,) = _dcm2niix(folder, tmp_path / "dx")
    _same_as_dcm2niix(volume, nifti)


def test_acquisitions_over_different_ranges_become_separate_stacks(
    brain: npt.NDArray[np.float64], tmp_path: Path
) -> None:
    """Multi-phase CT style: two acquisitions of one series overlapping over part of their range."""
    vox = contrasts(brain, [1.0, 1.3])
    # Acquisition 1 covers slices 0-3, acquisition 2 slices 2-4: three positions are shared.
    written = write_classic(tmp_path / "in", vox, skip=[(0, 4), (1, 0), (1, 1)])
    stacks = scan(written.folder).stacks()
    assert sorted(s.n_slices for s in stacks) == [3, 4]
    assert all(not s.is_4d and s.refusal is None for s in stacks)
    assert all(any("separate-acquisitions" in str(q) for q in s.qa) for s in stacks)
    loaded = sorted((_load_stack(s) for s in stacks), key=lambda v: v.shape[0])
    np.testing.assert_array_equal(loaded[0].voxels, vox[1, 2:5])
    np.testing.assert_array_equal(loaded[1].voxels, vox[0, 0:4])
    assert all(len(s.headers) == s.n_slices for s in stacks)


def _load_stack(stack: object) -> Volume:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_stack(stack)  # type: ignore[arg-type]


def test_ge_magnitude_and_phase_told_apart_by_the_private_image_type(
    brain: npt.NDArray[np.float64], tmp_path: Path
) -> None:
    import pydicom

    vox = contrasts(brain, [1.0, 0.2])
    written = write_classic(tmp_path / "in", vox, vendor="GE", time_tags="none")
    for f in written.files:
        ds = pydicom.dcmread(f)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]  # GE says nothing of the component here
        block = ds.private_block(0x0043, "GEMS_PARM_01", create=True)
        block.add_new(0x2F, "SS", 1 if ds.InstanceNumber > 5 else 0)
        ds.save_as(f)
    stacks = scan(written.folder).stacks()
    assert len(stacks) == 2 and all(s.refusal is None and not s.is_4d and s.n_slices == 5 for s in stacks)
    got = sorted((_load_stack(s).voxels for s in stacks), key=lambda v: float(v.mean()))
    np.testing.assert_array_equal(got[0], vox[1])
    np.testing.assert_array_equal(got[1], vox[0])


def test_each_volume_matches_simpleitk_reading_that_volumes_files(
    brain: npt.NDArray[np.float64], tmp_path: Path
) -> None:
    """SimpleITK reads 3-D series only: given the files of one volume, it is a second oracle."""
    import SimpleITK as sitk

    vox = contrasts(brain, [1.0, 0.6, 0.5])
    written = write_classic(tmp_path / "in", vox, vendor="SIEMENS", bvals=BVALS[:3], bvecs=BVECS[:3])
    (stack,) = scan(written.folder).stacks()
    volume = _load(written.folder)
    for v in range(volume.n_volumes):
        refs = stack.slices[v * stack.n_slices : (v + 1) * stack.n_slices]
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames([stack.headers[r.header_index].path for r in refs])
        img = reader.Execute()
        theirs = sitk.GetArrayFromImage(img)
        affine = np.eye(4)
        affine[:3, :3] = np.array(img.GetDirection()).reshape(3, 3) * np.array(img.GetSpacing())[None, :]
        affine[:3, 3] = img.GetOrigin()
        ours = volume.frame(v)
        placed = in_other_index_order(theirs, affine, ours.affine, ours.shape, atol_mm=0.05)
        np.testing.assert_array_equal(placed, ours.voxels)


def test_keys_read_from_the_bytes_equal_pydicoms_on_every_shipped_single_frame_file() -> None:
    """Real files of many makers and layouts (pydicom's and nibabel's test data)."""
    import os

    import pydicom.data

    from inference.errors import LoadError
    from inference.io.acquisition_keys import read_frame_keys
    from inference.io.dicom_header import read_header
    from inference.io.raw_elements import read_elements

    roots = [Path(pydicom.data.get_testdata_file("CT_small.dcm")).parent, Path(nib.__file__).parent]
    compared = walked = 0
    for root in roots:
        for path in sorted(root.rglob("*")):
            if not path.is_file() or os.path.getsize(path) > 8 << 20:
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # pydicom on deliberately odd files
                    header = read_header(path)
                    slow = read_frame_keys(header, fast=False)
            except (LoadError, Exception):  # not DICOM, or pydicom cannot read it: nothing to compare
                continue
            if header.number_of_frames > 1:
                continue
            compared += 1
            walked += read_elements(header.path, header.transfer_syntax, header.pixel_data_offset) is not None
            assert read_frame_keys(header) == slow, path
    assert compared > 100 and walked > 40
