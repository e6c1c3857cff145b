"""The Analysis panel with the input check, driven through the real widgets offscreen.

No model runs on a study the user did not ask it to; the picker puts suitable models first and says
why the others do not suit; a file without modality gets a selector; opening another study resets
the panel, the plot, the probe and the messages; a refused run can be forced; the viewer and the
batch command read one result the same way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.inference.foreign_inputs import COLIN

from .conftest import grab_rgb, open_and_wait


@pytest.fixture(scope="module")
def small_t1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Colin27's T1 cut to 40 slices through the brain, as a NIfTI (which records no modality)."""
    import nibabel

    image = nibabel.load(COLIN)
    out = tmp_path_factory.mktemp("t1") / "t1-part.nii.gz"
    nibabel.save(image.slicer[:, :, 60:100], out)
    return out


def _picker(panel: Any) -> list[tuple[str, str]]:
    box = panel.model_box
    return [(str(box.itemData(i)), box.itemText(i)) for i in range(box.count())]


def _wait_checked(qtbot: Any, ctrl: Any) -> None:
    qtbot.waitUntil(lambda: len(ctrl.analysis.suitability) == len(ctrl.analysis.registry.cards), timeout=60_000)


def _choose(panel: Any, key: str) -> None:
    index = panel.model_box.findData(key)
    assert index >= 0, _picker(panel)
    panel.model_box.setCurrentIndex(index)


@pytest.mark.slow
def test_no_model_runs_on_a_study_opened_later_and_the_panel_resets(
    qtbot: Any, controller: Any, sample_study: Path, small_t1: Path
) -> None:
    ctrl = controller
    panel, plot = ctrl.window.analysis_panel, ctrl.window.mpr.fourth
    ctrl.auto_model = "default"  # as `radlens view` with no argument: the sample with the default model
    with qtbot.waitSignal(ctrl.analysis.finished, timeout=180_000):
        open_and_wait(qtbot, ctrl, sample_study)
    qtbot.waitUntil(lambda: not ctrl.busy, timeout=60_000)
    assert "ct-nodule-demo" in panel.verdict.text() and panel.progress.value() == 1000
    assert len(plot.values) > 0 and plot.threshold_line.isVisible()
    view = next(iter(ctrl.window.mpr.views.values()))
    view.hovered.emit(40.0, 40.0)
    assert ctrl.window.probe_label.text().endswith("HU")

    open_and_wait(qtbot, ctrl, small_t1)
    qtbot.wait(1500)  # time enough for a model to have started
    qtbot.waitUntil(lambda: not ctrl.busy, timeout=60_000)
    assert not ctrl.analysis.running and ctrl.analysis.result is None
    assert panel.verdict.text() == "" and panel.status.text() == "" and panel.progress.value() == 0
    assert len(plot.values) == 0 and not plot.marker.isVisible() and not plot.threshold_line.isVisible()
    assert ctrl.window.probe_label.text() == ""
    assert not [layer for layer in ctrl.model.layers if "ct-nodule-demo" in layer.name]
    view.hovered.emit(40.0, 40.0)
    assert "value" in ctrl.window.probe_label.text() and "HU" not in ctrl.window.probe_label.text()


def test_the_picker_ranks_by_suitability_and_the_description_follows(
    qtbot: Any, controller: Any, small_t1: Path
) -> None:
    ctrl = controller
    panel = ctrl.window.analysis_panel
    open_and_wait(qtbot, ctrl, small_t1)
    assert panel.modality_box.isVisible(), "a NIfTI records no modality: the selector is offered"
    _wait_checked(qtbot, ctrl)
    entries = _picker(panel)
    assert entries[0][0].startswith("deepbet-brain@")
    ct_text = dict(entries)[next(k for k, _ in entries if k.startswith("ct-nodule-demo@"))]
    assert "not suitable" in ct_text and "not Hounsfield units" in ct_text
    _choose(panel, next(k for k, _ in entries if k.startswith("ct-nodule-demo@")))
    assert "self-attention" in panel.card_text.text()
    _choose(panel, entries[0][0])
    assert "deepbet" in panel.card_text.text() and "self-attention" not in panel.card_text.text()
    # Declaring the modality re-checks every model against it.
    panel.modality_box.setCurrentIndex(panel.modality_box.findData("MR"))
    _wait_checked(qtbot, ctrl)
    ct_text = dict(_picker(panel))[next(k for k, _ in entries if k.startswith("ct-nodule-demo@"))]
    assert "model ct-nodule-demo is for CT, this stack is MR" in ct_text


