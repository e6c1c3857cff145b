"""Undo and redo for every annotation and layer edit. No Qt.

The history keeps the last committed state of the measurements and of the layers' settings
(which layers, in which order, each one's visibility, opacity, colours, names, threshold…; the
voxel arrays are shared, never copied). Every change event pushes the previous state; a drag
is one step (``group``), and repeated changes of the same layer setting within a second (a
slider being dragged) are one step too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .events import Event
from .layers import Layer, LayerList
from .measurements import Measurement, MeasurementList

__all__ = ["EditHistory"]

#: Layer settings an edit can change (the arrays are not edits).
_LAYER_FIELDS = (
    "name",
    "opacity",
    "visible",
    "names",
    "colours",
    "hidden_labels",
    "outline",
    "colormap",
    "levels",
    "threshold",
)
#: Changes of the same setting closer together than this are one undo step.
COALESCE_S = 1.0


@dataclass(frozen=True)
class _State:
    measurements: tuple[Measurement, ...]
    layers: tuple[tuple[Layer, dict[str, Any]], ...]

    def signature(self, other: _State) -> frozenset[tuple[int, str]] | None:
        """Which layer settings differ from ``other`` (None when anything else differs)."""
        if [m.id for m in self.measurements] != [m.id for m in other.measurements]:
            return None
        if any(_key(a) != _key(b) for a, b in zip(self.measurements, other.measurements, strict=True)):
            return None
        if [layer.id for layer, _ in self.layers] != [layer.id for layer, _ in other.layers]:
            return None
        return frozenset(
            (layer.id, k)
            for (layer, a), (_, b) in zip(self.layers, other.layers, strict=True)
            for k in a
            if a[k] != b[k]
        )


def _key(m: Measurement) -> tuple[Any, ...]:
    return (m.id, m.shape, m.plane, tuple(m.points), m.label)


def _layer_settings(layer: Layer) -> dict[str, Any]:
    out = {}
    for name in _LAYER_FIELDS:
        if hasattr(layer, name):
            value = getattr(layer, name)
            out[name] = value.copy() if isinstance(value, dict | set) else value
    return out


class EditHistory:
    def __init__(self, measurements: MeasurementList, layers: LayerList, limit: int = 200) -> None:
        self.measurements = measurements
        self.layers = layers
        self.limit = limit
        self._undo: list[_State] = []
        self._redo: list[_State] = []
        self._restoring = False
        self._grouping = 0
        self._last_push: tuple[float, frozenset[tuple[int, str]]] | None = None
        self._committed = self._capture()
        self.changed: Event[[]] = Event()  # the undo/redo availability may have changed
        measurements.changed.connect(self._on_change)
        layers.changed.connect(self._on_change)

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def reset(self) -> None:
        """Forget every step (a new volume: its edits start here)."""
        self._undo.clear()
        self._redo.clear()
        self._last_push = None
        self._committed = self._capture()
        self.changed.emit()

    def begin(self) -> None:
        """Start one undo step that spans several changes (a drag, from press to release)."""
        self._grouping += 1

    def end(self) -> None:
        """Close the step :meth:`begin` opened."""
        self._grouping = max(0, self._grouping - 1)
        if not self._grouping:
            self._on_change()

    @contextmanager
    def group(self) -> Iterator[None]:
        """Everything inside is one undo step."""
        self.begin()
        try:
            yield
        finally:
            self.end()

    def undo(self) -> bool:
        if not self._undo:
            return False
        self._redo.append(self._capture())
        self._restore(self._undo.pop())
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        self._undo.append(self._capture())
        self._restore(self._redo.pop())
        return True

    def _capture(self) -> _State:
        return _State(
            tuple(m.copy() for m in self.measurements),
            tuple((layer, _layer_settings(layer)) for layer in self.layers),
        )

    def _on_change(self) -> None:
        if self._restoring or self._grouping:
            return
        now = self._capture()
        differs = now.signature(self._committed)
        if differs is not None and not differs:
            return  # nothing an undo could bring back changed
        last = self._last_push
        t = time.monotonic()
        if differs and last is not None and last[1] == differs and t - last[0] < COALESCE_S and self._undo:
            self._last_push = (t, differs)  # the same setting again: one step
        else:
            self._undo.append(self._committed)
            del self._undo[: -self.limit]
            self._last_push = (t, differs) if differs else None
        self._redo.clear()
        self._committed = now
        self.changed.emit()

    def _restore(self, state: _State) -> None:
        self._restoring = True
        try:
            wanted = [layer for layer, _ in state.layers]
            with self.layers.changed.blocked():
                for layer in list(self.layers):
                    if layer not in wanted:
                        self.layers.remove(layer)
                for layer, settings in state.layers:
                    if layer not in list(self.layers):
                        self.layers.add(layer)
                    for key, value in settings.items():
                        setattr(layer, key, value.copy() if isinstance(value, dict | set) else value)
                for n, layer in enumerate(wanted):
                    self.layers.move(layer, n)
            self.layers.changed.emit()
            self.measurements.replace_all([m.copy() for m in state.measurements])
        finally:
            self._restoring = False
        self._committed = self._capture()
        self._last_push = None
        self.changed.emit()
