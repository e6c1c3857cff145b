"""The About box's third-party list: every runtime dependency is named, and a packaged build
points at its folder of licence texts (collected by packaging/collect_licences.py)."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest

from viewer import licences

REPO = Path(__file__).resolve().parents[2]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_runtime_dependency_is_in_the_about_box() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    required = {canonical(re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0]) for dep in project["dependencies"]}
    listed = {canonical(d) for *_, dists in licences.THIRD_PARTY for d in dists.split()}
    assert required - listed == set()


def test_the_about_text_names_each_component_and_its_licence() -> None:
    text = licences.licence_html()
    for name, lic, _, _ in licences.THIRD_PARTY:
        assert name.replace("&", "&amp;") in text and lic in text
    assert "Full licence texts" not in text  # running from source: no bundle folder


def test_a_packaged_build_points_at_its_licence_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "licenses").mkdir()
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "radlens"))
    assert licences.licences_dir() == tmp_path.resolve() / "licenses"
    assert f"Full licence texts: {tmp_path.resolve() / 'licenses'}" in licences.licence_html()
