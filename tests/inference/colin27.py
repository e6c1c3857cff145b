"""Colin27 (Debian mricron-data): the T1 head and brain mask the pseudo-CT tests build on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference.training.pseudo_ct import read_head
from inference.volume import Volume

TEMPLATES = Path("/usr/share/mricron/templates")
T1, BRAIN = TEMPLATES / "ch2.nii.gz", TEMPLATES / "ch2bet.nii.gz"


def read_colin27() -> tuple[np.ndarray, np.ndarray, Volume, tuple[float, float, float]]:
    """The T1 voxels, the brain mask, the T1 volume and its ``(k, j, i)`` spacing; fails (never
    skips) when the package is missing."""
    if not T1.is_file():
        pytest.fail(f"{T1} is missing: run `apt-get install mricron-data`")
    t1, brain, vol = read_head(T1, BRAIN)
    spacing = (float(vol.spacing[2]), float(vol.spacing[1]), float(vol.spacing[0]))
    return t1, brain, vol, spacing
