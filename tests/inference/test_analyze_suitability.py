"""``radlens analyze`` and the input check: refusals listed with reasons, --force, explicit models on
files without modality, the exit code, and summary rows that name their inputs."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from inference.batch.pipeline import BatchOptions, analyze
from inference.cli.main import main
from inference.io.image_file import read_image_file
from inference.sample_study import make_chest_phantom
from tests.inference.foreign_inputs import COLIN, COLIN_BET, unzip_dicom


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "summary.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _phantom(folder: Path, write_series: Any, n: int, modality: str = "CT") -> None:
    volume, _ = make_chest_phantom(shape=(16, 96, 96), spacing=(3.0, 3.0, 5.0))
    write_series(
        volume.voxels, folder, spacing=volume.spacing, origin=volume.origin, modality=modality,
        uid_seed=f"suit-{folder.name}-{n}", series_number=n, series_description=f"phantom {n}",
        rescale_intercept=-1024 if modality == "CT" else 0,
    )  # fmt: skip


def test_diffusion_mosaic_is_refused_and_the_exit_code_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in" / "dwi"
    for name in ("siemens_dwi_0.dcm.gz", "siemens_dwi_1000.dcm.gz"):
        unzip_dicom(name, src)
    out = tmp_path / "out"
    code = main(["analyze", os.fspath(tmp_path / "in"), "--out", os.fspath(out), "--jobs", "0", "--format", "findings"])
    assert code == 1
    err = capsys.readouterr().err
    assert "refused" in err and "2 images at each slice position" in err and "(--force runs it)" in err
    (row,) = _rows(out)
    assert row["status"] == "refused" and "a DWI series; the model expects T1-weighted MR" in row["error"]
    assert row["input"] == "dwi"
    assert json.loads((out / "summary.json").read_text())["refused"] == 1
    assert not any(p.is_dir() for p in out.iterdir())  # nothing was written for it


@pytest.mark.slow
def test_a_known_other_modality_is_skipped_unless_forced(tmp_path: Path, write_series: Any) -> None:
    src = tmp_path / "in"
    _phantom(src / "mr" / "series", write_series, 7, modality="MR")
    out = tmp_path / "out"
    skipped = analyze([src], BatchOptions(out=out, model="ct-nodule-demo", jobs=0, formats=("findings",)))
    assert not skipped.succeeded  # the user named the model and it did not run
    assert skipped.rows[0]["status"] == "skipped" and "(--force runs it)" in skipped.rows[0]["error"]
    forced = analyze(
        [src], BatchOptions(out=out, model="ct-nodule-demo", jobs=0, formats=("findings", "sr", "pdf"), force=True)
    )
    assert forced.succeeded
    (row,) = _rows(out)
    assert row["status"] == "ok" and row["suitability"] == "unsuitable (run forced)"
    assert "forced: model ct-nodule-demo is for CT, this stack is MR" in row["input_warnings"]
    assert row["verdict"] in ("positive", "negative")
    findings = json.loads(next(out.glob("*/findings.json")).read_text())
    assert findings["suitability"] == "unsuitable (run forced)" and findings["input_warnings"]
    sr = str(pydicom.dcmread(next(out.glob("*/findings-sr.dcm"))))
    assert "UNSUITFORCED" in sr and "OODSCORE" in sr  # the verdict coded, the score measured


@pytest.mark.slow
def test_summary_rows_name_their_inputs(tmp_path: Path, write_series: Any) -> None:
    src = tmp_path / "in"
    _phantom(src / "site-a" / "case1" / "ct", write_series, 1)
    _phantom(src / "site-b" / "case2" / "ct", write_series, 2)
    out = tmp_path / "out"
    assert analyze([src], BatchOptions(out=out, jobs=0, formats=("findings",))).succeeded
    rows = _rows(out)
    assert sorted(r["input"] for r in rows) == ["site-a/case1/ct", "site-b/case2/ct"]
    assert all(r["suitability"] == "suitable" and r["ood_score"] for r in rows), rows
    anonymous = tmp_path / "anon"
    assert analyze([src], BatchOptions(out=anonymous, jobs=0, formats=("findings",), identity=_anonymize())).succeeded
    assert all(not r.get("input") for r in _rows(anonymous))


def _anonymize() -> Any:
    from inference.batch.identity import IdentityPolicy

    return IdentityPolicy.ANONYMIZE


@pytest.mark.slow
def test_deepbet_on_colin27_without_modality_runs_when_named(tmp_path: Path) -> None:
    """``radlens analyze ch2.nii.gz --model deepbet-brain``: the modality comes from the model (~10 s)."""
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(COLIN, src / "ch2.nii.gz")
    out = tmp_path / "out"
    code = main(["analyze", os.fspath(src / "ch2.nii.gz"), "--model", "deepbet-brain", "--out", os.fspath(out),
                 "--jobs", "0", "--format", "mask,findings,pdf"])  # fmt: skip
    assert code == 0
    (row,) = _rows(out)
    assert row["status"] == "ok" and row["input"] == "ch2.nii.gz" and row["verdict"] == "segmented"
    assert "the modality is not recorded: taken from the model (MR)" in row["input_warnings"]
    mask = read_image_file(next(out.glob("*/mask.nii.gz")))
    reference = read_image_file(COLIN_BET)
    assert mask.shape == reference.shape
    np.testing.assert_allclose(mask.affine, reference.affine, atol=1e-4)
    a, b = np.asarray(mask.voxels) > 0, np.asarray(reference.voxels) > 0
    dice = 2 * (a & b).sum() / (a.sum() + b.sum())
    assert dice >= 0.93, dice
    assert "brain" in json.loads(next(out.glob("*/findings.json")).read_text())["headline"]
