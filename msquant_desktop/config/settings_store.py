"""Load and save `Settings` as JSON, atomically (write `.partial`, fsync, rename)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from msquant_desktop.domain.settings import Settings, SettingsError


def load_settings(path: Path) -> Settings:
    """Settings from `path`, or defaults when it does not exist.  Raises SettingsError when invalid."""
    if not path.exists():
        return Settings()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise SettingsError(f"cannot read settings file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SettingsError(f"settings file {path} must hold a JSON object")
    try:
        return Settings.from_dict(data)
    except SettingsError as exc:
        raise SettingsError(f"settings file {path}: {exc} (fix it, or delete it for the defaults)") from exc


def save_settings(path: Path, settings: Settings) -> None:
    write_text_atomic(path, json.dumps(settings.validate().to_dict(), indent=2) + "\n")


def write_text_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Replace `path` with `text` so a crash leaves either the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, path)
