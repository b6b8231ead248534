"""The envelope of every `--json` output: `{"schema": SCHEMA_VERSION, ...}` (README.md, "JSON output").

Within a version fields may be added, never removed or changed in meaning; a change of meaning
raises the version.  Standard library only, so workers print it as the CLI does.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1


def envelope(**fields: Any) -> dict[str, Any]:
    """A `--json` output: the schema version first, then the command's own fields."""
    return {"schema": SCHEMA_VERSION, **fields}


def with_schema(obj: dict[str, Any]) -> dict[str, Any]:
    """An existing JSON object with the schema version put first (a field named so is replaced)."""
    return {"schema": SCHEMA_VERSION, **{k: v for k, v in obj.items() if k != "schema"}}
