"""Every header element of one DICOM file as a tree, for the viewer's tag browser. No Qt.

Patient attributes are part of the tree (the reader sees them in the viewer); nothing here logs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference.errors import LoadError

__all__ = ["TagNode", "filter_tags", "read_tag_tree", "tags_as_text"]

#: Longest value text shown for one element; the rest is summarised.
MAX_VALUE_CHARS = 200


@dataclass(frozen=True)
class TagNode:
    """One element (``children`` hold a sequence's items, each an item node with its elements)."""

    tag: str  # "(0010,0010)", or "Item 1" for a sequence item
    keyword: str
    vr: str
    value: str
    children: tuple[TagNode, ...] = field(default=())

    def matches(self, query: str) -> bool:
        """Whether ``query`` names this element: part of its keyword or name, or its tag written
        as ``0010,0010``, ``(0010,0010)`` or ``00100010`` (case-insensitive)."""
        q = query.strip().lower()
        if not q:
            return True
        compact = self.tag.lower().strip("()").replace(",", "")
        q_compact = q.strip("()").replace(",", "").replace(" ", "")
        return q in self.keyword.lower() or q in self.tag.lower() or (len(q_compact) >= 4 and q_compact in compact)


def read_tag_tree(path: str | Path) -> list[TagNode]:
    """The file's meta header and dataset, pixel data left out. A multi-frame file's frames share
    it; their per-frame groups are the children of its functional-group sequences.

    Raises :class:`LoadError` with the reason when the header cannot be parsed.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError, TypeError, KeyError) as exc:
        raise LoadError(path, f"cannot read the DICOM header: {exc}") from exc
    nodes: list[TagNode] = []
    meta = getattr(ds, "file_meta", None)
    if meta is not None and len(meta):
        nodes += [_node(elem) for elem in meta]
    nodes += [_node(elem) for elem in ds]
    return nodes


def filter_tags(nodes: list[TagNode] | tuple[TagNode, ...], query: str) -> list[TagNode]:
    """The nodes that match ``query``, and the sequences (with only their matching items) that
    contain a match, so a search finds elements nested in sequences too."""
    out: list[TagNode] = []
    for node in nodes:
        if node.matches(query):
            out.append(node)
            continue
        kept = tuple(filter_tags(node.children, query))
        if kept:
            out.append(TagNode(node.tag, node.keyword, node.vr, node.value, kept))
    return out


def tags_as_text(nodes: list[TagNode] | tuple[TagNode, ...], indent: int = 0) -> str:
    """Tab-separated lines (tag, keyword, VR, value), nested items indented: what Copy puts on
    the clipboard."""
    lines = []
    for node in nodes:
        lines.append("  " * indent + "\t".join((node.tag, node.keyword, node.vr, node.value)).rstrip())
        if node.children:
            lines.append(tags_as_text(node.children, indent + 1))
    return "\n".join(line for line in lines if line)


def _node(elem: Any) -> TagNode:
    tag = f"({elem.tag.group:04X},{elem.tag.element:04X})"
    keyword = elem.keyword or elem.name or "(private)"
    vr = str(elem.VR)
    if vr == "SQ":
        items = tuple(
            TagNode(f"Item {n + 1}", "", "", f"{len(item)} elements", tuple(_node(e) for e in item))
            for n, item in enumerate(elem.value or [])
        )
        return TagNode(tag, keyword, vr, f"{len(items)} item(s)", items)
    return TagNode(tag, keyword, vr, _value_text(elem))


def _value_text(elem: Any) -> str:
    value = elem.value
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    try:
        text = str(value) if not elem.VM or elem.VM <= 1 else "\\".join(str(v) for v in value)
    except Exception:  # a malformed value still lists the element
        text = "<unreadable value>"
    return text if len(text) <= MAX_VALUE_CHARS else f"{text[:MAX_VALUE_CHARS]}… ({len(text)} characters)"
