"""Hydra: find a project's config tree and compose it with Hydra's own compose API.

Discovery only reads files (fast, no Hydra import).  Composition uses `hydra.initialize_config_dir`
+ `compose(overrides=...)`, whose messages are the ones users know from running their script.  Hydra
keeps global state, so the GUI never composes in its own process: `compose_in_child` runs
`msquant-desktop project-compose` (which calls `compose_yaml` here) and reads back one JSON object.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Sequence
from pathlib import Path

import yaml

from msquant_desktop.domain.projects import HydraLayout
from msquant_desktop.runtime import self_command

log = logging.getLogger(__name__)

CONFIG_DIR_CANDIDATES = ("conf", "configs", "config")
PRIMARY_PREFERENCE = ("config", "train", "main")
COMPOSE_TIMEOUT_S = 60.0


class HydraError(RuntimeError):
    """Hydra refused a composition (the message is Hydra's own) or the config tree is unusable."""


def find_config_dir(project_root: str | Path, configured: str | None = None) -> Path | None:
    """The config folder: the user's choice (relative to the project or absolute), else conf/ or configs/."""
    root = Path(project_root)
    if configured:
        chosen = Path(configured)
        chosen = chosen if chosen.is_absolute() else root / chosen
        if not chosen.is_dir():
            raise HydraError(f"the config folder {chosen} does not exist")
        return chosen
    for name in CONFIG_DIR_CANDIDATES:
        candidate = root / name
        if candidate.is_dir() and any(candidate.glob("*.yaml")):
            return candidate
    return None


def _defaults_of(primary_file: Path) -> list[tuple[str, str]]:
    try:
        data = yaml.safe_load(primary_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        log.info("cannot read defaults of %s: %s", primary_file, exc)
        return []
    entries = data.get("defaults", []) if isinstance(data, dict) else []
    found: list[tuple[str, str]] = []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and len(entry) == 1:
            ((key, value),) = entry.items()
            key = str(key)
            if key.startswith("override ") or value is None:
                continue
            found.append((key.split("@", 1)[0].removeprefix("optional ").strip(), str(value)))
    return found


def discover(
    project_root: str | Path, configured_dir: str | None = None, primary: str | None = None
) -> HydraLayout | None:
    """The Hydra layout of a project, or None when it has no config folder (plain commands only)."""
    config_dir = find_config_dir(project_root, configured_dir)
    if config_dir is None:
        return None
    primaries = tuple(sorted(p.stem for p in config_dir.glob("*.yaml")))
    if primary is None:
        primary = next((p for p in PRIMARY_PREFERENCE if p in primaries), primaries[0] if primaries else "")
    if not primary:
        raise HydraError(f"the config folder {config_dir} has no .yaml file")
    if primary not in primaries:
        raise HydraError(f"the config folder {config_dir} has no {primary}.yaml")
    groups: list[tuple[str, tuple[str, ...]]] = []
    for folder in sorted(p for p in config_dir.rglob("*") if p.is_dir()):
        options = tuple(sorted(f.stem for f in folder.glob("*.yaml")))
        if options:
            groups.append((folder.relative_to(config_dir).as_posix(), options))
    return HydraLayout(
        config_dir=str(config_dir),
        primary=primary,
        primaries=primaries,
        groups=tuple(groups),
        defaults=tuple(_defaults_of(config_dir / f"{primary}.yaml")),
    )


def compose_yaml(config_dir: str | Path, config_name: str, overrides: Sequence[str]) -> str:
    """Compose in this process with Hydra's API; HydraError carries Hydra's message.

    Clears Hydra's global state before and after, so repeated calls in one process do not interfere.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base=None):
            cfg = compose(config_name=config_name, overrides=list(overrides))
            return str(OmegaConf.to_yaml(cfg))
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        raise HydraError(str(exc).strip()) from None
    finally:
        GlobalHydra.instance().clear()


def compose_in_child(
    config_dir: str | Path, config_name: str, overrides: Sequence[str], timeout: float = COMPOSE_TIMEOUT_S
) -> str:
    """Compose in a child process (`project-compose`), so Hydra's globals never live in the GUI."""
    argv = self_command(
        "project-compose", "--config-dir", str(config_dir), "--config-name", config_name, "--", *overrides
    )
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise HydraError(f"composing the config took longer than {timeout:.0f} s") from exc
    try:
        answer = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise HydraError(
            f"the compose helper failed: {proc.stderr.strip()[-2000:] or proc.returncode}"
        ) from None
    if not answer.get("ok"):
        raise HydraError(str(answer.get("error", "composition failed")))
    return str(answer["yaml"])
