"""Copy the licence texts of everything in the bundle into ``<bundle>/licenses/``.

``python packaging/collect_licences.py BUNDLE TOP_LEVEL_LIST`` where TOP_LEVEL_LIST is the list of
top-level modules and files the spec wrote (``build/pyinstaller/radlens/bundled-top-level.txt``).

* every Python distribution in the bundle: the licence files from its ``.dist-info`` (or, where a
  wheel ships none, the licence its metadata names, from ``/usr/share/common-licenses``), into
  ``licenses/<distribution>-<version>/``;
* Python itself and PyInstaller's bootloader (GPL-2.0 with the bootloader exception);
* the system libraries copied from the build machine, with their Debian ``copyright`` files;
* ``licenses/THIRD-PARTY.txt``, the index.

It fails when a bundled distribution has no row in ``viewer.licences.THIRD_PARTY`` (the About box
would not list it) or when no licence text can be found for it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
from importlib.metadata import Distribution, PackageNotFoundError, distribution, packages_distributions
from pathlib import Path

LICENCE_FILE = re.compile(r"(^|/)(LICEN[CS]E|COPYING|NOTICE|AUTHORS|COPYRIGHT)[^/]*$", re.IGNORECASE)
COMMON_LICENCES = Path("/usr/share/common-licenses")
#: licence named in a wheel's metadata -> text Debian keeps (for wheels that ship no licence file)
COMMON_BY_NAME = {"LGPL-3.0": "LGPL-3", "GPL-3.0": "GPL-3", "GPL-2.0": "GPL-2", "Apache-2.0": "Apache-2.0"}
#: the app itself: not a third party
OWN = {"radlens"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def bundled_distributions(top_level: list[str]) -> dict[str, Distribution]:
    """The distributions whose modules, libraries or metadata the bundle holds."""
    by_module = packages_distributions()
    found: dict[str, Distribution] = {}
    for entry in top_level:
        names: list[str] = []
        if entry.endswith(".dist-info"):
            names = [re.sub(r"-[^-]+\.dist-info$", "", entry)]
        else:
            module = entry[: -len(".libs")] if entry.endswith(".libs") else entry
            module = module.split(".cpython")[0].split(".abi3")[0]
            names = list(by_module.get(module, []))
            if entry.endswith(".libs") and not names:
                names = [module]  # pillow.libs, python_gdcm.libs: named after the distribution
        for name in names:
            try:
                dist = distribution(name)
            except PackageNotFoundError:
                continue
            found.setdefault(canonical(dist.metadata["Name"]), dist)
    for own in OWN:
        found.pop(own, None)
    return found


def licence_name(dist: Distribution) -> str:
    meta = dist.metadata
    expression = meta.get("License-Expression")
    if expression:
        return str(expression)
    text = (meta.get("License") or "").strip().splitlines()
    if text and len(text[0]) < 60:
        return text[0]
    classifiers = [c.rsplit("::", 1)[-1].strip() for c in meta.get_all("Classifier") or [] if c.startswith("License")]
    return ", ".join(classifiers) or "see files"


def copy_distribution(dist: Distribution, dest_root: Path) -> list[str]:
    """Copy the licence files of ``dist``; returns their names."""
    name = canonical(dist.metadata["Name"])
    dest = dest_root / f"{name}-{dist.version}"
    copied: list[str] = []
    for f in dist.files or []:
        path = str(f).replace("\\", "/")
        if ".dist-info/" not in path or not LICENCE_FILE.search(path):
            continue
        src = Path(str(dist.locate_file(f)))
        if not src.is_file():
            continue
        rel = path.split(".dist-info/", 1)[1]
        rel = rel[len("licenses/") :] if rel.startswith("licenses/") else rel
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest / rel)
        copied.append(rel)
    if not copied:
        # No licence file in the wheel: the licence text its metadata names, and the metadata's own words.
        lic = licence_name(dist)
        dest.mkdir(parents=True, exist_ok=True)
        for spdx, common in COMMON_BY_NAME.items():
            if spdx not in lic:
                continue
            if (COMMON_LICENCES / common).is_file():
                shutil.copyfile(COMMON_LICENCES / common, dest / f"{spdx}.txt")
            else:  # not a Debian-like build machine (macOS, Windows): name the text and where it is
                (dest / f"{spdx}.txt").write_text(f"{lic}\nhttps://spdx.org/licenses/{spdx}.html\n", encoding="utf-8")
                print(f"collect_licences: {name}: {spdx} text not on this machine; wrote its SPDX link")
            copied.append(f"{spdx}.txt")
        license_text = dist.metadata.get("License") or ""
        if len(license_text) > 200:  # the whole licence in the metadata (pyjpegls)
            (dest / "LICENSE-from-metadata.txt").write_text(license_text, encoding="utf-8")
            copied.append("LICENSE-from-metadata.txt")
        elif "MIT" in lic or any("MIT License" in c for c in dist.metadata.get_all("Classifier") or []):
            author = dist.metadata.get("Author") or dist.metadata.get("Author-email") or "the authors"
            (dest / "LICENSE-MIT.txt").write_text(MIT.format(who=author), encoding="utf-8")
            copied.append("LICENSE-MIT.txt")
    return copied


MIT = """MIT License (the licence this distribution's metadata names; the wheel ships no licence file)

Copyright (c) {who}

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES
OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


def copy_python_and_bootloader(dest_root: Path) -> list[str]:
    lines = []
    python_licence = Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt"
    if python_licence.is_file():
        dest = dest_root / f"python-{sys.version.split()[0]}"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(python_licence, dest / "LICENSE.txt")
        lines.append(f"Python {sys.version.split()[0]}: PSF-2.0  (python-{sys.version.split()[0]}/LICENSE.txt)")
    try:
        pyinstaller = distribution("pyinstaller")
    except PackageNotFoundError:
        return lines
    files = copy_distribution(pyinstaller, dest_root)
    lines.append(
        f"PyInstaller {pyinstaller.version} bootloader: GPL-2.0-or-later with the bootloader exception "
        f"(pyinstaller-{pyinstaller.version}/: {', '.join(files)})"
    )
    return lines


def copy_system_libraries(bundle: Path, dest_root: Path) -> list[str]:
    """Debian copyright files of the system libraries PyInstaller copied next to the executable."""
    if not shutil.which("dpkg"):
        return []
    internal = bundle / "_internal"
    packages: dict[str, list[str]] = {}
    for lib in sorted(internal.glob("lib*.so*")):
        if re.search(r"-[0-9a-f]{8}\.so", lib.name) or lib.name.startswith(("libpython", "libQt6", "libicu")):
            continue  # vendored by a wheel (hash-suffixed), or Python's/Qt's own
        done = subprocess.run(["dpkg", "-S", f"*/{lib.name}"], capture_output=True, text=True)
        if done.returncode != 0 or not done.stdout:
            continue
        package = done.stdout.split(":", 1)[0].split(",")[0].strip()
        packages.setdefault(package, []).append(lib.name)
    lines = []
    for package, libs in sorted(packages.items()):
        copyright_file = Path("/usr/share/doc") / package / "copyright"
        if not copyright_file.is_file():
            continue
        (dest_root / "system").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(copyright_file, dest_root / "system" / f"{package}.copyright")
        lines.append(f"{package} (Debian): {', '.join(libs)}  (system/{package}.copyright)")
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    bundle, top_level_file = Path(argv[0]), Path(argv[1])
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from viewer.licences import THIRD_PARTY

    listed = {canonical(d) for *_, dists in THIRD_PARTY for d in dists.split()}
    dest_root = bundle / "licenses"
    shutil.rmtree(dest_root, ignore_errors=True)
    dest_root.mkdir(parents=True)

    dists = bundled_distributions(top_level_file.read_text().split())
    index = [
        "Third-party software in this RadLens bundle, with the licence texts in the folders named.",
        "Qt is used under the LGPL-3.0: its libraries are separate shared libraries under",
        "_internal/PySide6/Qt/lib and can be replaced with compatible builds.",
        "",
    ]
    problems = []
    for name, dist in sorted(dists.items()):
        files = copy_distribution(dist, dest_root)
        if not files:
            problems.append(f"{name}: no licence text found")
        if name not in listed:
            problems.append(f"{name}: bundled but missing from viewer/licences.py THIRD_PARTY (the About box)")
        index.append(f"{name} {dist.version}: {licence_name(dist)}  ({name}-{dist.version}/: {', '.join(files)})")
    index += ["", *copy_python_and_bootloader(dest_root), "", *copy_system_libraries(bundle, dest_root)]
    (dest_root / "THIRD-PARTY.txt").write_text("\n".join(index) + "\n", encoding="utf-8")
    for p in problems:
        print(f"collect_licences: {p}", file=sys.stderr)
    print(f"licences: {len(dists)} distributions -> {dest_root}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
