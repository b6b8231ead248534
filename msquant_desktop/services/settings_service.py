"""The one owner of the user's settings in the GUI process; tells everyone when they change."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from msquant_desktop.config.settings_store import load_settings, save_settings
from msquant_desktop.domain.settings import Settings

log = logging.getLogger(__name__)


class SettingsService(QObject):
    sig_settings_changed = Signal(object)
    """Emitted with the new `Settings` after they were saved."""

    def __init__(self, path: Path, initial: Settings | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._path = path
        self._settings = initial if initial is not None else load_settings(path)

    @property
    def settings(self) -> Settings:
        return self._settings

    def update(self, settings: Settings) -> None:
        """Validate, save atomically, then announce.  Raises SettingsError (nothing saved) when invalid."""
        settings.validate()
        save_settings(self._path, settings)
        self._settings = settings
        log.info("settings saved to %s", self._path)
        self.sig_settings_changed.emit(settings)
