"""Third-party licences shown in the About box (and collected into the packaged bundle).

Each row names the distribution(s) it covers, so the bundle's build can check that every
distribution it ships is listed here (``packaging/collect_licences.py``) and copy the licence
texts into ``licenses/`` next to the executable.
"""

from __future__ import annotations

import html
import sys
from pathlib import Path

#: (component, licence, note, distributions on PyPI it covers, space-separated)
THIRD_PARTY: tuple[tuple[str, str, str, str], ...] = (
    ("Qt / PySide6", "LGPL-3.0", "dynamically linked", "pyside6-essentials shiboken6"),
    ("pyqtgraph", "MIT", "", "pyqtgraph"),
    ("NumPy", "BSD-3-Clause", "with OpenBLAS (BSD-3-Clause)", "numpy"),
    ("SciPy", "BSD-3-Clause", "with OpenBLAS (BSD-3-Clause)", "scipy"),
    ("pydicom", "MIT", "", "pydicom"),
    ("pylibjpeg", "MIT", "", "pylibjpeg"),
    ("pylibjpeg-libjpeg", "GPL-3.0", "JPEG decoder plugin", "pylibjpeg-libjpeg"),
    ("pylibjpeg-openjpeg", "MIT (OpenJPEG: BSD-2-Clause)", "", "pylibjpeg-openjpeg"),
    ("pylibjpeg-rle", "MIT", "", "pylibjpeg-rle"),
    ("pyjpegls (CharLS)", "MIT (CharLS: BSD-3-Clause)", "JPEG-LS decoder", "pyjpegls"),
    ("GDCM / python-gdcm", "BSD-3-Clause", "", "python-gdcm"),
    ("highdicom", "MIT", "DICOM SEG", "highdicom"),
    ("dicognito", "MIT", "de-identification", "dicognito"),
    ("SimpleITK / ITK", "Apache-2.0", "installed app only; not in the packaged bundle", "simpleitk"),
    ("pynrrd", "MIT", "NRRD reading", "pynrrd"),
    ("nibabel", "MIT", "", "nibabel"),
    ("python-isal (ISA-L)", "PSF-2.0 (ISA-L: BSD-3-Clause)", "gzip for .nii.gz", "isal"),
    ("PyTorch", "BSD-3-Clause", "", "torch"),
    ("MONAI", "Apache-2.0", "", "monai"),
    ("safetensors", "Apache-2.0", "", "safetensors"),
    ("deepbet", "MIT", "brain-extraction weights", "deepbet"),
    (
        "matplotlib",
        "PSF-style (matplotlib licence)",
        "report plots; its DejaVu fonts (Bitstream Vera licence) set the PDF's text",
        "matplotlib",
    ),
    ("ReportLab", "BSD-3-Clause", "PDF report", "reportlab"),
    ("charset-normalizer", "MIT", "used by ReportLab", "charset-normalizer"),
    ("contourpy, cycler, kiwisolver", "BSD-3-Clause", "used by matplotlib", "contourpy cycler kiwisolver"),
    ("fontTools", "MIT", "used by matplotlib", "fonttools"),
    ("Pillow", "MIT-CMU", "", "pillow"),
    ("pyparsing", "MIT", "", "pyparsing"),
    ("python-dateutil", "BSD-3-Clause", "", "python-dateutil"),
    ("packaging", "Apache-2.0 OR BSD-2-Clause", "", "packaging"),
    ("typing_extensions", "PSF-2.0", "", "typing-extensions"),
    ("filelock", "MIT", "", "filelock"),
    ("colorama", "BSD-3-Clause", "", "colorama"),
    ("platformdirs", "MIT", "", "platformdirs"),
)


def licences_dir() -> Path | None:
    """The folder of full licence texts next to a packaged executable; None when running from source."""
    if not getattr(sys, "frozen", False):
        return None
    folder = Path(sys.executable).resolve().parent / "licenses"
    return folder if folder.is_dir() else None


def licence_html() -> str:
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{html.escape(lic)}</td><td>{html.escape(note)}</td></tr>"
        for name, lic, note, _ in THIRD_PARTY
    )
    folder = licences_dir()
    texts = f"<p>Full licence texts: {html.escape(str(folder))}</p>" if folder is not None else ""
    return (
        "<p>A CT/MRI viewer that shows a scan with what a neural network thinks of it.</p>"
        "<p><b>Not for clinical use.</b></p>"
        f"<table cellspacing='4'>{rows}</table>{texts}"
    )
