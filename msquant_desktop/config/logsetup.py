"""Logging a user can send: a rotating file in the log dir, plus stderr for console runs."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_HANDLER_NAME = "msquant"
"""The name of the handlers set up here, so a second set-up replaces them (and only them)."""


def setup_logging(log_file: Path, level: int = logging.INFO, console: bool = True) -> None:
    """Route all logging to `log_file` (rotating, 5 x 2 MB) and, when `console`, to stderr.

    Raises OSError when the log file cannot be opened (read-only or full disk: the caller says so in
    one line).  A write that fails later (the disk filled up) is dropped, never a traceback on stderr.
    """
    logging.raiseExceptions = False
    log_file.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.setLevel(level)
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
            handler.close()
    file_handler = logging.handlers.RotatingFileHandler(
        log_file, maxBytes=2_000_000, backupCount=5, encoding="utf-8"
    )
    file_handler.setFormatter(logging.Formatter(FORMAT))
    file_handler.set_name(_HANDLER_NAME)
    root.addHandler(file_handler)
    if console and sys.stderr is not None:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter(FORMAT))
        stream.setLevel(logging.WARNING)
        stream.set_name(_HANDLER_NAME)
        root.addHandler(stream)
