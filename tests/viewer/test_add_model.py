"""File → Add model on real widgets: a MONAI bundle folder added, run on the sample, its labels
shown with the bundle's names and the card's colours."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.inference.test_monai_bundle import _write_bundle
from tests.viewer.conftest import open_and_wait


@pytest.mark.slow
def test_add_a_bundle_and_run_it_on_the_sample(
    qtbot: Any, controller: Any, sample_study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from viewer.models.layers import LabelLayer

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # the user's model folder, for this test
    bundle = _write_bundle(tmp_path / "bundle")
    open_and_wait(qtbot, controller, sample_study)
    panel = controller.window.analysis_panel
    assert panel.model_box.findText("tiny-spleen-ct", flags=_contains()) < 0
    assert controller.add_model(bundle)
    qtbot.waitUntil(lambda: panel.model_box.findText("tiny-spleen-ct", flags=_contains()) >= 0, timeout=60_000)
    assert (tmp_path / "data" / "radlens" / "models" / "tiny-spleen-ct" / "card.json").is_file()
    assert "Model tiny-spleen-ct added" in controller.window.statusBar().currentMessage()
    card = controller.analysis.registry.get("tiny-spleen-ct")
    assert controller.run_model("tiny-spleen-ct")
    qtbot.waitUntil(lambda: controller.analysis.result is not None or bool(controller.last_error), timeout=120_000)
    assert controller.analysis.result is not None, controller.last_error
    labels = [layer for layer in controller.model.layers if isinstance(layer, LabelLayer)]
    assert labels, "the bundle's labels are shown"
    layer = labels[0]
    assert layer.names.get(1) == "spleen"
    assert layer.colours.get(1) == card.labels[0].colour
    if controller.analysis.result.findings:  # the findings table names them as the bundle does
        assert "spleen" in panel.findings.item(0, 0).text()


def _contains() -> Any:
    from PySide6 import QtCore

    return QtCore.Qt.MatchFlag.MatchContains
