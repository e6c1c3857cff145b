"""File → Export results: the open stack's analysis written with the batch command's writers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from inference.batch.stack_outputs import output_heatmap, output_label_map, quantised_heatmap
from inference.io.seg_reader import read_dicom_seg_onto
from viewer.models.layers import HeatmapLayer, LabelLayer

from .conftest import open_and_wait, open_overlay_and_wait


def test_export_writes_the_batch_outputs_for_the_open_stack(
    qtbot: Any, controller: Any, sample_study: Path, tmp_path: Path
) -> None:
    open_and_wait(qtbot, controller, sample_study)
    assert not controller.export_results(tmp_path / "early")
    assert "Run a model" in controller.last_error
    with qtbot.waitSignal(controller.analysis.finished, timeout=120_000):
        assert controller.run_model("default")
    # Never into the scan's own folder.
    assert not controller.export_results(sample_study / "results")
    assert "never writes there" in controller.last_error
    assert not (sample_study / "results").exists()

    with qtbot.waitSignal(controller.exporter.exported, timeout=120_000) as blocker:
        assert controller.export_results(tmp_path / "exports")
    exported = blocker.args[0]
    assert exported.folder.parent == tmp_path / "exports"
    assert {"seg.dcm", "heatmap-pm.dcm", "mask.nii.gz", "heatmap.nii.gz", "findings.json", "report.pdf"} <= set(
        exported.files
    )
    assert any(name.startswith("key_") for name in exported.files)
    assert "Exported" in controller.window.statusBar().currentMessage()

    volume = controller.model.current.volume
    result, card = controller.analysis.result, controller.analysis.result_card
    labels = output_label_map(result, card)
    seg = read_dicom_seg_onto(volume, exported.folder / "seg.dcm")
    np.testing.assert_array_equal(seg.labels, labels)
    findings = json.loads((exported.folder / "findings.json").read_text())
    assert findings["model"]["name"] == card.name and len(findings["findings"]) == len(result.findings)

    # File → Open segmentation takes the outputs back: the SEG and the mask as labels, both maps as heatmaps.
    heat = quantised_heatmap(output_heatmap(result)).astype(np.float32) / 255.0
    assert heat.max() > 0.5
    for name in ("heatmap-pm.dcm", "heatmap.nii.gz"):
        layer = open_overlay_and_wait(qtbot, controller, exported.folder / name)
        assert isinstance(layer, HeatmapLayer), controller.last_error
        assert layer.levels == (0.0, 1.0)
        np.testing.assert_allclose(layer.values, heat, rtol=0, atol=1e-6)
    for name in ("seg.dcm", "mask.nii.gz"):
        layer = open_overlay_and_wait(qtbot, controller, exported.folder / name)
        assert isinstance(layer, LabelLayer), controller.last_error
        np.testing.assert_array_equal(layer.labels != 0, labels != 0)
