"""File → Export results: the batch command's writers, for the open stack, on a worker thread."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6 import QtCore

from inference.engine.result import Result
from inference.io.paths import is_within
from inference.io.stacks import Stack
from inference.models.card import ModelCard
from inference.volume import Volume
from viewer.controllers.worker import create_worker


@dataclass(frozen=True)
class Exported:
    folder: Path
    files: tuple[str, ...]
    notes: tuple[str, ...]


class ExportController(QtCore.QObject):
    exported = QtCore.Signal(object)  # Exported
    failed = QtCore.Signal(str)

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.busy = False
        self._worker: Any = None

    @staticmethod
    def refusal(out_root: Path, stack: Stack) -> str:
        """Why ``out_root`` cannot take the export (empty when it can): never into a scan folder."""
        for src in {Path(p).resolve().parent for p in stack.paths}:
            if is_within(out_root.resolve(), src):
                return f"{out_root} lies inside the folder of the open scan; RadLens never writes there"
        return ""

    def export(self, out_root: Path, *, stack: Stack, volume: Volume, result: Result, card: ModelCard) -> bool:
        """Start writing the outputs under ``out_root/<stack folder>``; False (and ``failed``) if refused."""
        reason = "an export is already running" if self.busy else self.refusal(out_root, stack)
        if reason:
            self.failed.emit(reason)
            return False

        def work() -> Exported:
            from inference.batch.identity import Identity
            from inference.batch.plan import folder_name
            from inference.batch.stack_outputs import write_stack_outputs

            identity = Identity()
            folder = out_root / folder_name(stack, identity)
            out = write_stack_outputs(folder, stack=stack, volume=volume, result=result, card=card, identity=identity)
            return Exported(folder, tuple(out.files), tuple(out.notes))

        self.busy = True
        worker = create_worker(work)
        worker.returned.connect(self._on_done)
        worker.errored.connect(lambda exc: self._on_error(exc))
        self._worker = worker
        worker.start()
        return True

    def _on_done(self, exported: Exported) -> None:
        self.busy = False
        self.exported.emit(exported)

    def _on_error(self, exc: BaseException) -> None:
        self.busy = False
        self.failed.emit(f"Export failed: {type(exc).__name__}: {exc}")
