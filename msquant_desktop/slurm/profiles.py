"""Cluster profiles: `clusters.yaml` load (validated, errors name the field), save, import/export.

Format: `clusters: [{name, host: "user@login.example.edu", ssh_key_path, workspace,
allowed_partitions: [...], allowed_gpu_types: [...], ...}]`.  Secrets never live here: passphrases go
through a prompt or the system keyring.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from msquant_desktop.domain.slurm import ACCOUNTING_MODES, ClusterProfile
from msquant_desktop.slurm import sbatch_options


class ProfileError(ValueError):
    """A clusters file that cannot be used; the message names the file, the cluster and the field."""


_LISTS = ("allowed_partitions", "allowed_gpu_types")
_OPTIONAL_STR = ("ssh_key_path", "known_hosts", "sbatch_template", "slurm_bin", "python", "serve_template")
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
    # YAML 1.1 (PyYAML) reads a bare `off` / `on` as a boolean: take them as the words people wrote.
    if isinstance(accounting, bool):
        accounting = "auto" if accounting else "off"
    if accounting not in ACCOUNTING_MODES:
        raise ProfileError(
            f"{where}: field 'accounting' must be one of {ACCOUNTING_MODES}, got {accounting!r}"
        )
    values["accounting"] = accounting
    values.update(_sbatch_fields(data, where))
    return ClusterProfile(**values)


def _sbatch_fields(data: dict[str, Any], where: str) -> dict[str, Any]:
    """account, qos, constraint, sbatch_lines and signal_lead_s, checked by the rules the script
    renderer applies (slurm/sbatch_options), so a profile that loads also renders."""
    values: dict[str, Any] = {}
    try:
        for key, check in (
            ("account", lambda v: sbatch_options.check_name_value("account", v)),
            ("qos", lambda v: sbatch_options.check_name_value("qos", v)),
            ("constraint", sbatch_options.check_constraint),
        ):
            value = data.get(key)
            if value is not None:
                if not isinstance(value, str):
                    raise ProfileError(f"{where}: field {key!r} must be a string, got {value!r}")
                values[key] = check(value)
        lines = data.get("sbatch_lines") or []
        if not isinstance(lines, list):
            raise ProfileError(f"{where}: field 'sbatch_lines' must be a list of '#SBATCH --opt=value' lines")
        values["sbatch_lines"] = tuple(sbatch_options.check_extra_line(line) for line in lines)
        if "signal_lead_s" in data:
            values["signal_lead_s"] = sbatch_options.check_signal_lead(data["signal_lead_s"])
    except sbatch_options.OptionError as exc:
        raise ProfileError(f"{where}: {exc}") from exc
    return values


def profile_to_dict(profile: ClusterProfile) -> dict[str, Any]:
    """The YAML form; empty optional fields are left out so hand-written files stay short."""
    out: dict[str, Any] = {"name": profile.name, "host": profile.host}
    for f in fields(ClusterProfile):
        if f.name in ("name", "host"):
            continue
        value = getattr(profile, f.name)
        if value in (None, "", ()) or value == f.default:  # a default need not be written
            continue
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


# A clusters file describes a handful of logins; these bounds are far above any real one and keep a
# damaged or hostile file from taking minutes (a 5 MB file took 51 s with the pure-Python parser) or
# the interpreter's stack (deep nesting ends in RecursionError).
MAX_FILE_BYTES = 256 * 1024
MAX_DEPTH = 16
# libyaml's parser when the wheel has it (about 10x faster); the pure-Python one otherwise.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _one_line(exc: yaml.YAMLError) -> str:
    """PyYAML's message is several lines with a source excerpt; keep the problem and where it is."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"{problem}{where}"


def _check_depth(text: str, source: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH from the event stream, before anything is built."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                line = f" (line {mark.line + 1})" if mark is not None else ""
                raise ProfileError(
                    f"{source}: nested more than {MAX_DEPTH} levels deep{line};"
                    " a clusters file is a list of flat mappings"
                )
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def _too_large(source: str, size: int) -> ProfileError:
    return ProfileError(
        f"{source}: {size / 1024:,.0f} KiB is too large for a clusters file"
        f" (the limit is {MAX_FILE_BYTES // 1024} KiB)"
    )


def _load_yaml(text: str, source: str) -> Any:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        raise _too_large(source, size)
    if not text.strip():
        return {"clusters": []}
    try:
        _check_depth(text, source)
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{source}: not valid YAML: {_one_line(exc)}") from exc
    except RecursionError as exc:  # a parser without its own depth limit
        raise ProfileError(f"{source}: nested too deeply to read") from exc


def parse_profiles(text: str, source: str = "clusters.yaml") -> list[ClusterProfile]:
    data = _load_yaml(text, source)
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
        raw = _read_bounded(path)
    except FileNotFoundError:
        return []
    except IsADirectoryError:
        raise ProfileError(f"{path}: is a folder; give the clusters.yaml file inside it") from None
    except PermissionError:
        raise ProfileError(f"{path}: not readable (permission denied); fix its permissions") from None
    except OSError as exc:
        raise ProfileError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ProfileError(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); save it as UTF-8"
        ) from None
    return parse_profiles(text, str(path))


def _read_bounded(path: Path) -> bytes:
    """The file's bytes, never more than MAX_FILE_BYTES + 1 of them read.

    A clusters file is a regular file: a device (/dev/zero) or a pipe never ends, and reading one
    whole would grow without bound.  O_NONBLOCK lets a FIFO with no writer open at once (to be
    refused) instead of hanging in open(); it changes nothing for a regular file.  The cap on the
    read also holds for a regular file that grows while it is read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(path)
        if not stat.S_ISREG(info.st_mode):
            raise ProfileError(f"{path}: not a regular file (a device or a pipe); give a clusters.yaml file")
        if info.st_size > MAX_FILE_BYTES:
            raise _too_large(str(path), info.st_size)
        chunks: list[bytes] = []
        left = MAX_FILE_BYTES + 1
        while left > 0:
            chunk = os.read(fd, min(left, 64 * 1024))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    raw = b"".join(chunks)
    if len(raw) > MAX_FILE_BYTES:
        raise _too_large(str(path), len(raw))
    return raw


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
