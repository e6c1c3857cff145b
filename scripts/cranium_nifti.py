"""Write the real CT head of Debian's ``invesalius-examples`` as NIfTI: the demo model's held-out test anatomy.

    .venv/bin/python scripts/cranium_nifti.py /tmp/demo/head/head.nii.gz

The volume is GPL-2 (Debian): use it to evaluate, never commit it or train shipped weights on it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from inference.io.invesalius import CRANIUM, read_inv3
from inference.io.nifti_writer import write_nifti
from inference.volume import Volume, VolumeMetadata


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    voxels, spacing = read_inv3(CRANIUM)
    volume = Volume(voxels, spacing, (0.0, 0.0, 0.0), np.eye(3), VolumeMetadata(modality="CT"))
    out = Path(argv[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    write_nifti(volume, out)
    print(f"{out}: {voxels.shape} voxels, spacing {spacing} mm")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
