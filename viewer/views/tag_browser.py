"""The DICOM tag browser dock: every header element of the current slice's file, searchable.

Widgets only: the tag controller fills it. Patient attributes are shown here and nowhere else.
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from inference.io.dicom_tags import TagNode, filter_tags, tags_as_text

NODE_ROLE = QtCore.Qt.ItemDataRole.UserRole + 1


class TagBrowser(QtWidgets.QWidget):
    """A search field over a tree of (tag, keyword, VR, value); Ctrl+C copies the selection."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tag-browser")
        self.source_label = QtWidgets.QLabel("No DICOM file shown")
        self.source_label.setWordWrap(True)
        self.search = QtWidgets.QLineEdit()
        self.search.setPlaceholderText("Search keyword or tag (e.g. SliceThickness, 0018,0050)")
        self.search.setClearButtonEnabled(True)
        self.tree = QtWidgets.QTreeWidget()
        self.tree.setColumnCount(4)
        self.tree.setHeaderLabels(["Tag", "Keyword", "VR", "Value"])
        self.tree.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setUniformRowHeights(True)
        self.copy_button = QtWidgets.QPushButton("Copy")
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.source_label)
        layout.addWidget(self.search)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.copy_button)
        self._nodes: list[TagNode] = []
        self.search.textChanged.connect(self._refill)
        self.copy_button.clicked.connect(self.copy_selection)
        copy = QtGui.QShortcut(QtGui.QKeySequence.StandardKey.Copy, self.tree)
        copy.activated.connect(self.copy_selection)

    def show_tags(self, source: str, nodes: list[TagNode]) -> None:
        self.source_label.setText(source)
        self._nodes = nodes
        self._refill()

    def show_message(self, text: str) -> None:
        self.source_label.setText(text)
        self._nodes = []
        self.tree.clear()

    def shown_nodes(self) -> list[TagNode]:
        """The top-level nodes the tree shows now (after the search)."""
        items = (self.tree.topLevelItem(n) for n in range(self.tree.topLevelItemCount()))
        return [item.data(0, NODE_ROLE) for item in items if item is not None]

    def copy_selection(self) -> str:
        """Put the selected rows (all shown rows when none is selected) on the clipboard."""
        items = self.tree.selectedItems()
        nodes = [i.data(0, NODE_ROLE) for i in items] if items else self.shown_nodes()
        text = tags_as_text(nodes)
        QtWidgets.QApplication.clipboard().setText(text)
        return text

    def _refill(self) -> None:
        self.tree.clear()
        query = self.search.text()
        nodes = filter_tags(self._nodes, query) if query.strip() else self._nodes
        self.tree.addTopLevelItems([self._item(n) for n in nodes])
        if query.strip():
            self.tree.expandAll()
        for col in range(3):
            self.tree.resizeColumnToContents(col)

    def _item(self, node: TagNode) -> QtWidgets.QTreeWidgetItem:
        item = QtWidgets.QTreeWidgetItem([node.tag, node.keyword, node.vr, node.value])
        item.setData(0, NODE_ROLE, node)
        item.setToolTip(3, node.value)
        for child in node.children:
            item.addChild(self._item(child))
        return item
