"""Which environment variables hold secrets, so run records never keep their values.

Standard library only.  A job still receives its real environment; only what is written to files
(launch.json, spec.json) is redacted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase

SECRET_NAME_PATTERNS = ("*TOKEN*", "*KEY*", "*SECRET*", "*PASSWORD*", "*PASSWD*", "*CREDENTIAL*")
"""Names (upper-cased) that look like secrets: HF_TOKEN, WANDB_API_KEY, AWS_SECRET_ACCESS_KEY, ..."""

REDACTED = "<secret: given to the job from the environment, not stored>"


def extra_patterns(setting: str) -> tuple[str, ...]:
    """The user's own patterns from the comma-separated `secret_env_names` setting."""
    return tuple(p.strip().upper() for p in setting.split(",") if p.strip())


def is_secret_name(name: str, extra: Iterable[str] = ()) -> bool:
    upper = name.upper()
    return any(fnmatchcase(upper, pattern) for pattern in (*SECRET_NAME_PATTERNS, *extra))


def redact_env(env: Mapping[str, str], extra: Iterable[str] = ()) -> dict[str, str]:
    """`env` with the value of every secret-looking name replaced by a reference."""
    patterns = tuple(extra)
    return {k: (REDACTED if is_secret_name(k, patterns) else v) for k, v in env.items()}
