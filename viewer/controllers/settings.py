"""Persistent viewer settings (last folder, recent folders, layout, window geometry) in an INI file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtWidgets

MAX_RECENT = 10


def default_settings_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("radlens")) / "viewer.ini"


class Settings:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_settings_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.qsettings = QtCore.QSettings(str(self.path), QtCore.QSettings.Format.IniFormat)

    def value(self, key: str, default: Any = None) -> Any:
        return self.qsettings.value(key, default)

    def set_value(self, key: str, value: Any) -> None:
        self.qsettings.setValue(key, value)
        self.qsettings.sync()

    def recent(self) -> list[str]:
        value = self.qsettings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in value] if isinstance(value, list | tuple) else []

    def add_recent(self, folder: str) -> None:
        items = [folder, *[f for f in self.recent() if f != folder]][:MAX_RECENT]
        self.set_value("recent", items)
        parent = folder if Path(folder).is_dir() else str(Path(folder).parent)
        self.set_value("last_folder", parent)

    def last_folder(self) -> str:
        return str(self.qsettings.value("last_folder", str(Path.home())))

    def save_window(self, window: QtWidgets.QMainWindow) -> None:
        self.qsettings.setValue("geometry", window.saveGeometry())
        self.qsettings.setValue("state", window.saveState())
        self.qsettings.sync()

    def restore_window(self, window: QtWidgets.QMainWindow) -> None:
        geometry = self.qsettings.value("geometry")
        state = self.qsettings.value("state")
        if geometry is not None:
            window.restoreGeometry(geometry)
        if state is not None:
            window.restoreState(state)
