"""Typed user settings with a schema version.  Standard library only; persisted by config/."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

SETTINGS_SCHEMA_VERSION = 1

SETTING_RANGES: dict[str, tuple[float, float]] = {
    "max_concurrent_jobs": (1, 64),
    "cancel_grace_seconds": (0.0, 600.0),
    "gpu_sample_interval_seconds": (0.25, 60.0),
    "gpu_history_seconds": (60, 24 * 3600),
    "log_view_max_lines": (100, 1_000_000),
}
"""Each number setting's smallest and largest value.  The Settings dialog's spin boxes use the same
bounds, so what it can produce is exactly what a settings file may hold (json.loads also reads NaN,
Infinity and 1e400, which a timer or a kill deadline cannot use)."""


class SettingsError(ValueError):
    """A settings file that cannot be used; the message names the field."""


@dataclass(frozen=True)
class Settings:
    """Everything the user can change in the Settings dialog."""

    max_concurrent_jobs: int = 1
    cancel_grace_seconds: float = 10.0
    gpu_sample_interval_seconds: float = 1.0
    gpu_history_seconds: int = 3600
    worker_python: str = ""
    notify_when_job_finishes: bool = True
    inhibit_sleep_while_jobs_run: bool = True
    """Ask the desktop not to sleep while local jobs run (org.freedesktop.ScreenSaver.Inhibit)."""
    log_view_max_lines: int = 10_000
    secret_env_names: str = ""
    """More names (comma-separated, `*` wildcards) whose values never go into run records, besides
    *TOKEN*, *KEY*, *SECRET*, *PASSWORD*."""

    def validate(self) -> Settings:
        for name, (low, high) in SETTING_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, float) and not math.isfinite(value):
                raise SettingsError(f"{name} must be a finite number, got {value!r}")
            if not low <= value <= high:
                raise SettingsError(f"{name} must be at least {low:g} and at most {high:g}, got {value!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SETTINGS_SCHEMA_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        """Build settings from a parsed file; unknown keys are ignored, wrong types named."""
        version = data.get("schema_version", SETTINGS_SCHEMA_VERSION)
        if not isinstance(version, int) or version > SETTINGS_SCHEMA_VERSION:
            raise SettingsError(
                f"settings schema_version {version!r} is newer than this program understands "
                f"({SETTINGS_SCHEMA_VERSION})"
            )
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            raw = data[f.name]
            expected = type(getattr(cls(), f.name))
            if expected is float and isinstance(raw, int) and not isinstance(raw, bool):
                raw = float(raw)
            if not isinstance(raw, expected) or (expected is int and isinstance(raw, bool)):
                raise SettingsError(f"setting {f.name!r} must be {expected.__name__}, got {raw!r}")
            values[f.name] = raw
        return cls(**values).validate()
