"""The Analysis panel: run a real (random-weight) model on the sample, see the overlay and the plot."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from inference.models.registry import discover

from .conftest import WINDOW_SIZE, grab_rgb, open_and_wait, settle

CARD = """
name = "test-slice-cnn"
version = "0.1"
task = "slice-classification"
modality = ["CT"]
architecture = "cnn"
weights = "weights.pt"
sha256 = "{sha}"
licence = "test"
intended_use = "tests only"
explanation = "gradcam"
threshold = 0.3
[input]
size = [64, 64]
window = [-600, 1500]
batch_size = 16
[[labels]]
value = 1
name = "suspicious"
"""


def _model_dir(tmp_path: Path, tamper: bool = False) -> Path:
    from inference.models.architectures import build_model

    torch.manual_seed(3)
    buf = io.BytesIO()
    torch.save(build_model("cnn").state_dict(), buf)
    data = buf.getvalue()
    folder = tmp_path / "models"
    folder.mkdir(exist_ok=True)
    sha = hashlib.sha256(data).hexdigest()
    if tamper:
        data = data[:-10] + bytes(10)
    (folder / "weights.pt").write_bytes(data)
    (folder / "card.toml").write_text(CARD.format(sha=sha))
    return folder


def _choose_test_model(panel: Any) -> None:
    """The picker lists every CT model (the bundled demo model too); pick the test one."""
    index = panel.model_box.findData("test-slice-cnn@0.1")
    assert index >= 0, "the test model is offered for the CT sample"
    panel.model_box.setCurrentIndex(index)


@pytest.fixture
def analysis_controller(qtbot: Any, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    from viewer.controllers.settings import Settings
    from viewer.controllers.viewer_controller import ViewerController

    registry = discover([_model_dir(tmp_path, tamper=getattr(request, "param", False))], include_user=False)
    ctrl = ViewerController(settings=Settings(tmp_path / "viewer.ini"), interactive=False, registry=registry)
    ctrl.window.resize(*WINDOW_SIZE)
    ctrl.window.show()
    qtbot.waitExposed(ctrl.window)
    yield ctrl
    ctrl.window.close()
    ctrl.shutdown()


def test_running_a_model_adds_overlay_plot_verdict_and_findings(
    qtbot: Any, analysis_controller: Any, sample_study: Path
) -> None:
    ctrl = analysis_controller
    open_and_wait(qtbot, ctrl, sample_study)
    panel = ctrl.window.analysis_panel
    _choose_test_model(panel)
    assert "test-slice-cnn" in panel.model_box.currentText()
    with qtbot.waitSignal(ctrl.analysis.finished, timeout=120_000):
        panel.run_button.click()
    qtbot.wait(50)
    names = [layer.name for layer in ctrl.model.layers]
    assert "test-slice-cnn: gradcam" in names
    plot = ctrl.window.mpr.fourth
    assert plot.isVisible(), "the score plot is shown in the fourth pane after a run"
    assert len(plot.values) == ctrl.model.current.volume.shape[0]
    assert "study score" in panel.verdict.text() and "Not for clinical use" in panel.verdict.text()
    axial = ctrl.window.mpr.views[next(iter(ctrl.window.mpr.views))]
    qtbot.waitUntil(lambda: not ctrl.busy, timeout=10_000)  # nothing left running (the layout changed above)
    shown = grab_rgb(axial).astype(int)
    heatmap = next(layer for layer in ctrl.model.layers if layer.name == "test-slice-cnn: gradcam")
    heatmap.set(visible=False)
    settle(qtbot)
    hidden = grab_rgb(axial).astype(int)
    heatmap.set(visible=True)
    assert shown.shape == hidden.shape
    tinted = np.abs(shown - hidden).max(axis=-1) > 20  # the map's colours over the grey slice
    assert tinted.mean() > 0.01, f"the heatmap changes only {tinted.mean():.2%} of the axial pane"
    # Colour came with the map: most pixels it changed are coloured, not grey.
    saturation = shown.max(axis=-1) - shown.min(axis=-1)
    assert (saturation[tinted] > 20).mean() > 0.5
    # Clicking the plot jumps to that slice; the marker follows the cursor.
    ctrl.analysis.goto_slice(5)
    qtbot.wait(20)
    cur = ctrl.model.current
    k = cur.axis_map.display_to_source(ctrl.model.cursor, cur.volume.size_ijk)[2]
    assert round(k) == 5 and plot.marker.value() == 6  # drawn at its number: index 5 is slice 6
    # Re-running replaces the previous result's layers rather than stacking them.
    with qtbot.waitSignal(ctrl.analysis.finished, timeout=120_000):
        panel.run_button.click()
    assert [layer.name for layer in ctrl.model.layers].count("test-slice-cnn: gradcam") == 1


def test_a_result_for_a_stack_no_longer_shown_is_dropped(
    qtbot: Any, analysis_controller: Any, sample_study: Path
) -> None:
    ctrl = analysis_controller
    open_and_wait(qtbot, ctrl, sample_study)
    volume = ctrl.model.current.volume
    _choose_test_model(ctrl.window.analysis_panel)
    ctrl.window.analysis_panel.run_button.click()
    ctrl.show_volume(volume.with_voxels(volume.voxels.copy()))  # another stack is opened meanwhile
    qtbot.wait(3000)
    qtbot.waitUntil(lambda: torch.get_num_threads() >= 1 and not ctrl.analysis.running, timeout=60_000)
    from PySide6 import QtCore

    QtCore.QThreadPool.globalInstance().waitForDone(60_000)
    qtbot.wait(50)
    assert len(ctrl.model.layers) == 0


@pytest.mark.parametrize("analysis_controller", [True], indirect=True)
def test_tampered_weights_show_an_error_and_the_viewer_survives(
    qtbot: Any, analysis_controller: Any, sample_study: Path
) -> None:
    ctrl = analysis_controller
    open_and_wait(qtbot, ctrl, sample_study)
    _choose_test_model(ctrl.window.analysis_panel)
    with qtbot.waitSignal(ctrl.analysis.failed, timeout=60_000) as blocker:
        ctrl.window.analysis_panel.run_button.click()
    assert "sha256 mismatch" in blocker.args[0]
    assert "sha256 mismatch" in ctrl.last_error
    assert ctrl.model.current is not None and len(ctrl.model.layers) == 0


def test_main_job_opens_the_sample_with_the_default_model(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from PySide6 import QtGui

    out = tmp_path / "main.png"
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "inference.cli.main", "view", "--screenshot", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "model ct-nodule-demo" in proc.stdout and "study score" in proc.stdout
    image = QtGui.QImage(str(out))
    assert image.width() >= 1000
    rgb = grab_rgb_from(image)
    # The attention heatmap (inferno) draws warm, saturated pixels over the grey CT.
    warm = (rgb[..., 0].astype(int) - rgb[..., 2].astype(int) > 60) & (rgb[..., 1] < 120)
    assert warm.mean() > 0.0005


def grab_rgb_from(image: Any) -> Any:
    from .conftest import image_rgb

    return image_rgb(image)
