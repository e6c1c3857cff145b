"""The tag browser's reader: every element of real files, sequences as children, search, copy."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from inference.errors import LoadError
from inference.io.dicom_tags import filter_tags, read_tag_tree, tags_as_text


def _flatten(nodes: list) -> list:
    out = []
    for n in nodes:
        out.append(n)
        out += _flatten(list(n.children))
    return out


def test_every_element_of_a_real_ct_slice() -> None:
    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    nodes = read_tag_tree(path)
    by_tag = {n.tag: n for n in nodes}
    assert len(nodes) == len(ds) + len(ds.file_meta)
    assert by_tag["(0010,0010)"].keyword == "PatientName"
    assert by_tag["(0010,0010)"].value == str(ds.PatientName)
    assert by_tag["(0028,0030)"].value == "\\".join(str(v) for v in ds.PixelSpacing)
    assert by_tag["(0002,0010)"].keyword == "TransferSyntaxUID"
    assert "(7FE0,0010)" not in by_tag  # pixel data is not read


def test_search_by_keyword_or_tag_finds_nested_elements() -> None:
    path = get_testdata_file("eCT_Supplemental.dcm")
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    nodes = read_tag_tree(path)
    shared = {n.keyword: n for n in nodes}["SharedFunctionalGroupsSequence"]
    assert shared.vr == "SQ" and shared.children and shared.children[0].tag == "Item 1"
    for query in ("PixelSpacing", "pixelspacing", "0028,0030", "(0028,0030)", "00280030"):
        found = [n for n in _flatten(filter_tags(nodes, query)) if n.keyword == "PixelSpacing"]
        assert found, query
        expected = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
        assert found[0].value == "\\".join(str(v) for v in expected)
    kept = filter_tags(nodes, "PixelSpacing")
    assert all(n.keyword == "PixelSpacing" or n.children for n in _flatten(kept))
    assert len(_flatten(kept)) < len(_flatten(nodes)) / 10
    assert filter_tags(nodes, "NoSuchKeywordAnywhere") == []


def test_copied_text_has_one_line_per_element() -> None:
    nodes = read_tag_tree(get_testdata_file("CT_small.dcm"))
    text = tags_as_text(filter_tags(nodes, "SliceThickness"))
    thickness = pydicom.dcmread(get_testdata_file("CT_small.dcm")).SliceThickness
    assert text.splitlines() == [f"(0018,0050)\tSliceThickness\tDS\t{thickness}"]


def test_a_file_that_is_not_dicom_is_a_typed_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.dcm"
    bad.write_text("hello")
    with pytest.raises(LoadError, match=r"notes\.dcm"):
        read_tag_tree(bad)
