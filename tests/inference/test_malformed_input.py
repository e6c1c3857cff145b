"""The worst malformed inputs of issue 24, each reproduced: a typed error naming the field and its
value, quickly and without a large allocation, and the good series beside it still loads."""

from __future__ import annotations

import os
import random
import shutil
import struct
import time
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from inference.errors import (
    AbsurdDimensionsError,
    InvalidValueError,
    LoadError,
    RadLensError,
    UnreadableFileError,
)
from inference.io.dicom_header import read_header
from inference.io.dicom_loader import load_stack
from inference.io.image_file import read_image_file
from inference.io.image_file_fallback import NO_SIMPLEITK_ENV
from inference.io.isolated_decode import decode_isolated
from inference.io.pixel_decode import decode_all_frames, read_dataset
from inference.io.scan import scan

SERIES = "1.2.826.0.1.3680043.8.498.2424000000001"
MODES = ["simpleitk", "no-simpleitk"]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "no-simpleitk":
        monkeypatch.setenv(NO_SIMPLEITK_ENV, "1")
    else:
        monkeypatch.delenv(NO_SIMPLEITK_ENV, raising=False)
    return str(request.param)


def pydicom_file(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None
    return Path(path)


def good_pair(folder: Path, modality: str = "CT", placed: bool = True) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(2):
        ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
        ds.SeriesInstanceUID = SERIES
        ds.SOPInstanceUID = f"{SERIES}.{k + 1}"
        ds.Modality = modality
        ds.ImagePositionPatient = [0, 0, 3.0 * k]
        if not placed:
            del ds.ImagePositionPatient
        ds.save_as(folder / f"good_{k}.dcm")
        paths.append(folder / f"good_{k}.dcm")
    return paths


def assert_good_pair_loads(folder: Path) -> None:
    result = scan(folder)
    stacks = [s for s in result.stacks() if s.series_uid == SERIES]
    assert len(stacks) == 1, result.summary()
    volume = load_stack(stacks[0], allow_missing_geometry=True)
    assert volume.shape[0] >= 2


def sform_nan_nifti(path: Path) -> Path:
    """The issue's hang: srow_x[0] = 0 and srow_z[3] = NaN (SimpleITK spun for minutes)."""
    affine = np.diag([0.9, 0.9, 2.0, 1.0])
    img = nib.Nifti1Image(np.zeros((8, 8, 4), np.int16), affine)
    img.set_sform(affine, code=1)
    nib.save(img, path)
    raw = bytearray(path.read_bytes())
    struct.pack_into("<f", raw, 280, 0.0)
    struct.pack_into("<f", raw, 312 + 12, float("nan"))
    path.write_bytes(bytes(raw))
    return path


def test_nifti_with_a_nan_sform_is_refused_at_once(tmp_path: Path, mode: str) -> None:
    bad = sform_nan_nifti(tmp_path / "bad.nii")
    started = time.monotonic()
    with pytest.raises(InvalidValueError, match="sform") as info:
        read_image_file(bad)
    assert info.value.path == bad and "nan" in info.value.reason
    assert time.monotonic() - started < 5
    good_pair(tmp_path)
    result = scan(tmp_path)
    assert [Path(p.path).name for p in result.errors] == ["bad.nii"]
    assert_good_pair_loads(tmp_path)


def nrrd_file(path: Path, extra: str = "", detached: str | None = None) -> Path:
    body = np.arange(24, dtype=np.int16).tobytes()
    lines = ["NRRD0004", "type: short", "dimension: 3", "sizes: 4 3 2", "encoding: raw", "endian: little"]
    if detached is not None:
        lines.append(f"data file: {detached}")
    head = ("\n".join(lines) + ("\n" + extra if extra else "") + "\n\n").encode()
    path.write_bytes(head if detached is not None else head + body)
    return path


def test_nrrd_line_skip_beyond_the_file_is_refused(tmp_path: Path, mode: str) -> None:
    bad = nrrd_file(tmp_path / "skip.nrrd", "line skip: 1000000000")
    with pytest.raises(InvalidValueError, match="line skip is 1000000000"):
        read_image_file(bad)


def test_nrrd_byte_skip_beyond_the_file_is_refused(tmp_path: Path, mode: str) -> None:
    bad = nrrd_file(tmp_path / "skip.nrrd", "byte skip: 1000000000")
    with pytest.raises(InvalidValueError, match="byte skip is 1000000000"):
        read_image_file(bad)


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_detached_data_file_that_is_not_a_regular_file_is_refused(tmp_path: Path, mode: str, kind: str) -> None:
    target = {"fifo": "data.raw", "device": "/dev/zero", "folder": "sub"}[kind]
    if kind == "fifo":
        os.mkfifo(tmp_path / "data.raw")
    if kind == "folder":
        (tmp_path / "sub").mkdir()
    bad = nrrd_file(tmp_path / "detached.nhdr", detached=target)
    started = time.monotonic()
    with pytest.raises(UnreadableFileError, match="not a regular file"):
        read_image_file(bad)
    assert time.monotonic() - started < 5
    mhd = tmp_path / "detached.mhd"
    mhd.write_text(
        f"ObjectType = Image\nNDims = 3\nDimSize = 4 3 2\nElementType = MET_SHORT\nElementDataFile = {target}\n"
    )
    with pytest.raises(UnreadableFileError, match="not a regular file"):
        read_image_file(mhd)


def test_a_bad_nrrd_beside_a_good_series_in_the_packaged_reader_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(NO_SIMPLEITK_ENV, "1")
    good_pair(tmp_path)
    (tmp_path / "broken.nrrd").write_bytes(b"NRRD0004\ntype: short\nsizes: 4 x 2\ndimension: 3\nencoding: raw\n\n\0\0")
    result = scan(tmp_path)
    assert [Path(p.path).name for p in result.errors] == ["broken.nrrd"]
    assert "sizes" in result.errors[0].reason
    assert_good_pair_loads(tmp_path)


def test_number_of_frames_beyond_the_file_allocates_nothing(tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_file("JPEG2000.dcm"))  # 3 KB, one frame
    ds.NumberOfFrames = 99999
    bad = tmp_path / "frames.dcm"
    ds.save_as(bad)
    tracemalloc.start()
    try:
        with pytest.raises(AbsurdDimensionsError, match="NumberOfFrames is 99999"):
            read_header(bad)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20


def test_compressed_pixel_data_with_more_frames_than_fragments_is_refused(tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_file("emri_small_jpeg_2k_lossless.dcm"))  # 10 frames, 10 fragments
    ds.NumberOfFrames = 40
    bad = tmp_path / "frames.dcm"
    ds.save_as(bad)
    header = read_header(bad)
    with pytest.raises(AbsurdDimensionsError, match=r"NumberOfFrames is 40.*10 fragment"):
        decode_all_frames(header, read_dataset(header))


def test_a_header_element_claiming_4_gib_reserves_nothing(tmp_path: Path) -> None:
    data = bytearray(pydicom_file("CT_small.dcm").read_bytes())
    # An explicit-VR OB element in the data set with a 0xFFFFFFF0 length: a private one, inserted.
    at = data.index(b"\x08\x00\x16\x00")  # SOP Class UID: insert before it (tag order kept for group 0008)
    data[at:at] = b"\x08\x00\x01\x00OB\x00\x00" + struct.pack("<I", 0xFFFFFFF0)
    bad = tmp_path / "huge.dcm"
    bad.write_bytes(bytes(data))
    tracemalloc.start()
    try:
        with pytest.raises(RadLensError):
            read_header(bad)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20


@pytest.mark.parametrize(
    ("keyword", "value", "words"),
    [
        ("RescaleSlope", "NaN", "RescaleSlope is nan: not a finite number"),
        ("RescaleIntercept", "1e308", "RescaleIntercept is 1e+308: not a finite number"),
        ("RescaleSlope", ["1", "2"], "RescaleSlope holds 2 values"),
    ],
)
def test_rescale_values_no_image_has_are_named(tmp_path: Path, keyword: str, value: object, words: str) -> None:
    from pydicom import config

    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    with config.disable_value_validation():
        setattr(ds, keyword, value)
    bad = tmp_path / "rescale.dcm"
    ds.save_as(bad)
    with pytest.raises(InvalidValueError) as info:
        read_header(bad)
    assert words in info.value.reason


def test_one_file_of_another_modality_does_not_decide_the_stack(tmp_path: Path) -> None:
    """Two planar OT slices without positions and one 'CT' file of their series, first by name:
    the CT file used to make the stack CT, whose missing geometry then failed the whole load."""
    good_pair(tmp_path, modality="OT", placed=False)
    ds = pydicom.dcmread(tmp_path / "good_0.dcm")
    ds.Modality = "CT"
    ds.SOPInstanceUID = f"{SERIES}.9"
    ds.save_as(tmp_path / "a_odd.dcm")
    result = scan(tmp_path)
    (stack,) = result.stacks()
    assert stack.modality == "OT"
    assert load_stack(stack).shape[0] == 3


def test_a_slice_whose_position_is_not_usable_forms_no_part_of_the_placed_stack(tmp_path: Path) -> None:
    good_pair(tmp_path)
    ds = pydicom.dcmread(tmp_path / "good_0.dcm")
    ds.SOPInstanceUID = f"{SERIES}.9"
    from pydicom import config

    with config.disable_value_validation():
        ds.ImagePositionPatient = ["nan", "0", "1"]
    ds.save_as(tmp_path / "a_nan.dcm")
    result = scan(tmp_path)
    placed = [s for s in result.stacks() if all(r.geometry.position is not None for r in s.slices)]
    assert len(placed) == 1 and placed[0].n_slices == 2
    assert load_stack(placed[0]).shape[0] == 2


def test_an_undecodable_file_is_left_out_of_its_stack_with_a_note(tmp_path: Path) -> None:
    for k in range(3):
        ds = pydicom.dcmread(pydicom_file("MR_small_jp2klossless.dcm"))
        ds.SeriesInstanceUID = SERIES
        ds.SOPInstanceUID = f"{SERIES}.{k + 1}"
        ds.ImagePositionPatient = [0, 0, 2.0 * k]
        if k == 1:
            frame = bytearray(ds.PixelData)
            frame[40:400] = bytes(360)  # the JPEG 2000 code stream's header wiped
            ds.PixelData = bytes(frame)
        ds.save_as(tmp_path / f"s{k}.dcm")
    (stack,) = scan(tmp_path).stacks()
    assert stack.n_slices == 3
    with pytest.warns(UserWarning, match="s1.dcm left out"):
        volume = load_stack(stack)
    assert volume.shape[0] == 2
    assert any("s1.dcm left out" in q for q in volume.qa_warnings)


def test_a_rust_decoder_panic_is_a_typed_error(tmp_path: Path) -> None:
    """pylibjpeg-rle panics (a BaseException) on some corrupt RLE streams; found by flipping bytes."""
    base = pydicom.dcmread(pydicom_file("MR_small_RLE.dcm"))
    original = bytes(base.PixelData)
    rng = random.Random(0)
    for _ in range(300):
        data = bytearray(original)
        for _ in range(4):
            data[rng.randrange(100, len(data))] = rng.randrange(256)
        base.PixelData = bytes(data)
        try:
            base.pixel_array_options(decoding_plugin="pylibjpeg")
            base.pixel_array  # noqa: B018
        except BaseException as exc:
            if type(exc).__name__ == "PanicException":
                break
    else:
        pytest.fail("no corrupt RLE stream made the Rust decoder panic")
    base.save_as(tmp_path / "panic.dcm")
    header = read_header(tmp_path / "panic.dcm")
    try:  # pylibjpeg is tried first; pydicom's own RLE decoder may then read the stream
        frames = decode_all_frames(header, read_dataset(header))
    except LoadError as exc:
        assert "pylibjpeg" in exc.reason
    else:
        assert frames.shape == (header.rows, header.columns)


def test_gdcm_crash_in_its_worker_is_a_typed_error(tmp_path: Path) -> None:
    """GDCM aborts (SIGABRT) on this JPEG-LS file with a wrong Columns; run apart it cannot take
    this process down. The same worker decodes the intact file to the safe decoders' values."""
    intact = pydicom_file("JPEGLSNearLossless_16.dcm")
    ds = pydicom.dcmread(intact)
    ds.Columns = 32
    ds.save_as(tmp_path / "crash.dcm")
    header = read_header(tmp_path / "crash.dcm")
    with pytest.raises(LoadError, match=r"gdcm decoder crashed.*SIGABRT"):
        decode_isolated(header.path, header.transfer_syntax, "gdcm", header.frame_bytes)
    # The frozen app's route (multiprocessing, as its entry point calls freeze_support) too.
    from inference.io.isolated_decode import _decode_multiprocessing

    with pytest.raises(LoadError, match=r"gdcm decoder crashed.*SIGABRT"):
        _decode_multiprocessing(header.path, header.transfer_syntax, "gdcm", header.frame_bytes)
    good = read_header(shutil.copy(intact, tmp_path / "intact.dcm"))
    decoded = decode_isolated(good.path, good.transfer_syntax, "gdcm", good.frame_bytes)
    np.testing.assert_array_equal(decoded, decode_all_frames(good, read_dataset(good)))


def test_compressed_file_claiming_more_pixels_than_any_codec_gives_is_refused_at_scan(tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_file("SC_rgb_jpeg_dcmtk.dcm"))  # 3 KB of JPEG
    ds.Rows, ds.Columns = 16000, 16000
    ds.save_as(tmp_path / "big.dcm")
    good_pair(tmp_path)
    result = scan(tmp_path)
    (problem,) = result.errors
    assert problem.error == "AbsurdDimensionsError" and "16000×16000" in problem.reason
    assert_good_pair_loads(tmp_path)


def test_nifti_datatype_decides_the_bytes_needed(tmp_path: Path) -> None:
    """bitpix says 8 bits, datatype says float64: the readers read 8 bytes a voxel, so the file is short."""
    img = nib.Nifti1Image(np.zeros((8, 8, 4), np.uint8), np.eye(4))
    path = tmp_path / "mixed.nii"
    nib.save(img, path)
    raw = bytearray(path.read_bytes())
    struct.pack_into("<h", raw, 70, 64)  # DT_FLOAT64
    path.write_bytes(bytes(raw))
    with pytest.raises(LoadError, match="holds"):
        read_image_file(path)


NIFTI_FIELDS = {  # name: (offset, struct format)
    "dim[0]": (40, "h"), "dim[1]": (42, "h"), "dim[3]": (46, "h"), "datatype": (70, "h"), "bitpix": (72, "h"),
    "pixdim[1]": (80, "f"), "pixdim[3]": (88, "f"), "vox_offset": (108, "f"), "scl_slope": (112, "f"),
    "qform_code": (252, "h"), "sform_code": (254, "h"), "quatern_b": (256, "f"), "qoffset_x": (268, "f"),
    "srow_x[0]": (280, "f"), "srow_y[1]": (300, "f"), "srow_z[3]": (324, "f"),
}  # fmt: skip


def test_nifti_header_fields_give_a_volume_or_a_typed_error(
    tmp_path_factory: pytest.TempPathFactory, mode: str
) -> None:
    """Any values in the header fields the readers use: a volume, or a RadLensError, in seconds."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    folder = tmp_path_factory.mktemp("nifti-fields")
    affine = np.diag([0.8, 0.9, 2.0, 1.0])
    img = nib.Nifti1Image(np.arange(6 * 5 * 4, dtype=np.int16).reshape(6, 5, 4), affine)
    img.set_qform(affine, code=1)
    seed = folder / "seed.nii"
    nib.save(img, seed)
    base = seed.read_bytes()
    value = st.one_of(
        st.sampled_from([0, -1, 1, 2, 3, 4, 8, 16, 64, 32767, -32768]),
        st.floats(allow_nan=True, allow_infinity=True, width=32),
    )
    changes = st.dictionaries(st.sampled_from(sorted(NIFTI_FIELDS)), value, min_size=1, max_size=3)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(changes)
    def check(fields: dict[str, float]) -> None:
        raw = bytearray(base)
        for name, v in fields.items():
            offset, fmt = NIFTI_FIELDS[name]
            struct.pack_into("<" + fmt, raw, offset, v if fmt == "f" else int(max(-32768, min(32767, v))))
        path = folder / "case.nii"
        path.write_bytes(bytes(raw))
        started = time.monotonic()
        try:
            volume = read_image_file(path)
        except RadLensError as exc:
            assert str(path) in str(exc)
        else:
            assert np.all(np.isfinite(volume.affine))
        assert time.monotonic() - started < 10

    check()
