"""Checks of what the packaged app wrote, for packaging/smoke_test.sh (run with the build's Python,
never by the bundle under test).

``png FILE``: a full window screenshot, not blank, with the crosshair and a model's heatmap overlay.
``summary OUT``: ``OUT/summary.json`` lists at least one stack with status "ok", and its outputs exist.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

WINDOW_GREY = (45, 45, 48)


def check_png(path: Path) -> str:
    import numpy as np
    from PIL import Image

    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    height, width = rgb.shape[:2]
    if width < 1000 or height < 500:
        raise AssertionError(f"{path}: {width}×{height} is not a whole window")
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    drawn = float((np.abs(rgb - np.array(WINDOW_GREY)).max(axis=-1) > 25).mean())
    crosshair = int(((r >= 190) & (g >= 140) & (b <= 60)).sum())
    heatmap = int(((r - g > 40) & (b - g > 20)).sum())  # inferno's purples: only a model's overlay has them
    if drawn < 0.25:
        raise AssertionError(f"{path}: only {drawn:.0%} differs from the window colour (blank?)")
    if crosshair < 300:
        raise AssertionError(f"{path}: no crosshair ({crosshair} px)")
    if heatmap < 500:
        raise AssertionError(f"{path}: no heatmap overlay ({heatmap} px of its colours)")
    return f"{width}×{height}, {drawn:.0%} drawn, crosshair {crosshair} px, heatmap {heatmap} px"


def check_summary(out: Path) -> str:
    summary = json.loads((out / "summary.json").read_text())
    stacks = summary.get("stacks", [])
    ok = [s for s in stacks if s.get("status") == "ok"]
    if not ok:
        raise AssertionError(f"{out}/summary.json: no stack with status ok: {stacks}")
    for stack in ok:
        for name in str(stack.get("outputs", "")).split():
            if not (out / stack["folder"] / name).is_file():
                raise AssertionError(f"{out}/{stack['folder']}/{name} is listed but missing")
    first = ok[0]
    return (
        f"{len(ok)}/{len(stacks)} stack(s) ok; {first['model']} score {first.get('study_score')}, "
        f"{first.get('findings')} finding(s), outputs: {first.get('outputs')}"
    )


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("png", "summary"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        detail = check_png(Path(argv[1])) if argv[0] == "png" else check_summary(Path(argv[1]))
    except (AssertionError, OSError, ValueError, KeyError) as exc:
        print(f"{type(exc).__name__}: {exc}")
        return 1
    print(detail)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
