"""`radlens view` as a user runs it: headless screenshots, no display at all, and a real X server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import image_rgb

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 240


def _env(tmp_path: Path, *, drop: tuple[str, ...] = (), **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    env.update(extra)
    return env


def _view_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "inference.cli.main", "view", *args]


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done


def _check_png(path: Path) -> None:
    from PySide6 import QtGui

    assert path.is_file(), f"{path} was not written"
    image = QtGui.QImage(str(path))
    assert not image.isNull(), f"{path} is not a readable PNG"
    assert image.width() >= 1000 and image.height() >= 500, (image.width(), image.height())
    rgb = image_rgb(image).astype(int)
    # Window chrome is flat grey; the slices add black, white and everything in between.
    background = np.array([45, 45, 48])
    differs = np.abs(rgb - background).max(axis=-1) > 25
    assert differs.mean() > 0.25, f"only {differs.mean():.1%} of the screenshot differs from the window colour"
    grey = rgb.mean(axis=-1)
    assert (grey > 100).mean() > 0.05, "hardly any bright (body) pixels"
    crosshair = (rgb[..., 0] >= 190) & (rgb[..., 1] >= 140) & (rgb[..., 2] <= 60)
    assert crosshair.sum() > 300, "no crosshair in the screenshot"


def test_view_screenshot_offscreen(sample_study: Path, tmp_path: Path) -> None:
    out = tmp_path / "shot.png"
    done = _run(_view_command(str(sample_study), "--screenshot", str(out)), _env(tmp_path, QT_QPA_PLATFORM="offscreen"))
    assert f"screenshot written to {out}" in done.stdout, done.stdout
    assert not out.with_name(f".{out.name}.tmp.png").exists()
    _check_png(out)


def test_view_without_any_display_writes_a_png(sample_study: Path, tmp_path: Path) -> None:
    env = _env(tmp_path, drop=("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))
    done = _run(_view_command(str(sample_study)), env)
    assert "screenshot written to" in done.stdout, done.stdout
    assert "no display found" in done.stderr
    written = Path(done.stdout.split("screenshot written to", 1)[1].strip().splitlines()[0])
    assert written.is_relative_to(tmp_path / "cache"), written
    _check_png(written)


def test_view_screenshot_under_xvfb(sample_study: Path, tmp_path: Path) -> None:
    xvfb_run = shutil.which("xvfb-run")
    if xvfb_run is None:
        pytest.fail(
            "xvfb-run is missing: run scripts/system-deps.sh or `apt-get install xvfb xauth` "
            "(plus the libxcb-* packages it lists) to test the viewer on a real X server"
        )
    probe = "from PySide6 import QtGui; app = QtGui.QGuiApplication([]); print(app.platformName())"
    env = _env(tmp_path, drop=("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))
    platform = _run([xvfb_run, "-a", sys.executable, "-c", probe], env).stdout.strip()
    assert platform == "xcb", platform
    out = tmp_path / "xcb.png"
    cmd = [xvfb_run, "-a", "-s", "-screen 0 1920x1080x24", *_view_command(str(sample_study), "--screenshot", str(out))]
    done = _run(cmd, env)
    assert f"screenshot written to {out}" in done.stdout, done.stdout + done.stderr
    assert "no display found" not in done.stderr
    _check_png(out)
