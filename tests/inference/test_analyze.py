"""``radlens analyze``: every stack analysed once, outputs complete, resumable, inputs untouched."""

from __future__ import annotations

import csv
import gzip
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from inference.batch.identity import IdentityPolicy
from inference.batch.pipeline import BatchOptions, analyze
from inference.batch.resume import MANIFEST
from inference.batch.stack_outputs import DEFAULT_FORMATS, FORMATS, output_label_map
from inference.cli.main import main
from inference.engine.run import run
from inference.io.dicom_loader import load_stack
from inference.io.dicom_writer import write_dicom_series
from inference.io.map_reader import PARAMETRIC_MAP_STORAGE
from inference.io.scan import scan
from inference.io.seg_reader import read_dicom_seg_onto
from inference.models.registry import discover
from inference.sample_study import make_chest_phantom
from tests.inference.bad_files import build_corpus, tree_fingerprint

PATIENT_NAME = "DOE^JANE"
PATIENT_ID = "PID-98765"


def _write_phantom(folder: Path, n: int, *, shape: tuple[int, int, int] = (24, 96, 96), **kw: object) -> list[Path]:
    volume, _ = make_chest_phantom(shape=shape, spacing=(3.0, 3.0, 5.0))
    kwargs: dict[str, object] = {
        "spacing": volume.spacing,
        "origin": volume.origin,
        "modality": "CT",
        "uid_seed": f"analyze-test-{folder.name}-{n}",
        "series_number": n,
        "series_description": f"phantom {n}",
        "patient_name": PATIENT_NAME,
        "patient_id": PATIENT_ID,
    }
    kwargs.update(kw)
    return write_dicom_series(volume.voxels, folder, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def four_stacks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("four_stacks")
    for n in range(1, 5):
        _write_phantom(root / f"study{n}" / "series", n)
    return root


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "summary.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _stack_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir())


def _check_complete(stack_dir: Path, formats: tuple[str, ...] = DEFAULT_FORMATS) -> None:
    """Every output of a finished stack is present and readable by an independent reader."""
    manifest = json.loads((stack_dir / MANIFEST).read_text())
    names = set(manifest["files"])
    for name, size in manifest["files"].items():
        assert (stack_dir / name).stat().st_size == size, name
    if "mask" in formats:
        assert nib.load(stack_dir / "mask.nii.gz").get_fdata().max() >= 0
    if "heatmap" in formats:
        himg = nib.load(stack_dir / "heatmap.nii.gz")
        heat = himg.get_fdata()
        assert himg.get_data_dtype() == np.uint8 and heat.min() >= 0.0 and heat.max() <= 1.0 + 1e-6
    if "findings" in formats:
        assert "study_score" in json.loads((stack_dir / "findings.json").read_text())
    if "seg" in formats and "seg.dcm" in names:
        assert pydicom.dcmread(stack_dir / "seg.dcm").Modality == "SEG"
    assert ("heatmap-pm.dcm" in names) == ("pm" in formats)  # a DICOM input: written exactly when asked for
    if "pm" in formats:
        pm = pydicom.dcmread(stack_dir / "heatmap-pm.dcm")
        assert pm.SOPClassUID == PARAMETRIC_MAP_STORAGE and pm.pixel_array.max() <= 255
    if "pdf" in formats:
        pdf = (stack_dir / "report.pdf").read_bytes()
        assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    if "key-images" in formats:
        keys = sorted(p.name for p in stack_dir.glob("key_*.png"))
        assert keys and set(keys) <= names
        for k in keys:
            assert (stack_dir / k).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    leftovers = [p.name for p in stack_dir.iterdir() if p.name.startswith(".")]
    assert not leftovers, f"temporary files left in {stack_dir}: {leftovers}"


def test_sample_outputs_match_the_engine_and_land_on_the_source_voxels(tmp_path: Path) -> None:
    src = tmp_path / "in"
    _write_phantom(src, 7, shape=(30, 112, 112), direction=np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], float))
    before = tree_fingerprint(src)
    out = tmp_path / "out"
    report = analyze([src], BatchOptions(out=out, jobs=1))
    assert report.succeeded, report.rows
    assert tree_fingerprint(src) == before
    (row,) = report.rows
    assert row["status"] == "ok" and row["model"] == "ct-nodule-demo"
    stack_dir = out / row["folder"]
    _check_complete(stack_dir)

    # The oracle: the engine run directly on the loaded series, the way the viewer runs it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        volume = load_stack(scan(src).stacks()[0])
    card = discover().get("ct-nodule-demo")
    result = run(card, volume, device="cpu")
    labels = output_label_map(result, card)
    assert labels is not None and labels.any(), "the phantom's nodules should give the demo model findings"
    assert float(row["study_score"]) == pytest.approx(result.study_score, abs=1e-4)

    # NIfTI mask, through SimpleITK: same voxels at the same LPS positions as the source grid.
    img = sitk.ReadImage(str(stack_dir / "mask.nii.gz"))
    assert np.array_equal(sitk.GetArrayFromImage(img), labels)
    for ijk in [(0, 0, 0), (111, 0, 0), (5, 100, 29), (60, 40, 12)]:
        assert np.allclose(img.TransformIndexToPhysicalPoint(ijk), volume.index_to_lps(ijk), atol=1e-3)
    # ... and through nibabel (RAS): the same physical place.
    nimg = nib.load(stack_dir / "mask.nii.gz")
    assert np.array_equal(np.asarray(nimg.dataobj).transpose(2, 1, 0), labels)
    ras = nimg.affine @ np.array([5, 100, 29, 1.0])
    assert np.allclose(ras[:3] * [-1, -1, 1], volume.index_to_lps((5, 100, 29)), atol=1e-3)

    # The heatmap (uint8 with slope 1/255): SimpleITK reads the engine's map to within half a step.
    heat = sitk.GetArrayFromImage(sitk.ReadImage(str(stack_dir / "heatmap.nii.gz")))
    assert np.abs(heat - next(iter(result.heatmaps.values()))).max() <= 0.5 / 255 + 1e-6

    # DICOM SEG: reloaded by RadLens onto the source series, voxel-identical.
    seg = read_dicom_seg_onto(volume, stack_dir / "seg.dcm")
    assert np.array_equal(seg.labels, labels)

    findings = json.loads((stack_dir / "findings.json").read_text())
    assert len(findings["findings"]) == len(result.findings) == int(row["findings"])
    assert findings["slice_probabilities"] == pytest.approx(result.slice_probabilities.tolist(), abs=1e-4)


