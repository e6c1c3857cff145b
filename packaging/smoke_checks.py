"""Checks of what the packaged app wrote, for packaging/smoke_test.sh (run with the build's Python,
never by the bundle under test).

``png FILE``: a full window screenshot, not blank, with the crosshair and a model's heatmap overlay.
``summary OUT``: ``OUT/summary.json`` lists at least one stack with status "ok", and its outputs exist.
``write-images DIR``: an oblique int16 volume as DIR/scan.nii.gz, scan.nrrd and scan.mha, written by
SimpleITK (the installed app's reader, which the bundle leaves out).
``same-nifti A B``: two NIfTI files with identical voxels and affines within 1e-5 mm.
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


def write_images(folder: Path) -> str:
    import numpy as np
    import SimpleITK as sitk

    rng = np.random.default_rng(0)
    direction, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    direction[:, 0] *= np.sign(np.linalg.det(direction))
    voxels = (rng.normal(size=(24, 40, 48)) * 400).astype(np.int16)
    image = sitk.GetImageFromArray(voxels)
    image.SetSpacing((0.8, 0.9, 2.5))
    image.SetOrigin((-20.0, 35.5, 7.25))
    image.SetDirection(direction.ravel().tolist())
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".nii.gz", ".nrrd", ".mha"):
        sitk.WriteImage(image, str(folder / f"scan{suffix}"), useCompression=suffix != ".mha")
    return "scan.nii.gz, scan.nrrd, scan.mha"


def same_nifti(a: Path, b: Path) -> str:
    import nibabel as nib
    import numpy as np

    ia, ib = nib.load(a), nib.load(b)
    va, vb = np.asarray(ia.dataobj), np.asarray(ib.dataobj)
    if va.dtype != vb.dtype or va.shape != vb.shape or not np.array_equal(va, vb):
        raise AssertionError(f"voxels differ: {va.dtype}{va.shape} vs {vb.dtype}{vb.shape}")
    worst = float(np.abs(ia.affine - ib.affine).max())
    if worst > 1e-5:
        raise AssertionError(f"affines differ by {worst:g} mm")
    return f"{va.shape} {va.dtype}, affines within {worst:.1g} mm"


def main(argv: list[str]) -> int:
    commands = {"png": 2, "summary": 2, "write-images": 2, "same-nifti": 3}
    if not argv or commands.get(argv[0]) != len(argv):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        if argv[0] == "png":
            detail = check_png(Path(argv[1]))
        elif argv[0] == "summary":
            detail = check_summary(Path(argv[1]))
        elif argv[0] == "write-images":
            detail = write_images(Path(argv[1]))
        else:
            detail = same_nifti(Path(argv[1]), Path(argv[2]))
    except (AssertionError, OSError, ValueError, KeyError) as exc:
        print(f"{type(exc).__name__}: {exc}")
        return 1
    print(detail)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
