"""Window/level for the viewer: the Qt-free definitions live in :mod:`inference.display.window_level`."""

from inference.display.window_level import (
    AUTO_SHORTCUT,
    CT_PRESETS,
    WindowLevel,
    auto_window,
    default_window,
    drag_window,
    preset_action_name,
    volume_window,
)

__all__ = [
    "AUTO_SHORTCUT",
    "CT_PRESETS",
    "WindowLevel",
    "auto_window",
    "default_window",
    "drag_window",
    "preset_action_name",
    "volume_window",
]
