"""The viewer survives malformed files opened through its open path (File → Open's code path).

A sample of the fuzzer's cases (one or two per mutation family, fixed seed): each folder (a mutant
beside two good slices) and then the mutant alone are opened through the controller. Each open must
end in a shown volume or an error message in the status bar, with the window still up.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.fuzz.mutations import FAMILIES
from tests.fuzz.runner import make_case
from tests.fuzz.seeds import build_corpus
from tests.viewer.conftest import LOAD_TIMEOUT_MS, settle

SAMPLE_PER_FAMILY = 1
MASTER_SEED = 4242


def _sample(tmp_path: Path) -> list[dict[str, Any]]:
    corpus = build_corpus(tmp_path / "seeds")
    cases_dir = tmp_path / "cases"
    cases_dir.mkdir()
    wanted = {f for kind in FAMILIES.values() for f in kind}
    taken: dict[str, int] = {}
    cases = []
    for index in range(400):
        folder = cases_dir / f"case-{index}"
        case = make_case(corpus, index, MASTER_SEED, cases_dir)
        if taken.get(case["family"], 0) >= SAMPLE_PER_FAMILY:
            shutil.rmtree(folder)
            continue
        taken[case["family"]] = taken.get(case["family"], 0) + 1
        cases.append(case)
        if wanted <= set(taken):
            break
    random.Random(0).shuffle(cases)
    return cases


def _open(qtbot: Any, controller: Any, path: Path) -> bool:
    """Open ``path``; whether a volume was shown (else an error message is in the status bar)."""
    shown: list[object] = []
    controller.volume_shown.connect(shown.append)
    controller.last_error = ""
    try:
        controller.open_path(path)
        qtbot.waitUntil(lambda: bool(shown) or bool(controller.last_error), timeout=LOAD_TIMEOUT_MS)
        qtbot.waitUntil(lambda: not (controller.loader.busy or controller.drawing), timeout=LOAD_TIMEOUT_MS)
        settle(qtbot)
    finally:
        controller.volume_shown.disconnect(shown.append)
    if not shown:
        assert controller.last_error, f"{path}: neither a volume nor an error"
        assert controller.window.statusBar().currentMessage() == controller.last_error
    assert controller.window.isVisible()
    return bool(shown)


@pytest.mark.slow
def test_viewer_survives_malformed_files(qtbot: Any, controller: Any, tmp_path: Path) -> None:
    cases = _sample(tmp_path)
    assert len(cases) >= 15
    for case in cases:
        folder = Path(case["dir"])
        _open(qtbot, controller, folder)
        _open(qtbot, controller, folder / case["mutant"])
    # Still usable afterwards: a good slice opens and is shown.
    assert _open(qtbot, controller, Path(cases[0]["dir"]) / "good_1.dcm")