def test_an_unsuitable_run_is_refused_then_forced_after_confirmation(
    qtbot: Any, controller: Any, small_t1: Path
) -> None:
    ctrl = controller
    panel = ctrl.window.analysis_panel
    open_and_wait(qtbot, ctrl, small_t1)
    ct_key = next(c.key for c in ctrl.analysis.registry.cards if c.name == "ct-nodule-demo")
    _choose(panel, ct_key)
    with qtbot.waitSignal(ctrl.analysis.failed, timeout=60_000) as refused:
        panel.run_button.click()
    assert "not made for this input" in refused.args[0] and "Hounsfield" in refused.args[0]
    assert panel.status.text().startswith("not run:") and ctrl.analysis.result is None
    asked: list[str] = []
    ctrl.analysis.confirm = lambda question: asked.append(question) or True
    with qtbot.waitSignal(ctrl.analysis.finished, timeout=180_000):
        panel.run_button.click()
    assert asked and "Run it anyway?" in asked[0] and "Hounsfield" in asked[0]
    assert "Input: forced:" in panel.verdict.text()
    assert ctrl.analysis.result.suitability == "unsuitable (run forced)"


def test_disabled_buttons_look_disabled(qtbot: Any, controller: Any) -> None:
    panel = controller.window.analysis_panel
    button = panel.cancel_button
    assert not button.isEnabled()
    disabled = grab_rgb(button).astype(int)
    button.setEnabled(True)
    qtbot.wait(20)
    enabled = grab_rgb(button).astype(int)
    button.setEnabled(False)
    # The label's brightest pixels: dimmed when disabled.
    assert enabled.sum(axis=-1).max() - disabled.sum(axis=-1).max() > 120


@pytest.mark.slow
def test_a_segmentation_model_reports_volumes_not_positive(qtbot: Any, controller: Any) -> None:
    ctrl = controller
    panel = ctrl.window.analysis_panel
    open_and_wait(qtbot, ctrl, COLIN)
    _wait_checked(qtbot, ctrl)
    assert panel.model_box.currentData().startswith("deepbet-brain@")
    with qtbot.waitSignal(ctrl.analysis.finished, timeout=300_000):
        panel.run_button.click()
    text = panel.verdict.text()
    assert "brain" in text and " mL" in text and "positive" not in text and "study score" not in text
    assert "taken from the model (MR)" in text
    assert not ctrl.window.mpr.fourth.threshold_line.isVisible()


def test_viewer_and_batch_read_the_same_result_the_same_way(
    qtbot: Any, controller: Any, sample_study: Path, tmp_path: Path
) -> None:
    from inference.batch.pipeline import BatchOptions, analyze
    from inference.engine.interpretation import interpret
    from inference.io.image_file import read_image_file

    ctrl = controller
    ctrl.auto_model = "ct-nodule-demo"
    with qtbot.waitSignal(ctrl.analysis.finished, timeout=180_000):
        open_and_wait(qtbot, ctrl, sample_study)
    viewer_result, card = ctrl.analysis.result, ctrl.analysis.result_card
    out = tmp_path / "batch"
    report = analyze([sample_study], BatchOptions(out=out, model="ct-nodule-demo", jobs=0,
                                                  formats=("findings", "heatmap")))  # fmt: skip
    assert report.succeeded
    batch = json.loads(next(out.glob("*/findings.json")).read_text())
    reading = interpret(viewer_result, card)
    np.testing.assert_allclose(batch["slice_probabilities"], reading.slice_scores, atol=2e-4)
    np.testing.assert_allclose(ctrl.window.mpr.fourth.values, reading.slice_scores, atol=1e-6)
    assert batch["verdict"] == reading.verdict and batch["headline"] == reading.headline
    assert batch["suitability"] == viewer_result.suitability
    assert [f["voxels"] for f in batch["findings"]] == [f.voxel_count for f in viewer_result.findings]
    heat = np.asarray(read_image_file(next(out.glob("*/heatmap.nii.gz"))).voxels, dtype=np.float32)
    assert reading.map is not None and heat.shape == reading.map.shape
    assert float(np.abs(heat - reading.map).max()) < 0.01  # stored in 8 bits
