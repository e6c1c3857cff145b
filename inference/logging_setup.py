"""The log file: one per user, in the platform's log folder, never next to the executable.

``radlens`` (installed or packaged) calls :func:`setup_logging` once at start. The log gets the
version, the command name, how each run ended (an error as the command printed it), Python
warnings and uncaught tracebacks; never the command line or DICOM header values, so patient
names and IDs do not reach it.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path
from types import TracebackType

LOGGER_NAME = "radlens"
LOG_FILE = "radlens.log"
MAX_BYTES = 1_000_000
BACKUPS = 3
_HANDLER_MARK = "_radlens_log_file"


def log_dir() -> Path:
    """``platformdirs.user_log_dir("radlens")``: ~/.local/state/radlens/log on Linux,
    ~/Library/Logs/radlens on macOS, the user's local AppData on Windows."""
    import platformdirs

    return Path(platformdirs.user_log_dir("radlens"))


def setup_logging(level: int = logging.INFO) -> Path | None:
    """Send the ``radlens`` logger (and Python warnings) to a rotating file in :func:`log_dir`.

    Safe to call more than once. Returns the log file, or None where the folder cannot be
    created (a read-only home): RadLens then runs without a log file rather than failing.
    """
    root = logging.getLogger()
    for handler in root.handlers:
        if getattr(handler, _HANDLER_MARK, False):
            return Path(getattr(handler, "baseFilename", ""))
    path = log_dir() / LOG_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8", delay=True
        )
    except OSError:
        return None
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(level)
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)  # other libraries: warnings and errors only
    logging.getLogger(LOGGER_NAME).setLevel(level)
    logging.captureWarnings(True)
    _chain_excepthook()
    return path


def _chain_excepthook() -> None:
    """Uncaught exceptions (also in Qt slots, which go through sys.excepthook) reach the log too."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if not issubclass(kind, KeyboardInterrupt):
            logging.getLogger(LOGGER_NAME).critical("uncaught exception", exc_info=(kind, value, tb))
        previous(kind, value, tb)

    sys.excepthook = hook
