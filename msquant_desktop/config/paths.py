"""Where the app keeps its files: platformdirs, overridable for tests and portable installs.

`--data-dir DIR` or `MSQUANT_DATA_DIR=DIR` puts *everything* (config, data, logs) under DIR so a test
or a second instance never touches the user's real files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_DIR_NAME = "msquant-desktop"
DATA_DIR_ENV = "MSQUANT_DATA_DIR"


@dataclass(frozen=True)
class AppPaths:
    config_dir: Path
    data_dir: Path
    log_dir: Path

    @property
    def database(self) -> Path:
        return self.data_dir / "msquant.sqlite3"

    @property
    def models_dir(self) -> Path:
        """Quantized and demo models: a folder of their own, so deleting a job never deletes a model."""
        return self.data_dir / "models"

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def settings_file(self) -> Path:
        return self.config_dir / "settings.json"

    @property
    def clusters_file(self) -> Path:
        return self.config_dir / "clusters.yaml"

    @property
    def log_file(self) -> Path:
        """The window's log (the About box and the error dialog point at it)."""
        return self.log_dir / "msquant-desktop.log"

    @property
    def cli_log_file(self) -> Path:
        """Every subcommand's log (shared by concurrent processes: config.logsetup)."""
        return self.log_dir / "cli.log"

    def ensure(self) -> AppPaths:
        """Create the folders, private to the user (0700): run records and logs are theirs alone."""
        for d in (self.config_dir, self.data_dir, self.log_dir, self.runs_dir, self.models_dir):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            if d.stat().st_uid == os.getuid() and d.stat().st_mode & 0o077:
                d.chmod(0o700)
        return self


def resolve_paths(data_dir: str | os.PathLike[str] | None = None) -> AppPaths:
    """The app's directories: explicit argument, then the environment, then the platform defaults."""
    override = data_dir or os.environ.get(DATA_DIR_ENV)
    if override:
        root = Path(override).expanduser().resolve()
        return AppPaths(config_dir=root / "config", data_dir=root / "data", log_dir=root / "logs")
    return AppPaths(
        config_dir=Path(platformdirs.user_config_dir(APP_DIR_NAME)),
        data_dir=Path(platformdirs.user_data_dir(APP_DIR_NAME)),
        log_dir=Path(platformdirs.user_log_dir(APP_DIR_NAME)),
    )


def paths_for_store(store: Path) -> AppPaths | None:
    """The app paths whose database is `store`, or None when no layout we make fits it.

    A supervisor knows only its store (from the launch environment); starting the next queued job
    needs that store's settings and runs folder too.  Tried: the paths this environment resolves to,
    then the `--data-dir` layout (DIR/data/msquant.sqlite3).
    """
    store = store.expanduser().resolve()
    candidates = [resolve_paths()]
    if store.parent.name == "data":
        candidates.append(resolve_paths(store.parent.parent))
    for paths in candidates:
        if paths.database.expanduser().resolve() == store:
            return paths
    return None
