"""Qt's own messages (qDebug/qWarning/...) routed into Python logging, so they reach the log file."""

from __future__ import annotations

import logging

from PySide6.QtCore import QMessageLogContext, QtMsgType, qInstallMessageHandler

log = logging.getLogger("qt")

_LEVELS = {
    QtMsgType.QtDebugMsg: logging.DEBUG,
    QtMsgType.QtInfoMsg: logging.INFO,
    QtMsgType.QtWarningMsg: logging.WARNING,
    QtMsgType.QtCriticalMsg: logging.ERROR,
    QtMsgType.QtFatalMsg: logging.CRITICAL,
}


# Harmless notes from the offscreen platform plugin (headless runs): kept out of WARNING level.
_BENIGN = ("This plugin does not support propagateSizeHints",)


def _handler(msg_type: QtMsgType, context: QMessageLogContext, message: str) -> None:
    if message.startswith(_BENIGN):
        log.debug("%s", message)
        return
    where = f" ({context.category})" if context.category and context.category != "default" else ""
    log.log(_LEVELS.get(msg_type, logging.WARNING), "%s%s", message, where)


def install_qt_message_handler() -> None:
    qInstallMessageHandler(_handler)
