"""The viewer's questions for a path: one function per direction, each kind of file named once.

A cancelled dialog gives ``None``. Controllers call these (the only file dialogs in the viewer).
"""

from __future__ import annotations

from enum import Enum

from PySide6 import QtWidgets

__all__ = ["Asked", "ask_folder", "ask_open_file", "ask_save_file"]


class Asked(Enum):
    """What is asked for: the dialog's title and its file-type filter."""

    IMAGE = ("Open image", "Images (*.dcm *.nii *.nii.gz *.nrrd *.nhdr *.mha *.mhd);;All files (*)")
    MASK = ("Open mask", "Segmentations (*.dcm *.nii *.nii.gz *.nrrd *.mha *.mhd);;All files (*)")
    SCREENSHOT = ("Save screenshot", "PNG (*.png)")
    MEASUREMENT_SR = ("Open measurements (DICOM SR)", "DICOM SR (*.dcm);;All files (*)")

    @property
    def title(self) -> str:
        return self.value[0]

    @property
    def filter(self) -> str:
        return self.value[1]


def ask_folder(parent: QtWidgets.QWidget, title: str, start: str) -> str | None:
    """A folder chosen by the user, starting in ``start``."""
    folder = QtWidgets.QFileDialog.getExistingDirectory(parent, title, start)
    return folder or None


def ask_open_file(parent: QtWidgets.QWidget, asked: Asked, start: str) -> str | None:
    """An existing file of the kind ``asked``, starting in ``start``."""
    path, _ = QtWidgets.QFileDialog.getOpenFileName(parent, asked.title, start, asked.filter)
    return path or None


def ask_save_file(parent: QtWidgets.QWidget, asked: Asked, suggested: str) -> str | None:
    """A file name to write the kind ``asked`` to, suggesting ``suggested``."""
    path, _ = QtWidgets.QFileDialog.getSaveFileName(parent, asked.title, suggested, asked.filter)
    return path or None
