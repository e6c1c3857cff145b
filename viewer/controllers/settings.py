"""Persistent viewer settings (last folder, recent folders, layout, window geometry) in an INI file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtWidgets

from inference.display.window_level import WindowLevel

MAX_RECENT = 10


def default_settings_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("radlens")) / "viewer.ini"


def default_data_folder() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("radlens"))


class Settings:
    """``data_folder`` holds what the viewer keeps for the user (measurements of each study): by
    default the user's data folder, or the folder of an explicitly given settings file (so a
    test's or a portable install's settings and data stay together)."""

    def __init__(self, path: Path | None = None, data_folder: Path | None = None) -> None:
        self.data_folder = data_folder or (path.parent if path is not None else default_data_folder())
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

    def user_presets(self) -> list[tuple[str, WindowLevel]]:
        """The user's own window presets, oldest first (entries that do not parse are left out)."""
        value = self.qsettings.value("window_presets", [])
        items: list[object] = [value] if isinstance(value, str) else list(value) if isinstance(value, list) else []
        out = []
        for item in items:
            name, _, numbers = str(item).rpartition("|")
            try:
                center, width = (float(v) for v in numbers.split(","))
            except ValueError:
                continue
            if name and width > 0:
                out.append((name, WindowLevel(center, width)))
        return out

    def add_user_preset(self, name: str, window: WindowLevel) -> None:
        """Keep ``window`` under ``name``, replacing a preset of the same name."""
        name = name.replace("|", "/").strip()
        kept = [(n, w) for n, w in self.user_presets() if n != name]
        kept.append((name, window))
        self.set_value("window_presets", [f"{n}|{w.center:g},{w.width:g}" for n, w in kept])

    def clear_user_presets(self) -> None:
        self.qsettings.remove("window_presets")
        self.qsettings.sync()

    def forget_window(self) -> None:
        """Drop the saved window size and dock layout (Window → Reset layout)."""
        self.qsettings.remove("geometry")
        self.qsettings.remove("state")
        self.qsettings.sync()

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
