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


# -- secrets typed for one job ---------------------------------------------------------------------
# A value the user types into a job's environment (HF_TOKEN=hf_...) must reach the job but never the
# store: the spec keeps this reference instead, and the value is held in the memory of the process
# that queued the job until it starts it.  A process that does not hold it cannot start the job with
# the real value, and says so instead of starting it with the reference as a value.

HELD = "<secret: typed for this job, held in memory until it starts>"

EnvPairs = tuple[tuple[str, str], ...]


def hold_secrets(env: EnvPairs, extra: Iterable[str] = ()) -> tuple[EnvPairs, dict[str, str]]:
    """(env with secret-looking values replaced by HELD, the values taken out)."""
    patterns = tuple(extra)
    public: list[tuple[str, str]] = []
    held: dict[str, str] = {}
    for name, value in env:
        if is_secret_name(name, patterns) and value not in (HELD, REDACTED):
            held[name] = value
            public.append((name, HELD))
        else:
            public.append((name, value))
    return tuple(public), held


def release_secrets(
    env: EnvPairs, held: Mapping[str, str], inherited: Mapping[str, str]
) -> tuple[EnvPairs, list[str]]:
    """The env to start the job with: each reference replaced by its held value; a reference with no
    held value is dropped when the job inherits the variable anyway.  Also returns the names that
    are neither held nor inherited (the job must not start without them)."""
    out: list[tuple[str, str]] = []
    missing: list[str] = []
    for name, value in env:
        if value not in (HELD, REDACTED):
            out.append((name, value))
        elif name in held:
            out.append((name, held[name]))
        elif name not in inherited:
            missing.append(name)
    return tuple(out), missing
