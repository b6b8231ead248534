"""What every subcommand gets: the app's paths, settings and (lazily) the store."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from msquant_desktop.config.paths import AppPaths
from msquant_desktop.config.settings_store import load_settings
from msquant_desktop.domain.settings import Settings
from msquant_desktop.store import connect


@dataclass
class CliContext:
    paths: AppPaths
    _conn: sqlite3.Connection | None = field(default=None, repr=False)
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.paths.settings_file)
        return self._settings

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect(self.paths.database)
        return self._conn
