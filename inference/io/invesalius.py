"""InVesalius project files (``.inv3``): the volume inside, for tests and model evaluation.

An ``.inv3`` is a gzipped tar holding ``main.plist`` (shape, dtype, spacing) and the raw volume it
names (``matrix.dat``: C order (slices, rows, columns), little-endian, no header). Debian's
``invesalius-examples`` ships a real CT head this way (``Cranium.inv3``).
"""

from __future__ import annotations

import plistlib
import tarfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

from inference.errors import LoadError

CRANIUM = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")


def read_inv3(path: str | Path) -> tuple[npt.NDArray[np.int16], tuple[float, float, float]]:
    """``(voxels int16 [k, j, i], (si, sj, sk) mm)`` of the project's volume.

    :raises LoadError: the file is not a readable InVesalius project or its volume is incomplete.
    """
    path = Path(path)
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            plist_file = tar.extractfile(members["main.plist"])
            if plist_file is None:
                raise KeyError("main.plist")
            main = plistlib.load(plist_file)
            matrix = main["matrix"]
            raw_file = tar.extractfile(members[matrix["filename"]])
            if raw_file is None:
                raise KeyError(matrix["filename"])
            raw = raw_file.read()
    except (OSError, tarfile.TarError, KeyError, plistlib.InvalidFileException) as exc:
        raise LoadError(path, f"not a readable InVesalius project ({type(exc).__name__}: {exc})") from exc
    shape = tuple(int(n) for n in matrix["shape"])
    dtype = np.dtype(matrix["dtype"]).newbyteorder("<")
    if len(raw) != int(np.prod(shape)) * dtype.itemsize:
        raise LoadError(path, f"{matrix['filename']} holds {len(raw)} bytes, expected {shape} {dtype}")
    voxels = np.frombuffer(raw, dtype=dtype).reshape(shape).astype(np.int16)
    si, sj, sk = (float(s) for s in main["spacing"])
    return voxels, (si, sj, sk)
