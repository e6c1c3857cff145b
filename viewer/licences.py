"""Third-party licences shown in the About box (and collected into the packaged bundle)."""

from __future__ import annotations

THIRD_PARTY: tuple[tuple[str, str, str], ...] = (
    ("Qt / PySide6", "LGPL-3.0", "dynamically linked"),
    ("pyqtgraph", "MIT", ""),
    ("superqt", "BSD-3-Clause", ""),
    ("NumPy", "BSD-3-Clause", ""),
    ("pydicom", "MIT", ""),
    ("pylibjpeg", "MIT", ""),
    ("pylibjpeg-libjpeg", "GPL-3.0", "JPEG decoder plugin"),
    ("pylibjpeg-openjpeg", "MIT (OpenJPEG: BSD-2-Clause)", ""),
    ("pylibjpeg-rle", "MIT", ""),
    ("GDCM / python-gdcm", "BSD-3-Clause", ""),
    ("SimpleITK / ITK", "Apache-2.0", ""),
    ("nibabel", "MIT", ""),
    ("platformdirs", "MIT", ""),
    ("PyTorch", "BSD-3-Clause", ""),
)


def licence_html() -> str:
    rows = "".join(f"<tr><td>{name}</td><td>{lic}</td><td>{note}</td></tr>" for name, lic, note in THIRD_PARTY)
    return (
        "<p>A CT/MRI viewer that shows a scan with what a neural network thinks of it.</p>"
        "<p><b>Not for clinical use.</b></p>"
        f"<table cellspacing='4'>{rows}</table>"
    )