def test_resume_after_sigkill_at_any_moment_ends_complete_and_without_duplicates(
    four_stacks: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "inference.cli.main", "analyze", os.fspath(four_stacks), "--out", os.fspath(out),
        "--format", "all",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    killed_with_partial_work = 0
    for delay in (1.0, 2.5, 4.0, 5.5, 7.0):
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(delay)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            killed_with_partial_work += 1
        proc.wait()
    assert killed_with_partial_work >= 2, "the kills should interrupt runs part-way"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    dirs = _stack_dirs(out)
    assert len(dirs) == 4, [d.name for d in dirs]
    for d in dirs:
        _check_complete(d, FORMATS)
    rows = _rows(out)
    assert sorted(r["folder"] for r in rows) == sorted(d.name for d in dirs)
    assert all(r["status"] == "ok" for r in rows)
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "0 analysed, 4 already done" in again.stdout, again.stdout + again.stderr


def test_a_changed_input_or_model_is_redone_and_the_rest_resumed(four_stacks: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    _write_phantom(src / "a", 1)
    _write_phantom(src / "b", 2)
    out = tmp_path / "out"
    opts = BatchOptions(out=out, jobs=0, formats=("mask", "findings"))
    first = analyze([src], opts)
    assert first.count("ok", resumed=False) == 2
    # Replace one slice of series b (same name, new content): only b is redone.
    victim = sorted((src / "b").iterdir())[3]
    ds = pydicom.dcmread(victim)
    ds.PixelData = bytes(len(ds.PixelData))
    time.sleep(0.01)
    ds.save_as(victim)
    second = analyze([src], opts)
    assert second.count("ok", resumed=True) == 1 and second.count("ok", resumed=False) == 1
    third = analyze([src], BatchOptions(out=out, jobs=0, formats=("mask", "findings"), overwrite=True))
    assert third.count("ok", resumed=False) == 2


def test_bad_input_mix_analyses_every_good_stack_and_lists_each_failure(tmp_path: Path) -> None:
    src = tmp_path / "mixed"
    build_corpus(src / "corpus")
    _write_phantom(src / "good_ct", 3)
    _write_phantom(src / "mr", 4, modality="MR", rescale_intercept=0)
    before = tree_fingerprint(src)
    out = tmp_path / "out"
    args = ["--model", "ct-nodule-demo", "--jobs", "1", "--format", "mask,findings"]
    code = main(["analyze", os.fspath(src), "--out", os.fspath(out), *args])
    assert tree_fingerprint(src) == before
    rows = json.loads((out / "summary.json").read_text())["stacks"]
    ok = [r for r in rows if r["status"] == "ok"]
    assert {r["series_description"] for r in ok} >= {"phantom 3"}
    mr = [r for r in rows if r.get("modality") == "MR"]
    assert mr and all(r["status"] == "skipped" and "is for CT, this stack is MR" in r["error"] for r in mr)
    reasons = " ".join(r["error"] for r in rows if r["status"] in ("failed", "unreadable"))
    for word in ("EmptyFileError", "TruncatedFileError", "AbsurdDimensionsError", "MissingGeometryError"):
        assert word in reasons
    assert any(r["status"] == "skipped" and "not an image (SR)" in r["error"] for r in rows)
    assert any(r["status"] == "skipped" and "not DICOM" in r["error"] for r in rows)  # notes.txt
    # A stack that scanned but could not load (no geometry) is a failure the user asked for.
    assert code == 1

    # Without the stacks that cannot load, broken files alone do not fail the run.
    clean = tmp_path / "clean"
    build_corpus(clean / "corpus")
    (clean / "corpus" / "no_geometry.dcm").unlink()
    _write_phantom(clean / "good_ct", 3)
    out2 = tmp_path / "out2"
    assert main(["analyze", os.fspath(clean), "--out", os.fspath(out2), "--format", "findings"]) == 0
    assert sum(r["status"] == "ok" for r in _rows(out2)) == 3  # the corpus's two good series and the phantom


def _all_output_bytes(out: Path) -> list[tuple[str, bytes]]:
    items = []
    for p in out.rglob("*"):
        if p.is_file() and p.name != "anonymize.key":
            data = p.read_bytes()
            if p.name.endswith(".gz"):
                data = gzip.decompress(data)
            if p.suffix == ".pdf":
                text = subprocess.run(["pdftotext", os.fspath(p), "-"], capture_output=True, check=True).stdout
                data += text
            items.append((os.fspath(p.relative_to(out)), data))
    return items


def test_anonymize_leaves_no_identity_anywhere_and_remaps_uids_consistently(tmp_path: Path) -> None:
    src = tmp_path / "in"
    files = _write_phantom(src, 5, study_description="Chest DOE", series_description="DOE lung")
    source = pydicom.dcmread(files[0])
    secrets_ = [PATIENT_NAME, "DOE", PATIENT_ID, str(source.StudyInstanceUID), str(source.SeriesInstanceUID),
                str(source.SOPInstanceUID), str(source.FrameOfReferenceUID), str(source.StudyDate)]  # fmt: skip
    out = tmp_path / "out"
    report = analyze([src], BatchOptions(out=out, jobs=0, identity=IdentityPolicy.ANONYMIZE))
    assert report.succeeded
    (row,) = report.rows
    for rel, data in _all_output_bytes(out):
        for s in secrets_:
            assert s.encode() not in data, f"{s!r} found in {rel}"
            assert s not in rel
    seg = pydicom.dcmread(out / row["folder"] / "seg.dcm")
    assert str(seg.PatientName) == row["patient"] and str(seg.PatientID) == row["patient"]
    assert str(seg.StudyInstanceUID) == row["study_uid"]
    referenced = seg.ReferencedSeriesSequence[0]
    assert str(referenced.SeriesInstanceUID) == row["series_uid"]
    # A second run (resumed) and a run of more data under the same key map the same UIDs the same way.
    again = analyze([src], BatchOptions(out=out, jobs=0, identity=IdentityPolicy.ANONYMIZE, overwrite=True))
    assert again.rows[0]["study_uid"] == row["study_uid"] and again.rows[0]["patient"] == row["patient"]


def test_default_outputs_carry_no_patient_name_or_id(tmp_path: Path) -> None:
    src = tmp_path / "in"
    _write_phantom(src, 6)
    out = tmp_path / "out"
    assert analyze([src], BatchOptions(out=out, jobs=0)).succeeded
    for rel, data in _all_output_bytes(out):
        assert PATIENT_NAME.encode() not in data and PATIENT_ID.encode() not in data, rel
    ident = tmp_path / "ident"
    report = analyze([src], BatchOptions(out=ident, jobs=0, identity=IdentityPolicy.IDENTIFY, formats=("pdf",)))
    assert report.rows[0]["patient_name"] == PATIENT_NAME


def test_nifti_input_needs_a_modality_and_then_runs(tmp_path: Path) -> None:
    from inference.io.nifti_writer import write_nifti

    volume, _ = make_chest_phantom(shape=(20, 80, 80))
    src = tmp_path / "in"
    src.mkdir()
    write_nifti(volume, src / "chest.nii.gz")
    out = tmp_path / "out"
    skipped = analyze([src], BatchOptions(out=out, jobs=0, formats=("findings",)))
    assert not skipped.succeeded and "--modality" in skipped.rows[0]["error"]
    report = analyze([src], BatchOptions(out=out, jobs=0, file_modality="CT", formats=("mask", "seg", "findings")))
    assert report.succeeded
    row = report.rows[0]
    assert "seg: the input is not DICOM" in row["notes"]
    assert set(row["outputs"].split()) == {"mask.nii.gz", "findings.json"}


def test_cli_refuses_an_output_inside_the_input_and_a_missing_gpu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    src = tmp_path / "in"
    _write_phantom(src, 1, shape=(6, 48, 48))
    before = tree_fingerprint(src)
    assert main(["analyze", os.fspath(src), "--out", os.fspath(src / "results")]) == 1
    assert "never writes there" in capsys.readouterr().err
    assert tree_fingerprint(src) == before
    assert main(["analyze", os.fspath(tmp_path / "missing"), "--out", os.fspath(tmp_path / "o")]) == 1
    assert "no such file" in capsys.readouterr().err
    code = main(["analyze", os.fspath(src), "--out", os.fspath(tmp_path / "gpu"), "--device", "cuda"])
    if torch.cuda.is_available():
        assert code == 0
    else:
        assert code == 1 and "CUDA was requested" in capsys.readouterr().err


def test_analyze_runs_headless_with_qt_unimportable(tmp_path: Path) -> None:
    from tests.inference.test_cli import radlens

    src = tmp_path / "in"
    files = _write_phantom(src, 2, shape=(12, 64, 64))
    state = tmp_path / "state"
    done = radlens(
        "analyze",
        os.fspath(src),
        "--out",
        os.fspath(tmp_path / "out"),
        "--anonymize",
        env={"XDG_STATE_HOME": os.fspath(state)},
    )
    assert done.returncode == 0, done.stderr
    # The log (in the user's log folder) says what ran, and nothing of the patient.
    (log,) = state.rglob("radlens.log")
    text = log.read_text()
    assert "analyze: exit 0" in text
    source = pydicom.dcmread(files[0])
    for secret in (PATIENT_NAME, PATIENT_ID, str(source.StudyInstanceUID), str(source.SeriesInstanceUID)):
        assert secret not in text and secret not in done.stdout + done.stderr
    (heavy,) = [line for line in done.stderr.splitlines() if line.startswith("HEAVY-MODULES:")]
    assert "torch" in heavy and "PySide6" not in heavy and "pyqtgraph" not in heavy
    (row,) = _rows(tmp_path / "out")
    assert row["status"] == "ok" and "report.pdf" in row["outputs"] and "key_01" in row["outputs"]
