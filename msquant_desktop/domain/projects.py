"""Projects: local git repositories jobs are launched from.  Standard library only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DEFAULT_ENTRY_POINT = "python train.py"


@dataclass(frozen=True)
class Project:
    id: int
    name: str
    path: str
    added_at: datetime
    config_dir: str | None = None
    entry_point: str = DEFAULT_ENTRY_POINT
    extra: dict[str, Any] = field(default_factory=dict)
