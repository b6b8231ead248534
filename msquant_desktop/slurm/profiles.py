"""Cluster profiles: `clusters.yaml` load (validated, errors name the field), save, import/export.

Format: `clusters: [{name, host: "user@login.example.edu", ssh_key_path, workspace,
allowed_partitions: [...], allowed_gpu_types: [...], ...}]`.  Secrets never live here: passphrases go
through a prompt or the system keyring.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from msquant_desktop.domain.slurm import ACCOUNTING_MODES, ClusterProfile


class ProfileError(ValueError):
    """A clusters file that cannot be used; the message names the file, the cluster and the field."""


_LISTS = ("allowed_partitions", "allowed_gpu_types")
_OPTIONAL_STR = ("ssh_key_path", "known_hosts", "sbatch_template", "slurm_bin", "python")
_SECRET_KEYS = ("password", "passphrase", "secret")
# Full-string checks: `re.match(...$)` would also accept a trailing newline.
_NAME = re.compile(r"[A-Za-z0-9._+-]+")
_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def _where(source: str, index: int, name: str | None) -> str:
    label = f"cluster #{index + 1}" + (f" ({name!r})" if name else "")
    return f"{source}: {label}"


def profile_from_dict(data: Any, source: str = "clusters", index: int = 0) -> ClusterProfile:
    """One profile from parsed YAML; raises ProfileError naming the field that is wrong."""
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: cluster #{index + 1} must be a mapping, got {type(data).__name__}")
    name = data.get("name")
    where = _where(source, index, name if isinstance(name, str) else None)
    known = {f.name for f in fields(ClusterProfile)}
    for key in data:
        if any(secret in str(key).lower() for secret in _SECRET_KEYS):
            raise ProfileError(
                f"{where}: field {key!r} is not allowed; secrets go to the keyring or a prompt"
            )
        if key not in known:
            raise ProfileError(f"{where}: unknown field {key!r} (known: {', '.join(sorted(known))})")
    for required in ("name", "host", "workspace"):
        value = data.get(required)
        if not isinstance(value, str) or not value.strip():
            raise ProfileError(f"{where}: field {required!r} is required and must be a non-empty string")
    for key, value in data.items():
        if key != "preamble" and isinstance(value, str) and _LINE_BREAKING.search(value):
            raise ProfileError(f"{where}: field {key!r} {value!r} must not contain control characters")
    values: dict[str, Any] = {k: str(data[k]).strip() for k in ("name", "host", "workspace")}
    if "@" in values["host"] and not values["host"].split("@", 1)[1]:
        raise ProfileError(f"{where}: field 'host' {values['host']!r} has no host after '@'")
    if not values["workspace"].startswith(("/", "~", "$")):
        raise ProfileError(
            f"{where}: field 'workspace' must be an absolute remote path, got {values['workspace']!r}"
        )
    port = data.get("port")
    if port is not None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ProfileError(f"{where}: field 'port' must be a number between 1 and 65535, got {port!r}")
        values["port"] = port
    for key in _OPTIONAL_STR:
        value = data.get(key)
        if value is not None:
            if not isinstance(value, str):
                raise ProfileError(f"{where}: field {key!r} must be a string, got {value!r}")
            values[key] = value
    for key in _LISTS:
        value = data.get(key, [])
        if value is None:
            value = []
        if not isinstance(value, list) or not all(isinstance(v, str) and _NAME.fullmatch(v) for v in value):
            raise ProfileError(
                f"{where}: field {key!r} must be a list of names (letters, digits, . _ + -), got {value!r}"
            )
        values[key] = tuple(value)
    preamble = data.get("preamble", "")
    if not isinstance(preamble, str):
        raise ProfileError(f"{where}: field 'preamble' must be text (one shell line per line)")
    values["preamble"] = preamble
    accounting = data.get("accounting", "auto")
    if accounting not in ACCOUNTING_MODES:
        raise ProfileError(
            f"{where}: field 'accounting' must be one of {ACCOUNTING_MODES}, got {accounting!r}"
        )
    values["accounting"] = accounting
    return ClusterProfile(**values)


def profile_to_dict(profile: ClusterProfile) -> dict[str, Any]:
    """The YAML form; empty optional fields are left out so hand-written files stay short."""
    out: dict[str, Any] = {"name": profile.name, "host": profile.host}
    for f in fields(ClusterProfile):
        if f.name in ("name", "host"):
            continue
        value = getattr(profile, f.name)
        if value in (None, "", ()) or (f.name == "accounting" and value == "auto"):
            continue
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def parse_profiles(text: str, source: str = "clusters.yaml") -> list[ClusterProfile]:
    try:
        data = yaml.safe_load(text) if text.strip() else {"clusters": []}
    except yaml.YAMLError as exc:
        raise ProfileError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("clusters", []), list):
        raise ProfileError(f"{source}: expected a mapping with a 'clusters:' list at the top")
    profiles = [profile_from_dict(item, source, i) for i, item in enumerate(data.get("clusters") or [])]
    seen: set[str] = set()
    for p in profiles:
        if p.name in seen:
            raise ProfileError(f"{source}: cluster name {p.name!r} appears twice; names must be unique")
        seen.add(p.name)
    return profiles


def load_profiles(path: Path) -> list[ClusterProfile]:
    """Profiles from `path`; an absent file means no clusters yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return parse_profiles(text, str(path))


def dump_profiles(profiles: list[ClusterProfile]) -> str:
    return yaml.safe_dump(
        {"clusters": [profile_to_dict(p) for p in profiles]}, sort_keys=False, allow_unicode=True
    )


def save_profiles(path: Path, profiles: list[ClusterProfile]) -> None:
    """Write atomically (temp file + rename) so a crash never leaves half a file."""
    parse_profiles(dump_profiles(profiles), str(path))  # refuse to write what we could not read back
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".clusters-", suffix=".partial", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(dump_profiles(profiles))
    os.replace(tmp, path)


def import_profiles(existing: list[ClusterProfile], path: Path) -> list[ClusterProfile]:
    """Existing profiles plus those in `path`; an imported name replaces the existing one."""
    incoming = load_profiles(path)
    if not path.exists():
        raise ProfileError(f"{path}: no such file")
    names = {p.name for p in incoming}
    return [p for p in existing if p.name not in names] + incoming
