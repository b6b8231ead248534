"""Projects in the store."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from msquant_desktop.domain.projects import DEFAULT_ENTRY_POINT, EXTRA_LAST_OVERRIDES, Project
from msquant_desktop.store.db import StoreError, transaction


def _row_to_project(row: sqlite3.Row) -> Project:
    return Project(
        id=row["id"],
        name=row["name"],
        path=row["path"],
        added_at=datetime.fromisoformat(row["added_at"]),
        config_dir=row["config_dir"],
        entry_point=row["entry_point"],
        extra=json.loads(row["extra"]),
    )


class ProjectRepository:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def add(self, name: str, path: str, entry_point: str = DEFAULT_ENTRY_POINT) -> Project:
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        with transaction(self._conn):
            try:
                cur = self._conn.execute(
                    "INSERT INTO projects (name, path, entry_point, added_at) VALUES (?, ?, ?, ?)",
                    (name, path, entry_point, now),
                )
            except sqlite3.IntegrityError as exc:
                raise StoreError(f"the project at {path} is already added") from exc
        return self.get(int(cur.lastrowid or 0))

    def get(self, project_id: int) -> Project:
        row = self._conn.execute("SELECT * FROM projects WHERE id = ?", (project_id,)).fetchone()
        if row is None:
            raise KeyError(f"no project with id {project_id}")
        return _row_to_project(row)

    def list_projects(self) -> list[Project]:
        return [_row_to_project(r) for r in self._conn.execute("SELECT * FROM projects ORDER BY name, id")]

    def update(self, project_id: int, **fields: Any) -> Project:
        allowed = {"name", "config_dir", "entry_point", "extra"}
        if set(fields) - allowed:
            raise ValueError(f"cannot set project fields {sorted(set(fields) - allowed)}")
        values = {k: (json.dumps(v) if k == "extra" else v) for k, v in fields.items()}
        with transaction(self._conn):
            assignments = ", ".join(f"{k} = ?" for k in values)
            self._conn.execute(
                f"UPDATE projects SET {assignments} WHERE id = ?", (*values.values(), project_id)
            )
        return self.get(project_id)

    def find_by_path(self, path: str) -> Project | None:
        row = self._conn.execute("SELECT * FROM projects WHERE path = ?", (path,)).fetchone()
        return _row_to_project(row) if row is not None else None

    def remember_launch(self, project_id: int, entry_point: str, overrides: Sequence[str]) -> Project:
        """Keep the entry point and overrides of the last launch, to pre-fill the form next time."""
        extra = dict(self.get(project_id).extra)
        extra[EXTRA_LAST_OVERRIDES] = list(overrides)
        return self.update(project_id, entry_point=entry_point, extra=extra)

    def set_extra(self, project_id: int, key: str, value: Any) -> Project:
        extra = dict(self.get(project_id).extra)
        if value is None:
            extra.pop(key, None)
        else:
            extra[key] = value
        return self.update(project_id, extra=extra)

    def remove(self, project_id: int) -> None:
        """Forget a project (its jobs stay in history, unlinked)."""
        with transaction(self._conn):
            self._conn.execute("DELETE FROM projects WHERE id = ?", (project_id,))
