"""The log file: in the user's log folder (platformdirs), never beside the executable or in the
working folder, with errors and tracebacks but no patient name or ID."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from inference.io.dicom_writer import write_dicom_series
from inference.sample_study import make_chest_phantom


def run_python(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), **env},
        timeout=300,
    )


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_python(f"from inference.cli.main import main; raise SystemExit(main({list(args)!r}))", tmp_path)


def log_text(tmp_path: Path) -> str:
    return (tmp_path / "state" / "radlens" / "log" / "radlens.log").read_text(encoding="utf-8")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG_STATE_HOME decides the folder on Linux only")
def test_a_failed_command_is_logged_in_the_user_log_folder_without_patient_identifiers(tmp_path: Path) -> None:
    volume, _ = make_chest_phantom(shape=(8, 32, 32))
    series = tmp_path / "series"
    write_dicom_series(volume.voxels, series, spacing=volume.spacing, patient_name="DOE^JANE", patient_id="SECRET-ID-9")
    assert cli(tmp_path, "scan", str(series), "--json").returncode == 0
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "junk.dcm").write_bytes(b"not a dicom file at all")
    failed = cli(tmp_path, "convert", str(bad), str(tmp_path / "x.nii"))
    assert failed.returncode == 1

    text = log_text(tmp_path)
    assert "radlens 0.1.0 scan" in text and "scan: exit 0" in text
    assert "ERROR radlens: convert: " in text and "no image stack found" in text
    assert "DOE^JANE" not in text and "SECRET-ID-9" not in text
    assert not list(tmp_path.glob("*.log")), "a log was written into the working folder"
    assert not list(Path(sys.executable).parent.glob("radlens*.log"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG_STATE_HOME decides the folder on Linux only")
def test_uncaught_exceptions_and_warnings_reach_the_log_once(tmp_path: Path) -> None:
    code = (
        "import warnings\n"
        "from inference.logging_setup import setup_logging\n"
        "first, second = setup_logging(), setup_logging()\n"
        "assert first == second, (first, second)\n"
        "import logging\n"
        "assert sum(hasattr(h, '_radlens_log_file') for h in logging.getLogger().handlers) == 1\n"
        "warnings.warn('a user-visible warning')\n"
        "raise RuntimeError('boom in a slot')\n"
    )
    proc = run_python(code, tmp_path)
    assert proc.returncode == 1
    assert "boom in a slot" in proc.stderr  # the previous excepthook still prints it
    text = log_text(tmp_path)
    assert "CRITICAL radlens: uncaught exception" in text and "RuntimeError: boom in a slot" in text
    assert "a user-visible warning" in text
    assert text.count("boom in a slot") == 1  # logged once, however often setup_logging ran


def test_an_unwritable_log_folder_does_not_stop_radlens(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    code = "from inference.logging_setup import setup_logging; print(setup_logging())"
    env = {"XDG_STATE_HOME": str(blocker), "HOME": str(blocker), "LOCALAPPDATA": str(blocker)}
    proc = run_python(code, tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "None"
    models = subprocess.run(
        [sys.executable, "-c", "from inference.cli.main import main; raise SystemExit(main(['models']))"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
    assert models.returncode == 0, models.stderr
    assert "ct-nodule-demo" in models.stdout
